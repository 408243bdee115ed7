//! Schema set-up at start-up.
//!
//! The DDL files are compiled in and executed on every start: each statement is
//! `CREATE … IF NOT EXISTS`, so a second start (or a second router instance starting at the
//! same moment against the same MySQL) is a no-op. A future change that alters an existing
//! table needs a versioned step here; plain re-execution only covers additions of whole
//! tables and indexes.

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use super::connection::{write_transaction, Dialect, StoreConnection};
use super::error::StoreError;

/// The MySQL/MariaDB DDL, the schema's source of truth.
#[cfg(any(feature = "mysql", test))]
pub(crate) const MYSQL_DDL: &str = include_str!("../../schema.sql");

/// The SQLite twin of [`MYSQL_DDL`].
pub(crate) const SQLITE_DDL: &str = include_str!("sqlite.sql");

/// Brings the database to the current schema. Safe to run any number of times.
pub(crate) fn run(conn: &mut StoreConnection) -> Result<(), StoreError> {
    match conn.dialect() {
        Dialect::Sqlite => {
            // WAL lets readers (SSE replays, polling) run while an append commits. The mode is
            // stored in the database file, so setting it once here covers every pooled
            // connection; it cannot be changed inside a transaction, hence before the DDL.
            conn.batch_execute("PRAGMA journal_mode = WAL;")?;
            // One write transaction: a concurrent starter waits, then finds the tables there.
            write_transaction(conn, |conn| {
                conn.batch_execute(SQLITE_DDL)?;
                add_correlation_column(conn)
            })
        }
        // MySQL commits each DDL statement implicitly, so a transaction would buy nothing.
        #[cfg(feature = "mysql")]
        Dialect::Mysql => {
            conn.batch_execute(MYSQL_DDL)?;
            add_correlation_column(conn)
        }
    }
}

/// How many columns named `correlation_id` `nft_events` has (0 or 1).
#[derive(diesel::QueryableByName)]
struct ColumnCount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Step 1: `nft_events.correlation_id`, so the relay reads a record's correlation header from
/// its column instead of parsing the envelope back. A database made before it gets the column,
/// and its unpublished rows get their value from the envelope (published rows are never read
/// for it again). Racing starters on MySQL: the loser's `ADD COLUMN` fails as a duplicate,
/// which is the state it wanted.
fn add_correlation_column(conn: &mut StoreConnection) -> Result<(), StoreError> {
    let (count, add, backfill) = match conn.dialect() {
        Dialect::Sqlite => (
            "SELECT COUNT(*) AS n FROM pragma_table_info('nft_events') \
             WHERE name = 'correlation_id'",
            "ALTER TABLE nft_events ADD COLUMN correlation_id TEXT NULL",
            "UPDATE nft_events SET correlation_id = json_extract(envelope_json, '$.correlationId') \
             WHERE published_at IS NULL AND json_type(envelope_json, '$.correlationId') = 'text'",
        ),
        #[cfg(feature = "mysql")]
        Dialect::Mysql => (
            "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = 'nft_events' AND column_name = 'correlation_id'",
            "ALTER TABLE nft_events ADD COLUMN correlation_id VARCHAR(128) NULL",
            "UPDATE nft_events \
             SET correlation_id = JSON_UNQUOTE(JSON_EXTRACT(envelope_json, '$.correlationId')) \
             WHERE published_at IS NULL \
             AND JSON_TYPE(JSON_EXTRACT(envelope_json, '$.correlationId')) = 'STRING'",
        ),
    };
    let present = diesel::sql_query(count).get_result::<ColumnCount>(conn)?.n > 0;
    if present {
        return Ok(());
    }
    match diesel::sql_query(add).execute(conn) {
        Ok(_) => {}
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("Duplicate column") => {}
        Err(e) => return Err(e.into()),
    }
    diesel::sql_query(backfill).execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Drift checks between the two DDL files and `schema.rs`.

    use std::collections::{BTreeMap, BTreeSet};

    use super::{MYSQL_DDL, SQLITE_DDL};

    /// Per table: its column names and the names of its indexes and unique keys.
    #[derive(Debug, Default, PartialEq)]
    struct TableShape {
        columns: BTreeSet<String>,
        indexes: BTreeSet<String>,
    }

    /// A deliberately small reader for the two DDL files: enough to list the tables, columns
    /// and index names they declare, and to fail loudly on anything it does not understand.
    fn parse_ddl(ddl: &str) -> BTreeMap<String, TableShape> {
        let text: String = ddl
            .lines()
            .map(|line| line.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut tables: BTreeMap<String, TableShape> = BTreeMap::new();
        for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
            match upper
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["CREATE", "TABLE", "IF", "NOT", "EXISTS", ..] => {
                    let name = words[5].trim_end_matches('(').to_ascii_lowercase();
                    let open = statement
                        .find('(')
                        .expect("CREATE TABLE without a column list");
                    let close = statement.rfind(')').expect("CREATE TABLE without ')'");
                    let shape = tables.entry(name).or_default();
                    for item in split_top_level(&statement[open + 1..close]) {
                        read_table_item(&item, shape);
                    }
                }
                ["CREATE", "INDEX", "IF", "NOT", "EXISTS", ..]
                | ["CREATE", "UNIQUE", "INDEX", "IF", "NOT", "EXISTS", ..] => {
                    let at = upper.iter().position(|w| w == "EXISTS").expect("EXISTS") + 1;
                    let on = upper
                        .iter()
                        .position(|w| w == "ON")
                        .expect("CREATE INDEX without ON");
                    let table = words[on + 1].trim_end_matches('(').to_ascii_lowercase();
                    tables
                        .entry(table)
                        .or_default()
                        .indexes
                        .insert(words[at].to_ascii_lowercase());
                }
                _ => panic!("unexpected statement in DDL: {statement}"),
            }
        }
        tables
    }

    /// Splits a column list on the commas that are not inside parentheses.
    fn split_top_level(list: &str) -> Vec<String> {
        let mut items = vec![String::new()];
        let mut depth = 0;
        for c in list.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(String::new());
                    continue;
                }
                _ => {}
            }
            items.last_mut().expect("never empty").push(c);
        }
        items.into_iter().map(|s| s.trim().to_string()).collect()
    }

    fn read_table_item(item: &str, shape: &mut TableShape) {
        let words: Vec<&str> = item.split_whitespace().collect();
        let first = words[0].to_ascii_uppercase();
        let named = |i: usize| words[i].trim_end_matches('(').to_ascii_lowercase();
        match first.as_str() {
            "PRIMARY" => {}
            // MySQL inline: UNIQUE KEY name (...), KEY name (...), INDEX name (...).
            "UNIQUE" => {
                shape.indexes.insert(named(2));
            }
            "KEY" | "INDEX" => {
                shape.indexes.insert(named(1));
            }
            // SQLite: CONSTRAINT name UNIQUE (...).
            "CONSTRAINT" => {
                shape.indexes.insert(named(1));
            }
            _ => {
                shape.columns.insert(words[0].to_ascii_lowercase());
            }
        }
    }

    /// Column names of a diesel table, read back from the SQL diesel itself generates for
    /// `SELECT all_columns`, so the check follows `schema.rs` without a hand-kept list.
    fn diesel_columns<T>(table: T, columns: T::AllColumns, name: &str) -> BTreeSet<String>
    where
        T: diesel::Table + diesel::query_dsl::methods::SelectDsl<T::AllColumns>,
        <T as diesel::query_dsl::methods::SelectDsl<T::AllColumns>>::Output:
            diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>,
    {
        let sql =
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&table.select(columns)).to_string();
        let marker = format!("`{name}`.`");
        sql.split(&marker)
            .skip(1)
            .map(|rest| rest.split('`').next().unwrap_or("").to_string())
            .collect()
    }

    /// Every table of `schema.rs` with its columns, as diesel generates them. A table added to
    /// `schema.rs` must be listed here, or the test below fails on the table names.
    fn diesel_tables() -> BTreeMap<String, BTreeSet<String>> {
        use crate::store::schema::*;

        macro_rules! tables {
            ($($table:ident),* $(,)?) => {
                BTreeMap::from([$((
                    stringify!($table).to_string(),
                    diesel_columns($table::table, $table::all_columns, stringify!($table)),
                )),*])
            };
        }
        tables!(
            analytics_minute_counts,
            analytics_processed,
            analytics_totals,
            audit_log,
            domain_receipts,
            feed_counters,
            ledger_entries,
            nft_events,
            nft_flows,
            notifications,
            operations_feed,
            user_badges,
            user_nfts,
            user_streams,
            user_volumes,
        )
    }

    #[test]
    fn mysql_and_sqlite_ddl_declare_the_same_tables_columns_and_indexes() {
        let mysql = parse_ddl(MYSQL_DDL);
        let sqlite = parse_ddl(SQLITE_DDL);
        assert_eq!(
            mysql.keys().collect::<Vec<_>>(),
            vec![
                "analytics_minute_counts",
                "analytics_processed",
                "analytics_totals",
                "audit_log",
                "domain_receipts",
                "feed_counters",
                "ledger_entries",
                "nft_events",
                "nft_flows",
                "notifications",
                "operations_feed",
                "user_badges",
                "user_nfts",
                "user_streams",
                "user_volumes",
            ],
            "schema.sql tables"
        );
        assert_eq!(
            mysql, sqlite,
            "schema.sql and src/store/sqlite.sql drifted apart"
        );
    }

    #[test]
    fn diesel_schema_matches_the_ddl() {
        let ddl: BTreeMap<String, BTreeSet<String>> = parse_ddl(MYSQL_DDL)
            .into_iter()
            .map(|(name, shape)| (name, shape.columns))
            .collect();
        let diesel = diesel_tables();
        assert_eq!(
            diesel.keys().collect::<Vec<_>>(),
            ddl.keys().collect::<Vec<_>>(),
            "src/store/schema.rs tables vs schema.sql"
        );
        for (table, columns) in &diesel {
            assert_eq!(
                columns, &ddl[table],
                "src/store/schema.rs {table} vs schema.sql"
            );
        }
    }

    #[test]
    fn the_drift_check_notices_a_missing_column() {
        let trimmed = SQLITE_DDL.replace("    published_at  TEXT    NULL,\n", "");
        assert_ne!(
            trimmed, SQLITE_DDL,
            "test fixture no longer matches sqlite.sql"
        );
        assert_ne!(parse_ddl(MYSQL_DDL), parse_ddl(&trimmed));
    }

    #[test]
    fn the_drift_check_notices_a_missing_index() {
        let trimmed = SQLITE_DDL.replace(
            "CREATE INDEX IF NOT EXISTS idx_audit_log_occurred_at ON audit_log (occurred_at);\n",
            "",
        );
        assert_ne!(
            trimmed, SQLITE_DDL,
            "test fixture no longer matches sqlite.sql"
        );
        assert_ne!(parse_ddl(MYSQL_DDL), parse_ddl(&trimmed));
    }
}
