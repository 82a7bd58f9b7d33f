//! Engine-side load balancing: least loaded first, round-robin among equals, never beyond
//! an executor's capacity.

use std::cmp::Ordering;

/// One executor as the balancer sees it at the moment of choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub alive: bool,
    pub in_flight: u32,
    pub capacity: u32,
}

impl Candidate {
    fn has_room(&self) -> bool {
        self.alive && self.in_flight < self.capacity
    }
}

/// Load is compared as `in_flight / capacity` (by cross-multiplication, no floats), so an
/// executor with room for 50 is not starved by one with room for 5.
fn load_cmp(a: &Candidate, b: &Candidate) -> Ordering {
    (u64::from(a.in_flight) * u64::from(b.capacity))
        .cmp(&(u64::from(b.in_flight) * u64::from(a.capacity)))
}

#[derive(Debug, Clone, Default)]
pub struct Balancer {
    cursor: usize,
}

impl Balancer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Index of the executor to receive the next task, or `None` when nobody has room (the
    /// task then waits in its queue). Ties go round-robin, starting after the last choice.
    pub fn choose(&mut self, candidates: &[Candidate]) -> Option<usize> {
        let n = candidates.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor % n;
        let mut best: Option<usize> = None;
        for offset in 0..n {
            let i = (start + offset) % n;
            let c = &candidates[i];
            if !c.has_room() {
                continue;
            }
            match best {
                Some(b) if load_cmp(c, &candidates[b]) != Ordering::Less => {}
                _ => best = Some(i),
            }
        }
        if let Some(i) = best {
            self.cursor = i + 1;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(in_flight: u32, capacity: u32) -> Candidate {
        Candidate {
            alive: true,
            in_flight,
            capacity,
        }
    }

    #[test]
    fn picks_least_loaded_and_skips_full_or_dead() {
        let mut b = Balancer::new();
        assert_eq!(b.choose(&[c(5, 10), c(1, 10)]), Some(1));
        assert_eq!(b.choose(&[c(10, 10), c(3, 3)]), None);
        let dead = Candidate {
            alive: false,
            in_flight: 0,
            capacity: 10,
        };
        assert_eq!(b.choose(&[dead, c(9, 10)]), Some(1));
        assert_eq!(b.choose(&[]), None);
    }

    #[test]
    fn ties_rotate() {
        let mut b = Balancer::new();
        let cands = [c(0, 4), c(0, 4), c(0, 4)];
        let picks: Vec<_> = (0..6).filter_map(|_| b.choose(&cands)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }
}
