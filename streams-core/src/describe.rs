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
    /// A sink writing the topic an extractor chooses per record (described by this text).
    SinkExtractor(String),
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
            NodeKindDescription::SinkExtractor(extractor) => {
                write!(
                    f,
                    "Sink: {} (extractor class: {})\n      <-- {}",
                    self.name,
                    extractor,
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

impl TopologyDescription {
    /// The graph in Graphviz `dot`: a cluster per sub-topology, topics as notes, stores as
    /// cylinders. Render with `dot -Tsvg`.
    pub fn to_dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
        let mut out = String::from("digraph topology {\n  rankdir=LR;\n  node [shape=box];\n");
        let mut extra = std::collections::BTreeSet::new();
        for s in &self.subtopologies {
            let label = if s.global {
                format!("sub-topology {} (global store)", s.id)
            } else {
                format!("sub-topology {}", s.id)
            };
            out.push_str(&format!(
                "  subgraph cluster_{} {{\n    label={};\n",
                s.id,
                q(&label)
            ));
            for n in &s.nodes {
                out.push_str(&format!("    {};\n", q(&n.name)));
            }
            out.push_str("  }\n");
            for n in &s.nodes {
                for succ in &n.successors {
                    out.push_str(&format!("  {} -> {};\n", q(&n.name), q(succ)));
                }
                match &n.kind {
                    NodeKindDescription::Source(topics) => {
                        for t in topics {
                            extra.insert(format!("  {} [shape=note];\n", q(t)));
                            out.push_str(&format!("  {} -> {};\n", q(t), q(&n.name)));
                        }
                    }
                    NodeKindDescription::SourcePattern(p) => {
                        extra.insert(format!("  {} [shape=note];\n", q(p)));
                        out.push_str(&format!("  {} -> {};\n", q(p), q(&n.name)));
                    }
                    NodeKindDescription::Sink(t) | NodeKindDescription::SinkExtractor(t) => {
                        extra.insert(format!("  {} [shape=note];\n", q(t)));
                        out.push_str(&format!("  {} -> {};\n", q(&n.name), q(t)));
                    }
                    NodeKindDescription::Processor(stores) => {
                        for st in stores {
                            extra.insert(format!("  {} [shape=cylinder];\n", q(st)));
                            out.push_str(&format!(
                                "  {} -> {} [dir=both, style=dashed];\n",
                                q(&n.name),
                                q(st)
                            ));
                        }
                    }
                }
            }
        }
        for e in extra {
            out.push_str(&e);
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a Mermaid flowchart (renders in GitHub markdown).
    pub fn to_mermaid(&self) -> String {
        // Mermaid ids cannot hold `-` or `.` everywhere: number every name, apart per kind (a
        // topic and a store may share a name).
        let mut ids: std::collections::BTreeMap<(char, String), usize> = Default::default();
        let mut ident = |kind: char, name: &str| {
            let n = ids.len();
            format!(
                "{kind}{}",
                *ids.entry((kind, name.to_string())).or_insert(n)
            )
        };
        let mut out = String::from("flowchart LR\n");
        for s in &self.subtopologies {
            let label = if s.global {
                format!("sub-topology {} (global store)", s.id)
            } else {
                format!("sub-topology {}", s.id)
            };
            out.push_str(&format!("  subgraph sub{}[\"{label}\"]\n", s.id));
            for n in &s.nodes {
                out.push_str(&format!("    {}[\"{}\"]\n", ident('n', &n.name), n.name));
            }
            out.push_str("  end\n");
        }
        for s in &self.subtopologies {
            for n in &s.nodes {
                for succ in &n.successors {
                    out.push_str(&format!(
                        "  {} --> {}\n",
                        ident('n', &n.name),
                        ident('n', succ)
                    ));
                }
                match &n.kind {
                    NodeKindDescription::Source(topics) => {
                        for t in topics {
                            out.push_str(&format!(
                                "  {}>\"{t}\"] --> {}\n",
                                ident('t', t),
                                ident('n', &n.name)
                            ));
                        }
                    }
                    NodeKindDescription::SourcePattern(p) => {
                        out.push_str(&format!(
                            "  {}>\"{p}\"] --> {}\n",
                            ident('t', p),
                            ident('n', &n.name)
                        ));
                    }
                    NodeKindDescription::Sink(t) | NodeKindDescription::SinkExtractor(t) => {
                        out.push_str(&format!(
                            "  {} --> {}>\"{t}\"]\n",
                            ident('n', &n.name),
                            ident('t', t)
                        ));
                    }
                    NodeKindDescription::Processor(stores) => {
                        for st in stores {
                            out.push_str(&format!(
                                "  {} -.- {}[(\"{st}\")]\n",
                                ident('n', &n.name),
                                ident('s', st)
                            ));
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TopologyDescription {
        TopologyDescription {
            subtopologies: vec![SubtopologyDescription {
                id: 0,
                global: false,
                nodes: vec![
                    NodeDescription {
                        name: "src".into(),
                        kind: NodeKindDescription::Source(vec!["in".into()]),
                        successors: vec!["agg".into()],
                        predecessors: vec![],
                    },
                    NodeDescription {
                        name: "agg".into(),
                        kind: NodeKindDescription::Processor(vec!["counts".into()]),
                        successors: vec!["out-sink".into()],
                        predecessors: vec!["src".into()],
                    },
                    NodeDescription {
                        name: "out-sink".into(),
                        kind: NodeKindDescription::Sink("out".into()),
                        successors: vec![],
                        predecessors: vec!["agg".into()],
                    },
                ],
            }],
        }
    }

    #[test]
    fn dot_and_mermaid_carry_every_node_edge_topic_and_store() {
        let d = sample().to_dot();
        for needle in [
            "subgraph cluster_0",
            "\"src\" -> \"agg\";",
            "\"agg\" -> \"out-sink\";",
            "\"in\" -> \"src\";",
            "\"out-sink\" -> \"out\";",
            "\"counts\" [shape=cylinder];",
        ] {
            assert!(d.contains(needle), "{needle} missing from\n{d}");
        }
        let m = sample().to_mermaid();
        assert!(m.starts_with("flowchart LR\n"), "{m}");
        for needle in [
            "n0[\"src\"]",
            "n0 --> n1",
            "t3>\"in\"] --> n0",
            "n1 -.- s4[(\"counts\")]",
        ] {
            assert!(m.contains(needle), "{needle} missing from\n{m}");
        }
    }
}
