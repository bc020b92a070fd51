//! Example applications: `word-count` (lines in, counts per word out), order enrichment with a
//! stream-table join ([`orders`]) and click attribution with a windowed stream-stream join
//! ([`clicks`]).
#![forbid(missing_docs)]

pub mod clicks;
pub mod embedded;
pub mod orders;
pub mod run;
pub mod signals;
pub mod verify;

use streams_core::{Result, Topology};
use streams_dsl::{Materialized, StreamsBuilder};

/// The text `cargo run --bin word-count` counts when given no file.
pub const SAMPLE_TEXT: &str = include_str!("../data/sample.txt");

/// Lines from `input` (null keys) -> lower-case words -> grouped by word -> counted in the
/// store `counts` -> every update written to `output` as (word, count).
pub fn word_count_topology(input: &str, output: &str) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<Option<String>, String>(input)
        .flat_map_values(|line: String| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_key, word: &String| word.clone())
        .count(Materialized::as_("counts"))
        .to_stream()
        .to(output);
    builder.build()
}
