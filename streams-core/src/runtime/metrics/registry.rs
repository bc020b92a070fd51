//! Metrics: Kafka Streams' metric groups (`stream-thread-metrics`, `stream-task-metrics`,
//! `stream-state-metrics`, ...) as Prometheus series.
//!
//! The runtime records into [`Sensor`]s, which keep Kafka's sampled statistics: a rate over two
//! 30 s samples, a total, and the average and maximum of a value (a latency, a lateness). The
//! series are computed from them when scraped, so recording costs a lock and a few additions,
//! and nothing runs in the background. A series is named
//! `kafka_streams_<group>_<metric>` with dashes as underscores, e.g.
//! `kafka_streams_stream_thread_metrics_process_rate{thread_id="..."}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, GaugeVec, Opts};

use crate::{Result, StreamsError};

/// Length of one sample of a rate, average or maximum (Kafka's `metrics.sample.window.ms`).
const SAMPLE_WINDOW: Duration = Duration::from_secs(30);
/// Samples kept per statistic (Kafka's `metrics.num.samples`).
const SAMPLES: usize = 2;

pub use crate::config::RecordingLevel;

/// A metric group, which fixes the labels of its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Group {
    /// `stream-metrics`: the instance.
    Client,
    /// `stream-thread-metrics`.
    Thread,
    /// `stream-task-metrics`.
    Task,
    /// `stream-state-metrics`.
    State,
    /// `producer-metrics` of the framework's producers (transaction timings).
    Producer,
}

impl Group {
    fn prefix(self) -> &'static str {
        match self {
            Group::Client => "kafka_streams_stream_metrics",
            Group::Thread => "kafka_streams_stream_thread_metrics",
            Group::Task => "kafka_streams_stream_task_metrics",
            Group::State => "kafka_streams_stream_state_metrics",
            Group::Producer => "kafka_streams_producer_metrics",
        }
    }

    fn labels(self) -> &'static [&'static str] {
        match self {
            Group::Client => &["client_id"],
            Group::Thread => &["thread_id"],
            Group::Task => &["thread_id", "task_id"],
            Group::State => &["thread_id", "task_id", "store"],
            Group::Producer => &["client_id"],
        }
    }
}

/// What a sensor measures and which series it feeds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SensorSpec {
    group: Group,
    name: &'static str,
    /// Feeds `<name>-rate` and `<name>-total` (events).
    counts: bool,
    /// Feeds `<name><suffix>-avg` and `<name><suffix>-max` of the recorded values.
    values: Option<&'static str>,
    /// Feeds `<name><suffix>` with the sum of the recorded values.
    sum: Option<&'static str>,
    level: RecordingLevel,
    help: &'static str,
}

impl SensorSpec {
    /// The metric names this sensor feeds.
    fn series(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.counts {
            out.push(format!("{}-rate", self.name));
            out.push(format!("{}-total", self.name));
        }
        if let Some(suffix) = self.values {
            out.push(format!("{}{suffix}-avg", self.name));
            out.push(format!("{}{suffix}-max", self.name));
        }
        if let Some(suffix) = self.sum {
            out.push(format!("{}{suffix}", self.name));
        }
        out
    }
}

const fn spec(group: Group, name: &'static str, help: &'static str) -> SensorSpec {
    SensorSpec {
        group,
        name,
        counts: true,
        values: None,
        sum: None,
        level: RecordingLevel::Info,
        help,
    }
}

const fn timed(group: Group, name: &'static str, help: &'static str) -> SensorSpec {
    SensorSpec {
        values: Some("-latency"),
        ..spec(group, name, help)
    }
}

const fn debug(s: SensorSpec) -> SensorSpec {
    SensorSpec {
        level: RecordingLevel::Debug,
        ..s
    }
}

/// Records processed by the thread; latency in ms per record.
pub(crate) const THREAD_PROCESS: SensorSpec = timed(Group::Thread, "process", "records processed");
/// Commits; latency in ms.
pub(crate) const THREAD_COMMIT: SensorSpec =
    timed(Group::Thread, "commit", "commits of all the thread's tasks");
/// Consumer polls; latency in ms.
pub(crate) const THREAD_POLL: SensorSpec = timed(Group::Thread, "poll", "consumer polls");
/// Records per poll.
pub(crate) const THREAD_POLL_RECORDS: SensorSpec = SensorSpec {
    counts: false,
    values: Some(""),
    ..spec(Group::Thread, "poll-records", "records returned per poll")
};
/// Punctuations; latency in ms.
pub(crate) const THREAD_PUNCTUATE: SensorSpec =
    timed(Group::Thread, "punctuate", "punctuations fired");
/// Tasks created.
pub(crate) const THREAD_TASK_CREATED: SensorSpec =
    spec(Group::Thread, "task-created", "tasks created");
/// Tasks closed.
pub(crate) const THREAD_TASK_CLOSED: SensorSpec =
    spec(Group::Thread, "task-closed", "tasks closed");
/// Records processed by a task.
pub(crate) const TASK_PROCESS: SensorSpec =
    spec(Group::Task, "process", "records processed by the task");
/// Records dropped by a task (handlers, late records, invalid timestamps).
pub(crate) const TASK_DROPPED: SensorSpec = spec(Group::Task, "dropped-records", "records dropped");
/// Stream time minus record timestamp, in ms, at processing.
pub(crate) const TASK_LATENESS: SensorSpec = SensorSpec {
    counts: false,
    values: Some(""),
    ..spec(
        Group::Task,
        "record-lateness",
        "stream time minus record timestamp (ms)",
    )
};
/// Changelog records restored into a store.
pub(crate) const STATE_RESTORE: SensorSpec =
    spec(Group::State, "restore", "changelog records restored");
/// Store writes; latency in ms.
pub(crate) const STATE_PUT: SensorSpec = debug(timed(Group::State, "put", "store puts"));
/// Store point reads; latency in ms.
pub(crate) const STATE_GET: SensorSpec = debug(timed(Group::State, "get", "store gets"));
/// Store deletes; latency in ms.
pub(crate) const STATE_DELETE: SensorSpec = debug(timed(Group::State, "delete", "store deletes"));
/// Store range scans (range, reverse range, prefix scan, all); latency in ms to open.
pub(crate) const STATE_RANGE: SensorSpec = debug(timed(Group::State, "range", "store range scans"));
/// Store flushes; latency in ms.
pub(crate) const STATE_FLUSH: SensorSpec = debug(timed(Group::State, "flush", "store flushes"));

const fn txn(name: &'static str, help: &'static str) -> SensorSpec {
    SensorSpec {
        counts: false,
        sum: Some("-time-ns-total"),
        ..spec(Group::Producer, name, help)
    }
}

/// Time in `init_transactions`, ns.
pub(crate) const TXN_INIT: SensorSpec = txn("txn-init", "time spent initializing transactions");
/// Time in `begin_transaction`, ns.
pub(crate) const TXN_BEGIN: SensorSpec = txn("txn-begin", "time spent beginning transactions");
/// Time in `send_offsets_to_transaction`, ns.
pub(crate) const TXN_SEND_OFFSETS: SensorSpec = txn(
    "txn-send-offsets",
    "time spent sending offsets to transactions",
);
/// Time in `commit_transaction`, ns.
pub(crate) const TXN_COMMIT: SensorSpec = txn("txn-commit", "time spent committing transactions");
/// Time in `abort_transaction`, ns.
pub(crate) const TXN_ABORT: SensorSpec = txn("txn-abort", "time spent aborting transactions");

const SENSORS: &[SensorSpec] = &[
    THREAD_PROCESS,
    THREAD_COMMIT,
    THREAD_POLL,
    THREAD_POLL_RECORDS,
    THREAD_PUNCTUATE,
    THREAD_TASK_CREATED,
    THREAD_TASK_CLOSED,
    TASK_PROCESS,
    TASK_DROPPED,
    TASK_LATENESS,
    STATE_RESTORE,
    STATE_PUT,
    STATE_GET,
    STATE_DELETE,
    STATE_RANGE,
    STATE_FLUSH,
    TXN_INIT,
    TXN_BEGIN,
    TXN_SEND_OFFSETS,
    TXN_COMMIT,
    TXN_ABORT,
];

/// Gauges set directly rather than through a sensor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GaugeSpec {
    group: Group,
    name: &'static str,
    help: &'static str,
}

/// Changelog records a store still has to restore.
pub(crate) const RESTORE_REMAINING: GaugeSpec = GaugeSpec {
    group: Group::State,
    name: "restore-remaining-records-total",
    help: "changelog records left to restore",
};
/// Stream threads alive in the instance.
pub(crate) const ALIVE_THREADS: GaugeSpec = GaugeSpec {
    group: Group::Client,
    name: "alive-stream-threads",
    help: "stream threads alive",
};

const GAUGES: &[GaugeSpec] = &[RESTORE_REMAINING, ALIVE_THREADS];

fn series_name(group: Group, metric: &str) -> String {
    format!("{}_{}", group.prefix(), metric.replace('-', "_"))
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    count: u64,
    sum: f64,
    max: f64,
}

impl Sample {
    fn new(start: Instant) -> Self {
        Sample {
            start,
            count: 0,
            sum: 0.0,
            max: f64::NEG_INFINITY,
        }
    }
}

/// Kafka's sampled statistics: the last [`SAMPLES`] windows of [`SAMPLE_WINDOW`].
#[derive(Debug)]
struct SampledStat {
    created: Instant,
    samples: Vec<Sample>,
    total_count: u64,
    total_sum: f64,
}

impl SampledStat {
    fn new(now: Instant) -> Self {
        SampledStat {
            created: now,
            samples: vec![Sample::new(now)],
            total_count: 0,
            total_sum: 0.0,
        }
    }

    fn current(&mut self, now: Instant) -> &mut Sample {
        let last = self.samples.len() - 1;
        if now.duration_since(self.samples[last].start) >= SAMPLE_WINDOW {
            self.samples.push(Sample::new(now));
            if self.samples.len() > SAMPLES {
                self.samples.remove(0);
            }
        }
        let last = self.samples.len() - 1;
        &mut self.samples[last]
    }

    fn record(&mut self, now: Instant, count: u64, sum: f64, max: f64) {
        self.total_count += count;
        self.total_sum += sum;
        let s = self.current(now);
        s.count += count;
        s.sum += sum;
        s.max = s.max.max(max);
    }

    /// Samples still inside the window.
    fn live(&self, now: Instant) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| now.duration_since(s.start) < SAMPLE_WINDOW * SAMPLES as u32)
    }

    /// Events per second, as Kafka's `Rate`: over the live samples, counting at least
    /// `SAMPLES - 1` full windows so a young sensor does not report a burst as a huge rate.
    fn rate(&self, now: Instant) -> f64 {
        let count: u64 = self.live(now).map(|s| s.count).sum();
        let oldest = self
            .live(now)
            .map(|s| s.start)
            .min()
            .unwrap_or(now)
            .max(self.created);
        let elapsed = now.duration_since(oldest);
        let min = SAMPLE_WINDOW * (SAMPLES as u32 - 1);
        let window = elapsed.max(min).as_secs_f64();
        count as f64 / window
    }

    fn avg(&self, now: Instant) -> f64 {
        let (count, sum) = self
            .live(now)
            .fold((0u64, 0.0), |(c, s), x| (c + x.count, s + x.sum));
        if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        }
    }

    fn max(&self, now: Instant) -> f64 {
        let m = self
            .live(now)
            .filter(|s| s.count > 0)
            .map(|s| s.max)
            .fold(f64::NEG_INFINITY, f64::max);
        if m == f64::NEG_INFINITY {
            f64::NAN
        } else {
            m
        }
    }
}

/// Records events and values for one metric name and label set.
#[derive(Debug)]
pub struct Sensor {
    spec: SensorSpec,
    labels: Vec<String>,
    enabled: bool,
    stat: Mutex<SampledStat>,
}

impl Sensor {
    /// Records one event with `value` (a latency in ms, a lateness, a duration in ns...).
    pub fn record(&self, value: f64) {
        self.record_many(1, value, value);
    }

    /// Records `count` events whose values add up to `sum`, the largest being `max`.
    pub fn record_many(&self, count: u64, sum: f64, max: f64) {
        if !self.enabled || count == 0 {
            return;
        }
        let mut s = self.stat.lock().unwrap_or_else(|p| p.into_inner());
        s.record(Instant::now(), count, sum, max);
    }

    /// Records `count` events without values.
    pub fn record_events(&self, count: u64) {
        self.record_many(count, 0.0, 0.0);
    }

    /// Times `f` and records one event with its duration in ms (or ns for `-time-ns` sensors).
    pub fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        if !self.enabled {
            return f();
        }
        let started = Instant::now();
        let r = f();
        self.record_elapsed(started);
        r
    }

    /// Records one event whose value is the time since `started`.
    pub fn record_elapsed(&self, started: Instant) {
        let d = started.elapsed();
        let v = if self.spec.sum.is_some() {
            d.as_nanos() as f64
        } else {
            d.as_secs_f64() * 1000.0
        };
        self.record(v);
    }

    /// Whether the sensor records at the configured level (callers may skip measuring).
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// A sensor as the registry knows it: enough to drop its series once it is gone.
struct Registered {
    spec: SensorSpec,
    labels: Vec<String>,
    sensor: Weak<Sensor>,
}

enum Family {
    Gauge(GaugeVec),
    Counter(CounterVec),
}

impl Family {
    fn collector(&self) -> &dyn Collector {
        match self {
            Family::Gauge(g) => g,
            Family::Counter(c) => c,
        }
    }

    fn remove(&self, labels: &[&str]) {
        let _ = match self {
            Family::Gauge(g) => g.remove_label_values(labels),
            Family::Counter(c) => c.remove_label_values(labels),
        };
    }
}

/// The metrics of one [`crate::KafkaStreams`] instance. It is a Prometheus [`Collector`]: register
/// it (from [`crate::KafkaStreams::metrics`]) in your own registry, or let the instance serve it
/// over HTTP with `metrics.http.address`.
pub struct StreamsMetrics {
    level: RecordingLevel,
    families: HashMap<String, Family>,
    descs: Vec<Desc>,
    /// Every enabled sensor with its labels; the owners hold the only strong references.
    sensors: Mutex<Vec<Registered>>,
}

impl std::fmt::Debug for StreamsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsMetrics")
            .field("level", &self.level)
            .field("families", &self.families.len())
            .finish()
    }
}

impl StreamsMetrics {
    /// Metrics recording at `level`.
    pub fn new(level: RecordingLevel) -> Result<Self> {
        let mut families = HashMap::new();
        let mut add = |group: Group, metric: String, help: &str, counter: bool| -> Result<()> {
            let name = series_name(group, &metric);
            if families.contains_key(&name) {
                return Ok(());
            }
            let opts = Opts::new(name.clone(), help.to_string());
            let family = if counter {
                CounterVec::new(opts, group.labels()).map(Family::Counter)
            } else {
                GaugeVec::new(opts, group.labels()).map(Family::Gauge)
            }
            .map_err(|e| StreamsError::IllegalState(format!("metric `{name}`: {e}")))?;
            families.insert(name, family);
            Ok(())
        };
        for s in SENSORS {
            for metric in s.series() {
                // Totals (of events, or of nanoseconds) only grow: Prometheus counters.
                let counter = metric.ends_with("-total");
                add(s.group, metric, s.help, counter)?;
            }
        }
        for g in GAUGES {
            add(g.group, g.name.to_string(), g.help, false)?;
        }
        let mut descs: Vec<Desc> = families
            .values()
            .flat_map(|f| f.collector().desc().into_iter().cloned())
            .collect();
        descs.sort_by(|a, b| a.fq_name.cmp(&b.fq_name));
        Ok(StreamsMetrics {
            level,
            families,
            descs,
            sensors: Mutex::new(Vec::new()),
        })
    }

    /// The recording level.
    pub fn level(&self) -> RecordingLevel {
        self.level
    }

    /// A sensor for `spec` with the label values of its group (in the group's label order).
    pub(crate) fn sensor(&self, spec: SensorSpec, labels: &[&str]) -> Arc<Sensor> {
        let s = Arc::new(Sensor {
            spec,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            enabled: spec.level <= self.level,
            stat: Mutex::new(SampledStat::new(Instant::now())),
        });
        if s.enabled {
            let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
            // Without scrapes nothing else prunes: keep tasks that come and go from piling up.
            if sensors.len() >= 1024 && sensors.len().is_power_of_two() {
                self.drop_dead(&mut sensors);
            }
            sensors.push(Registered {
                spec,
                labels: s.labels.clone(),
                sensor: Arc::downgrade(&s),
            });
        }
        s
    }

    /// Forgets sensors whose owner is gone, with their series.
    fn drop_dead(&self, sensors: &mut Vec<Registered>) {
        sensors.retain(|r| {
            if r.sensor.strong_count() > 0 {
                return true;
            }
            let values: Vec<&str> = r.labels.iter().map(String::as_str).collect();
            for metric in r.spec.series() {
                if let Some(f) = self.families.get(&series_name(r.spec.group, &metric)) {
                    f.remove(&values);
                }
            }
            false
        });
    }

    /// Sets the gauge `spec` for `labels`.
    pub(crate) fn set_gauge(&self, spec: GaugeSpec, labels: &[&str], value: f64) {
        if let Some(Family::Gauge(g)) = self.families.get(&series_name(spec.group, spec.name)) {
            if let Ok(g) = g.get_metric_with_label_values(labels) {
                g.set(value);
            }
        }
    }

    /// Adds `delta` to the gauge `spec` for `labels`.
    pub(crate) fn add_gauge(&self, spec: GaugeSpec, labels: &[&str], delta: f64) {
        if let Some(Family::Gauge(g)) = self.families.get(&series_name(spec.group, spec.name)) {
            if let Ok(g) = g.get_metric_with_label_values(labels) {
                g.add(delta);
            }
        }
    }

    /// Removes the gauge `spec` for `labels` (its owner is gone).
    pub(crate) fn remove_gauge(&self, spec: GaugeSpec, labels: &[&str]) {
        if let Some(f) = self.families.get(&series_name(spec.group, spec.name)) {
            f.remove(labels);
        }
    }

    /// Computes every series from the live sensors; drops the series of sensors whose owner (a
    /// closed task, a stopped thread) is gone.
    fn refresh(&self) {
        let now = Instant::now();
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        self.drop_dead(&mut sensors);
        for s in sensors.iter().filter_map(|r| r.sensor.upgrade()) {
            let labels: Vec<&str> = s.labels.iter().map(String::as_str).collect();
            let stat = s.stat.lock().unwrap_or_else(|p| p.into_inner());
            let spec = s.spec;
            let gauge = |metric: String, v: f64| {
                if let Some(Family::Gauge(g)) = self.families.get(&series_name(spec.group, &metric))
                {
                    if let Ok(g) = g.get_metric_with_label_values(&labels) {
                        g.set(v);
                    }
                }
            };
            let counter = |metric: String, v: f64| {
                if let Some(Family::Counter(c)) =
                    self.families.get(&series_name(spec.group, &metric))
                {
                    if let Ok(c) = c.get_metric_with_label_values(&labels) {
                        let delta = v - c.get();
                        if delta > 0.0 {
                            c.inc_by(delta);
                        }
                    }
                }
            };
            if spec.counts {
                gauge(format!("{}-rate", spec.name), stat.rate(now));
                counter(format!("{}-total", spec.name), stat.total_count as f64);
            }
            if let Some(suffix) = spec.values {
                gauge(format!("{}{suffix}-avg", spec.name), stat.avg(now));
                gauge(format!("{}{suffix}-max", spec.name), stat.max(now));
            }
            if let Some(suffix) = spec.sum {
                counter(format!("{}{suffix}", spec.name), stat.total_sum);
            }
        }
    }

    /// The current series in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let families = self.collect();
        if prometheus::TextEncoder::new()
            .encode(&families, &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Collector for StreamsMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut names: Vec<&String> = self.families.keys().collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|n| self.families[n].collector().collect())
            .filter(|mf| !mf.get_metric().is_empty())
            .collect()
    }
}

/// A shared handle, so a registry and the instance can both hold the metrics.
#[derive(Clone, Debug)]
pub struct MetricsHandle(pub Arc<StreamsMetrics>);

impl Collector for MetricsHandle {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensors_feed_kafka_named_series() {
        let m = StreamsMetrics::new(RecordingLevel::Info).unwrap_or_else(|e| panic!("{e}"));
        let process = m.sensor(THREAD_PROCESS, &["t-1"]);
        process.record_many(10, 5.0, 1.0);
        process.record(2.0);
        let text = m.render();
        assert!(
            text.contains(
                "kafka_streams_stream_thread_metrics_process_total{thread_id=\"t-1\"} 11"
            ),
            "{text}"
        );
        assert!(text.contains(
            "kafka_streams_stream_thread_metrics_process_latency_max{thread_id=\"t-1\"} 2"
        ));
        // 7 ms over 11 records.
        let avg = text
            .lines()
            .find(|l| l.starts_with("kafka_streams_stream_thread_metrics_process_latency_avg"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{text}"));
        assert!((avg - 7.0 / 11.0).abs() < 1e-9, "{avg}");
        // A young sensor's rate counts over one full window: 11 events / 30 s.
        let rate = text
            .lines()
            .find(|l| l.starts_with("kafka_streams_stream_thread_metrics_process_rate"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{text}"));
        assert!((rate - 11.0 / 30.0).abs() < 0.01, "{rate}");
    }

    #[test]
    fn debug_sensors_stay_off_at_info_and_removed_labels_disappear() {
        let m = StreamsMetrics::new(RecordingLevel::Info).unwrap_or_else(|e| panic!("{e}"));
        let put = m.sensor(STATE_PUT, &["t-1", "0_0", "counts"]);
        assert!(!put.enabled());
        put.record(1.0);
        assert!(!m.render().contains("put_latency"));

        let d = StreamsMetrics::new(RecordingLevel::Debug).unwrap_or_else(|e| panic!("{e}"));
        let put = d.sensor(STATE_PUT, &["t-1", "0_0", "counts"]);
        put.record(1.0);
        let other = d.sensor(TASK_PROCESS, &["t-1", "0_1"]);
        other.record_events(3);
        assert!(d.render().contains("store=\"counts\""));
        drop(put);
        let text = d.render();
        assert!(!text.contains("store=\"counts\""), "{text}");
        assert!(text.contains("task_id=\"0_1\""), "{text}");
    }

    #[test]
    fn recording_level_parses_kafka_values() {
        assert_eq!(
            RecordingLevel::parse("debug").ok(),
            Some(RecordingLevel::Debug)
        );
        let e = RecordingLevel::parse("loud").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("INFO, DEBUG or TRACE")));
    }
}
