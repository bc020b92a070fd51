//! The Kafka Streams DSL for Rust: [`StreamsBuilder`], [`KStream`], [`KTable`] and grouped streams
//! and tables. It only builds a `streams_core::Topology`; running it is the core crate's job.
//!
//! ```
//! use streams_dsl::{StreamsBuilder, Materialized};
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, String>("lines")
//!     .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
//!     .group_by(|_key, word: &String| word.clone())
//!     .count(Materialized::as_("counts"))
//!     .to_stream()
//!     .to("word-counts");
//! let topology = builder.build().unwrap();
//! assert_eq!(topology.subtopologies().len(), 2);
//! ```
//!
//! Windows, suppression and joins:
//!
//! ```
//! use streams_dsl::*;
//! let b = StreamsBuilder::new();
//! let (clicks, views) = (b.stream::<String, String>("clicks"), b.stream::<String, String>("views"));
//! clicks
//!     .group_by_key(Grouped::default())
//!     .windowed_by(TimeWindows::of_size_and_grace(300_000, 60_000))
//!     .count(Materialized::as_("clicks-per-5min"))
//!     .suppress(Suppressed::until_window_closes(BufferConfig::max_records(100_000)))
//!     .to_stream();
//! views.left_join(
//!     &clicks,
//!     |v: &String, c: Option<&String>| format!("{v}/{c:?}"),
//!     JoinWindows::of_time_difference_and_grace(10_000, 1_000),
//!     StreamJoined::default(),
//! );
//! assert!(b.build().is_ok());
//! ```
#![forbid(missing_docs)]

mod buffered_join;
mod builder;
mod change;
mod cogroup;
mod final_results;
mod fk_join;
mod grouped;
mod join_processors;
mod joins;
mod kstream;
mod ktable;
mod naming;
mod old_values;
mod processors;
mod suppress;
mod transform_values;
mod window_processors;
mod windowed;
mod windows;

pub use builder::StreamsBuilder;
pub use change::{Change, ChangeSerde};
pub use cogroup::{
    CogroupedKStream, SessionWindowedCogroupedKStream, TimeWindowedCogroupedKStream,
};
pub use fk_join::TableJoined;
pub use grouped::{KGroupedStream, KGroupedTable};
pub use joins::{GlobalKTable, Joined, StreamJoined};
pub use kstream::{BranchedKStream, KStream};
pub use ktable::KTable;
pub use naming::{
    Branched, Consumed, Grouped, Materialized, Named, Printed, Produced, Repartitioned,
};
pub use suppress::{BufferConfig, Suppressed, WhenFull};
pub use transform_values::ValueTransformerWithKey;
pub use windowed::{SessionWindowedKStream, TimeWindowedKStream};
pub use windows::{
    EmitStrategy, JoinWindows, SessionWindowedSerde, SessionWindows, SlidingWindows,
    TimeWindowedSerde, TimeWindows, Window, Windowed,
};
