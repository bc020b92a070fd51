//! Processing: polled records into the tasks' partition groups, the tasks run in timestamp
//! order with the error policy of `default.deserialization.exception.handler` and
//! `processing.exception.handler` (dead letters included), and wall-clock punctuations.

use super::*;

impl TaskManager {
    /// Buffers a polled record for its task.
    pub fn buffer<M: Message>(&mut self, m: &M) {
        let Some(sub) = self.env.layout.subtopology_of(m.topic()) else {
            return;
        };
        let id = TaskId {
            subtopology: sub,
            partition: m.partition(),
        };
        let Some(t) = self.tasks.get_mut(&id) else {
            tracing::debug!(
                topic = m.topic(),
                partition = m.partition(),
                "record for a task this thread does not own"
            );
            return;
        };
        let topic = match self.interned.get(m.topic()) {
            Some(t) => t.clone(),
            None => {
                let a: Arc<str> = Arc::from(m.topic());
                self.interned.insert(m.topic().to_string(), a.clone());
                a
            }
        };
        let mut headers = crate::record::Headers::new();
        if let Some(h) = m.headers() {
            for hd in h.iter() {
                headers.add(hd.key, hd.value.map(<[u8]>::to_vec));
            }
        }
        // The event time orders the task's inputs, so it is extracted as the record is buffered.
        let timestamp = match t.task.extract_timestamp(
            m.topic(),
            m.partition(),
            m.offset(),
            m.key(),
            m.payload(),
            m.timestamp().to_millis().unwrap_or(-1),
            &headers,
        ) {
            Ok(Some(ts)) => ts,
            Ok(None) => {
                let dropped = t.task.take_dropped_records();
                self.env
                    .counters
                    .dropped_records
                    .fetch_add(dropped, Ordering::Relaxed);
                t.sensors.dropped.record_events(dropped);
                return;
            }
            Err(e) => {
                self.pending_error.get_or_insert(CollectorError::Fatal(e));
                return;
            }
        };
        t.queue.push(BufferedRecord {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp,
            headers,
        });
    }

    /// Kafka Streams' `buffered.records.per.partition`: pauses fetching an input partition that
    /// holds more than that many records in its task's buffer, and resumes it once it holds no
    /// more. A task empties its buffer whenever it processes, so in practice this pauses the
    /// inputs of a task that waits for another of its inputs. That is where it matters:
    /// librdkafka weighs its prefetch limits over the thread's whole queue, and a fetch fills up
    /// with partitions in a fixed order, so the input a task waits for can go unfetched for as
    /// long as its siblings have records on the broker. Pausing them drops their prefetched
    /// records (fetched again from the position when resumed) and leaves the fetch to it.
    pub fn pause_full_inputs(&mut self, consumer: &dyn GroupConsumer) -> Result<()> {
        let limit = self.env.config.buffered_records_per_partition;
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            if t.fetch_paused.is_empty() && t.queue.len() <= limit {
                continue;
            }
            for (topic, p, len) in t.queue.partition_lens() {
                let key = (topic.clone(), p);
                if len > limit {
                    if t.fetch_paused.insert(key) {
                        pause.add_partition(topic, p);
                    }
                } else if t.fetch_paused.remove(&key) {
                    resume.add_partition(topic, p);
                }
            }
        }
        if pause.count() > 0 {
            tracing::debug!(partitions = ?pause, "pausing inputs with full buffers");
            consumer
                .pause(&pause)
                .map_err(|e| kafka("pausing inputs with full buffers", e))?;
        }
        // A paused instance resumes every input when it resumes.
        if resume.count() > 0 && !self.paused {
            consumer
                .resume(&resume)
                .map_err(|e| kafka("resuming inputs whose buffers drained", e))?;
        }
        Ok(())
    }

    /// Runs `f` on the store `name` of every running task that has it, with the task's
    /// partition and its position (the last offset processed per input partition).
    pub(crate) fn with_positioned_stores(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(i32, crate::iq::Position, &mut crate::task::StoreSlot),
    ) -> Result<()> {
        for (id, t) in self.tasks.iter_mut().filter(|(_, t)| t.initialized) {
            if t.task.store_names().iter().any(|s| s == name) {
                let position = crate::iq::Position::of(&t.processed);
                t.task.with_store(name, |slot| {
                    f(id.partition, position, slot);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Per store of every task: (store, changelog topic, partition, lag known here). A running
    /// task is caught up (`None`: the caller uses the changelog's end); a restoring one reports
    /// how many records it still has to apply.
    pub(crate) fn changelog_lags(&self) -> Vec<(String, String, i32, Option<i64>)> {
        let remaining: std::collections::HashMap<(TaskId, String), i64> = self
            .restorer
            .remaining()
            .into_iter()
            .map(|(t, store, r)| ((t, store), r))
            .collect();
        let mut out = Vec::new();
        for (id, t) in &self.tasks {
            for (store, topic) in t.task.changelogs() {
                let lag = if t.initialized {
                    None
                } else {
                    Some(remaining.get(&(*id, store.clone())).copied().unwrap_or(0))
                };
                out.push((store, topic, id.partition, lag));
            }
        }
        out
    }

    pub(crate) fn with_stores(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&mut crate::task::StoreSlot) -> Result<()>,
    ) -> Result<usize> {
        let mut n = 0;
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            if t.task.store_names().iter().any(|s| s == name) {
                t.task.with_store(name, |slot| f(slot))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Processes the buffered records of running tasks (see [`TaskManager::ready`]); `lag` tells
    /// whether the broker holds records of a partition beyond what was fetched. Returns how many
    /// records were processed.
    pub fn process(
        &mut self,
        lag: &dyn Fn(&str, i32, Option<i64>) -> bool,
    ) -> Result<usize, CollectorError> {
        if self.paused {
            return Ok(0);
        }
        let mut n = 0;
        let idle_ms = self.env.config.max_task_idle_ms;
        // Stop at the uncommitted-writes limit, so the thread commits before going on.
        let limit = self.uncommitted_limit();
        let mut held_by_others = 0;
        let mut over_limit = false;
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            if over_limit {
                break;
            }
            if !t.ready(idle_ms, lag) {
                continue;
            }
            let started = Instant::now();
            let (mut done, mut dropped, mut late_sum, mut late_max) = (0u64, 0u64, 0.0, 0.0f64);
            while let Some(r) = t.queue.pop_earliest() {
                if r.timestamp < 0 {
                    tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, "skipping a record with an invalid timestamp");
                    dropped += 1;
                } else {
                    let late = t.stream_time.saturating_sub(r.timestamp).max(0) as f64;
                    t.stream_time = t.stream_time.max(r.timestamp);
                    late_sum += late;
                    late_max = late_max.max(late);
                    let dlq = self.env.config.dead_letter_topic.as_ref();
                    let headers = dlq.map(|_| r.headers.clone());
                    let result = t.task.process(
                        &r.topic,
                        r.partition,
                        r.offset,
                        r.key.as_deref(),
                        r.value.as_deref(),
                        r.timestamp,
                        r.headers,
                    );
                    let mut out = t.task.drain_output();
                    dropped += t.task.take_dropped_records();
                    if let Err(e) = result {
                        let policy = match &e {
                            StreamsError::Deserialization { .. } => {
                                self.env.config.on_deserialization_error
                            }
                            _ => self.env.config.on_processing_error,
                        };
                        if policy == OnError::LogAndFail {
                            return Err(CollectorError::Fatal(e));
                        }
                        tracing::warn!(task = %t.task.id(), topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "skipping a record (log_and_continue)");
                        dropped += 1;
                        if let (Some(topic), Some(mut headers)) = (dlq, headers) {
                            headers
                                .add("__streams.errors.exception", Some(error_kind(&e).into()))
                                .add("__streams.errors.message", Some(e.to_string().into_bytes()))
                                .add("__streams.errors.topic", Some(r.topic.as_bytes().to_vec()))
                                .add(
                                    "__streams.errors.partition",
                                    Some(r.partition.to_string().into_bytes()),
                                )
                                .add(
                                    "__streams.errors.offset",
                                    Some(r.offset.to_string().into_bytes()),
                                );
                            out.push(crate::task::ProducedRecord {
                                topic: topic.as_str().into(),
                                partition: None,
                                key: r.key.clone(),
                                value: r.value.clone(),
                                timestamp: r.timestamp,
                                headers,
                            });
                        }
                    }
                    send_all(&mut self.producer, t, out)?;
                }
                // Keyed by the interned topic: no allocation per record.
                t.consumed
                    .insert((r.topic.clone(), r.partition), r.offset + 1);
                t.processed.insert((r.topic.clone(), r.partition), r.offset);
                n += 1;
                done += 1;
                if t.queue.is_empty_for(&r.topic, r.partition) && !t.ready(idle_ms, lag) {
                    break;
                }
                if limit.is_some_and(|l| {
                    done % UNCOMMITTED_CHECK_EVERY == 0
                        && held_by_others + t.task.uncommitted_bytes() > l
                }) {
                    over_limit = true;
                    break;
                }
            }
            if limit.is_some() {
                held_by_others += t.task.uncommitted_bytes();
            }
            self.env
                .counters
                .dropped_records
                .fetch_add(dropped, Ordering::Relaxed);
            t.sensors.dropped.record_events(dropped);
            t.sensors.process.record_events(done);
            t.sensors.lateness.record_many(done, late_sum, late_max);
            if done > 0 {
                // Per record: the batch's time spread over its records.
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                self.sensors.process.record_many(done, ms, ms / done as f64);
            }
        }
        self.env
            .counters
            .processed
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(p) = &self.producer {
            p.poll();
        }
        for t in self.tasks.values() {
            if let Some(p) = &t.producer {
                p.poll();
            }
        }
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        Ok(n)
    }

    /// Fires due wall-clock punctuations.
    pub fn punctuate(&mut self) -> Result<(), CollectorError> {
        if self.paused {
            return Ok(());
        }
        let now = now_ms();
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            let started = Instant::now();
            if t.task
                .punctuate(PunctuationType::WallClockTime, now)
                .map_err(CollectorError::Fatal)?
            {
                self.sensors.punctuate.record_elapsed(started);
                let out = t.task.drain_output();
                send_all(&mut self.producer, t, out)?;
            }
        }
        Ok(())
    }

    /// Whether `commit.interval.ms` has passed since the last commit.
    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= Duration::from_millis(self.env.config.commit_interval_ms)
    }
}
