//! Log lines that can be followed: `log`'s key-values written by `env_logger`, as text or as one
//! JSON object per line.
//!
//! Every line names its instance, so the logs of several instances read together. The keys a
//! line carries are the ones its call site gives (`log::info!(request_id = …; "…")`): a request
//! id on each HTTP request line and, on every line about an event, its `event_id` and (when the
//! publisher gave one) its `correlation_id`, so `grep correlation_id=abc` follows one event from
//! the HTTP request through the journal, the relay and each consumer group.

use log::kv::{Key, Value, VisitSource};
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::Write as _;

/// How each line is written (`log.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time LEVEL instance target] message key=value …`, for people.
    #[default]
    Text,
    /// `{"time":…,"level":…,"instance":…,"target":…,"message":…,"key":"value",…}`, for a log
    /// pipeline.
    Json,
}

/// Installs the process's logger: `filter` in env_logger syntax (`RUST_LOG` overrides it).
pub fn init(filter: &str, format: LogFormat, instance: &str) {
    let instance = instance.to_owned();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter))
        .format(move |out, record| {
            let time = out.timestamp_millis().to_string();
            let line = match format {
                LogFormat::Text => text_line(&time, &instance, record),
                LogFormat::Json => json_line(&time, &instance, record),
            };
            writeln!(out, "{line}")
        })
        .init();
}

/// One line as text; values with spaces or quotes are quoted.
pub fn text_line(time: &str, instance: &str, record: &log::Record) -> String {
    let mut line = format!(
        "[{time} {:<5} {instance} {}] {}",
        record.level(),
        record.target(),
        record.args()
    );
    let mut pairs = TextPairs(&mut line);
    // A pair that cannot be visited is left out; the line itself is still written.
    let _ = record.key_values().visit(&mut pairs);
    line
}

/// One line as a JSON object; the message's own keys cannot be shadowed by a pair.
pub fn json_line(time: &str, instance: &str, record: &log::Record) -> String {
    let mut object = serde_json::Map::new();
    object.insert("time".into(), time.into());
    object.insert("level".into(), record.level().as_str().into());
    object.insert("instance".into(), instance.into());
    object.insert("target".into(), record.target().into());
    object.insert("message".into(), record.args().to_string().into());
    let mut pairs = JsonPairs(&mut object);
    let _ = record.key_values().visit(&mut pairs);
    serde_json::Value::Object(object).to_string()
}

struct TextPairs<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextPairs<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let value = value.to_string();
        let plain = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=');
        if plain {
            let _ = write!(self.0, " {key}={value}");
        } else {
            let _ = write!(self.0, " {key}={value:?}");
        }
        Ok(())
    }
}

struct JsonPairs<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonPairs<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let key = key.as_str();
        if matches!(key, "time" | "level" | "instance" | "target" | "message") {
            return Ok(());
        }
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::kv::Source;

    fn with_record<T>(f: impl FnOnce(&log::Record) -> T) -> T {
        let pairs: [(&str, Value); 4] = [
            ("request_id", Value::from("r-1")),
            ("status", Value::from(202u16)),
            ("path", Value::from("/a b")),
            ("message", Value::from("shadow")),
        ];
        let source: &dyn Source = &pairs;
        let record = log::Record::builder()
            .args(format_args!("event accepted"))
            .level(log::Level::Info)
            .target("http")
            .key_values(source)
            .build();
        f(&record)
    }

    #[test]
    fn text_lines_carry_the_pairs_after_the_message() {
        let line = with_record(|r| text_line("t", "node-1", r));
        assert_eq!(
            line,
            r#"[t INFO  node-1 http] event accepted request_id=r-1 status=202 path="/a b" message=shadow"#
        );
    }

    #[test]
    fn json_lines_are_one_object_with_typed_values() {
        let line = with_record(|r| json_line("t", "node-1", r));
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["message"], "event accepted");
        assert_eq!(value["instance"], "node-1");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["request_id"], "r-1");
        assert_eq!(value["status"], 202);
        assert_eq!(value["path"], "/a b");
    }
}
