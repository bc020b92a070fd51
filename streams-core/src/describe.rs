//! A printable description of a topology, in the layout of Kafka Streams' `TopologyDescription`.

use std::fmt;

/// What a node is, for the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKindDescription {
    /// A source reading these topics.
    Source(Vec<String>),
    /// A source reading the topics matching this pattern.
    SourcePattern(String),
    /// A processor using these stores.
    Processor(Vec<String>),
    /// A sink writing this topic.
    Sink(String),
}

/// One node of a sub-topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// Node name.
    pub name: String,
    /// Kind and its topics/stores.
    pub kind: NodeKindDescription,
    /// Children, ordered like Kafka (larger sub-graph first, then name).
    pub successors: Vec<String>,
    /// Parents, same order.
    pub predecessors: Vec<String>,
}

/// One sub-topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Id.
    pub id: u32,
    /// Nodes, ordered like Kafka.
    pub nodes: Vec<NodeDescription>,
    /// The update graph of global stores: runs in the global thread, generates no tasks.
    pub global: bool,
}

/// The whole description; `Display` prints Kafka's text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// Sub-topologies by id.
    pub subtopologies: Vec<SubtopologyDescription>,
}

fn names(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

impl fmt::Display for NodeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKindDescription::Source(topics) => {
                write!(
                    f,
                    "Source: {} (topics: [{}])\n      --> {}",
                    self.name,
                    topics.join(", "),
                    names(&self.successors)
                )
            }
            NodeKindDescription::SourcePattern(p) => {
                write!(
                    f,
                    "Source: {} (topics: {})\n      --> {}",
                    self.name,
                    p,
                    names(&self.successors)
                )
            }
            NodeKindDescription::Processor(stores) => write!(
                f,
                "Processor: {} (stores: [{}])\n      --> {}\n      <-- {}",
                self.name,
                stores.join(", "),
                names(&self.successors),
                names(&self.predecessors)
            ),
            NodeKindDescription::Sink(topic) => {
                write!(
                    f,
                    "Sink: {} (topic: {})\n      <-- {}",
                    self.name,
                    topic,
                    names(&self.predecessors)
                )
            }
        }
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topologies:\n ")?;
        for s in &self.subtopologies {
            if s.global {
                writeln!(
                    f,
                    "  Sub-topology: {} for global store (will not generate tasks)",
                    s.id
                )?;
            } else {
                writeln!(f, "  Sub-topology: {}", s.id)?;
            }
            for n in &s.nodes {
                writeln!(f, "    {n}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
