//! Opening the store: URLs, migrations on an existing database, unreachable servers.

use super::{backends, connect, event, seqs, unique_user, TempDb};
use crate::store::{Store, StoreError};

#[test]
fn connecting_twice_to_the_same_database_is_harmless() {
    for backend in backends() {
        let user = unique_user();
        let first = connect(&backend, 1);
        first.append(&[event(&user)]).expect("append");

        let second = connect(&backend, 1);

        second.ping().expect("ping");
        assert_eq!(
            seqs(&second.events_after(&user, 0, 10).expect("read")),
            vec![1]
        );
        assert_eq!(
            seqs(&second.append(&[event(&user)]).expect("append")),
            vec![2]
        );
    }
}

#[test]
fn a_bare_path_creates_missing_directories_and_uses_wal() {
    let db = TempDb::new();
    let nested = db.path.with_file_name("a").join("b").join("router.db");

    let store = Store::connect(&nested.display().to_string(), 1).expect("connect");

    store.ping().expect("ping");
    assert_eq!(store.backend(), "sqlite");
    assert!(nested.exists(), "database file created");
    let wal = nested.with_file_name("router.db-wal");
    store.append(&[event(&unique_user())]).expect("append");
    assert!(
        wal.exists(),
        "journal_mode=WAL leaves a -wal file beside the database"
    );
}

#[test]
fn store_urls_are_checked_before_connecting() {
    for (url, size) in [
        ("", 1),
        ("postgres://localhost/db", 1),
        ("sqlite://", 1),
        (":memory:", 1),
        ("sqlite://./never-created.db", 0),
    ] {
        let err = Store::connect(url, size).expect_err(url);
        assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
        assert!(!err.is_unavailable());
    }
}

#[cfg(not(feature = "mysql"))]
#[test]
fn a_mysql_url_without_the_feature_says_how_to_enable_it() {
    let err = Store::connect("mysql://root@127.0.0.1:3306/test", 1).expect_err("no mysql");

    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("--features mysql"), "{err}");
}

#[cfg(feature = "mysql")]
#[test]
fn an_unreachable_mysql_server_is_reported_as_unavailable() {
    let started = std::time::Instant::now();

    let err = Store::connect("mysql://root@127.0.0.1:1/test", 1).expect_err("port 1 is closed");

    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "failed fast"
    );
}

#[test]
fn sqlite_synchronous_reaches_every_pooled_connection() {
    use diesel::sql_types::Integer;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = Integer)]
        synchronous: i32,
    }

    for (sync, expected) in [
        (crate::store::SqliteSync::Full, 2),
        (crate::store::SqliteSync::Normal, 1),
    ] {
        let db = TempDb::new();
        let store = Store::connect_with(&db.path.display().to_string(), 2, sync).expect("connect");
        // Two connections checked out at once: both were opened by the pool.
        let mut a = store.checkout().expect("first");
        let mut b = store.checkout().expect("second");
        for conn in [&mut *a, &mut *b] {
            // Irrefutable without the `mysql` feature, refutable with it.
            #[allow(irrefutable_let_patterns)]
            let crate::store::connection::StoreConnection::Sqlite(conn) = conn
            else {
                panic!("a SQLite store");
            };
            let got: Pragma = diesel::sql_query("PRAGMA synchronous")
                .get_result(conn)
                .expect("pragma");
            assert_eq!(got.synchronous, expected, "{sync:?}");
        }
    }
}
