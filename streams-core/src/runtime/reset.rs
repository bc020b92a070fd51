//! The application reset tool (Kafka's `kafka-streams-application-reset`): moves the committed
//! offsets of the input topics, deletes the internal topics and removes the local state, so the
//! application reprocesses its input from scratch. Refuses while the group has members.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::StreamsConfig;
use crate::runtime::clients::config::{client_config, creation_error, ClientKind, TracingContext};
use crate::{Result, StreamsError};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the input offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The beginning of each partition.
    Earliest,
    /// The end of each partition (skip everything so far).
    Latest,
    /// The first offset at or after this time (ms since the epoch).
    Timestamp(i64),
    /// The first offset at or after `now - this many ms`.
    Duration(i64),
    /// The committed offset moved by this many records (clamped to the partition).
    ShiftBy(i64),
}

/// What to reset.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// The input topics whose committed offsets move.
    pub input_topics: Vec<String>,
    /// Where they move.
    pub to: ResetTo,
    /// Print the plan without changing anything.
    pub dry_run: bool,
}

/// What a reset did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetPlan {
    /// (topic, partition, old committed offset or -1, new offset).
    pub offsets: Vec<(String, i32, i64, i64)>,
    /// Internal topics deleted.
    pub deleted_topics: Vec<String>,
    /// The local state directory removed, if it existed.
    pub removed_state_dir: Option<PathBuf>,
}

impl std::fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<40} {:>9} {:>10} {:>10}",
            "input partition", "", "committed", "reset to"
        )?;
        for (t, p, old, new) in &self.offsets {
            let old = if *old < 0 {
                "none".to_string()
            } else {
                old.to_string()
            };
            writeln!(f, "{:<40} {:>9} {:>10} {:>10}", t, p, old, new)?;
        }
        for t in &self.deleted_topics {
            writeln!(f, "delete internal topic {t}")?;
        }
        match &self.removed_state_dir {
            Some(d) => write!(f, "remove local state {}", d.display()),
            None => write!(f, "no local state to remove"),
        }
    }
}

fn kafka(context: String, source: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::kafka(context, source)
}

/// Resets the application of `config` (its `application.id` is the group and topic prefix).
pub fn reset_application(config: &StreamsConfig, o: &ResetOptions) -> Result<ResetPlan> {
    let app = &config.application_id;
    let consumer: BaseConsumer<TracingContext> = client_config(
        config,
        ClientKind::Consumer,
        &[],
        &[
            ("group.id", app.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ],
    )?
    .create_with_context(TracingContext)
    .map_err(|e| creation_error("reset consumer", e))?;
    let groups = consumer
        .fetch_group_list(Some(app), TIMEOUT)
        .map_err(|e| kafka(format!("describing group `{app}`"), e))?;
    if let Some(g) = groups.groups().iter().find(|g| g.name() == app) {
        if !g.members().is_empty() {
            return Err(StreamsError::IllegalState(format!(
                "group `{app}` has {} active members (state {}); stop every instance of the application before resetting it",
                g.members().len(),
                g.state()
            )));
        }
    }
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| kafka("listing topics".into(), e))?;
    let mut plan = ResetPlan::default();
    let mut tpl = TopicPartitionList::new();
    for topic in &o.input_topics {
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| !t.partitions().is_empty())
            .ok_or_else(|| StreamsError::Config(format!("input topic `{topic}` does not exist")))?;
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let committed = consumer
        .committed_offsets(tpl.clone(), TIMEOUT)
        .map_err(|e| kafka("reading the committed offsets".into(), e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let by_time = match o.to {
        ResetTo::Timestamp(ts) => Some(ts),
        ResetTo::Duration(ms) => Some(now - ms),
        _ => None,
    };
    let times = match by_time {
        Some(ts) => {
            let mut q = TopicPartitionList::new();
            for e in tpl.elements() {
                q.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ts))
                    .map_err(|e| kafka("building the time query".into(), e))?;
            }
            Some(
                consumer
                    .offsets_for_times(q, TIMEOUT)
                    .map_err(|e| kafka("finding offsets by time".into(), e))?,
            )
        }
        None => None,
    };
    let mut target = TopicPartitionList::new();
    for e in tpl.elements() {
        let (topic, p) = (e.topic(), e.partition());
        let (low, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .map_err(|e| kafka(format!("reading the offsets of `{topic}`-{p}"), e))?;
        let old = match committed.find_partition(topic, p).map(|c| c.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        };
        let new = match o.to {
            ResetTo::Earliest => low,
            ResetTo::Latest => high,
            ResetTo::ShiftBy(n) => (if old < 0 { low } else { old } + n).clamp(low, high),
            ResetTo::Timestamp(_) | ResetTo::Duration(_) => {
                match times
                    .as_ref()
                    .and_then(|t| t.find_partition(topic, p))
                    .map(|x| x.offset())
                {
                    Some(Offset::Offset(off)) if off >= 0 => off,
                    // No record at or after the time: the end.
                    _ => high,
                }
            }
        };
        plan.offsets.push((topic.to_string(), p, old, new));
        target
            .add_partition_offset(topic, p, Offset::Offset(new))
            .map_err(|e| kafka("building the new offsets".into(), e))?;
    }
    let prefix = format!("{app}-");
    plan.deleted_topics = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| {
            n.starts_with(&prefix)
                && (n.ends_with("-changelog")
                    || n.ends_with("-repartition")
                    || n.ends_with("-topic"))
        })
        .collect();
    plan.deleted_topics.sort();
    let dir = config.app_state_dir();
    plan.removed_state_dir = dir.exists().then(|| dir.clone());
    if o.dry_run {
        return Ok(plan);
    }
    // The group's offsets of internal topics it reads go back to 0 too: brokers that keep the
    // offsets of a deleted topic would otherwise skip the first records of the recreated one.
    for t in metadata.topics() {
        let internal_input = t.name().ends_with("-repartition") || t.name().ends_with("-topic");
        if internal_input && plan.deleted_topics.iter().any(|d| d == t.name()) {
            for p in t.partitions() {
                target
                    .add_partition_offset(t.name(), p.id(), Offset::Offset(0))
                    .map_err(|e| kafka("building the new offsets".into(), e))?;
            }
        }
    }
    if target.count() > 0 {
        consumer
            .assign(&target)
            .map_err(|e| kafka("assigning the input topics".into(), e))?;
        consumer
            .commit(&target, CommitMode::Sync)
            .map_err(|e| kafka("committing the new offsets".into(), e))?;
    }
    if !plan.deleted_topics.is_empty() {
        let admin: AdminClient<DefaultClientContext> =
            client_config(config, ClientKind::Admin, &[], &[])?
                .create()
                .map_err(|e| creation_error("admin client", e))?;
        let names: Vec<&str> = plan.deleted_topics.iter().map(String::as_str).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamsError::Io {
                path: "tokio runtime".into(),
                source: e,
            })?;
        let results = rt
            .block_on(admin.delete_topics(&names, &AdminOptions::new()))
            .map_err(|e| kafka("deleting the internal topics".into(), e))?;
        for r in results {
            if let Err((t, e)) = r {
                if e != rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(StreamsError::Config(format!(
                        "cannot delete internal topic `{t}`: {e}"
                    )));
                }
            }
        }
    }
    if let Some(d) = &plan.removed_state_dir {
        std::fs::remove_dir_all(d).map_err(|source| StreamsError::Io {
            path: d.clone(),
            source,
        })?;
    }
    Ok(plan)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (UTC) into ms since the epoch.
pub fn parse_utc_datetime(s: &str) -> Result<i64> {
    let bad = || {
        StreamsError::Config(format!(
            "`{s}` is not a UTC date-time like 2026-11-22T08:00:00Z"
        ))
    };
    let s2 = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = s2.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let (hms, millis) = match time.split_once('.') {
        // A fraction of a second: ".5" is 500 ms.
        Some((a, b)) if !b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit()) => {
            (a, format!("{b:0<3}").parse::<i64>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    if !(1..=12).contains(m) || !(1..=31).contains(day) || *hh > 23 || *mm > 59 || *ss > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_datetimes() {
        assert_eq!(parse_utc_datetime("1970-01-01T00:00:00Z").ok(), Some(0));
        assert_eq!(
            parse_utc_datetime("2026-11-22T08:00:00.5Z").ok(),
            Some(1_795_334_400_500)
        );
        assert!(parse_utc_datetime("2026-13-01T00:00:00Z").is_err());
        assert!(parse_utc_datetime("yesterday").is_err());
    }
}
