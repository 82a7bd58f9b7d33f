//! Matches the engine's `ResultAcks` on the ExecuteStream to the `report` calls waiting for
//! them, by (task id, attempt).

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use gamelan_ports::{ReportOutcome, TransportError};

use crate::convert::ack_to_outcome;
use crate::proto::v1 as pb;

struct Batch {
    outcomes: Vec<Option<ReportOutcome>>,
    remaining: usize,
}

#[derive(Default)]
struct State {
    /// Several waiters per key only if the runtime reports the same result twice at once.
    waiting: HashMap<(String, i32), VecDeque<(u64, usize)>>,
    batches: HashMap<u64, Batch>,
    next: u64,
    broken: Option<TransportError>,
}

#[derive(Default)]
pub(crate) struct Verdicts {
    state: Mutex<State>,
    done: Condvar,
}

pub(crate) struct Ticket(u64);

impl Verdicts {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a batch before it is sent, so an early verdict cannot be missed.
    pub(crate) fn expect(
        &self,
        keys: impl ExactSizeIterator<Item = (String, i32)>,
    ) -> Result<Ticket, TransportError> {
        let mut st = self.lock();
        if let Some(e) = &st.broken {
            return Err(e.clone());
        }
        let id = st.next;
        st.next += 1;
        let n = keys.len();
        for (idx, key) in keys.enumerate() {
            st.waiting.entry(key).or_default().push_back((id, idx));
        }
        st.batches.insert(
            id,
            Batch {
                outcomes: vec![None; n],
                remaining: n,
            },
        );
        Ok(Ticket(id))
    }

    /// Verdicts for results nobody waits for (a batch that timed out) are ignored.
    pub(crate) fn deliver(&self, acks: Vec<pb::ResultAck>) {
        let mut st = self.lock();
        for ack in acks {
            let outcome = ack_to_outcome(&ack);
            let key = (ack.task_id, ack.attempt);
            let Some(queue) = st.waiting.get_mut(&key) else {
                continue;
            };
            let slot = queue.pop_front();
            if queue.is_empty() {
                st.waiting.remove(&key);
            }
            if let Some((batch, idx)) = slot
                && let Some(b) = st.batches.get_mut(&batch)
                && b.outcomes[idx].is_none()
            {
                b.outcomes[idx] = Some(outcome);
                b.remaining -= 1;
            }
        }
        drop(st);
        self.done.notify_all();
    }

    pub(crate) fn break_with(&self, err: TransportError) {
        let mut st = self.lock();
        if st.broken.is_none() {
            st.broken = Some(err);
        }
        drop(st);
        self.done.notify_all();
    }

    /// Waits for every verdict of the batch; on timeout or connection loss none is returned,
    /// so the runtime keeps all of them in its outbox.
    pub(crate) fn wait(
        &self,
        ticket: &Ticket,
        deadline: Instant,
    ) -> Result<Vec<ReportOutcome>, TransportError> {
        let mut st = self.lock();
        loop {
            let complete = st.batches.get(&ticket.0).is_none_or(|b| b.remaining == 0);
            if complete {
                let batch = st.batches.remove(&ticket.0);
                return Ok(batch
                    .map(|b| b.outcomes.into_iter().flatten().collect())
                    .unwrap_or_default());
            }
            let failure = match &st.broken {
                Some(e) => Some(e.clone()),
                None if Instant::now() >= deadline => Some(TransportError::Unavailable(
                    "timed out waiting for the engine's result verdicts".into(),
                )),
                None => None,
            };
            if let Some(err) = failure {
                Self::forget(&mut st, ticket.0);
                return Err(err);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            st = self
                .done
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn forget(st: &mut State, batch: u64) {
        st.batches.remove(&batch);
        st.waiting.retain(|_, q| {
            q.retain(|(b, _)| *b != batch);
            !q.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gamelan_domain::Acceptance;
    use std::time::Duration;

    fn ack(id: &str, attempt: i32, outcome: &str) -> pb::ResultAck {
        pb::ResultAck {
            task_id: id.into(),
            attempt,
            outcome: outcome.into(),
            message: String::new(),
        }
    }

    #[test]
    fn verdicts_arrive_in_result_order_whatever_the_ack_order() {
        let v = Verdicts::default();
        let t = v
            .expect([("a".to_owned(), 1), ("b".to_owned(), 1)].into_iter())
            .unwrap();
        v.deliver(vec![
            ack("b", 1, "ALREADY_PROCESSED"),
            ack("zzz", 9, "ACCEPT"),
            ack("a", 1, "ACCEPT"),
        ]);
        let got = v.wait(&t, Instant::now()).unwrap();
        assert_eq!(
            got,
            vec![
                ReportOutcome::Accepted(Acceptance::Accept),
                ReportOutcome::Accepted(Acceptance::AlreadyProcessed)
            ]
        );
    }

    #[test]
    fn a_missing_verdict_times_out_and_a_break_fails_waiters() {
        let v = Verdicts::default();
        let t = v.expect([("a".to_owned(), 1)].into_iter()).unwrap();
        let err = v
            .wait(&t, Instant::now() + Duration::from_millis(5))
            .unwrap_err();
        assert!(matches!(err, TransportError::Unavailable(_)));
        // The late verdict is ignored.
        v.deliver(vec![ack("a", 1, "ACCEPT")]);
        v.break_with(TransportError::Unavailable("lost".into()));
        assert!(v.expect([("b".to_owned(), 1)].into_iter()).is_err());
    }
}
