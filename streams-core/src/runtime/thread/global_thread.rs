//! Kafka Streams' `GlobalStreamThread`: keeps the instance's global stores equal to their topics.
//! It reads every partition of every global topic from the beginning up to the end offsets
//! captured at start (bootstrap, before any stream thread runs), then follows new records.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use state_stores::RocksDbResources;

use crate::config::{OnError, StreamsConfig};
use crate::global::GlobalStores;
use crate::runtime::clients::config::{
    fetch_watermarks_fresh, unjoined_consumer, ClientKind, TracingContext,
};
use crate::runtime::clients::retry::RetryWindow;
use crate::runtime::metrics::RuntimeCounters;
use crate::task::{StreamTask, TaskId};
use crate::topology::Topology;
use crate::{Result, StreamsError};

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct GlobalStreamThread {
    task: StreamTask,
    consumer: BaseConsumer<TracingContext>,
    config: StreamsConfig,
    counters: Arc<RuntimeCounters>,
    partitions: Vec<(String, i32)>,
    /// Read errors a leader move or a broker restart causes are retried, up to task.timeout.ms.
    stall: RetryWindow,
}

fn kafka(context: String, source: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::kafka(context, source)
}

impl GlobalStreamThread {
    /// Builds the global task over `globals` and assigns every partition of the global topics.
    pub fn new(
        topology: &Topology,
        config: &StreamsConfig,
        globals: &GlobalStores,
        resources: &RocksDbResources,
        counters: Arc<RuntimeCounters>,
    ) -> Result<Self> {
        let app = &config.application_id;
        let dir = config.app_state_dir().join("global");
        let mut task = StreamTask::build(
            topology,
            TaskId::GLOBAL,
            app,
            &dir,
            resources,
            None,
            false,
            Some(globals),
        )?;
        task.init()?;
        let client_id = format!("{app}-global");
        let consumer = unjoined_consumer(config, ClientKind::GlobalConsumer, &client_id, &[])?;
        let mut partitions = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for topic in topology.global_topics() {
            let md = consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(|e| kafka(format!("reading the metadata of global topic `{topic}`"), e))?;
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map_or(0, |t| t.partitions().len());
            if n == 0 {
                return Err(StreamsError::Config(format!(
                    "global table topic `{topic}` does not exist; create it before starting the application"
                )));
            }
            for p in 0..n as i32 {
                tpl.add_partition_offset(&topic, p, Offset::Beginning)
                    .map_err(|e| kafka(format!("assigning `{topic}`-{p}"), e))?;
                partitions.push((topic.clone(), p));
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka("assigning the global topics".into(), e))?;
        Ok(GlobalStreamThread {
            task,
            consumer,
            config: config.clone(),
            counters,
            partitions,
            stall: RetryWindow::new(Duration::from_millis(config.task_timeout_ms)),
        })
    }

    /// Reads every global partition up to its end offset as of now.
    pub fn bootstrap(&mut self, shutdown: &AtomicBool) -> Result<()> {
        let started = Instant::now();
        let mut ends = BTreeMap::new();
        for (t, p) in &self.partitions {
            let high = loop {
                match fetch_watermarks_fresh(&self.consumer, t, *p, METADATA_TIMEOUT) {
                    Ok((_, high)) => break high,
                    Err(e) => {
                        let context = format!("reading the end offset of `{t}`-{p}");
                        self.stall.retry(&context, e)?;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            };
            ends.insert((t.clone(), *p), high);
        }
        let mut n = 0u64;
        loop {
            let done = ends.iter().all(|((t, p), end)| {
                *end == 0 || self.position(t, *p).is_some_and(|pos| pos >= *end)
            });
            if done || shutdown.load(Ordering::SeqCst) {
                break;
            }
            n += self.poll_once(Duration::from_millis(100))?;
        }
        tracing::info!(
            records = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "global stores bootstrapped"
        );
        Ok(())
    }

    fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        let tpl = self.consumer.position().ok()?;
        match tpl.find_partition(topic, partition)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    fn poll_once(&mut self, timeout: Duration) -> Result<u64> {
        let mut n = 0;
        let mut wait = timeout;
        while let Some(m) = self.consumer.poll(wait) {
            wait = Duration::ZERO;
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    self.stall.retry("reading a global topic", e)?;
                    continue;
                }
            };
            self.stall.progressed();
            let mut headers = crate::record::Headers::new();
            if let Some(h) = m.headers() {
                for hd in h.iter() {
                    headers.add(hd.key, hd.value.map(<[u8]>::to_vec));
                }
            }
            let r = self.task.process(
                m.topic(),
                m.partition(),
                m.offset(),
                m.key(),
                m.payload(),
                m.timestamp().to_millis().unwrap_or(0),
                headers,
            );
            let _ = self.task.drain_output();
            if let Err(e) = r {
                let policy = match &e {
                    StreamsError::Deserialization { .. } => self.config.on_deserialization_error,
                    _ => self.config.on_processing_error,
                };
                if policy == OnError::LogAndFail {
                    return Err(e);
                }
                tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), error = %e, "skipping a global table record (log_and_continue)");
                self.counters
                    .dropped_records
                    .fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
            if n >= 1000 {
                break;
            }
        }
        Ok(n)
    }

    /// Follows the global topics until `shutdown`; an error stops the instance through `fail`.
    pub fn run(mut self, shutdown: Arc<AtomicBool>, fail: impl FnOnce(StreamsError)) {
        while !shutdown.load(Ordering::SeqCst) {
            if let Err(e) = self.poll_once(Duration::from_millis(100)) {
                tracing::error!(error = %e, "the global thread failed");
                fail(e);
                break;
            }
        }
        if let Err(e) = self.task.close() {
            tracing::warn!(error = %e, "closing the global task failed");
        }
    }
}
