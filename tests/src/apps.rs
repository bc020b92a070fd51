//! Small topologies the end-to-end tests share.

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{Data, Processor, Topology};

/// `input` -> one processor (`supplier`) -> `output`, with string keys and `values` for values.
pub fn pipe_topology<V, P, F>(
    input: &str,
    output: &str,
    values: SerdeRef<V>,
    supplier: F,
) -> Topology
where
    V: Data,
    P: Processor<String, V> + 'static,
    F: Fn() -> P + Send + Sync + 'static,
{
    let mut t = Topology::new();
    let build = || -> streams_core::Result<()> {
        t.add_source("src", &[input], Serdes::string(), values.clone())?;
        t.add_processor("proc", supplier, &["src"])?;
        t.add_sink("sink", output, Serdes::string(), values, &["proc"])?;
        Ok(())
    };
    build().unwrap_or_else(|e| panic!("test topology: {e}"));
    t
}
