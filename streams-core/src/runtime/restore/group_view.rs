//! Which instance runs which active task, read from the consumer group itself.
//!
//! librdkafka runs the group's assignor on the client and offers no hook for Kafka Streams'
//! assignment user data, so instances learn about each other from the group description
//! (DescribeGroups): each member's client id names its process, and its assignment (the consumer
//! protocol's bytes) lists its partitions, hence its tasks. Standby placement is derived from that
//! view, the same way on every instance. A broker that leaves client ids out of the description
//! degrades to one unit per member; an instance still recognizes its own members by the tasks it
//! runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::runtime::internal_topics::TopicLayout;
use crate::task::TaskId;
use crate::{Result, StreamsError};

/// Active tasks per process id (the uuid in the members' client ids), or per `member:<id>` when
/// the broker does not report client ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupView {
    pub active: BTreeMap<String, BTreeSet<TaskId>>,
}

impl GroupView {
    /// Describes the group `application.id` through `client`.
    pub fn describe<C: ConsumerContext>(
        client: &BaseConsumer<C>,
        application_id: &str,
        layout: &TopicLayout,
        timeout: Duration,
    ) -> Result<Self> {
        let groups = client
            .fetch_group_list(Some(application_id), timeout)
            .map_err(|e| {
                StreamsError::kafka(
                    format!("describing the consumer group `{application_id}`"),
                    e,
                )
            })?;
        let mut view = GroupView::default();
        for g in groups
            .groups()
            .iter()
            .filter(|g| g.name() == application_id)
        {
            for m in g.members() {
                let process = process_of(m.client_id(), application_id)
                    .unwrap_or_else(|| format!("member:{}", m.id()));
                let tasks = view.active.entry(process).or_default();
                for (topic, partition) in m.assignment().map(decode_assignment).unwrap_or_default()
                {
                    if let Some(sub) = layout.subtopology_of(&topic) {
                        tasks.insert(TaskId {
                            subtopology: sub,
                            partition,
                        });
                    }
                }
            }
        }
        Ok(view)
    }

    /// The tasks `me` keeps standby copies of: for each task, the `replicas` processes after its
    /// active one in process-id order (never the active process itself). `mine` are the tasks
    /// active in `me`, which identify its members when their client ids are unknown.
    pub fn standby_tasks(
        &self,
        me: &str,
        mine: &BTreeSet<TaskId>,
        replicas: u32,
    ) -> BTreeSet<TaskId> {
        let mut units: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
        for (key, tasks) in &self.active {
            let key = if key != me && key.starts_with("member:") && !tasks.is_disjoint(mine) {
                me.to_string()
            } else {
                key.clone()
            };
            units.entry(key).or_default().extend(tasks.iter().copied());
        }
        let procs: Vec<&String> = units.keys().collect();
        let mut out = BTreeSet::new();
        let Some(at) = procs.iter().position(|p| p.as_str() == me) else {
            return out;
        };
        let n = procs.len();
        let copies = (replicas as usize).min(n.saturating_sub(1));
        for (i, p) in procs.iter().enumerate() {
            if (1..=copies).any(|k| (i + k) % n == at) {
                out.extend(units[*p].iter().copied());
            }
        }
        // A task active here (during a move) needs no standby here.
        if let Some(own) = units.get(me) {
            out.retain(|t| !own.contains(t));
        }
        out.retain(|t| !mine.contains(t));
        out
    }
}

/// `<application.id>-<process uuid>-StreamThread-<n>-consumer` -> the uuid.
fn process_of(client_id: &str, application_id: &str) -> Option<String> {
    let rest = client_id.strip_prefix(application_id)?.strip_prefix('-')?;
    let uuid = rest.get(..36)?;
    uuid::Uuid::parse_str(uuid).ok()?;
    rest[36..]
        .starts_with("-StreamThread-")
        .then(|| uuid.to_string())
}

/// The partitions of a consumer-protocol assignment (any version: the partitions come first).
fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        *b = tail;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        Some(i16::from_be_bytes(take(b, 2)?.try_into().ok()?))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(b, 4)?.try_into().ok()?))
    }
    let mut out = Vec::new();
    let mut b = bytes;
    let parse = |b: &mut &[u8], out: &mut Vec<(String, i32)>| -> Option<()> {
        i16_(b)?; // version
        for _ in 0..i32_(b)?.max(0) {
            let len = i16_(b)?.max(0) as usize;
            let topic = String::from_utf8_lossy(take(b, len)?).into_owned();
            for _ in 0..i32_(b)?.max(0) {
                out.push((topic.clone(), i32_(b)?));
            }
        }
        Some(())
    };
    if parse(&mut b, &mut out).is_none() {
        tracing::debug!("undecodable member assignment in the group description");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(parts: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend((parts.len() as i32).to_be_bytes());
        for (t, ps) in parts {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn decodes_consumer_protocol_assignments_and_client_ids() {
        let a = assignment(&[("in", &[0, 2]), ("app-rep-repartition", &[1])]);
        assert_eq!(
            decode_assignment(&a),
            [
                ("in".to_string(), 0),
                ("in".to_string(), 2),
                ("app-rep-repartition".to_string(), 1)
            ]
        );
        assert!(
            decode_assignment(&a[..7]).len() <= 1,
            "truncated input is no panic"
        );
        let id = "wc-2b0e4d1c-9a4f-4b1e-8f7e-0c6d2a1b3c4d-StreamThread-2-consumer";
        assert_eq!(
            process_of(id, "wc").as_deref(),
            Some("2b0e4d1c-9a4f-4b1e-8f7e-0c6d2a1b3c4d")
        );
        assert_eq!(process_of("other-consumer", "wc"), None);
    }

    #[test]
    fn standbys_go_to_the_next_processes_never_the_active_one() {
        let t = |s, p| TaskId {
            subtopology: s,
            partition: p,
        };
        let mut view = GroupView::default();
        view.active.insert("a".into(), [t(0, 0), t(1, 0)].into());
        view.active.insert("b".into(), [t(0, 1)].into());
        view.active.insert("c".into(), [t(0, 2)].into());
        let none = BTreeSet::new();
        assert_eq!(view.standby_tasks("b", &none, 1), [t(0, 0), t(1, 0)].into());
        assert_eq!(view.standby_tasks("a", &none, 1), [t(0, 2)].into());
        assert_eq!(view.standby_tasks("a", &none, 2), [t(0, 1), t(0, 2)].into());
        // More replicas than other processes: one copy on each other process.
        assert_eq!(
            view.standby_tasks("c", &none, 5),
            [t(0, 0), t(1, 0), t(0, 1)].into()
        );
        assert!(
            view.standby_tasks("z", &none, 1).is_empty(),
            "not in the group yet"
        );
        let mut alone = GroupView::default();
        alone.active.insert("a".into(), [t(0, 0)].into());
        assert!(alone.standby_tasks("a", &none, 1).is_empty());

        // Without client ids: two members of process "p" (known by its tasks) and one other.
        let mut anon = GroupView::default();
        anon.active.insert("member:1".into(), [t(0, 0)].into());
        anon.active.insert("member:2".into(), [t(0, 1)].into());
        anon.active.insert("member:3".into(), [t(0, 2)].into());
        let mine: BTreeSet<TaskId> = [t(0, 0), t(0, 2)].into();
        assert_eq!(anon.standby_tasks("p", &mine, 1), [t(0, 1)].into());
    }
}
