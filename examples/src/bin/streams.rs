//! `streams`: the command-line tool of the framework.
//!
//! - `streams verify --bootstrap-servers HOST:PORT [--processing-guarantee exactly_once_v2] ...`
//!   runs the exactly-once verifier (see `streams_examples::verify`): child processes killed with
//!   SIGKILL while input flows, then every output record audited. Exits non-zero on a violation.
//! - `streams reset --bootstrap-servers .. --application-id .. --input-topics a,b [--dry-run]`
//!   resets an application (input offsets, internal topics, local state).
//! - `streams run <app> [--config FILE] [-c key=value]...` runs a bundled example until stopped.
//! - `streams describe <app>` prints the topology of a bundled example.
//! - `streams worker ...` is one instance of the verified application (spawned by `verify`).
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use streams_examples::run::{bundled_topology, run_app, RunOptions};
use streams_examples::verify::{default_options, verify, worker, WorkerOptions};

#[derive(Parser)]
#[command(name = "streams", about = "Tools of the streams framework")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Kill application instances at random while input flows, then audit every output record.
    Verify {
        /// Kafka cluster (any Kafka >= 2.5 with transactions).
        #[arg(long)]
        bootstrap_servers: String,
        /// at_least_once | exactly_once_v2 | exactly_once.
        #[arg(long, default_value = "exactly_once_v2")]
        processing_guarantee: String,
        /// Application instances (child processes).
        #[arg(long, default_value_t = 3)]
        instances: usize,
        /// Stream threads per instance.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Input records.
        #[arg(long, default_value_t = 20_000)]
        records: usize,
        /// SIGKILLs to deliver.
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Mean milliseconds between kills.
        #[arg(long, default_value_t = 3000)]
        kill_interval_ms: u64,
        /// Partitions of the input topics.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Replication factor of the topics.
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Where the instances keep their state (default: a temporary directory).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Distinct keys of the input (each a count store entry).
        #[arg(long, default_value_t = 50)]
        keys: usize,
        /// Hold the kills back until the counts output covers this many keys.
        #[arg(long)]
        kills_after_counted_keys: Option<usize>,
        /// One setting for every instance, `key=value`; repeatable.
        #[arg(short = 'c', value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Reset an application: input offsets, internal topics and local state, so it reprocesses
    /// its input from scratch. Refuses while the group has members.
    Reset {
        /// Kafka cluster.
        #[arg(long)]
        bootstrap_servers: String,
        /// The application (consumer group and internal topic prefix).
        #[arg(long)]
        application_id: String,
        /// Input topics whose offsets move (comma separated).
        #[arg(long, value_delimiter = ',', required = true)]
        input_topics: Vec<String>,
        /// Move to the end instead of the beginning.
        #[arg(long, conflicts_with_all = ["to_datetime", "by_duration_secs", "shift_by"])]
        to_latest: bool,
        /// Move to the first record at or after this UTC time, e.g. 2026-11-22T08:00:00Z.
        #[arg(long)]
        to_datetime: Option<String>,
        /// Move to the first record of the last N seconds.
        #[arg(long)]
        by_duration_secs: Option<i64>,
        /// Move the committed offsets by N (negative: back).
        #[arg(long, allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// The application's state.dir, whose `<application.id>` directory is removed.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a bundled example until Ctrl-C / SIGTERM: word-count | enrichment | clicks.
    ///
    /// Settings come from defaults (`application.id` = `streams-<app>`), then `--config`, then
    /// `-c key=value`, then the flags below; any Kafka Streams or librdkafka client key works.
    Run {
        /// Which example.
        app: String,
        /// Kafka cluster (or `bootstrap.servers` in the config).
        #[arg(long)]
        bootstrap_servers: Option<String>,
        /// at_least_once | exactly_once_v2 | exactly_once.
        #[arg(long)]
        processing_guarantee: Option<String>,
        /// Stream threads.
        #[arg(long)]
        threads: Option<usize>,
        /// Properties file: `key=value` lines.
        #[arg(long)]
        config: Option<PathBuf>,
        /// One setting, `key=value`; repeatable.
        #[arg(short = 'c', value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the topology of a bundled example: word-count | enrichment | clicks | verify.
    Describe {
        /// Which example.
        app: String,
        /// text (Kafka's format) | dot (Graphviz) | mermaid.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// One instance of the verified application; closes cleanly when stdin closes.
    #[command(hide = true)]
    Worker {
        /// Worker settings, as `verify` passes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

type BoxError = Box<dyn std::error::Error>;

fn run(cli: Cli) -> Result<bool, BoxError> {
    match cli.command {
        Cmd::Verify {
            bootstrap_servers,
            processing_guarantee,
            instances,
            threads,
            records,
            kills,
            kill_interval_ms,
            partitions,
            replication_factor,
            timeout_secs,
            state_dir,
            keys,
            kills_after_counted_keys,
            set,
        } => {
            let tmp = tempfile::tempdir()?;
            let dir = state_dir.unwrap_or_else(|| tmp.path().to_path_buf());
            let mut o = default_options(&bootstrap_servers, &processing_guarantee, &dir);
            o.instances = instances;
            o.threads = threads;
            o.records = records;
            o.kills = kills;
            o.kill_interval = Duration::from_millis(kill_interval_ms);
            o.partitions = partitions;
            o.replication_factor = replication_factor;
            o.timeout = Duration::from_secs(timeout_secs);
            o.keys = keys;
            o.kills_after_counted_keys = kills_after_counted_keys;
            for kv in set {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("-c `{kv}` is not key=value"))?;
                o.worker_config.push((k.to_string(), v.to_string()));
            }
            let exe = std::env::current_exe()?;
            let report = verify(&o, &|w: &WorkerOptions| {
                let mut c = Command::new(&exe);
                c.arg("worker").args(w.to_args());
                c
            })?;
            println!("{report}");
            Ok(report.passed())
        }
        Cmd::Reset {
            bootstrap_servers,
            application_id,
            input_topics,
            to_latest,
            to_datetime,
            by_duration_secs,
            shift_by,
            state_dir,
            dry_run,
        } => {
            use streams_core::runtime::reset::{
                parse_utc_datetime, reset_application, ResetOptions, ResetTo,
            };
            let to = match (to_datetime, by_duration_secs, shift_by) {
                (Some(d), _, _) => ResetTo::Timestamp(parse_utc_datetime(&d)?),
                (_, Some(s), _) => ResetTo::Duration(s * 1000),
                (_, _, Some(n)) => ResetTo::ShiftBy(n),
                _ if to_latest => ResetTo::Latest,
                _ => ResetTo::Earliest,
            };
            let mut pairs = vec![
                ("application.id".to_string(), application_id),
                ("bootstrap.servers".to_string(), bootstrap_servers),
            ];
            if let Some(d) = state_dir {
                pairs.push(("state.dir".into(), d.display().to_string()));
            }
            let config = streams_core::StreamsConfig::from_pairs(
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            let plan = reset_application(
                &config,
                &ResetOptions {
                    input_topics,
                    to,
                    dry_run,
                },
            )?;
            println!("{plan}");
            if dry_run {
                println!("(dry run: nothing changed)");
            }
            Ok(true)
        }
        Cmd::Describe { app, format } => {
            let t = bundled_topology(&app)?;
            let d = t.describe();
            match format.as_str() {
                "text" => print!("{d}"),
                "dot" => print!("{}", d.to_dot()),
                "mermaid" => print!("{}", d.to_mermaid()),
                other => {
                    return Err(
                        format!("unknown format `{other}`; one of: text, dot, mermaid").into(),
                    )
                }
            }
            Ok(true)
        }
        Cmd::Run {
            app,
            bootstrap_servers,
            processing_guarantee,
            threads,
            config,
            set,
        } => {
            let stop = Arc::new(AtomicBool::new(false));
            streams_examples::signals::on_shutdown_signal(stop.clone())?;
            let options = RunOptions {
                app,
                config_file: config,
                overrides: set,
                bootstrap_servers,
                processing_guarantee,
                threads,
            };
            let out: Arc<Mutex<dyn std::io::Write + Send>> =
                Arc::new(Mutex::new(std::io::stdout()));
            run_app(&options, &stop, out)?;
            Ok(true)
        }
        Cmd::Worker { args } => {
            worker(&WorkerOptions::from_args(&args)?)?;
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("streams: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_a_config_file_and_repeated_settings() {
        let cli = Cli::try_parse_from([
            "streams",
            "run",
            "word-count",
            "--config",
            "app.properties",
            "-c",
            "commit.interval.ms=100",
            "-c",
            "metrics.http.address=127.0.0.1:9464",
            "--threads",
            "4",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Cmd::Run {
            app,
            config,
            set,
            threads,
            ..
        } = cli.command
        else {
            panic!("not `run`");
        };
        assert_eq!(app, "word-count");
        assert_eq!(config, Some(PathBuf::from("app.properties")));
        assert_eq!(
            set,
            [
                "commit.interval.ms=100",
                "metrics.http.address=127.0.0.1:9464"
            ]
        );
        assert_eq!(threads, Some(4));
    }
}
