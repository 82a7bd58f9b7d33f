//! `TaskId` text form and the `Task` wire shape.

use gamelan_domain::{JsonObject, Task, TaskError, TaskId};
use proptest::prelude::*;

fn run_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9:_.-]{1,24}"
}

fn node_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,24}"
}

fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..10, 1u32..=u32::MAX]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = JsonObject> {
    prop::collection::btree_map("[a-zA-Z]{1,8}", json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn task_id_round_trips(run in run_id(), node in node_id(), attempt in attempt()) {
        let id = TaskId::new(run, node, attempt);
        let text = id.to_string();
        prop_assert_eq!(text.parse::<TaskId>(), Ok(id));
    }

    #[test]
    fn attempt_zero_is_refused(run in run_id(), node in node_id()) {
        prop_assert_eq!(format!("{run}:{node}:0").parse::<TaskId>(), Err(TaskError::AttemptZero(0)));
    }

    /// Whatever parses is in canonical form, so one task has exactly one id string (the
    /// engine de-duplicates by it).
    #[test]
    fn accepted_ids_are_canonical(
        text in prop_oneof![
            "[a:0-9+-]{0,12}",
            (run_id(), node_id(), "[+-]?[0-9]{1,11}").prop_map(|(r, n, a)| format!("{r}:{n}:{a}")),
        ],
    ) {
        if let Ok(id) = text.parse::<TaskId>() {
            prop_assert_eq!(id.to_string(), text);
            prop_assert!(id.attempt >= 1);
            prop_assert!(!id.run_id.is_empty() && !id.node_id.is_empty() && !id.node_id.contains(':'));
        }
    }

    #[test]
    fn tasks_validate_and_survive_json(
        run in run_id(),
        node in node_id(),
        attempt in attempt(),
        context in json_object(),
        configuration in json_object(),
        timeout_seconds in proptest::option::of(0u64..100_000),
    ) {
        let mut task = Task::new(run, node, "echo", attempt);
        task.context = context;
        task.configuration = configuration;
        task.timeout_seconds = timeout_seconds;
        task.execution_token = "tok".into();
        prop_assert_eq!(task.validate(), Ok(()));
        prop_assert_eq!(task.task_id.parse::<TaskId>(), Ok(task.id()));
        let json = serde_json::to_string(&task).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Task = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, task);
    }
}
