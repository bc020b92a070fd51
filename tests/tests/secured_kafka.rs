//! A secured cluster: TLS with a private CA and SASL/SCRAM, set through the same client keys as any
//! librdkafka client (librdkafka's clients and the runtime's own group member alike). Word count
//! runs under exactly_once_v2; a wrong password and an untrusted certificate fail fast with their
//! cause, and the password never shows.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use rdkafka::consumer::Consumer;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use streams_core::{KafkaStreams, StreamsConfig};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, group_protocol, produce, TopicReader};
use streams_tests::secured::{SecuredBroker, PASSWORD, USER};
use streams_tests::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};

/// Everything logged in this test binary, at debug level (librdkafka's lines included).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Captured;

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(|| Captured)
        .with_ansi(false)
        .try_init();
}

/// No log line so far holds a password.
fn assert_logs_hold_no(secrets: &[&str]) {
    let logs =
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(logs.lines().count() > 10, "logs were captured");
    for s in secrets {
        assert!(!logs.contains(s), "a log line holds a secret");
    }
}

fn secured_config(
    b: &SecuredBroker,
    app: &str,
    mechanism: &str,
    password: &str,
    ca: &std::path::Path,
    dir: &std::path::Path,
) -> StreamsConfig {
    let mut c = test_config(app, b.sasl_ssl(), "exactly_once_v2", 1, dir);
    for (k, v) in [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", mechanism),
        ("sasl.username", USER),
        ("sasl.password", password),
        ("ssl.ca.location", ca.to_str().unwrap()),
    ] {
        c.set(k, v).unwrap();
    }
    c
}

#[test]
fn word_count_under_exactly_once_v2_over_sasl_ssl() {
    let _one = SecuredBroker::exclusive();
    capture_logs();
    let broker = SecuredBroker::start();
    let plain = broker.plaintext();
    create_topics(plain, &[("sec-in", 2), ("sec-out", 2)]);
    let lines = ["secure the quick fox", "the secure dog", "fox"];
    let recs: Vec<(Option<&str>, Option<&str>)> = lines.iter().map(|l| (None, Some(*l))).collect();
    produce(plain, "sec-in", &recs);

    let dir = tempfile::tempdir().unwrap();
    let config = secured_config(
        &broker,
        "secured-wc",
        "SCRAM-SHA-512",
        PASSWORD,
        broker.ca_pem(),
        dir.path(),
    );
    let shown = format!("{config:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    let mut streams =
        KafkaStreams::new(word_count_topology("sec-in", "sec-out").unwrap(), config).unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let want = expected_counts(lines.iter().copied());
    let mut reader = TopicReader::new(plain, "sec-out", true);
    await_counts(&mut reader, &want, Duration::from_secs(60));
    assert_exact_updates(&reader, &want);
    // The runtime's own member joined over SASL_SSL too: the group runs its assignor.
    assert_eq!(group_protocol(plain, "secured-wc"), "rstreams");
    assert!(streams.close(Duration::from_secs(30)));

    // SCRAM-SHA-256 works too.
    let dir2 = tempfile::tempdir().unwrap();
    let c = secured_config(
        &broker,
        "secured-wc-256",
        "SCRAM-SHA-256",
        PASSWORD,
        broker.ca_pem(),
        dir2.path(),
    );
    let mut s2 = KafkaStreams::new(word_count_topology("sec-in", "sec-out2").unwrap(), c).unwrap();
    create_topics(plain, &[("sec-out2", 2)]);
    s2.start().unwrap();
    s2.wait_until_running(Duration::from_secs(60)).unwrap();
    let mut r2 = TopicReader::new(plain, "sec-out2", true);
    await_counts(&mut r2, &want, Duration::from_secs(60));
    assert!(s2.close(Duration::from_secs(30)));
    assert_logs_hold_no(&[PASSWORD]);

    // One prefixed ACL per resource type covers an app: every topic it made starts with its id.
    let admin: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", plain)
        .create()
        .unwrap();
    let md = admin.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let made: Vec<&str> = md
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !n.starts_with("__") && !n.starts_with("sec-"))
        .collect();
    assert!(!made.is_empty());
    for t in made {
        assert!(t.starts_with("secured-wc-"), "{t}");
    }
}

#[test]
fn wrong_password_and_untrusted_certificate_fail_fast_with_their_cause() {
    let _one = SecuredBroker::exclusive();
    capture_logs();
    let broker = SecuredBroker::start();
    create_topics(broker.plaintext(), &[("sec-in", 1), ("sec-out", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let start = |config: StreamsConfig| -> (String, Duration) {
        let t = Instant::now();
        let mut s =
            KafkaStreams::new(word_count_topology("sec-in", "sec-out").unwrap(), config).unwrap();
        let e = s.start().expect_err("start must fail").to_string();
        (e, t.elapsed())
    };

    let wrong = "not-the-Pa55word";
    let (e, took) = start(secured_config(
        &broker,
        "secured-bad-login",
        "SCRAM-SHA-512",
        wrong,
        broker.ca_pem(),
        dir.path(),
    ));
    println!("wrong password, after {took:?}: {e}");
    assert!(e.contains("SASL authentication failed"), "{e}");
    assert!(e.contains("sasl.password"), "names the fix: {e}");
    assert!(
        !e.contains(wrong) && !e.contains(PASSWORD),
        "no secret: {e}"
    );
    assert!(
        took < Duration::from_secs(20),
        "fails fast, not at a timeout: {took:?}"
    );

    let (e, took) = start(secured_config(
        &broker,
        "secured-bad-ca",
        "SCRAM-SHA-512",
        PASSWORD,
        broker.untrusted_ca_pem(),
        dir.path(),
    ));
    println!("untrusted certificate, after {took:?}: {e}");
    assert!(e.contains("TLS handshake failed"), "{e}");
    assert!(e.contains("ssl.ca.location"), "names the fix: {e}");
    assert!(!e.contains(PASSWORD), "no secret: {e}");
    assert!(
        took < Duration::from_secs(20),
        "fails fast, not at a timeout: {took:?}"
    );
}
