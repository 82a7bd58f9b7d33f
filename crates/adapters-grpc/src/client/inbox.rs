//! The bridge from the adapter's async readers to the runtime's synchronous `receive`.
//!
//! A mutex-guarded pair of queues with a condvar rather than a channel, because `receive(0, ..)`
//! must still hand over cancellations while leaving tasks where they are, which a single
//! channel cannot do without consuming the tasks.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gamelan_domain::Task;
use gamelan_ports::{Inbound, TransportError};

#[derive(Default)]
struct State {
    tasks: VecDeque<Task>,
    cancels: Vec<Inbound>,
    broken: Option<TransportError>,
}

#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    ready: Condvar,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push_task(&self, task: Task) {
        self.lock().tasks.push_back(task);
        self.ready.notify_all();
    }

    /// Push delivery: refuses the task when `capacity` tasks are already waiting.
    pub(crate) fn try_push_task(&self, task: Task, capacity: usize) -> bool {
        let mut st = self.lock();
        if st.tasks.len() >= capacity {
            return false;
        }
        st.tasks.push_back(task);
        drop(st);
        self.ready.notify_all();
        true
    }

    pub(crate) fn push_cancel(&self, task_id: String, reason: String) {
        self.lock()
            .cancels
            .push(Inbound::Cancel { task_id, reason });
        self.ready.notify_all();
    }

    /// Marks the connection lost: buffered tasks are dropped (the engine re-dispatches what
    /// it never saw acknowledged) and every waiter wakes up with `err`.
    pub(crate) fn break_with(&self, err: TransportError) {
        let mut st = self.lock();
        if st.broken.is_none() {
            st.broken = Some(err);
        }
        st.tasks.clear();
        drop(st);
        self.ready.notify_all();
    }

    pub(crate) fn buffered(&self) -> usize {
        self.lock().tasks.len()
    }

    /// Cancellations always, tasks only up to `max`; waits up to `wait` for either.
    pub(crate) fn take(&self, max: usize, wait: Duration) -> Result<Vec<Inbound>, TransportError> {
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        loop {
            if let Some(e) = &st.broken {
                return Err(e.clone());
            }
            if !st.cancels.is_empty() || (max > 0 && !st.tasks.is_empty()) {
                let n = max.min(st.tasks.len());
                let mut out = std::mem::take(&mut st.cancels);
                out.reserve(n);
                out.extend(st.tasks.drain(..n).map(Inbound::Task));
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            st = self
                .ready
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn zero_max_delivers_cancellations_but_keeps_tasks() {
        let inbox = Inbox::default();
        inbox.push_task(Task::new("r", "n", "t", 1));
        inbox.push_cancel("x".into(), "why".into());
        let got = inbox.take(0, Duration::ZERO).unwrap();
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0], Inbound::Cancel { .. }));
        assert_eq!(inbox.buffered(), 1);
        let got = inbox.take(5, Duration::ZERO).unwrap();
        assert!(matches!(&got[..], [Inbound::Task(t)] if t.task_id == "r:n:1"));
    }

    #[test]
    fn take_honours_max_and_capacity() {
        let inbox = Inbox::default();
        for i in 1..=5 {
            assert!(inbox.try_push_task(Task::new("r", "n", "t", i), 5));
        }
        assert!(!inbox.try_push_task(Task::new("r", "n", "t", 6), 5));
        assert_eq!(inbox.take(2, Duration::ZERO).unwrap().len(), 2);
        assert_eq!(inbox.buffered(), 3);
    }

    #[test]
    fn a_waiting_take_wakes_on_a_task_or_a_break() {
        let inbox = Arc::new(Inbox::default());
        let i2 = Arc::clone(&inbox);
        let waiter = std::thread::spawn(move || i2.take(1, Duration::from_secs(30)));
        inbox.push_task(Task::new("r", "n", "t", 1));
        assert_eq!(waiter.join().unwrap().unwrap().len(), 1);

        let i2 = Arc::clone(&inbox);
        let waiter = std::thread::spawn(move || i2.take(1, Duration::from_secs(30)));
        inbox.break_with(TransportError::Unavailable("gone".into()));
        assert!(matches!(
            waiter.join().unwrap(),
            Err(TransportError::Unavailable(_))
        ));
    }

    #[test]
    fn an_empty_take_times_out_with_nothing() {
        let inbox = Inbox::default();
        assert!(inbox.take(3, Duration::from_millis(1)).unwrap().is_empty());
    }
}
