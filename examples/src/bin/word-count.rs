//! Counts the words of a text (the bundled sample, or a file given as argument) with a real
//! `KafkaStreams` instance and prints the most frequent ones.
//!
//! Without `--bootstrap-servers` it runs on an embedded in-process mock cluster (nothing to install,
//! demo only); with it, on any Kafka cluster. Ctrl-C / SIGTERM close the application cleanly.
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streams_core::{KafkaStreams, StreamsConfig};
use streams_examples::embedded::EmbeddedCluster;
use streams_examples::{word_count_topology, SAMPLE_TEXT};

#[derive(Parser)]
#[command(about = "Word count on the streams framework")]
struct Args {
    /// Text file to count (default: the bundled sample).
    file: Option<std::path::PathBuf>,
    /// Kafka cluster; without it an embedded mock cluster is used (demo only).
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// at_least_once | exactly_once_v2 | exactly_once.
    #[arg(long, default_value = "at_least_once")]
    processing_guarantee: String,
    /// Stream threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// How many words to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Input topic.
    #[arg(long, default_value = "streams-plaintext-input")]
    input: String,
    /// Output topic.
    #[arg(long, default_value = "streams-wordcount-output")]
    output: String,
}

const APP: &str = "streams-wordcount";
const PARTITIONS: i32 = 4;

type BoxError = Box<dyn std::error::Error>;

fn run(args: Args, stop: Arc<AtomicBool>) -> Result<(), BoxError> {
    let text = match &args.file {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
        None => SAMPLE_TEXT.to_string(),
    };
    let topology = word_count_topology(&args.input, &args.output)?;
    println!("{}", topology.describe());

    let embedded = match &args.bootstrap_servers {
        Some(_) => None,
        None => {
            let c = EmbeddedCluster::start()?;
            c.create_topics_for(&topology, APP, &[&args.input], PARTITIONS)?;
            c.create_topic(&args.output, PARTITIONS)?;
            Some(c)
        }
    };
    let bootstrap = match (&args.bootstrap_servers, &embedded) {
        (Some(b), _) => b.clone(),
        (None, Some(c)) => c.bootstrap_servers(),
        (None, None) => unreachable!("embedded cluster exists when no servers are given"),
    };
    let state = tempfile::tempdir()?;
    let config = StreamsConfig::from_pairs([
        ("application.id", APP),
        ("bootstrap.servers", bootstrap.as_str()),
        ("processing.guarantee", args.processing_guarantee.as_str()),
        ("num.stream.threads", &args.threads.to_string()),
        ("commit.interval.ms", "200"),
        (
            "state.dir",
            state.path().to_str().ok_or("state dir is not UTF-8")?,
        ),
    ])?;

    // Input first, so the count has a known end: the latest counts add up to the number of words.
    let words: usize = text
        .lines()
        .map(|l| {
            l.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .count()
        })
        .sum();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    for line in text.lines() {
        let mut record = BaseRecord::<str, str>::to(&args.input).payload(line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;

    let mut streams = KafkaStreams::new(topology, config)?;
    streams.set_state_listener(|new, old| tracing::info!(%old, %new, "word-count state"));
    streams.start()?;

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "word-count-reader")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    reader.subscribe(&[&args.output])?;
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut counted = 0i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while counted < words as i64 && Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        if let Some(m) = reader.poll(Duration::from_millis(100)) {
            let m = m?;
            let word = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            if let Some(v) = m.payload().and_then(|v| <[u8; 8]>::try_from(v).ok()) {
                let new = i64::from_be_bytes(v);
                counted += new - counts.insert(word, new).unwrap_or(0);
            }
        }
        if let Some(e) = streams.last_error() {
            return Err(format!("word-count failed: {e}").into());
        }
    }
    let closed = streams.close(Duration::from_secs(30));
    if stop.load(Ordering::SeqCst) {
        eprintln!(
            "interrupted: closed {}",
            if closed { "cleanly" } else { "with a timeout" }
        );
        return Ok(());
    }
    if counted < words as i64 {
        return Err(format!("only {counted} of {words} words counted in time").into());
    }
    let mut top: Vec<(String, i64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("{words} words counted; top {}:", args.top);
    println!("{:<12} {:>5}", "word", "count");
    for (w, c) in top.into_iter().take(args.top) {
        println!("{w:<12} {c:>5}");
    }
    // Clients go before the embedded cluster they talk to.
    drop((reader, producer, streams));
    drop(embedded);
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = streams_examples::signals::on_shutdown_signal(stop.clone()) {
        eprintln!("word-count: cannot install the signal handler: {e}");
    }
    match run(Args::parse(), stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("word-count: {e}");
            ExitCode::FAILURE
        }
    }
}
