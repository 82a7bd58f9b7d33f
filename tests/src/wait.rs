//! Waiting on conditions with a deadline, never for a fixed time.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(10);

/// Parks the thread until `deadline` or for one poll interval, whichever comes first.
pub(crate) fn pause_until(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::park_timeout(left.min(POLL));
}

/// Polls `cond` until it holds; fails after `timeout`, naming `what` was awaited.
pub fn wait_until(
    timeout: Duration,
    what: impl Display,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    wait_for(timeout, what, || Ok(cond().then_some(())))
}

/// Polls `probe` until it yields a value. An error counts as "not yet" (the process may still
/// be starting); the last one is reported if the deadline passes.
pub fn wait_for<T>(
    timeout: Duration,
    what: impl Display,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow::anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        pause_until(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_never_holds_times_out() {
        let started = Instant::now();
        let err = wait_until(Duration::from_millis(50), "nothing", || false).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(err.to_string().contains("waiting for nothing"), "{err}");
    }

    #[test]
    fn a_value_is_returned_once_it_appears_and_errors_are_retried() {
        let mut calls = 0;
        let v = wait_for(Duration::from_secs(5), "third call", || {
            calls += 1;
            match calls {
                1 => anyhow::bail!("not up yet"),
                2 => Ok(None),
                _ => Ok(Some(calls)),
            }
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn the_last_error_is_reported_on_timeout() {
        let err = wait_for::<()>(Duration::from_millis(30), "a reply", || {
            anyhow::bail!("connection refused")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("connection refused"), "{err:#}");
    }
}
