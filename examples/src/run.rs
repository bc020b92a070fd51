//! `streams run <app>`: runs a bundled example against a Kafka cluster until stopped, with its
//! configuration from a properties file and `-c key=value` flags, and prints restoration progress.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_core::{
    KafkaStreams, Result, State, StateRestoreListener, StreamsConfig, StreamsError, Topology,
};

/// The bundled applications and their topics.
pub const APPS: &[(&str, &str)] = &[
    (
        "word-count",
        "streams-plaintext-input -> streams-wordcount-output",
    ),
    ("enrichment", "orders + customers -> enriched"),
    ("clicks", "impressions + clicks -> attributions"),
];

/// The topology of the bundled app `app`, reading and writing the topics [`APPS`] lists.
pub fn bundled_topology(app: &str) -> Result<Topology> {
    match app {
        "word-count" => {
            crate::word_count_topology("streams-plaintext-input", "streams-wordcount-output")
        }
        "enrichment" => crate::orders::enrichment_topology("orders", "customers", "enriched"),
        "clicks" => crate::clicks::attribution_topology("impressions", "clicks", "attributions"),
        "verify" => crate::verify::verify_topology(&crate::verify::VerifyTopics::for_app("verify")),
        other => Err(StreamsError::Config(format!(
            "unknown app `{other}`; one of: {}",
            APPS.iter()
                .map(|(a, _)| *a)
                .chain(["verify"])
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What `streams run` was given. Later sources win: defaults, then the config file, then `-c`
/// flags, then the dedicated flags.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The bundled app.
    pub app: String,
    /// A properties file (`key=value` lines, `#` comments).
    pub config_file: Option<PathBuf>,
    /// `key=value` settings.
    pub overrides: Vec<String>,
    /// `--bootstrap-servers`.
    pub bootstrap_servers: Option<String>,
    /// `--processing-guarantee`.
    pub processing_guarantee: Option<String>,
    /// `--threads`.
    pub threads: Option<usize>,
}

/// Parses a properties file: `key=value` (or `key: value`) lines; blank lines and lines starting
/// with `#` or `!` are skipped.
pub fn parse_properties(text: &str, origin: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            return Err(StreamsError::Config(format!(
                "{origin}:{}: `{line}` is not key=value",
                i + 1
            )));
        };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// The configuration `o` describes, starting from the app's defaults (`application.id` =
/// `streams-<app>`).
pub fn app_config(o: &RunOptions) -> Result<StreamsConfig> {
    let mut c = StreamsConfig::new(format!("streams-{}", o.app))?;
    if let Some(path) = &o.config_file {
        let text = std::fs::read_to_string(path).map_err(|e| StreamsError::Io {
            path: path.clone(),
            source: e,
        })?;
        for (k, v) in parse_properties(&text, &path.display().to_string())? {
            c.set(&k, &v)
                .map_err(|e| StreamsError::Config(format!("{}: {e}", path.display())))?;
        }
    }
    for kv in &o.overrides {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(StreamsError::Config(format!(
                "-c `{kv}` is not key=value (e.g. -c commit.interval.ms=100)"
            )));
        };
        c.set(k.trim(), v.trim())?;
    }
    if let Some(b) = &o.bootstrap_servers {
        c.set("bootstrap.servers", b)?;
    }
    if let Some(g) = &o.processing_guarantee {
        c.set("processing.guarantee", g)?;
    }
    if let Some(t) = o.threads {
        c.set("num.stream.threads", &t.to_string())?;
    }
    if c.bootstrap_servers.is_none() {
        return Err(StreamsError::Config(
            "no Kafka cluster given: pass --bootstrap-servers HOST:PORT, -c bootstrap.servers=HOST:PORT, or set it in the --config file".into(),
        ));
    }
    Ok(c)
}

type Out = Arc<Mutex<dyn Write + Send>>;

fn say(out: &Out, line: std::fmt::Arguments<'_>) {
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(w, "{line}");
    let _ = w.flush();
}

/// Prints restoration progress: start, at most one line per second per partition, and the end.
struct RestoreProgress {
    out: Out,
    state: Mutex<std::collections::HashMap<(String, i32), Progress>>,
}

/// One changelog partition being restored.
struct Progress {
    start: i64,
    end: i64,
    restored: u64,
    last_print: Instant,
}

impl StateRestoreListener for RestoreProgress {
    fn on_restore_start(&self, topic: &str, partition: i32, store: &str, start: i64, end: i64) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (topic.to_string(), partition),
            Progress {
                start,
                end,
                restored: 0,
                last_print: Instant::now(),
            },
        );
        say(
            &self.out,
            format_args!(
                "restoring {store} from {topic}[{partition}]: offsets {start}..{end} ({} records at most)",
                end - start
            ),
        );
    }

    fn on_batch_restored(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        batch_end_offset: i64,
        restored: u64,
    ) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = st.get_mut(&(topic.to_string(), partition)) else {
            return;
        };
        p.restored += restored;
        if p.last_print.elapsed() >= Duration::from_secs(1) {
            p.last_print = Instant::now();
            let span = (p.end - p.start).max(1);
            let pct = ((batch_end_offset + 1 - p.start) * 100 / span).clamp(0, 100);
            say(
                &self.out,
                format_args!(
                    "restoring {store} from {topic}[{partition}]: {} records ({pct}%)",
                    p.restored
                ),
            );
        }
    }

    fn on_restore_end(&self, topic: &str, partition: i32, store: &str, total: u64) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(topic.to_string(), partition));
        say(
            &self.out,
            format_args!("restored {store} from {topic}[{partition}]: {total} records"),
        );
    }
}

/// Runs the app `o` describes until `stop` is set (by a signal), printing to `out`: the topology,
/// state changes, restoration progress and the metrics address. Closes the instance cleanly.
pub fn run_app(o: &RunOptions, stop: &AtomicBool, out: Out) -> Result<()> {
    let topology = bundled_topology(&o.app)?;
    let config = app_config(o)?;
    say(&out, format_args!("{}", topology.describe()));
    let mut streams = KafkaStreams::new(topology, config.clone())?;
    let o2 = out.clone();
    streams.set_state_listener(move |new, old| say(&o2, format_args!("state {old} -> {new}")));
    streams.set_restore_listener(Arc::new(RestoreProgress {
        out: out.clone(),
        state: Mutex::default(),
    }));
    streams.start()?;
    if let Some(a) = streams.metrics_address() {
        say(&out, format_args!("metrics: http://{a}/metrics"));
    }
    say(
        &out,
        format_args!(
            "running {} as `{}` ({}, {} thread(s)) on {}; Ctrl-C stops it",
            o.app,
            config.application_id,
            config.processing_guarantee.as_str(),
            config.num_stream_threads,
            config.bootstrap_servers.as_deref().unwrap_or_default()
        ),
    );
    while !stop.load(Ordering::SeqCst)
        && !matches!(
            streams.state(),
            State::Error | State::PendingError | State::NotRunning
        )
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = streams.last_error();
    let closed = streams.close(Duration::from_secs(60));
    if let Some(e) = failed {
        return Err(StreamsError::IllegalState(format!(
            "the application failed: {e}"
        )));
    }
    if !closed {
        return Err(StreamsError::IllegalState(
            "the stream threads did not stop within 60 s".into(),
        ));
    }
    say(&out, format_args!("closed"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_override_earlier_ones() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("app.properties");
        std::fs::write(
            &file,
            "# a comment\nbootstrap.servers = file:9092\ncommit.interval.ms=500\nnum.stream.threads: 3\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = RunOptions {
            app: "word-count".into(),
            config_file: Some(file),
            overrides: vec!["commit.interval.ms=250".into()],
            threads: Some(2),
            ..RunOptions::default()
        };
        let c = app_config(&o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.application_id, "streams-word-count");
        assert_eq!(c.bootstrap_servers.as_deref(), Some("file:9092"));
        assert_eq!(c.commit_interval_ms, 250);
        assert_eq!(c.num_stream_threads, 2);
    }

    #[test]
    fn bad_settings_name_the_source_and_the_fix() {
        let err = |o: RunOptions| {
            app_config(&o)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let base = RunOptions {
            app: "word-count".into(),
            ..RunOptions::default()
        };
        assert!(err(base.clone()).contains("--bootstrap-servers"));
        let e = err(RunOptions {
            overrides: vec!["commit.interval.ms".into()],
            ..base.clone()
        });
        assert!(e.contains("is not key=value"), "{e}");
        let e = err(RunOptions {
            overrides: vec!["comit.interval.ms=5".into()],
            ..base.clone()
        });
        assert!(e.contains("unknown key `comit.interval.ms`"), "{e}");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("bad.properties");
        std::fs::write(&file, "processing.guarantee=twice\n").unwrap_or_else(|e| panic!("{e}"));
        let e = err(RunOptions {
            config_file: Some(file),
            ..base
        });
        assert!(
            e.contains("bad.properties") && e.contains("exactly_once_v2"),
            "{e}"
        );
        assert!(bundled_topology("nope")
            .err()
            .is_some_and(|e| e.to_string().contains("word-count, enrichment, clicks")));
    }
}
