//! Children of the verifier tests. A test binary that runs [`streams_examples::verify`] spawns
//! itself as each application instance: it defines an ignored test named `verify_worker` that
//! calls [`worker_main`], and [`spawn`] runs that test with the worker's settings in the
//! environment (the `streams verify` binary spawns `streams worker` instead).

use std::process::Command;

use streams_examples::verify::{worker, VerifyReport, WorkerOptions};

const WORKER_ENV: &str = "STREAMS_VERIFY_WORKER_ARGS";

/// The body of a binary's `verify_worker` test: runs one instance when spawned by [`spawn`],
/// and does nothing when the test is run by hand.
pub fn worker_main() -> streams_core::Result<()> {
    let Ok(args) = std::env::var(WORKER_ENV) else {
        return Ok(());
    };
    // A child's stderr is the test's: its logs show with RUST_LOG set.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = args.split('\u{1f}').map(str::to_string).collect();
    worker(&WorkerOptions::from_args(&args)?)
}

/// The command that runs one instance: this test binary, running its `verify_worker` test.
pub fn spawn(w: &WorkerOptions) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut c = Command::new(exe);
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

/// Prints `report` and asserts every result arrived exactly once: nothing missing, nothing twice,
/// every final count right.
pub fn assert_exactly_once(report: &VerifyReport) {
    println!("{report}");
    for c in &report.checks {
        assert_eq!((c.missing, c.duplicates), (0, 0), "{report}");
    }
    assert_eq!(report.wrong_final_counts, 0, "{report}");
    assert!(report.passed(), "{report}");
}
