//! [`place_stateful_tasks`]: stateful tasks placed as Kafka Streams' high-availability task
//! assignor places them, on top of the balanced, sticky plan of [`assign_active_tasks`].
//!
//! A task moves only to an instance *caught up* on it: one whose state lags the most advanced
//! state any instance reports by at most `acceptable.recovery.lag` records (the running owner
//! reports its live position as of its last commit, so the leader needs no request for
//! changelog end offsets). Where balance wants a task on an instance that is not caught up, the
//! task stays with one that is, and the intended instance gets a *warm-up replica* (a standby
//! copy that follows the changelog; at most `max.warmup.replicas` at once); the group then
//! rebalances again after `probing.rebalance.interval.ms` and moves the task once the copy has
//! caught up, so it changes owner with almost nothing to restore. Standby replicas
//! (`num.standby.replicas`) go to instances other than the active one, where the task's state
//! already is first, then to those with the fewest copies.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::runtime::assignment::sticky_tasks::{assign_active_tasks, TaskOwner};
use crate::task::TaskId;

/// The settings the placement follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HighAvailability {
    /// `acceptable.recovery.lag`.
    pub acceptable_recovery_lag: i64,
    /// `max.warmup.replicas`.
    pub max_warmup_replicas: usize,
    /// `num.standby.replicas`.
    pub num_standby_replicas: usize,
}

/// Where the stateful tasks go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatefulPlacement {
    /// Active tasks per member.
    pub active: BTreeMap<String, BTreeSet<TaskId>>,
    /// Standby and warm-up replicas per process.
    pub standby: BTreeMap<String, BTreeSet<TaskId>>,
    /// The warm-up replicas among them, as `(process, task)`.
    pub warmups: BTreeSet<(String, TaskId)>,
    /// Tasks kept from the instance balance wants them on until it catches up: when there are
    /// any, the group should rebalance again (a probing rebalance).
    pub waiting_moves: usize,
}

/// Places `tasks` on `members` (whose `state` is their process's, the same for every member of
/// one process).
pub(crate) fn place_stateful_tasks(
    tasks: &BTreeSet<TaskId>,
    members: &[TaskOwner],
    settings: &HighAvailability,
) -> StatefulPlacement {
    let mut active = assign_active_tasks(tasks, members);
    let state_of: BTreeMap<&str, &BTreeMap<TaskId, i64>> = members
        .iter()
        .map(|m| (m.process.as_str(), &m.state))
        .collect();
    let held = |process: &str, t: &TaskId| {
        state_of
            .get(process)
            .and_then(|s| s.get(t))
            .copied()
            .unwrap_or(0)
    };
    let most_advanced = |t: &TaskId| state_of.values().filter_map(|s| s.get(t)).max().copied();
    // No state anywhere, or less than the acceptable lag of it: any instance will do.
    let caught_up = |process: &str, t: &TaskId| {
        most_advanced(t).is_none_or(|best| {
            best.saturating_sub(held(process, t)) <= settings.acceptable_recovery_lag
        })
    };

    // Moves balance wants onto an instance that is not caught up wait for a warm-up.
    let mut waiting: Vec<(String, TaskId)> = Vec::new();
    let planned: Vec<(String, TaskId)> = active
        .iter()
        .flat_map(|(member, ts)| ts.iter().map(move |t| (member.clone(), *t)))
        .collect();
    for (member, t) in planned {
        let Some(intended) = members.iter().find(|m| m.member == member) else {
            continue;
        };
        if caught_up(&intended.process, &t) {
            continue;
        }
        let load = |m: &TaskOwner| active.get(&m.member).map_or(0, BTreeSet::len);
        // The member running it if it can keep it, else the least loaded caught-up one.
        let Some(keeper) = members
            .iter()
            .filter(|m| caught_up(&m.process, &t))
            .min_by_key(|m| {
                (
                    !m.owned.contains(&t),
                    load(m),
                    Reverse(held(&m.process, &t)),
                )
            })
        else {
            continue;
        };
        let keeper = keeper.member.clone();
        if let Some(ts) = active.get_mut(&member) {
            ts.remove(&t);
        }
        active.entry(keeper).or_default().insert(t);
        waiting.push((intended.process.clone(), t));
    }

    let process_of_task: BTreeMap<TaskId, &str> = members
        .iter()
        .flat_map(|m| {
            active
                .get(&m.member)
                .into_iter()
                .flatten()
                .map(move |t| (*t, m.process.as_str()))
        })
        .collect();
    let processes: BTreeSet<&str> = members.iter().map(|m| m.process.as_str()).collect();
    let mut standby: BTreeMap<String, BTreeSet<TaskId>> = processes
        .iter()
        .map(|p| (p.to_string(), BTreeSet::new()))
        .collect();
    for t in tasks {
        let owner = process_of_task.get(t).copied();
        for _ in 0..settings.num_standby_replicas {
            let Some(target) = processes
                .iter()
                .filter(|p| Some(**p) != owner && !standby[**p].contains(t))
                .min_by_key(|p| (!caught_up(p, t), standby[**p].len(), Reverse(held(p, t))))
                .map(|p| p.to_string())
            else {
                break;
            };
            standby.entry(target).or_default().insert(*t);
        }
    }

    // A destination already keeping a standby copy needs no warm-up.
    let mut warmups = BTreeSet::new();
    for (process, t) in &waiting {
        if warmups.len() >= settings.max_warmup_replicas {
            break;
        }
        let copies = standby.entry(process.clone()).or_default();
        if copies.insert(*t) {
            warmups.insert((process.clone(), *t));
        }
    }
    StatefulPlacement {
        active,
        standby,
        warmups,
        waiting_moves: waiting.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(partition: i32) -> TaskId {
        TaskId {
            subtopology: 0,
            partition,
        }
    }

    fn owner(member: &str, process: &str, owned: &[i32], state: &[(i32, i64)]) -> TaskOwner {
        TaskOwner {
            member: member.into(),
            process: process.into(),
            owned: owned.iter().map(|p| t(*p)).collect(),
            state: state.iter().map(|(p, s)| (t(*p), *s)).collect(),
        }
    }

    fn settings(standbys: usize) -> HighAvailability {
        HighAvailability {
            acceptable_recovery_lag: 100,
            max_warmup_replicas: 1,
            num_standby_replicas: standbys,
        }
    }

    fn all(n: i32) -> BTreeSet<TaskId> {
        (0..n).map(t).collect()
    }

    #[test]
    fn a_new_instance_warms_tasks_up_before_it_takes_them() {
        let full: Vec<(i32, i64)> = (0..4).map(|p| (p, 50_000)).collect();
        let members = [
            owner("a", "A", &[0, 1, 2, 3], &full),
            owner("b", "B", &[], &[]),
        ];
        let placed = place_stateful_tasks(&all(4), &members, &settings(0));
        // Balance wants two tasks on b; b holds no state, so they stay and b warms one up.
        assert_eq!(placed.active["a"], all(4));
        assert!(placed.active["b"].is_empty());
        assert_eq!(placed.waiting_moves, 2);
        assert_eq!(placed.warmups.len(), 1, "max.warmup.replicas");
        assert_eq!(placed.standby["B"].len(), 1);
        assert!(placed.standby["A"].is_empty());

        // The warm-up caught up (within the acceptable lag): that task moves, the other waits.
        let warmed = placed.standby["B"]
            .iter()
            .next()
            .copied()
            .expect("a warm-up");
        let members = [
            owner("a", "A", &[0, 1, 2, 3], &full),
            owner("b", "B", &[], &[(warmed.partition, 49_950)]),
        ];
        let placed = place_stateful_tasks(&all(4), &members, &settings(0));
        assert_eq!(placed.active["b"], BTreeSet::from([warmed]));
        assert_eq!(placed.waiting_moves, 1);
        assert!(!placed.standby["B"].contains(&warmed), "active now");
    }

    #[test]
    fn small_state_moves_at_once() {
        let members = [
            owner("a", "A", &[0, 1], &[(0, 80), (1, 80)]),
            owner("b", "B", &[], &[]),
        ];
        let placed = place_stateful_tasks(&all(2), &members, &settings(0));
        assert_eq!(placed.active["b"].len(), 1);
        assert_eq!(placed.waiting_moves, 0);
        assert!(placed.warmups.is_empty());
    }

    #[test]
    fn a_dead_owners_tasks_go_to_their_standbys() {
        // c ran 0 and 1 and is gone; b kept standby copies of both, a has nothing.
        let members = [
            owner("a", "A", &[2], &[(2, 9_000)]),
            owner("b", "B", &[3], &[(3, 9_000), (0, 8_990), (1, 8_950)]),
        ];
        let placed = place_stateful_tasks(&all(4), &members, &settings(1));
        assert_eq!(placed.active["b"], BTreeSet::from([t(0), t(1), t(3)]));
        assert_eq!(placed.active["a"], BTreeSet::from([t(2)]));
        // a warms up the task balance wants it to take, and copies b's tasks as their standby.
        assert_eq!(placed.waiting_moves, 1);
        assert_eq!(placed.standby["A"], BTreeSet::from([t(0), t(1), t(3)]));
        assert_eq!(placed.standby["B"], BTreeSet::from([t(2)]));
    }

    #[test]
    fn standbys_never_share_the_active_instance_and_spread() {
        let members = [
            owner("a1", "A", &[], &[]),
            owner("a2", "A", &[], &[]),
            owner("b", "B", &[], &[]),
            owner("c", "C", &[], &[]),
        ];
        let placed = place_stateful_tasks(&all(6), &members, &settings(2));
        for (member, ts) in &placed.active {
            let process = &members
                .iter()
                .find(|m| &m.member == member)
                .expect("member")
                .process;
            assert!(placed.standby[process].is_disjoint(ts), "{placed:?}");
        }
        for t in all(6) {
            let copies = placed.standby.values().filter(|s| s.contains(&t)).count();
            assert_eq!(copies, 2, "{t}");
        }
        // More replicas than other instances: one on each other instance.
        let two = [owner("a", "A", &[], &[]), owner("b", "B", &[], &[])];
        let placed = place_stateful_tasks(&all(2), &two, &settings(3));
        assert_eq!(placed.standby.values().map(BTreeSet::len).sum::<usize>(), 2);
    }
}
