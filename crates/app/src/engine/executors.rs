//! The executor table: one entry per registered executor id, with its delivery routes
//! (attached streams and long polls) and what it has in flight.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar};

use gamelan_domain::{Candidate, ExecutorMetadata};
use gamelan_ports::{ExecutorView, HealthStatus, Registration, StreamId, TaskSink};

/// One attached push stream.
pub(super) struct StreamSlot {
    pub id: StreamId,
    pub max_in_flight: u32,
    pub in_flight: u32,
    pub sink: Arc<dyn TaskSink>,
}

impl StreamSlot {
    fn room(&self) -> u32 {
        self.max_in_flight.saturating_sub(self.in_flight)
    }
}

pub(super) struct ExecutorEntry {
    pub id: Arc<str>,
    /// Distinguishes this entry from a later one reusing the same slot, so a long poll that
    /// outlived an unregistration notices.
    pub generation: u64,
    pub registration: Registration,
    /// Known only from the store: an executor that had tasks delivered before the engine
    /// restarted and has not registered since. It gets no new work and is answered as
    /// unknown (so it registers again); its restored tasks wait for it until it registers,
    /// its heartbeat timeout passes or their ack timeout does.
    pub restored: bool,
    pub alive: bool,
    pub health: HealthStatus,
    pub registered_at_ms: u64,
    pub last_heartbeat_ms: u64,
    pub completed: u64,
    pub failed: u64,
    /// Record slots of every task assigned to this executor and not finished.
    pub in_flight: HashSet<usize>,
    pub streams: Vec<StreamSlot>,
    /// Tasks assigned to waiting long polls, not yet handed out.
    pub mailbox: VecDeque<usize>,
    /// Sum of `max` over the long polls waiting now.
    pub poll_demand: usize,
    /// The condition variable of each long poll waiting for this executor now (with the
    /// engine's one mutex). One poll may wait for several executors of its process, so
    /// the poll owns the variable and every executor it covers points at it.
    pub waiters: Vec<Arc<Condvar>>,
}

impl ExecutorEntry {
    pub(super) fn new(registration: Registration, generation: u64, now_ms: u64) -> Self {
        Self {
            id: Arc::from(registration.executor_id.as_str()),
            generation,
            registration,
            restored: false,
            alive: true,
            health: HealthStatus::Ready,
            registered_at_ms: now_ms,
            last_heartbeat_ms: now_ms,
            completed: 0,
            failed: 0,
            in_flight: HashSet::new(),
            streams: Vec::new(),
            mailbox: VecDeque::new(),
            poll_demand: 0,
            waiters: Vec::new(),
        }
    }

    /// The stand-in for an executor that had `node_type` tasks delivered before a restart.
    pub(super) fn restored(
        executor_id: &str,
        node_type: &str,
        generation: u64,
        now_ms: u64,
    ) -> Self {
        let registration = Registration {
            executor_id: executor_id.to_owned(),
            metadata: ExecutorMetadata::new(node_type),
            endpoint: String::new(),
            attributes: std::collections::BTreeMap::new(),
        };
        let mut entry = Self::new(registration, generation, now_ms);
        entry.restored = true;
        entry
    }

    pub(super) fn metadata(&self) -> &ExecutorMetadata {
        &self.registration.metadata
    }

    pub(super) fn handles(&self, node_type: &str) -> bool {
        self.registration.metadata.handles(node_type)
    }

    fn in_flight_count(&self) -> u32 {
        u32::try_from(self.in_flight.len()).unwrap_or(u32::MAX)
    }

    /// How many more tasks may be assigned now: never beyond `max_concurrent_tasks`, and
    /// only as many as the open routes take (stream credit plus waiting long polls).
    pub(super) fn room(&self) -> u32 {
        if !self.alive || self.restored {
            return 0;
        }
        let left = self
            .metadata()
            .max_concurrent_tasks
            .saturating_sub(self.in_flight_count());
        let streams: u32 = self.streams.iter().map(StreamSlot::room).sum();
        let polls = self.poll_demand.saturating_sub(self.mailbox.len());
        let polls = u32::try_from(polls).unwrap_or(u32::MAX);
        left.min(streams.saturating_add(polls))
    }

    /// The balancer's view: capacity is what is in flight plus the room left, so an
    /// executor without an open route is never chosen.
    pub(super) fn candidate(&self) -> Candidate {
        let in_flight = self.in_flight_count();
        Candidate {
            alive: self.alive,
            in_flight,
            capacity: in_flight.saturating_add(self.room()),
        }
    }

    /// The stream with the most free credit, if any has some.
    pub(super) fn free_stream(&mut self) -> Option<&mut StreamSlot> {
        self.streams
            .iter_mut()
            .filter(|s| s.room() > 0)
            .max_by_key(|s| s.room())
    }

    pub(super) fn stream_mut(&mut self, id: StreamId) -> Option<&mut StreamSlot> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    pub(super) fn view(&self) -> ExecutorView {
        let m = self.metadata();
        ExecutorView {
            executor_id: self.id.to_string(),
            executor_type: m.executor_type.clone(),
            communication_type: m.communication_type.as_str().to_owned(),
            endpoint: self.registration.endpoint.clone(),
            supported_node_types: m.supported_node_types.clone(),
            max_concurrent_tasks: m.max_concurrent_tasks,
            version: m.version.clone(),
            alive: self.alive,
            in_flight: self.in_flight_count(),
            status: self.health.as_str().to_owned(),
            registered_at_ms: self.registered_at_ms,
            last_heartbeat_ms: self.last_heartbeat_ms,
            completed_tasks: self.completed,
            failed_tasks: self.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nop;
    impl TaskSink for Nop {
        fn deliver(&self, _: Arc<gamelan_domain::Task>) -> bool {
            true
        }
        fn cancel(&self, _: &str, _: &str) -> bool {
            true
        }
    }

    fn entry(max: u32) -> ExecutorEntry {
        let registration = Registration {
            executor_id: "e".into(),
            metadata: ExecutorMetadata::new("t").max_concurrent_tasks(max),
            endpoint: String::new(),
            attributes: std::collections::BTreeMap::new(),
        };
        ExecutorEntry::new(registration, 1, 0)
    }

    #[test]
    fn room_is_bounded_by_routes_and_concurrency() {
        let mut e = entry(4);
        assert_eq!(e.room(), 0, "no route, no room");
        e.streams.push(StreamSlot {
            id: 1,
            max_in_flight: 10,
            in_flight: 0,
            sink: Arc::new(Nop),
        });
        assert_eq!(e.room(), 4, "max concurrent caps the stream credit");
        e.in_flight.insert(7);
        e.streams[0].in_flight = 1;
        assert_eq!(e.room(), 3);
        assert_eq!(e.candidate().capacity, 4);
        e.streams[0].max_in_flight = 2;
        assert_eq!(e.room(), 1, "stream credit caps too");
        e.poll_demand = 5;
        assert_eq!(e.room(), 3);
        e.alive = false;
        assert_eq!(e.room(), 0);
    }
}
