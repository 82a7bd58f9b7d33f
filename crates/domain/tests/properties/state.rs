//! `RuntimeStateMachine` against a table of the legal transitions.

use gamelan_domain::{RuntimeEvent as E, RuntimeState as S, RuntimeStateMachine};
use proptest::prelude::*;

/// Where the boot sequence stands while the runtime is INITIALIZING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boot {
    Started,
    ConfigLoaded,
    ExecutorsDiscovered,
}

/// The reference model: the documented lifecycle written as plain data plus two counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Initializing(Boot),
    /// READY, PROCESSING or REPORTING, told apart by the counters.
    Working,
    Failed,
    Shutdown,
    Drained,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Model {
    mode: Mode,
    executing: usize,
    unreported: usize,
}

impl Model {
    const START: Self = Self {
        mode: Mode::Initializing(Boot::Started),
        executing: 0,
        unreported: 0,
    };

    fn observable(self) -> S {
        match self.mode {
            Mode::Initializing(_) => S::Initializing,
            Mode::Working if self.executing > 0 => S::Processing,
            Mode::Working if self.unreported > 0 => S::Reporting,
            Mode::Working => S::Ready,
            Mode::Failed => S::Failed,
            Mode::Shutdown | Mode::Drained => S::Shutdown,
        }
    }

    /// The next model, or `None` when the specification forbids `event` here.
    #[expect(
        clippy::match_same_arms,
        reason = "one arm per transition, so the match reads as the table it models"
    )]
    fn step(self, event: E) -> Option<Self> {
        let mode = |mode| Some(Self { mode, ..self });
        // Results keep flowing while the connection is down and while shutting down:
        // work that already started must be able to finish and be confirmed.
        let counts_results = matches!(self.mode, Mode::Working | Mode::Failed | Mode::Shutdown);
        match (self.mode, event) {
            (Mode::Drained, _) => None,
            (Mode::Initializing(Boot::Started), E::ConfigLoaded) => {
                mode(Mode::Initializing(Boot::ConfigLoaded))
            }
            (Mode::Initializing(Boot::ConfigLoaded), E::ExecutorsDiscovered) => {
                mode(Mode::Initializing(Boot::ExecutorsDiscovered))
            }
            (Mode::Initializing(Boot::ExecutorsDiscovered), E::Connected) => mode(Mode::Working),
            (
                Mode::Initializing(Boot::ExecutorsDiscovered) | Mode::Working | Mode::Failed,
                E::ConnectionLost,
            ) => mode(Mode::Failed),
            (Mode::Failed, E::Reconnected) => mode(Mode::Working),
            // FAILED stops new receives, but a task already in hand when the connection
            // loss was noticed is still admitted; the state stays FAILED.
            (Mode::Working | Mode::Failed, E::TaskAssigned) => Some(Self {
                executing: self.executing.checked_add(1)?,
                ..self
            }),
            (_, E::ResultReady) if counts_results => Some(Self {
                executing: self.executing.checked_sub(1)?,
                unreported: self.unreported.checked_add(1)?,
                ..self
            }),
            (_, E::ResultReported(n)) if counts_results => Some(Self {
                unreported: self.unreported.checked_sub(n)?,
                ..self
            }),
            (Mode::Shutdown, E::Drained) => mode(Mode::Drained),
            (Mode::Shutdown, E::ShutdownRequested) => None,
            (_, E::ShutdownRequested) => mode(Mode::Shutdown),
            _ => None,
        }
    }
}

fn event() -> impl Strategy<Value = E> {
    prop_oneof![
        2 => Just(E::ConfigLoaded),
        2 => Just(E::ExecutorsDiscovered),
        2 => Just(E::Connected),
        6 => Just(E::TaskAssigned),
        5 => Just(E::ResultReady),
        4 => (0usize..4).prop_map(E::ResultReported),
        1 => any::<usize>().prop_map(E::ResultReported),
        2 => Just(E::ConnectionLost),
        2 => Just(E::Reconnected),
        1 => Just(E::ShutdownRequested),
        1 => Just(E::Drained),
    ]
}

/// Half the runs start with the boot sequence so that most of each run exercises the
/// working states rather than waiting for the right boot event.
fn events() -> impl Strategy<Value = Vec<E>> {
    (any::<bool>(), prop::collection::vec(event(), 0..300)).prop_map(|(boot, mut rest)| {
        if boot {
            let mut all = vec![E::ConfigLoaded, E::ExecutorsDiscovered, E::Connected];
            all.append(&mut rest);
            all
        } else {
            rest
        }
    })
}

proptest! {
    #[test]
    fn machine_follows_the_reference_transitions(events in events()) {
        let mut machine = RuntimeStateMachine::new();
        let mut model = Model::START;
        for event in events {
            let before = machine.clone();
            let result = machine.apply(event);
            if let Some(next) = model.step(event) {
                prop_assert_eq!(&result, &Ok(next.observable()), "{:?} from {:?}", event, model);
                model = next;
            } else {
                prop_assert!(result.is_err(), "{:?} from {:?} gave {:?}", event, model, result);
                prop_assert_eq!(&machine, &before, "a refused {:?} changed the machine", event);
            }
            prop_assert_eq!(machine.state(), model.observable());
            prop_assert_eq!(machine.executing(), model.executing);
            prop_assert_eq!(machine.unreported(), model.unreported);
            prop_assert_eq!(machine.is_terminated(), model.mode == Mode::Drained);
        }
    }

    #[test]
    fn nothing_leaves_shutdown_and_drained_refuses_everything(events in events()) {
        let mut machine = RuntimeStateMachine::new();
        let mut shut_down = false;
        let mut drained = false;
        for event in events {
            let before = machine.clone();
            let result = machine.apply(event);
            if drained {
                prop_assert!(result.is_err(), "{:?} accepted after Drained", event);
                prop_assert_eq!(&machine, &before);
            }
            if shut_down {
                prop_assert_eq!(machine.state(), S::Shutdown, "{:?} left SHUTDOWN", event);
            }
            if let Ok(state) = result {
                prop_assert_eq!(state, machine.state());
            }
            shut_down |= machine.state() == S::Shutdown;
            drained |= machine.is_terminated();
            prop_assert!(!machine.is_terminated() || machine.state() == S::Shutdown);
        }
    }

    #[test]
    fn counters_balance_and_never_underflow(events in events()) {
        let mut machine = RuntimeStateMachine::new();
        let (mut assigned, mut ready, mut reported) = (0usize, 0usize, 0usize);
        for event in events {
            match (event, machine.apply(event)) {
                (E::TaskAssigned, Ok(_)) => assigned += 1,
                (E::ResultReady, Ok(_)) => ready += 1,
                (E::ResultReported(n), Ok(_)) => reported += n,
                _ => {}
            }
            // Every result came from an assigned task; every confirmation from a ready result.
            prop_assert!(ready <= assigned && reported <= ready);
            prop_assert_eq!(machine.executing(), assigned - ready);
            prop_assert_eq!(machine.unreported(), ready - reported);
        }
    }
}

/// The generator must reach every state, or the properties above prove little.
#[test]
fn generator_reaches_every_state() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    let mut terminated = false;
    for _ in 0..200 {
        let events = events().new_tree(&mut runner).expect("strategy").current();
        let mut machine = RuntimeStateMachine::new();
        for event in events {
            if let Ok(state) = machine.apply(event) {
                seen.insert(state);
            }
            terminated |= machine.is_terminated();
        }
    }
    for state in [
        S::Ready,
        S::Processing,
        S::Reporting,
        S::Failed,
        S::Shutdown,
    ] {
        assert!(seen.contains(&state), "never reached {state}");
    }
    assert!(terminated, "never drained");
}
