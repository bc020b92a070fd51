//! The exactly-once verifier against the test broker: 3 instances x 2 threads as child processes,
//! 20 SIGKILLs while input flows, every output record audited with a read_committed consumer.
//!
//! The children are this test binary itself, running the ignored `verify_worker` test with its
//! settings in the environment (the `streams verify` binary spawns `streams worker` instead).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use streams_examples::verify::{default_options, verify, worker, VerifyOptions, WorkerOptions};
use streams_tests::kafka::init_tracing;
use streams_tests::TestBroker;

const WORKER_ENV: &str = "STREAMS_VERIFY_WORKER_ARGS";

/// Not a test: the entry point of a child instance (see the module docs).
#[test]
#[ignore = "runs only as a child of the verify tests"]
fn verify_worker() {
    let Ok(args) = std::env::var(WORKER_ENV) else {
        return;
    };
    let args: Vec<String> = args.split('\u{1f}').map(str::to_string).collect();
    worker(&WorkerOptions::from_args(&args).unwrap()).unwrap();
}

fn spawn(w: &WorkerOptions) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "verify_worker",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(WORKER_ENV, w.to_args().join("\u{1f}"));
    c
}

fn options(b: &str, guarantee: &str, dir: &std::path::Path) -> VerifyOptions {
    let mut o = default_options(b, guarantee, dir);
    o.records = 10_000;
    o.keys = 40;
    o.kills = 20;
    o.kill_interval = Duration::from_millis(1500);
    o.produce_duration = Duration::from_secs(30);
    o.timeout = Duration::from_secs(420);
    o
}

#[test]
fn exactly_once_v2_survives_20_sigkills_without_loss_or_duplicates() {
    init_tracing();
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let o = options(broker.bootstrap_servers(), "exactly_once_v2", dir.path());
    let report = verify(&o, &spawn).unwrap();
    println!("{report}");
    assert_eq!(report.kills, 20);
    for c in &report.checks {
        assert_eq!((c.missing, c.duplicates), (0, 0), "{report}");
    }
    assert_eq!(report.wrong_final_counts, 0, "{report}");
    assert!(report.passed(), "{report}");
}

#[test]
fn at_least_once_survives_20_sigkills_without_loss() {
    init_tracing();
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let o = options(broker.bootstrap_servers(), "at_least_once", dir.path());
    let report = verify(&o, &spawn).unwrap();
    println!("{report}");
    assert_eq!(report.kills, 20);
    for c in &report.checks {
        assert_eq!(c.missing, 0, "{report}");
    }
    assert!(report.passed(), "{report}");
}
