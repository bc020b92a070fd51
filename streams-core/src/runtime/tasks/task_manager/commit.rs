//! Commits under each processing guarantee: outputs flushed or the transaction committed with
//! the consumed offsets, then checkpoints (at_least_once) or transactional stores; the
//! max.poll.interval and lost-assignment guards that give tasks up instead of committing for a
//! member that left; the periodic commit put off while the group's generation changes.

use rdkafka::error::RDKafkaErrorCode;

use crate::runtime::group::GenerationMetadata;

use super::*;

impl TaskManager {
    /// Adds the offsets `t` consumed, each with its commit metadata (partition time and the
    /// task's processor metadata, as Kafka Streams commits them).
    fn offsets_of(t: &ActiveTask, tpl: &mut TopicPartitionList) -> Result<(), CollectorError> {
        for ((topic, p), o) in &t.consumed {
            let mut e = tpl.add_partition(topic, *p);
            e.set_offset(Offset::Offset(*o))
                .map_err(|e| CollectorError::Fatal(kafka("building the offsets to commit", e)))?;
            e.set_metadata(t.task.commit_metadata(topic, *p));
        }
        Ok(())
    }

    /// The member's group metadata for a transactional offset commit, refused once the group
    /// took the assignment away.
    fn member_metadata(
        consumer: &dyn GroupConsumer,
    ) -> Result<Arc<GenerationMetadata>, CollectorError> {
        let group = consumer.group_metadata().map(Arc::new);
        // Checked after the metadata is taken: librdkafka resets the member id and marks the
        // assignment lost in one step of its group thread, which also serves the metadata. So
        // either the metadata predates the reset (the broker fences its stale member id and
        // generation) or the loss is visible here.
        Self::still_member(consumer)?;
        group.ok_or_else(|| {
            CollectorError::Fatal(StreamsError::IllegalState(
                "the consumer has no group metadata".into(),
            ))
        })
    }

    /// Refuses to commit for an assignment the group took away. librdkafka learns of it on its
    /// own thread (a heartbeat answered UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION, as after a
    /// session timeout) and resets the member id to "" or the generation to -1, while this
    /// thread may still be processing: the lost-partitions callback waits for the next poll.
    /// KIP-447 fencing relies on the member id and generation the offsets carry; without them
    /// the broker can accept the commit (a generation of -1 into a group that every expired
    /// session left empty, for one), committing this thread's outputs and offsets after the
    /// tasks' new owner read the old offsets: the records would be processed and committed
    /// twice. Kafka Streams does not meet this: its rebalance callbacks run inside `poll`.
    fn still_member(consumer: &dyn GroupConsumer) -> Result<(), CollectorError> {
        if consumer.assignment_lost() {
            return Err(CollectorError::Fenced(StreamsError::IllegalState(
                "the group took this member's assignment away (session expired or fenced); \
                 its tasks may have migrated, so nothing of them is committed"
                    .into(),
            )));
        }
        Ok(())
    }

    /// Commits everything processed so far: outputs, changelog writes and input offsets.
    pub fn commit(&mut self, consumer: &dyn GroupConsumer) -> Result<(), CollectorError> {
        self.commit_or_put_off(consumer, false).map(|_| ())
    }

    /// The periodic commit (`commit.interval.ms`): [`Self::commit`], unless the group completed
    /// a join since the generation the thread serves. Then the commit would be refused
    /// (ILLEGAL_GENERATION, which aborts the transaction and costs every task), so it waits for
    /// the new assignment with everything kept: outputs sent, the transaction open, the
    /// offsets to commit. It also waits while another thread of the instance commits
    /// (`CommitTurns`). Only the periodic commit may wait: a revocation or a close commits now.
    /// Returns whether it committed.
    pub fn maybe_commit(&mut self, consumer: &dyn GroupConsumer) -> Result<bool, CollectorError> {
        self.commit_or_put_off(consumer, true)
    }

    fn commit_or_put_off(
        &mut self,
        consumer: &dyn GroupConsumer,
        may_put_off: bool,
    ) -> Result<bool, CollectorError> {
        // The periodic commit waits while another thread of the instance commits (see
        // `CommitTurns`): it stays due, and the thread goes on processing meanwhile.
        let env = self.env.clone();
        let _turn = match may_put_off.then(|| env.commit_turns.try_take()) {
            Some(None) => return Ok(false),
            Some(Some(turn)) => Some(turn),
            None => None,
        };
        let result = self.commit_now(consumer, may_put_off);
        // `commit.interval.ms` counts from the end of the previous commit, as in Kafka Streams
        // (StreamThread#maybeCommit takes the time after TaskManager#commit returns). Counted
        // from its start, a commit that takes longer than the interval (one ProduceRequest per
        // output partition in librdkafka: 120 ms at 200 partitions) is followed by the next
        // at once, and the thread spends nearly all its time committing small transactions.
        // A commit put off stays due.
        if !matches!(result, Ok(false)) {
            self.last_commit = Instant::now();
        }
        result
    }

    /// Whether a periodic commit should wait for the group's new generation (see
    /// [`Self::maybe_commit`]).
    fn put_off(&self, consumer: &dyn GroupConsumer, may_put_off: bool) -> bool {
        let put_off = may_put_off && consumer.generation_superseded();
        if put_off {
            tracing::debug!(thread = %self.thread_name, "commit put off: the group moved to a new generation");
        }
        put_off
    }

    fn commit_now(
        &mut self,
        consumer: &dyn GroupConsumer,
        may_put_off: bool,
    ) -> Result<bool, CollectorError> {
        let started = Instant::now();
        let _span = tracing::debug_span!("commit", thread = %self.thread_name).entered();
        // Past max.poll.interval.ms without a poll the consumer has left the group and another
        // member may own these tasks already. Under exactly-once the broker would fence the
        // commit (KIP-447: the offsets carry our stale generation); under at_least_once nothing
        // fences a plain offset commit, which could move the new owner's committed position. As
        // Kafka Streams (TaskMigratedException), give the tasks up without committing.
        if self.last_poll.elapsed() > self.max_poll_interval
            && self.tasks.values().any(|t| !t.consumed.is_empty())
        {
            return Err(CollectorError::Fenced(StreamsError::IllegalState(format!(
                "{} did not poll for {:?} (max.poll.interval.ms {:?}); its tasks may have migrated",
                self.thread_name,
                self.last_poll.elapsed(),
                self.max_poll_interval
            ))));
        }
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            t.task.flush_caches().map_err(CollectorError::Fatal)?;
            let out = t.task.drain_output();
            send_all(&mut self.producer, t, out)?;
        }
        let dirty = self.tasks.values().any(|t| !t.consumed.is_empty())
            || self.producer.as_ref().is_some_and(|p| p.in_transaction())
            || self
                .tasks
                .values()
                .any(|t| t.producer.as_ref().is_some_and(|p| p.in_transaction()));
        if !dirty {
            // Nothing for Kafka to commit, but stores may hold writes of punctuations that
            // produced nothing: they reflect no new changelog record either.
            return self.commit_stores().map(|()| true);
        }
        match self.env.guarantee() {
            ProcessingGuarantee::AtLeastOnce => {
                if let Some(p) = &mut self.producer {
                    p.flush()?;
                }
                let mut tpl = TopicPartitionList::new();
                for t in self.tasks.values() {
                    Self::offsets_of(t, &mut tpl)?;
                }
                if tpl.count() > 0 {
                    Self::still_member(consumer)?;
                    if self.put_off(consumer, may_put_off) {
                        return Ok(false);
                    }
                    match consumer.commit_offsets(&tpl) {
                        Ok(()) => {}
                        // Refused by a rebalance (a join completing under it): the outputs are
                        // acknowledged, the offsets wait for the next commit, and the tasks stay,
                        // as their partitions do under cooperative assignment. Giving them up
                        // would replay their records since the last commit: duplicates an
                        // at_least_once application sees nowhere else without a failure.
                        Err(e)
                            if may_put_off
                                && e.rdkafka_error_code()
                                    == Some(RDKafkaErrorCode::RebalanceInProgress) =>
                        {
                            tracing::debug!(thread = %self.thread_name, "offset commit refused by a rebalance: put off");
                            return Ok(false);
                        }
                        Err(e) => return Err(classify("committing consumer offsets", e)),
                    }
                }
                self.update_changelog_positions();
                // The stores are flushed (their memtables written) before the checkpoint names
                // what they reflect, and only every `CHECKPOINT_DELTA` changelog records.
                for t in self
                    .tasks
                    .values_mut()
                    .filter(|t| t.initialized && t.checkpoint_due())
                {
                    t.task.flush().map_err(CollectorError::Fatal)?;
                    write_checkpoint(t).map_err(CollectorError::Fatal)?;
                }
            }
            ProcessingGuarantee::ExactlyOnceV2 => {
                let mut tpl = TopicPartitionList::new();
                for t in self.tasks.values() {
                    Self::offsets_of(t, &mut tpl)?;
                }
                // Checked just before the offsets go out (at the start of the producer's
                // commit, while it waits for the records' acknowledgements): the window in
                // which a join can complete under the commit is the offsets' round trip.
                if self.put_off(consumer, may_put_off) {
                    return Ok(false);
                }
                let group = Self::member_metadata(consumer)?;
                if let Some(p) = &mut self.producer {
                    tracing::debug!(offsets = ?tpl, "committing transaction");
                    p.commit_transaction(&tpl, &group)?;
                }
                self.update_changelog_positions();
            }
            ProcessingGuarantee::ExactlyOnceLegacy => {
                let group = Self::member_metadata(consumer)?;
                for t in self.tasks.values_mut() {
                    let mut tpl = TopicPartitionList::new();
                    Self::offsets_of(t, &mut tpl)?;
                    if let Some(p) = &mut t.producer {
                        p.commit_transaction(&tpl, &group)?;
                    }
                }
                self.update_changelog_positions();
            }
        }
        for t in self.tasks.values_mut() {
            t.consumed.clear();
        }
        // Only after Kafka has committed: a crash before this point leaves the stores at the
        // previous commit, and restoration replays the committed changelog tail.
        self.commit_stores()?;
        self.env.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.sensors.commit.record_elapsed(started);
        tracing::debug!(thread = %self.thread_name, took_ms = started.elapsed().as_millis() as u64, "committed");
        Ok(true)
    }

    /// Writes what transactional stores hold, each with the changelog offset it reflects.
    fn commit_stores(&mut self) -> Result<(), CollectorError> {
        if !self.env.transactional_stores() {
            return Ok(());
        }
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            let positions: HashMap<&str, i64> = t
                .changelog_positions
                .iter()
                .map(|((topic, _), o)| (topic.as_str(), *o))
                .collect();
            t.task
                .commit_stores(&positions)
                .map_err(CollectorError::Fatal)?;
        }
        Ok(())
    }

    /// The thread's share of `statestore.uncommitted.max.bytes`, with transactional stores.
    pub(super) fn uncommitted_limit(&self) -> Option<usize> {
        self.env.transactional_stores().then(|| {
            (self.env.config.uncommitted_max_bytes
                / self.env.config.num_stream_threads.max(1) as u64) as usize
        })
    }

    /// Whether the stores hold more uncommitted writes than the thread's share of
    /// `statestore.uncommitted.max.bytes`: time to commit before the interval is up.
    pub fn uncommitted_over_limit(&mut self) -> bool {
        let Some(limit) = self.uncommitted_limit() else {
            return false;
        };
        let held: usize = self
            .tasks
            .values_mut()
            .map(|t| t.task.uncommitted_bytes())
            .sum();
        if held > limit {
            tracing::debug!(thread = %self.thread_name, held, limit, "uncommitted store writes over the limit: committing early");
            return true;
        }
        false
    }

    fn update_changelog_positions(&mut self) {
        let shared = self.producer.as_ref().map(|p| p.changelog_offsets());
        for t in self.tasks.values_mut() {
            // A source topic serving as changelog: the store reflects what was consumed.
            for ((topic, p), next) in &t.consumed {
                if let Some(pos) = t.changelog_positions.get_mut(&(topic.to_string(), *p)) {
                    *pos = (*pos).max(*next);
                }
            }
            let acked = match (&t.producer, &shared) {
                (Some(p), _) => p.changelog_offsets(),
                (None, Some(s)) => s.clone(),
                (None, None) => continue,
            };
            for (key, pos) in t.changelog_positions.iter_mut() {
                if let Some(o) = acked.get(key) {
                    *pos = (*pos).max(o + 1);
                }
            }
        }
    }
}
