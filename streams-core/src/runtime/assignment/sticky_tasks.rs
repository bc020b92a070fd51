//! [`assign_active_tasks`]: active tasks onto the group's members (one per stream thread),
//! balanced to within one task per thread, each task staying with the member that runs it
//! whenever balance allows, and a task that must move going where its state is (the properties
//! Kafka Streams' assignors keep so a rebalance restores as little state as it can).

use std::collections::{BTreeMap, BTreeSet};

use crate::task::TaskId;

/// One member as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskOwner {
    /// The member id.
    pub member: String,
    /// The process (instance) it belongs to.
    pub process: String,
    /// The active tasks it runs now.
    pub owned: BTreeSet<TaskId>,
    /// How far its process's state of each task has come (changelog offset sums: on disk, or
    /// live for the tasks it runs; more is closer to caught up).
    pub state: BTreeMap<TaskId, i64>,
}

/// Gives every task of `tasks` to one member of `members`: each member gets `floor` or
/// `floor + 1` tasks; a member keeps the tasks it owns up to that, giving up first those that
/// cost least to move (another process's state is nearest to its own: a stateless task costs
/// nothing); the rest go, among the members still below their share, to one whose process holds
/// the most state of the task, then to the least loaded, spreading each sub-topology's tasks
/// over processes. Deterministic for a given input. A task two members claim stays with the
/// first in member order.
pub(crate) fn assign_active_tasks(
    tasks: &BTreeSet<TaskId>,
    members: &[TaskOwner],
) -> BTreeMap<String, BTreeSet<TaskId>> {
    let mut result: BTreeMap<String, BTreeSet<TaskId>> = members
        .iter()
        .map(|m| (m.member.clone(), BTreeSet::new()))
        .collect();
    if members.is_empty() {
        return result;
    }
    let floor = tasks.len() / members.len();
    let mut above_floor = tasks.len() % members.len();
    let mut unassigned: BTreeSet<TaskId> = tasks.clone();
    // Keep owned tasks up to the floor first, then let members that owned more keep one extra
    // while the `len % members` extra places last.
    // What moving a task away from `m` costs: the changelog records the process with the most
    // state of it elsewhere must restore. An owner over its share keeps the costliest.
    let move_cost = |m: &TaskOwner, t: &TaskId| {
        let own = m.state.get(t).copied().unwrap_or(0);
        let best_elsewhere = members
            .iter()
            .filter(|o| o.process != m.process)
            .filter_map(|o| o.state.get(t))
            .max()
            .copied()
            .unwrap_or(0);
        own.saturating_sub(best_elsewhere).max(0)
    };
    let by_preference = |m: &TaskOwner| {
        let mut owned: Vec<TaskId> = m
            .owned
            .iter()
            .filter(|t| tasks.contains(*t))
            .copied()
            .collect();
        owned.sort_by_key(|t| (std::cmp::Reverse(move_cost(m, t)), *t));
        owned
    };
    for m in members {
        let keep: Vec<TaskId> = by_preference(m)
            .into_iter()
            .filter(|t| unassigned.contains(t))
            .take(floor)
            .collect();
        for t in keep {
            unassigned.remove(&t);
            result.entry(m.member.clone()).or_default().insert(t);
        }
    }
    for m in members {
        if above_floor == 0 {
            break;
        }
        if let Some(t) = by_preference(m)
            .into_iter()
            .find(|t| unassigned.contains(t))
        {
            unassigned.remove(&t);
            result.entry(m.member.clone()).or_default().insert(t);
            above_floor -= 1;
        }
    }
    // The rest to the least loaded member; among equals, the one whose process runs the fewest
    // tasks of the same sub-topology (so a process failure takes out few tasks of each), then
    // member order.
    for t in unassigned {
        let count = |m: &TaskOwner| result.get(&m.member).map_or(0, BTreeSet::len);
        let same_sub_on_process = |m: &TaskOwner| {
            members
                .iter()
                .filter(|o| o.process == m.process)
                .flat_map(|o| result.get(&o.member).into_iter().flatten())
                .filter(|x| x.subtopology == t.subtopology)
                .count()
        };
        // Below the floor first; once none is, the extra places (by counting, some are left).
        let below_floor = members.iter().any(|m| count(m) < floor);
        let Some(target) = members
            .iter()
            .filter(|m| {
                if below_floor {
                    count(m) < floor
                } else {
                    count(m) == floor
                }
            })
            .min_by_key(|m| {
                let state = m.state.get(&t).copied().unwrap_or(-1);
                (std::cmp::Reverse(state), count(m), same_sub_on_process(m))
            })
            .or_else(|| members.iter().min_by_key(|m| count(m)))
        else {
            continue;
        };
        result.entry(target.member.clone()).or_default().insert(t);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subtopology: u32, partition: i32) -> TaskId {
        TaskId {
            subtopology,
            partition,
        }
    }

    fn tasks(subtopologies: u32, partitions: i32) -> BTreeSet<TaskId> {
        (0..subtopologies)
            .flat_map(|s| (0..partitions).map(move |p| t(s, p)))
            .collect()
    }

    fn owner(member: &str, process: &str, owned: &[TaskId]) -> TaskOwner {
        TaskOwner {
            member: member.into(),
            process: process.into(),
            owned: owned.iter().copied().collect(),
            state: BTreeMap::new(),
        }
    }

    fn with_state(mut o: TaskOwner, state: &[(TaskId, i64)]) -> TaskOwner {
        o.state = state.iter().copied().collect();
        o
    }

    fn sizes(a: &BTreeMap<String, BTreeSet<TaskId>>) -> Vec<usize> {
        a.values().map(BTreeSet::len).collect()
    }

    fn assert_complete(all: &BTreeSet<TaskId>, a: &BTreeMap<String, BTreeSet<TaskId>>) {
        let mut seen = BTreeSet::new();
        for set in a.values() {
            for task in set {
                assert!(seen.insert(*task), "{task} assigned twice: {a:?}");
            }
        }
        assert_eq!(&seen, all);
    }

    #[test]
    fn fresh_members_get_balanced_tasks_spread_over_processes() {
        let all = tasks(2, 4);
        let members = [
            owner("a1", "A", &[]),
            owner("a2", "A", &[]),
            owner("b1", "B", &[]),
        ];
        let a = assign_active_tasks(&all, &members);
        assert_complete(&all, &a);
        let mut s = sizes(&a);
        s.sort();
        assert_eq!(s, [2, 3, 3]);
        // Each sub-topology's four tasks: two on each process.
        for sub in 0..2 {
            let on_b = a["b1"].iter().filter(|x| x.subtopology == sub).count();
            assert!((1..=2).contains(&on_b), "{a:?}");
        }
    }

    #[test]
    fn a_new_member_takes_only_what_balance_requires_and_the_rest_stays() {
        let all = tasks(1, 6);
        let before: Vec<TaskId> = all.iter().copied().collect();
        let members = [
            owner("a", "A", &before[..3]),
            owner("b", "B", &before[3..]),
            owner("c", "C", &[]),
        ];
        let a = assign_active_tasks(&all, &members);
        assert_complete(&all, &a);
        assert_eq!(sizes(&a), [2, 2, 2]);
        assert!(a["a"].is_subset(&members[0].owned));
        assert!(a["b"].is_subset(&members[1].owned));
    }

    #[test]
    fn a_departed_members_tasks_go_to_the_others_and_nothing_else_moves() {
        let all = tasks(1, 7);
        let v: Vec<TaskId> = all.iter().copied().collect();
        let members = [owner("a", "A", &v[..3]), owner("b", "B", &v[3..5])];
        // c (v[5..]) left.
        let a = assign_active_tasks(&all, &members);
        assert_complete(&all, &a);
        assert!(members[0].owned.is_subset(&a["a"]));
        assert!(members[1].owned.is_subset(&a["b"]));
        let mut s = sizes(&a);
        s.sort();
        assert_eq!(s, [3, 4]);
    }

    #[test]
    fn an_unbalanced_owner_gives_up_its_surplus() {
        let all = tasks(1, 4);
        let v: Vec<TaskId> = all.iter().copied().collect();
        let members = [owner("a", "A", &v), owner("b", "B", &[])];
        let a = assign_active_tasks(&all, &members);
        assert_complete(&all, &a);
        assert_eq!(sizes(&a), [2, 2]);
        assert!(a["a"].is_subset(&members[0].owned));
    }

    #[test]
    fn more_members_than_tasks_and_no_members_are_handled() {
        let all = tasks(1, 2);
        let members = [
            owner("a", "A", &[]),
            owner("b", "B", &[]),
            owner("c", "C", &[]),
        ];
        let a = assign_active_tasks(&all, &members);
        assert_complete(&all, &a);
        let mut s = sizes(&a);
        s.sort();
        assert_eq!(s, [0, 1, 1]);
        assert!(assign_active_tasks(&all, &[]).is_empty());
    }

    #[test]
    fn a_task_that_moves_goes_where_its_state_is() {
        // c returns after a restart with the state of 0_4 and 0_5 on disk; b took them over.
        let all = tasks(1, 6);
        let v: Vec<TaskId> = all.iter().copied().collect();
        let live = |o: TaskOwner, ts: &[TaskId]| {
            let state: Vec<(TaskId, i64)> = ts.iter().map(|t| (*t, 1000)).collect();
            with_state(o, &state)
        };
        let members = [
            live(owner("a", "A", &v[..2]), &v[..2]),
            live(owner("b", "B", &v[2..]), &v[2..]),
            with_state(
                owner("c", "C", &[]),
                &[(v[4], 900), (v[5], 950), (v[0], 10), (v[2], 100)],
            ),
        ];
        let a = assign_active_tasks(&all, &members);
        assert_complete(&all, &a);
        assert_eq!(a["a"], members[0].owned);
        assert_eq!(a["c"], BTreeSet::from([v[4], v[5]]));
    }

    #[test]
    fn among_processes_with_state_the_furthest_one_takes_the_task() {
        let all = tasks(1, 2);
        let v: Vec<TaskId> = all.iter().copied().collect();
        let members = [
            with_state(owner("x", "X", &[]), &[(v[0], 100), (v[1], 500)]),
            with_state(owner("y", "Y", &[]), &[(v[0], 400), (v[1], 50)]),
        ];
        let a = assign_active_tasks(&all, &members);
        assert_eq!(a["x"], BTreeSet::from([v[1]]));
        assert_eq!(a["y"], BTreeSet::from([v[0]]));
    }

    #[test]
    fn the_result_depends_only_on_the_input() {
        let all = tasks(3, 5);
        let members = [owner("x", "P", &[t(0, 1)]), owner("y", "Q", &[t(2, 4)])];
        assert_eq!(
            assign_active_tasks(&all, &members),
            assign_active_tasks(&all, &members)
        );
    }
}
