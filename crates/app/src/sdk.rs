//! The SDK surface for people writing executors: implement
//! [`WorkflowExecutor`](gamelan_ports::WorkflowExecutor), register it with
//! [`executor!`](crate::executor), and the runtime discovers it at start.
//!
//! ```ignore
//! #[derive(Default)]
//! struct CalculateTax;
//! impl WorkflowExecutor for CalculateTax { /* execute */ }
//! gamelan::executor!(CalculateTax, type = "calculate-tax", communication = Grpc, max_concurrent_tasks = 50);
//! ```

use std::sync::Arc;

pub use gamelan_domain::{
    CommunicationType, ExecutionError, ExecutorMetadata, JsonObject, Task, TaskResult,
};
pub use gamelan_ports::{CancellationToken, Deferred, ExecutionContext, WorkflowExecutor};
pub use inventory;

/// One executor registered with [`executor!`](crate::executor); collected at link time.
pub struct Discovered {
    factory: fn() -> Arc<dyn WorkflowExecutor>,
}

impl Discovered {
    pub const fn new(factory: fn() -> Arc<dyn WorkflowExecutor>) -> Self {
        Self { factory }
    }
}

inventory::collect!(Discovered);

/// Every executor registered in this binary, freshly constructed.
pub fn discovered() -> Vec<Arc<dyn WorkflowExecutor>> {
    inventory::iter::<Discovered>
        .into_iter()
        .map(|d| (d.factory)())
        .collect()
}

/// An executor whose metadata was declared at registration (the Java `@Executor`
/// annotation's counterpart): the macro's values win over the type's own `metadata()`.
pub struct Declared<T> {
    inner: T,
    metadata: ExecutorMetadata,
}

impl<T: WorkflowExecutor> Declared<T> {
    pub fn new(inner: T, metadata: ExecutorMetadata) -> Self {
        Self { inner, metadata }
    }
}

impl<T: WorkflowExecutor> WorkflowExecutor for Declared<T> {
    fn metadata(&self) -> ExecutorMetadata {
        self.metadata.clone()
    }

    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        self.inner.execute(task, ctx)
    }
}

/// Registers an executor type for automatic discovery. The type must implement `Default`
/// and [`WorkflowExecutor`].
///
/// Keys after `type = "..."`: `communication = Grpc|Kafka|Rest|Local`,
/// `max_concurrent_tasks = N`, `node_types = ["a", "b"]`, `version = "x.y.z"`,
/// `description = "..."`.
#[macro_export]
macro_rules! executor {
    ($ty:ty) => {
        $crate::sdk::inventory::submit! {
            $crate::sdk::Discovered::new(|| {
                ::std::sync::Arc::new(<$ty as ::core::default::Default>::default())
            })
        }
    };
    ($ty:ty, type = $name:expr $(, $key:ident = $val:tt)* $(,)?) => {
        $crate::sdk::inventory::submit! {
            $crate::sdk::Discovered::new(|| {
                let metadata = $crate::sdk::ExecutorMetadata::new($name)
                    $( .$key($crate::executor!(@value $key $val)) )*;
                ::std::sync::Arc::new($crate::sdk::Declared::new(
                    <$ty as ::core::default::Default>::default(),
                    metadata,
                ))
            })
        }
    };
    (@value communication $c:ident) => { $crate::sdk::CommunicationType::$c };
    (@value $key:ident $v:tt) => { $v };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Probe;

    impl WorkflowExecutor for Probe {
        fn execute(&self, _: &Task, _: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
            Ok(JsonObject::new())
        }
    }

    crate::executor!(
        Probe,
        type = "sdk-probe",
        communication = Rest,
        max_concurrent_tasks = 7,
        node_types = ["probe-a", "probe-b"],
        version = "2.1.0"
    );

    #[test]
    fn macro_registers_with_declared_metadata() {
        let found: Vec<_> = discovered()
            .into_iter()
            .map(|e| e.metadata())
            .filter(|m| m.executor_type == "sdk-probe")
            .collect();
        assert_eq!(found.len(), 1);
        let m = &found[0];
        assert_eq!(m.communication_type, CommunicationType::Rest);
        assert_eq!(m.max_concurrent_tasks, 7);
        assert_eq!(m.supported_node_types, vec!["probe-a", "probe-b"]);
        assert_eq!(m.version, "2.1.0");
    }
}
