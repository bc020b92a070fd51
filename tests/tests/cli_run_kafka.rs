//! `streams run <app>` (the library behind it) on Apache Kafka: settings from a properties file
//! and `-c` flags, the metrics endpoint, and restoration progress after the local state is lost.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_examples::run::{run_app, RunOptions};
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{await_counts, expected_counts};
use streams_tests::TestBroker;

/// Collects what `run_app` prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs the app in a thread until `until` holds for its output, then stops it like Ctrl-C does.
fn run_until(o: &RunOptions, mut until: impl FnMut(&str) -> bool) -> String {
    let stop = Arc::new(AtomicBool::new(false));
    let out = Captured::default();
    let (o2, s2, w) = (o.clone(), stop.clone(), out.clone());
    let handle = std::thread::spawn(move || {
        let w: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(w));
        run_app(&o2, &s2, w)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !until(&out.text()) && std::time::Instant::now() < deadline && !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    handle.join().unwrap().unwrap();
    out.text()
}

#[test]
fn run_word_count_from_a_config_file_then_restore_with_progress() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(
        b,
        &[
            ("streams-plaintext-input", 2),
            ("streams-wordcount-output", 2),
        ],
    );
    let lines = ["to be or not to be", "that is the question"];
    let recs: Vec<(Option<&str>, Option<&str>)> = lines.iter().map(|l| (None, Some(*l))).collect();
    produce(b, "streams-plaintext-input", &recs);

    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("app.properties");
    std::fs::write(
        &props,
        format!(
            "# word count on the test cluster\nbootstrap.servers={b}\nprocessing.guarantee=exactly_once_v2\nreplication.factor=1\nstatestore.cache.max.bytes=0\n"
        ),
    )
    .unwrap();
    let state1 = dir.path().join("state1");
    let mut o = RunOptions {
        app: "word-count".into(),
        config_file: Some(props),
        overrides: vec![
            "metrics.http.address=127.0.0.1:0".into(),
            format!("state.dir={}", state1.display()),
        ],
        threads: Some(1),
        ..RunOptions::default()
    };
    let mut reader = TopicReader::new(b, "streams-wordcount-output", true);
    let want = expected_counts(lines.iter().copied());
    let out = run_until(&o, |_| {
        reader.poll_for(Duration::from_millis(200));
        let latest: std::collections::BTreeMap<String, i64> = reader
            .records
            .iter()
            .map(|r| {
                (
                    r.key_str(),
                    streams_tests::kafka::long(r.value.as_deref().unwrap()),
                )
            })
            .collect();
        latest == want
    });
    await_counts(&mut reader, &want, Duration::from_secs(5));
    println!("{out}");
    assert!(out.contains("Sub-topology: 0"), "{out}");
    assert!(out.contains("metrics: http://127.0.0.1:"), "{out}");
    assert!(
        out.contains("as `streams-word-count` (exactly_once_v2, 1 thread(s))"),
        "{out}"
    );
    assert!(out.contains("state REBALANCING -> RUNNING"), "{out}");
    assert!(out.trim_end().ends_with("closed"), "{out}");

    // The local state is gone: the counts store restores from its changelog, with progress.
    o.overrides[1] = format!("state.dir={}", dir.path().join("state2").display());
    let out = run_until(&o, |t| t.contains("state REBALANCING -> RUNNING"));
    println!("{out}");
    assert!(
        out.contains("restoring counts from streams-word-count-counts-changelog["),
        "{out}"
    );
    assert!(
        out.contains("restored counts from streams-word-count-counts-changelog["),
        "{out}"
    );
}
