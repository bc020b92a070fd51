//! Restoration of a thread's new tasks: registering their changelogs (after the committed
//! offsets of their inputs are stable, under exactly-once), stepping the restore consumer, and
//! starting the tasks whose stores caught up.

use super::*;

impl TaskManager {
    /// Registers changelogs of new tasks for restoration. Under exactly-once it first waits until
    /// the committed offsets of the task's inputs are stable (no transaction of a previous owner
    /// pending), so the changelog end it restores to includes everything that owner committed;
    /// the inputs are then fetched (paused) from those offsets.
    /// A retriable error (a leader moving, a broker restarting) leaves the tasks for the next
    /// round, within task.timeout.ms.
    fn register_restorations(&mut self, consumer: &dyn GroupConsumer) -> Result<()> {
        let pending: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.restore_registered)
            .map(|(id, _)| *id)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        // The committed offsets' metadata carries each input's partition time and the task's
        // processor metadata. Under exactly-once (read_committed) the fetch also waits until the
        // offsets are stable: no transaction of a previous owner pending.
        let mut tpl = TopicPartitionList::new();
        for id in &pending {
            for (topic, p) in &self.tasks[id].inputs {
                tpl.add_partition(topic, *p);
            }
        }
        let committed = match consumer.committed_offsets(tpl, OFFSET_FETCH_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                return self
                    .init_stall
                    .retry("reading the committed offsets of new tasks", e)
            }
        };
        if let Err(e) = consumer.start_fetching(&committed) {
            return self
                .init_stall
                .retry("starting to fetch the inputs of new tasks", e);
        }
        for id in &pending {
            if let Some(t) = self.tasks.get_mut(id) {
                for (topic, p) in &t.inputs {
                    if let Some(e) = committed.find_partition(topic, *p) {
                        t.task.resume_from_commit_metadata(topic, *p, e.metadata());
                        if let Offset::Offset(o) = e.offset() {
                            t.fetch_from.insert((topic.clone(), *p), o);
                        }
                    }
                }
            }
        }
        let mut all_registered = true;
        'tasks: for id in pending {
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            // Every changelog's end first, so a task registers all its stores or none. A source
            // topic serving as changelog is restored up to the committed offset only: the task
            // processes it from there.
            let mut ends = Vec::new();
            let sources = t.task.source_changelogs();
            for (store, topic) in t.task.changelogs() {
                let committed_end = sources.contains(&topic).then(|| {
                    match committed
                        .find_partition(&topic, id.partition)
                        .map(|e| e.offset())
                    {
                        Some(Offset::Offset(o)) => o,
                        _ => 0,
                    }
                });
                match self.restorer.watermarks(&topic, id.partition) {
                    Ok((low, high)) => {
                        let high = committed_end.map_or(high, |c| c.clamp(low, high));
                        ends.push((store, topic, (low, high)))
                    }
                    Err(e) => {
                        let context = format!(
                            "reading the end offset of changelog `{topic}`-{}",
                            id.partition
                        );
                        self.init_stall.retry(&context, e)?;
                        all_registered = false;
                        continue 'tasks;
                    }
                }
            }
            t.restore_registered = true;
            for (store, topic, (low, high)) in ends {
                let key = (topic.clone(), id.partition);
                let mut from = t.changelog_positions.get(&key).copied().unwrap_or(0);
                if from > high {
                    // The changelog is behind the local state (e.g. it was recreated): the local
                    // state cannot be trusted.
                    return Err(StreamsError::IllegalState(format!(
                        "task {id}: checkpointed offset {from} of `{topic}` is past its end {high}; delete {} to restore from scratch",
                        t.dir.display()
                    )));
                }
                from = from.max(low);
                let restoring =
                    self.restorer
                        .register(id, &store, &topic, id.partition, from, high)?;
                if !restoring {
                    t.changelog_positions.insert(key, from);
                }
            }
        }
        if all_registered {
            self.init_stall.progressed();
        }
        Ok(())
    }

    /// Restores for up to `budget`; tasks whose changelogs are complete get initialized and their
    /// input resumed. Returns whether every task is running.
    pub fn restore(&mut self, consumer: &dyn GroupConsumer, budget: Duration) -> Result<bool> {
        let _span = tracing::info_span!("restore", thread = %self.thread_name).entered();
        self.register_restorations(consumer)?;
        let tasks = &mut self.tasks;
        let done =
            self.restorer.restore_step(
                budget,
                &mut |id, store, records, next_offset| match tasks.get_mut(&id) {
                    Some(t) => {
                        if let Some(s) = t.sensors.restore.get(store) {
                            s.record_events(records.len() as u64);
                        }
                        t.task.restore_up_to(store, records, next_offset)
                    }
                    None => Ok(()),
                },
            )?;
        for (task, store, remaining) in self.restorer.remaining() {
            self.env.metrics.set_gauge(
                metrics::RESTORE_REMAINING,
                &[&self.thread_id, &task.to_string(), &store],
                remaining as f64,
            );
        }
        for r in &done {
            self.env.metrics.set_gauge(
                metrics::RESTORE_REMAINING,
                &[&self.thread_id, &r.task.to_string(), &r.store],
                0.0,
            );
        }
        // The counter is the instance's: add this thread's new records, not its total.
        let total = self.restorer.total_restored;
        self.env
            .counters
            .restored
            .fetch_add(total - self.restored_reported, Ordering::Relaxed);
        self.restored_reported = total;
        for r in done {
            if let Some(t) = self.tasks.get_mut(&r.task) {
                t.changelog_positions
                    .insert((r.topic, r.partition), r.next_offset);
            }
        }
        let ready: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, t)| {
                !t.initialized && t.restore_registered && !self.restorer.is_restoring_task(**id)
            })
            .map(|(id, _)| *id)
            .collect();
        if !ready.is_empty() {
            let mut resume = TopicPartitionList::new();
            for id in ready {
                let Some(t) = self.tasks.get_mut(&id) else {
                    continue;
                };
                t.task.set_wall_clock(now_ms());
                t.task.init()?;
                let out = t.task.drain_output();
                t.initialized = true;
                send_all(&mut self.producer, t, out).map_err(CollectorError::into_inner)?;
                for (topic, p) in &t.inputs {
                    resume.add_partition(topic, *p);
                }
                tracing::info!(thread = %self.thread_name, task = %id, "task running");
            }
            // A paused instance resumes them when it resumes.
            if !self.paused {
                consumer
                    .resume(&resume)
                    .map_err(|e| kafka("resuming partitions of restored tasks", e))?;
                consumer.wake_fetchers(&resume);
            }
        }
        Ok(!self.is_restoring())
    }
}
