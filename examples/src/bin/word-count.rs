//! Counts the words of a text (the bundled sample, or a file given as argument) and prints the
//! most frequent ones. Runs the topology in process with the TopologyTestDriver: no broker needed.
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use streams_core::serdes::{I64Serde, Nullable, StringSerde};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_examples::{word_count_topology, SAMPLE_TEXT};

#[derive(Parser)]
#[command(about = "Word count on the streams framework, in process")]
struct Args {
    /// Text file to count (default: the bundled sample).
    file: Option<std::path::PathBuf>,
    /// How many words to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let text = match &args.file {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
        None => SAMPLE_TEXT.to_string(),
    };
    let topology = word_count_topology("text-input", "word-counts")?;
    println!("{}", topology.describe());
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("word-count")?)?;
    let input = driver.create_input_topic(
        "text-input",
        Arc::new(Nullable::new(StringSerde)),
        Arc::new(StringSerde),
    );
    let output = driver.create_output_topic(
        "word-counts",
        Arc::new(StringSerde),
        Arc::new(Nullable::new(I64Serde)),
    );
    for line in text.lines() {
        input.pipe_input(None, line.to_string())?;
    }
    let counts: HashMap<String, Option<i64>> = output.read_key_values_to_map()?;
    let mut top: Vec<(String, i64)> = counts
        .into_iter()
        .filter_map(|(w, c)| c.map(|c| (w, c)))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("{:<12} {:>5}", "word", "count");
    for (w, c) in top.into_iter().take(args.top) {
        println!("{w:<12} {c:>5}");
    }
    driver.close()?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("word-count: {e}");
            ExitCode::FAILURE
        }
    }
}
