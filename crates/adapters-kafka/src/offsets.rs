//! Which offsets may be committed: per partition, only the contiguous prefix of messages
//! whose work is done (result or dead letter acknowledged by the broker). A crash then
//! re-delivers everything unfinished and never skips a task (at-least-once).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Partition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl Partition {
    #[cfg(test)]
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: Arc::from(topic),
            partition,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Finished,
    /// Dropped before it was handed out: blocks the prefix but not the revoke wait.
    Abandoned,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Outstanding offsets in increasing order.
    entries: VecDeque<(i64, State)>,
    /// Running entries.
    busy: usize,
    /// Next offset to consume after the finished prefix (what a commit stores).
    position: Option<i64>,
    /// The position last handed out for committing.
    sent: Option<i64>,
}

impl PartitionState {
    fn find(&self, offset: i64) -> Option<usize> {
        self.entries.binary_search_by_key(&offset, |e| e.0).ok()
    }

    fn set(&mut self, offset: i64, to: State) {
        if let Some(i) = self.find(offset) {
            let e = &mut self.entries[i].1;
            if *e == State::Running && to != State::Running {
                self.busy -= 1;
            }
            if *e != State::Finished {
                *e = to;
            }
        }
    }

    fn advance(&mut self) {
        while let Some(&(offset, State::Finished)) = self.entries.front() {
            self.entries.pop_front();
            self.position = Some(offset + 1);
        }
    }

    fn due(&self) -> Option<i64> {
        self.position.filter(|p| self.sent.is_none_or(|s| *p > s))
    }
}

/// Where a task's message sits; a task id seen twice (a re-dispatch) has two places.
#[derive(Debug)]
enum Places {
    One(Partition, i64),
    Many(Vec<(Partition, i64)>),
}

/// What [`OffsetTracker::track`] made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tracked {
    New,
    /// Already outstanding (fetched again): its one entry covers both.
    Again,
    /// Below the finished prefix: the work was done and committed already.
    Behind,
}

#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: HashMap<Partition, PartitionState>,
    tasks: HashMap<String, Places>,
}

impl OffsetTracker {
    pub fn assign(&mut self, p: Partition) {
        self.partitions.entry(p).or_default();
    }

    pub fn is_assigned(&self, p: &Partition) -> bool {
        self.partitions.contains_key(p)
    }

    pub fn assigned(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.keys()
    }

    /// Forgets the partition; returns the position still to commit for its finished work.
    pub fn revoke(&mut self, p: &Partition) -> Option<i64> {
        let mut state = self.partitions.remove(p)?;
        self.tasks.retain(|_, places| match places {
            Places::One(q, _) => q != p,
            Places::Many(v) => {
                v.retain(|(q, _)| q != p);
                !v.is_empty()
            }
        });
        state.advance();
        state.due()
    }

    /// Records a consumed message (`task_id` when a result for it will be reported).
    pub fn track(&mut self, p: &Partition, offset: i64, task_id: Option<&str>) -> Tracked {
        let state = self.partitions.entry(p.clone()).or_default();
        let tracked = if state.position.is_some_and(|pos| offset < pos) {
            Tracked::Behind
        } else if state.entries.back().is_some_and(|b| offset <= b.0) {
            // Fetched again, or a gap below what is outstanding.
            if state.find(offset).is_some() {
                Tracked::Again
            } else {
                Tracked::Behind
            }
        } else {
            state.entries.push_back((offset, State::Running));
            state.busy += 1;
            Tracked::New
        };
        if tracked != Tracked::Behind
            && let Some(id) = task_id
        {
            let place = (p.clone(), offset);
            match self.tasks.get_mut(id) {
                None => {
                    self.tasks
                        .insert(id.to_owned(), Places::One(place.0, place.1));
                }
                Some(Places::One(q, o)) => {
                    if (&*q, *o) != (&place.0, place.1) {
                        let first = (q.clone(), *o);
                        self.tasks
                            .insert(id.to_owned(), Places::Many(vec![first, place]));
                    }
                }
                Some(Places::Many(v)) => {
                    if !v.contains(&place) {
                        v.push(place);
                    }
                }
            }
        }
        tracked
    }

    /// A result for the task was acknowledged: every message carrying it is done.
    pub fn finish_task(&mut self, task_id: &str) -> bool {
        match self.tasks.remove(task_id) {
            None => false,
            Some(Places::One(p, o)) => {
                self.finish_offset(&p, o);
                true
            }
            Some(Places::Many(v)) => {
                for (p, o) in v {
                    self.finish_offset(&p, o);
                }
                true
            }
        }
    }

    pub fn finish_offset(&mut self, p: &Partition, offset: i64) {
        if let Some(s) = self.partitions.get_mut(p) {
            s.set(offset, State::Finished);
        }
    }

    /// The message will not be worked on here (dropped before it was handed out).
    pub fn abandon(&mut self, p: &Partition, offset: i64) {
        if let Some(s) = self.partitions.get_mut(p) {
            s.set(offset, State::Abandoned);
        }
    }

    /// Messages of the partition handed out and not finished yet.
    pub fn busy(&self, p: &Partition) -> usize {
        self.partitions.get(p).map_or(0, |s| s.busy)
    }

    pub fn location(&self, task_id: &str) -> Option<(Partition, i64)> {
        match self.tasks.get(task_id)? {
            Places::One(p, o) => Some((p.clone(), *o)),
            Places::Many(v) => v.first().cloned(),
        }
    }

    /// Positions that advanced since they were last taken; they count as sent.
    pub fn take_commits(&mut self) -> Vec<(Partition, i64)> {
        let mut out = Vec::new();
        for (p, s) in &mut self.partitions {
            s.advance();
            if let Some(pos) = s.due() {
                s.sent = Some(pos);
                out.push((p.clone(), pos));
            }
        }
        out
    }

    /// Every known position, sent or not (for the final synchronous commit).
    pub fn positions(&mut self) -> Vec<(Partition, i64)> {
        let mut out = Vec::new();
        for (p, s) in &mut self.partitions {
            s.advance();
            if let Some(pos) = s.position {
                s.sent = Some(pos);
                out.push((p.clone(), pos));
            }
        }
        out
    }

    /// A commit did not make it: send that position again next time.
    pub fn commit_failed(&mut self, p: &Partition, position: i64) {
        if let Some(s) = self.partitions.get_mut(p)
            && s.sent == Some(position)
        {
            s.sent = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        Partition::new("t", n)
    }

    #[test]
    fn commits_only_the_contiguous_finished_prefix() {
        let mut t = OffsetTracker::default();
        t.assign(p(0));
        for (o, id) in [(10, "a"), (11, "b"), (12, "c")] {
            assert_eq!(t.track(&p(0), o, Some(id)), Tracked::New);
        }
        assert_eq!(t.busy(&p(0)), 3);
        assert!(t.finish_task("b"));
        assert!(t.take_commits().is_empty(), "10 is still running");
        assert!(t.finish_task("a"));
        assert_eq!(t.take_commits(), vec![(p(0), 12)]);
        assert!(t.take_commits().is_empty(), "nothing new");
        assert!(!t.finish_task("a"), "already finished");
        t.finish_task("c");
        assert_eq!(t.take_commits(), vec![(p(0), 13)]);
        assert_eq!(t.busy(&p(0)), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.track(&p(0), 0, Some("a"));
        t.track(&p(1), 0, Some("b"));
        t.track(&p(1), 1, None);
        t.finish_task("b");
        t.finish_offset(&p(1), 1);
        assert_eq!(t.take_commits(), vec![(p(1), 2)]);
    }

    #[test]
    fn revoke_forgets_tasks_and_returns_the_finished_prefix() {
        let mut t = OffsetTracker::default();
        t.track(&p(0), 5, Some("a"));
        t.track(&p(0), 6, Some("b"));
        t.finish_task("a");
        assert_eq!(t.revoke(&p(0)), Some(6));
        assert!(!t.is_assigned(&p(0)));
        assert!(!t.finish_task("b"), "its partition went away");
        assert!(t.take_commits().is_empty());
        assert_eq!(t.revoke(&p(0)), None);
    }

    #[test]
    fn abandoned_messages_block_the_prefix_but_are_not_busy() {
        let mut t = OffsetTracker::default();
        t.track(&p(0), 0, Some("a"));
        t.track(&p(0), 1, Some("b"));
        t.abandon(&p(0), 0);
        assert_eq!(t.busy(&p(0)), 1);
        t.finish_task("b");
        assert_eq!(t.busy(&p(0)), 0);
        assert!(t.take_commits().is_empty());
        // A result acknowledged for it after all (a copy ran elsewhere here) does finish it.
        t.finish_task("a");
        assert_eq!(t.take_commits(), vec![(p(0), 2)]);
    }

    #[test]
    fn the_same_task_twice_is_finished_by_one_result() {
        let mut t = OffsetTracker::default();
        t.track(&p(0), 0, Some("a"));
        t.track(&p(0), 1, Some("a"));
        assert_eq!(t.track(&p(0), 1, Some("a")), Tracked::Again);
        assert_eq!(t.busy(&p(0)), 2);
        t.finish_task("a");
        assert_eq!(t.take_commits(), vec![(p(0), 2)]);
        assert_eq!(t.track(&p(0), 0, Some("a")), Tracked::Behind);
        assert!(
            !t.finish_task("a"),
            "work behind the prefix is not tracked again"
        );
    }

    #[test]
    fn a_failed_commit_is_sent_again() {
        let mut t = OffsetTracker::default();
        t.track(&p(0), 0, None);
        t.finish_offset(&p(0), 0);
        assert_eq!(t.take_commits(), vec![(p(0), 1)]);
        t.commit_failed(&p(0), 1);
        assert_eq!(t.take_commits(), vec![(p(0), 1)]);
        assert_eq!(t.positions(), vec![(p(0), 1)]);
    }

    #[test]
    fn location_finds_the_message_of_a_task() {
        let mut t = OffsetTracker::default();
        t.track(&p(3), 42, Some("x"));
        assert_eq!(t.location("x"), Some((p(3), 42)));
        assert_eq!(t.location("y"), None);
    }
}
