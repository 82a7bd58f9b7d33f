//! The runtime's lifecycle as an explicit state machine ("Runtime States" in the Java runtime's documentation).
//!
//! The machine also counts tasks in execution and results awaiting confirmation, so that
//! PROCESSING and REPORTING mean something precise while many tasks run at once: PROCESSING
//! while any task executes, REPORTING while none executes but results are unconfirmed, READY
//! otherwise.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuntimeState {
    Initializing,
    Ready,
    Processing,
    Reporting,
    Failed,
    Shutdown,
}

impl RuntimeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "INITIALIZING",
            Self::Ready => "READY",
            Self::Processing => "PROCESSING",
            Self::Reporting => "REPORTING",
            Self::Failed => "FAILED",
            Self::Shutdown => "SHUTDOWN",
        }
    }

    /// States in which the runtime accepts new tasks from the engine.
    pub fn accepts_tasks(self) -> bool {
        matches!(self, Self::Ready | Self::Processing | Self::Reporting)
    }
}

impl fmt::Display for RuntimeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeEvent {
    ConfigLoaded,
    ExecutorsDiscovered,
    Connected,
    TaskAssigned,
    ResultReady,
    /// `n` results were confirmed by the engine.
    ResultReported(usize),
    ConnectionLost,
    Reconnected,
    ShutdownRequested,
    Drained,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal runtime transition: {event:?} in state {state}{detail}")]
pub struct IllegalTransition {
    pub state: RuntimeState,
    pub event: RuntimeEvent,
    pub detail: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Booting,
    ConfigLoaded,
    Discovered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeStateMachine {
    state: RuntimeState,
    phase: Phase,
    executing: usize,
    unreported: usize,
    drained: bool,
}

impl Default for RuntimeStateMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeStateMachine {
    pub fn new() -> Self {
        Self {
            state: RuntimeState::Initializing,
            phase: Phase::Booting,
            executing: 0,
            unreported: 0,
            drained: false,
        }
    }

    pub fn state(&self) -> RuntimeState {
        self.state
    }

    pub fn executing(&self) -> usize {
        self.executing
    }

    pub fn unreported(&self) -> usize {
        self.unreported
    }

    /// True once shutdown finished draining: nothing more may happen.
    pub fn is_terminated(&self) -> bool {
        self.drained
    }

    fn working_state(&self) -> RuntimeState {
        if self.executing > 0 {
            RuntimeState::Processing
        } else if self.unreported > 0 {
            RuntimeState::Reporting
        } else {
            RuntimeState::Ready
        }
    }

    /// Applies `event`; on error nothing changes.
    pub fn apply(&mut self, event: RuntimeEvent) -> Result<RuntimeState, IllegalTransition> {
        use RuntimeEvent as E;
        use RuntimeState as S;
        let illegal = |detail| IllegalTransition {
            state: self.state,
            event,
            detail,
        };
        if self.drained {
            return Err(illegal(" (runtime is shut down and drained)"));
        }
        match (self.state, event) {
            (S::Initializing, E::ConfigLoaded) if self.phase == Phase::Booting => {
                self.phase = Phase::ConfigLoaded;
            }
            (S::Initializing, E::ExecutorsDiscovered) if self.phase == Phase::ConfigLoaded => {
                self.phase = Phase::Discovered;
            }
            (S::Initializing, E::Connected) if self.phase == Phase::Discovered => {
                self.state = S::Ready;
            }
            (S::Initializing, E::ConnectionLost) if self.phase == Phase::Discovered => {
                self.state = S::Failed;
            }
            (S::Ready | S::Processing | S::Reporting, E::TaskAssigned) => {
                self.executing += 1;
                self.state = self.working_state();
            }
            // Intentional: a task received just before the connection loss was noticed is
            // still admitted and executed (its result waits in the outbox); FAILED stops new
            // receives, not work already in hand. The state stays FAILED.
            (S::Failed, E::TaskAssigned) => {
                self.executing += 1;
            }
            (S::Shutdown, E::TaskAssigned) => {
                return Err(illegal(" (shutting down: not accepting tasks)"));
            }
            (S::Ready | S::Processing | S::Reporting | S::Failed | S::Shutdown, E::ResultReady) => {
                if self.executing == 0 {
                    return Err(illegal(" (no task is executing)"));
                }
                self.executing -= 1;
                self.unreported += 1;
                if self.state.accepts_tasks() {
                    self.state = self.working_state();
                }
            }
            (
                S::Ready | S::Processing | S::Reporting | S::Failed | S::Shutdown,
                E::ResultReported(n),
            ) => {
                if n > self.unreported {
                    return Err(illegal(" (more results confirmed than were waiting)"));
                }
                self.unreported -= n;
                if self.state.accepts_tasks() {
                    self.state = self.working_state();
                }
            }
            (S::Ready | S::Processing | S::Reporting, E::ConnectionLost) => {
                self.state = S::Failed;
            }
            (S::Failed, E::ConnectionLost) => {}
            (S::Failed, E::Reconnected) => {
                self.state = self.working_state();
            }
            (s, E::ShutdownRequested) if s != S::Shutdown => {
                self.state = S::Shutdown;
            }
            (S::Shutdown, E::Drained) => {
                self.drained = true;
            }
            _ => return Err(illegal("")),
        }
        Ok(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RuntimeEvent as E;
    use RuntimeState as S;

    fn ready() -> RuntimeStateMachine {
        let mut m = RuntimeStateMachine::new();
        m.apply(E::ConfigLoaded).unwrap();
        m.apply(E::ExecutorsDiscovered).unwrap();
        assert_eq!(m.apply(E::Connected), Ok(S::Ready));
        m
    }

    #[test]
    fn happy_path_walks_the_documented_states() {
        let mut m = ready();
        assert_eq!(m.apply(E::TaskAssigned), Ok(S::Processing));
        assert_eq!(m.apply(E::ResultReady), Ok(S::Reporting));
        assert_eq!(m.apply(E::ResultReported(1)), Ok(S::Ready));
        assert_eq!(m.apply(E::ConnectionLost), Ok(S::Failed));
        assert_eq!(m.apply(E::Reconnected), Ok(S::Ready));
        assert_eq!(m.apply(E::ShutdownRequested), Ok(S::Shutdown));
        assert_eq!(m.apply(E::Drained), Ok(S::Shutdown));
        assert!(m.apply(E::Connected).is_err());
    }

    #[test]
    fn illegal_transitions_are_errors_and_change_nothing() {
        let mut m = RuntimeStateMachine::new();
        let before = m.clone();
        assert!(m.apply(E::Connected).is_err());
        assert!(m.apply(E::TaskAssigned).is_err());
        assert_eq!(m, before);
        let mut m = ready();
        assert!(m.apply(E::ResultReady).is_err());
        assert!(m.apply(E::ResultReported(1)).is_err());
        m.apply(E::ConnectionLost).unwrap();
        assert_eq!(m.apply(E::TaskAssigned), Ok(S::Failed));
        assert_eq!(m.apply(E::Reconnected), Ok(S::Processing));
    }

    #[test]
    fn shutdown_drains_running_work_then_is_terminal() {
        let mut m = ready();
        m.apply(E::TaskAssigned).unwrap();
        m.apply(E::ShutdownRequested).unwrap();
        assert!(m.apply(E::TaskAssigned).is_err());
        assert_eq!(m.apply(E::ResultReady), Ok(S::Shutdown));
        assert_eq!(m.apply(E::ResultReported(1)), Ok(S::Shutdown));
        m.apply(E::Drained).unwrap();
        assert!(m.apply(E::ResultReported(0)).is_err());
        assert!(m.apply(E::ShutdownRequested).is_err());
        assert_eq!(m.state(), S::Shutdown);
    }
}
