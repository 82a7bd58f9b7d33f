//! Liveness by heartbeat: an executor is alive while its last heartbeat is recent enough.
//! "Recent enough" is the tracker's default timeout, or the key's own when it has one (an
//! executor may announce how long it may stay silent).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LivenessTracker<K> {
    timeout: Duration,
    last_seen: HashMap<K, Instant>,
    /// Keys whose timeout is not the default.
    own: HashMap<K, Duration>,
}

impl<K: Eq + Hash + Clone> LivenessTracker<K> {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            last_seen: HashMap::new(),
            own: HashMap::new(),
        }
    }

    /// The default timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Gives `key` its own timeout; `None` puts it back on the default.
    pub fn set_timeout(&mut self, key: K, timeout: Option<Duration>) {
        match timeout {
            Some(t) => {
                self.own.insert(key, t);
            }
            None => {
                self.own.remove(&key);
            }
        }
    }

    /// The timeout that applies to `key`.
    pub fn timeout_of(&self, key: &K) -> Duration {
        self.own.get(key).copied().unwrap_or(self.timeout)
    }

    /// Records a heartbeat; an older timestamp than the one held never moves it back.
    pub fn heartbeat(&mut self, key: K, now: Instant) {
        let slot = self.last_seen.entry(key).or_insert(now);
        if now > *slot {
            *slot = now;
        }
    }

    /// Alive iff `now - last heartbeat <= timeout`. Unknown keys are not alive.
    pub fn is_alive(&self, key: &K, now: Instant) -> bool {
        self.last_seen
            .get(key)
            .is_some_and(|&t| now.saturating_duration_since(t) <= self.timeout_of(key))
    }

    pub fn last_heartbeat(&self, key: &K) -> Option<Instant> {
        self.last_seen.get(key).copied()
    }

    /// Keys whose heartbeat is older than the timeout.
    pub fn expired(&self, now: Instant) -> Vec<K> {
        self.last_seen
            .iter()
            .filter(|(k, t)| now.saturating_duration_since(**t) > self.timeout_of(k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn remove(&mut self, key: &K) -> bool {
        self.own.remove(key);
        self.last_seen.remove(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_exactly_up_to_the_timeout() {
        let t0 = Instant::now();
        let mut l = LivenessTracker::new(Duration::from_secs(60));
        l.heartbeat("a", t0);
        assert!(l.is_alive(&"a", t0 + Duration::from_secs(60)));
        assert!(!l.is_alive(&"a", t0 + Duration::from_secs(61)));
        assert!(!l.is_alive(&"b", t0));
        assert_eq!(l.expired(t0 + Duration::from_secs(61)), vec!["a"]);
        l.heartbeat("a", t0 + Duration::from_secs(50));
        l.heartbeat("a", t0);
        assert!(l.is_alive(&"a", t0 + Duration::from_secs(100)));
    }

    #[test]
    fn a_key_with_its_own_timeout_uses_it_and_others_keep_the_default() {
        let t0 = Instant::now();
        let mut l = LivenessTracker::new(Duration::from_secs(60));
        l.heartbeat("short", t0);
        l.heartbeat("default", t0);
        l.set_timeout("short", Some(Duration::from_secs(5)));
        assert_eq!(l.timeout_of(&"short"), Duration::from_secs(5));
        assert!(l.is_alive(&"short", t0 + Duration::from_secs(5)));
        assert!(!l.is_alive(&"short", t0 + Duration::from_secs(6)));
        assert!(l.is_alive(&"default", t0 + Duration::from_secs(6)));
        assert_eq!(l.expired(t0 + Duration::from_secs(6)), vec!["short"]);
        l.set_timeout("short", None);
        assert!(l.is_alive(&"short", t0 + Duration::from_secs(6)));
        l.set_timeout("short", Some(Duration::from_secs(5)));
        l.remove(&"short");
        l.heartbeat("short", t0);
        assert_eq!(
            l.timeout_of(&"short"),
            Duration::from_secs(60),
            "removal forgets it"
        );
    }
}
