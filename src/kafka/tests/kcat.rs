//! The embedded cluster speaks the real wire protocol: an external client attaches to it.

use super::support::{cluster_with, publish, read_topic, record, text};
use rdkafka::message::Message;
use std::io::Write;
use std::process::{Command, Stdio};

fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("kcat on PATH");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write");
    drop(input);
    let output = child.wait_with_output().expect("kcat ran");
    assert!(output.status.success(), "kcat {args:?} failed");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[actix::test]
#[ignore = "needs kcat on PATH"]
async fn kcat_lists_reads_and_writes_the_embedded_cluster() {
    let broker = cluster_with(&[("user-events", 5)]).await;
    publish(&broker, vec![record("user-events", "u1", "from-router")]).await;
    let bootstrap = broker.bootstrap().to_owned();

    let listing = kcat(&["-b", &bootstrap, "-L"], None);
    let consumed = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "user-events",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k=%s\n",
        ],
        None,
    );
    kcat(
        &["-b", &bootstrap, "-P", "-t", "user-events", "-K", ":"],
        Some("u2:from-kcat\n"),
    );

    assert!(listing.contains("3 brokers"), "{listing}");
    assert!(
        listing.contains("topic \"user-events\" with 5 partitions"),
        "{listing}"
    );
    assert_eq!(consumed.trim(), "u1=from-router");
    let all = read_topic(&bootstrap, "user-events").await;
    let pairs: Vec<(&str, &str)> = all
        .iter()
        .map(|m| (text(m.key()), text(m.payload())))
        .collect();
    assert!(pairs.contains(&("u2", "from-kcat")), "{pairs:?}");
}
