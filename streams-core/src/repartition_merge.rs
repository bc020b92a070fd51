//! `topology.optimization` = `merge.repartition.topics`: the repartition topics that follow one
//! key-changing node become one, right after that node (Kafka Streams' repartition merging).
//!
//! The DSL marks which processors change keys or values and which repartitions may move; the
//! graph rewrite here uses only those marks. A repartition is merged when the nearest node above
//! it that changes keys or values changes keys (a value change in between would give the shared
//! topic two value types) and the path up to it has one parent at each step. The merged
//! repartition takes the first repartition's topic and is named after it
//! (`<topic>-filter`, `<topic>-sink`, `<topic>-source`); the nodes that were between the key
//! change and each old repartition now read from the merged source, and what read each old
//! repartition reads from its former upstream. Below a merge of streams one of which changed
//! keys, the merge takes the key change's place. (Kafka Streams hands a key change's
//! repartitions to a merge only when all of them are below it; here each repartition goes to the
//! nearest of the two.)

use std::collections::BTreeMap;

use crate::topology::{NodeDef, NodeKind, Topology};
use crate::{Result, StreamsError};

/// One repartition through topic `topic`: a pass-through `filter`, the `sink` writing the topic,
/// and the `source` reading it.
struct Repartition {
    filter: String,
    sink: String,
    source: String,
    topic: String,
}

impl Topology {
    /// Marks processor `node` as changing record keys (Kafka Streams' key-changing operations:
    /// `selectKey`, `map`, `flatMap`, `groupBy`'s key selection): a repartition below it may be
    /// merged with the others below it.
    pub fn mark_key_changing(&mut self, node: &str) -> &mut Self {
        self.key_changing.insert(node.to_string());
        self
    }

    /// Marks processor `node` as changing values only (`mapValues`, `flatMapValues`,
    /// `processValues`): repartitions below it are not merged across it.
    pub fn mark_value_changing(&mut self, node: &str) -> &mut Self {
        self.value_changing.insert(node.to_string());
        self
    }

    /// Marks the repartition read by source `source` (a pass-through filter writing its topic
    /// through a sink) as one `merge.repartition.topics` may merge: the repartitions a grouping
    /// or a join adds, not an explicit `repartition()`.
    pub fn mark_mergeable_repartition(&mut self, source: &str) -> &mut Self {
        self.mergeable_repartitions.push(source.to_string());
        self
    }

    /// Merges the repartitions below each key-changing node into one (see the module doc).
    /// Done once: the marks are used up.
    pub(crate) fn merge_repartition_topics(&mut self) -> Result<()> {
        let marked = std::mem::take(&mut self.mergeable_repartitions);
        // Key-changing node -> its repartitions, in the order they were added; with each, the
        // node just below the key change on the way to it.
        let mut below: BTreeMap<usize, (String, Vec<(Repartition, String)>)> = BTreeMap::new();
        for source in &marked {
            let Some(r) = self.repartition_read_by(source) else {
                continue;
            };
            if let Some((key_changer, first_below)) = self.key_change_above(&r.filter) {
                let at = self.index[&key_changer];
                below
                    .entry(at)
                    .or_insert_with(|| (key_changer, Vec::new()))
                    .1
                    .push((r, first_below));
            }
        }
        for (_, (key_changer, repartitions)) in below {
            self.merge_below(&key_changer, repartitions)?;
        }
        Ok(())
    }

    /// The repartition whose source is `source`, when the graph still has its three nodes.
    fn repartition_read_by(&self, source: &str) -> Option<Repartition> {
        let node = self.node(source)?;
        let NodeKind::Source { topics, .. } = &node.kind else {
            return None;
        };
        let topic = topics.first()?.clone();
        let sink = self.nodes.iter().find(|n| {
            matches!(&n.kind, NodeKind::Sink { topic: t, topic_chooser: None, .. } if *t == topic)
        })?;
        let filter = self.node(sink.parents.first()?)?;
        (sink.parents.len() == 1 && filter.parents.len() == 1).then(|| Repartition {
            filter: filter.name.clone(),
            sink: sink.name.clone(),
            source: source.to_string(),
            topic,
        })
    }

    /// The node a repartition at `filter` may move up to, and the node just below it on the way
    /// (the filter itself when it hangs right there): the nearest key-changing node above, or a
    /// merge of streams one of which changed keys (Kafka Streams moves the repartition below the
    /// merge then).
    fn key_change_above(&self, filter: &str) -> Option<(String, String)> {
        let mut below = filter.to_string();
        let mut at = self.node(filter)?.parents.first()?.clone();
        loop {
            if self.key_changing.contains(&at) {
                return Some((at, below));
            }
            if self.value_changing.contains(&at) {
                return None;
            }
            let node = self.node(&at)?;
            match node.parents.as_slice() {
                [parent] => {
                    below = at;
                    at = parent.clone();
                }
                [] => return None,
                merged => {
                    let keyed = merged.iter().any(|p| self.changes_keys_at_or_above(p));
                    return keyed.then_some((at, below));
                }
            }
        }
    }

    /// Whether `node` or a node above it changes keys, with no value change in between.
    fn changes_keys_at_or_above(&self, node: &str) -> bool {
        if self.key_changing.contains(node) {
            return true;
        }
        if self.value_changing.contains(node) {
            return false;
        }
        self.node(node)
            .is_some_and(|n| n.parents.iter().any(|p| self.changes_keys_at_or_above(p)))
    }

    fn node(&self, name: &str) -> Option<&NodeDef> {
        self.index.get(name).and_then(|&i| self.nodes.get(i))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut NodeDef> {
        let i = *self.index.get(name).ok_or_else(|| {
            StreamsError::IllegalState(format!("merging repartitions: no node `{name}`"))
        })?;
        Ok(&mut self.nodes[i])
    }

    /// Replaces `repartitions` (all below `key_changer`) by one right after it.
    fn merge_below(
        &mut self,
        key_changer: &str,
        repartitions: Vec<(Repartition, String)>,
    ) -> Result<()> {
        let Some((first, _)) = repartitions.first() else {
            return Ok(());
        };
        let topic = first.topic.clone();
        let (filter, sink, source) = (
            format!("{topic}-filter"),
            format!("{topic}-sink"),
            format!("{topic}-source"),
        );
        // The first repartition's nodes carry the serdes and the pass-through processor.
        let mut merged_filter = self.node_mut(&first.filter)?.clone();
        let mut merged_sink = self.node_mut(&first.sink)?.clone();
        let mut merged_source = self.node_mut(&first.source)?.clone();
        merged_filter.name = filter.clone();
        merged_filter.parents = vec![key_changer.to_string()];
        merged_sink.name = sink.clone();
        merged_sink.parents = vec![filter.clone()];
        merged_source.name = source.clone();

        for (r, first_below) in &repartitions {
            let upstream = self.node_mut(&r.filter)?.parents.clone();
            // What read the old repartition reads from where the old filter hung.
            let replacement = if *first_below == r.filter {
                vec![source.clone()]
            } else {
                upstream
            };
            for n in &mut self.nodes {
                if let Some(pos) = n.parents.iter().position(|p| *p == r.source) {
                    n.parents.splice(pos..=pos, replacement.iter().cloned());
                }
            }
            // The nodes between the key change and the old repartition follow the merged one.
            if *first_below != r.filter {
                let node = self.node_mut(first_below)?;
                for p in &mut node.parents {
                    if p == key_changer {
                        *p = source.clone();
                    }
                }
            }
            if r.topic != topic {
                self.internal_topics.remove(&r.topic);
                self.internal_topic_partitions.remove(&r.topic);
            }
        }
        let gone: Vec<&str> = repartitions
            .iter()
            .flat_map(|(r, _)| [r.filter.as_str(), r.sink.as_str(), r.source.as_str()])
            .collect();
        self.nodes.retain(|n| !gone.contains(&n.name.as_str()));
        let at = self
            .nodes
            .iter()
            .position(|n| n.name == key_changer)
            .map_or(self.nodes.len(), |i| i + 1);
        for (offset, node) in [merged_filter, merged_sink, merged_source]
            .into_iter()
            .enumerate()
        {
            if self.nodes.iter().any(|n| n.name == node.name) {
                return Err(StreamsError::Topology(format!(
                    "merging repartitions: a node named `{}` already exists",
                    node.name
                )));
            }
            self.nodes.insert(at + offset, node);
        }
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        Ok(())
    }
}
