//! Executor metadata and the registry that routes a node type to its executor.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How an executor talks to the engine (wire `CommunicationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum CommunicationType {
    #[default]
    Grpc,
    Kafka,
    Rest,
    Local,
}

impl CommunicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "GRPC",
            Self::Kafka => "KAFKA",
            Self::Rest => "REST",
            Self::Local => "LOCAL",
        }
    }
}

impl fmt::Display for CommunicationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown communication type '{0}' (expected grpc, kafka, rest or local)")]
pub struct UnknownCommunicationType(pub String);

impl FromStr for CommunicationType {
    type Err = UnknownCommunicationType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Self::Grpc),
            "kafka" => Ok(Self::Kafka),
            "rest" | "http" => Ok(Self::Rest),
            "local" => Ok(Self::Local),
            _ => Err(UnknownCommunicationType(s.to_owned())),
        }
    }
}

/// What an executor declares about itself (the Java `@Executor` annotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorMetadata {
    pub executor_type: String,
    pub communication_type: CommunicationType,
    /// A hint to the engine's balancer and a hard per-type limit in the runtime's pool.
    pub max_concurrent_tasks: u32,
    pub supported_node_types: Vec<String>,
    pub version: String,
    pub description: String,
}

impl ExecutorMetadata {
    pub const DEFAULT_MAX_CONCURRENT_TASKS: u32 = 10;
    pub const DEFAULT_VERSION: &'static str = "1.0.0";

    pub fn new(executor_type: impl Into<String>) -> Self {
        Self {
            executor_type: executor_type.into(),
            communication_type: CommunicationType::default(),
            max_concurrent_tasks: Self::DEFAULT_MAX_CONCURRENT_TASKS,
            supported_node_types: Vec::new(),
            version: Self::DEFAULT_VERSION.to_owned(),
            description: String::new(),
        }
    }

    #[must_use]
    pub fn communication(mut self, c: CommunicationType) -> Self {
        self.communication_type = c;
        self
    }

    #[must_use]
    pub fn max_concurrent_tasks(mut self, n: u32) -> Self {
        self.max_concurrent_tasks = n;
        self
    }

    #[must_use]
    pub fn node_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.supported_node_types = types.into_iter().map(Into::into).collect();
        self
    }

    #[must_use]
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.version = v.into();
        self
    }

    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    /// True if this executor handles `node_type`: by its supported list, else by its own type.
    pub fn handles(&self, node_type: &str) -> bool {
        if self.supported_node_types.is_empty() {
            self.executor_type == node_type
        } else {
            self.supported_node_types.iter().any(|t| t == node_type)
                || self.executor_type == node_type
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("executor type '{0}' is already registered")]
    Duplicate(String),
    #[error("executor type must not be empty")]
    EmptyType,
    #[error("executor '{0}': max concurrent tasks must be > 0")]
    ZeroConcurrency(String),
}

/// Executor type -> metadata (and whatever value the caller attaches, e.g. the executor).
///
/// Lookup by node type first honours explicit `supported_node_types`, then falls back to an
/// executor whose type equals the node type, as the Java registry does.
#[derive(Debug, Clone)]
pub struct ExecutorRegistry<V = ()> {
    entries: Vec<(ExecutorMetadata, V)>,
    by_type: HashMap<String, usize>,
    by_node_type: HashMap<String, usize>,
}

impl<V> Default for ExecutorRegistry<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            by_type: HashMap::new(),
            by_node_type: HashMap::new(),
        }
    }
}

impl<V> ExecutorRegistry<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, metadata: ExecutorMetadata, value: V) -> Result<(), RegistryError> {
        if metadata.executor_type.is_empty() {
            return Err(RegistryError::EmptyType);
        }
        if metadata.max_concurrent_tasks == 0 {
            return Err(RegistryError::ZeroConcurrency(metadata.executor_type));
        }
        if self.by_type.contains_key(&metadata.executor_type) {
            return Err(RegistryError::Duplicate(metadata.executor_type));
        }
        let idx = self.entries.len();
        self.by_type.insert(metadata.executor_type.clone(), idx);
        for nt in &metadata.supported_node_types {
            self.by_node_type.entry(nt.clone()).or_insert(idx);
        }
        self.entries.push((metadata, value));
        Ok(())
    }

    pub fn find_by_type(&self, executor_type: &str) -> Option<(&ExecutorMetadata, &V)> {
        self.by_type
            .get(executor_type)
            .map(|&i| (&self.entries[i].0, &self.entries[i].1))
    }

    pub fn find_by_node_type(&self, node_type: &str) -> Option<(&ExecutorMetadata, &V)> {
        self.by_node_type
            .get(node_type)
            .or_else(|| self.by_type.get(node_type))
            .map(|&i| (&self.entries[i].0, &self.entries[i].1))
    }

    pub fn all(&self) -> impl Iterator<Item = (&ExecutorMetadata, &V)> {
        self.entries.iter().map(|(m, v)| (m, v))
    }

    pub fn size(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let m = ExecutorMetadata::new("calculate-tax");
        assert_eq!(m.max_concurrent_tasks, 10);
        assert_eq!(m.version, "1.0.0");
        assert_eq!(m.communication_type, CommunicationType::Grpc);
    }

    #[test]
    fn registry_rejects_duplicates_and_finds_by_node_type() {
        let mut r = ExecutorRegistry::new();
        r.register(ExecutorMetadata::new("tax").node_types(["vat", "sales"]), 1)
            .unwrap();
        r.register(ExecutorMetadata::new("echo"), 2).unwrap();
        assert_eq!(
            r.register(ExecutorMetadata::new("tax"), 3),
            Err(RegistryError::Duplicate("tax".into()))
        );
        assert_eq!(r.size(), 2);
        assert_eq!(r.find_by_node_type("vat").map(|(_, v)| *v), Some(1));
        assert_eq!(r.find_by_node_type("echo").map(|(_, v)| *v), Some(2));
        assert_eq!(r.find_by_node_type("tax").map(|(_, v)| *v), Some(1));
        assert!(r.find_by_node_type("nope").is_none());
        assert_eq!(
            r.find_by_type("echo")
                .map(|(m, _)| m.executor_type.as_str()),
            Some("echo")
        );
        assert_eq!(r.all().count(), 2);
    }

    #[test]
    fn registry_rejects_zero_concurrency_and_empty_type() {
        let mut r = ExecutorRegistry::<()>::new();
        assert_eq!(
            r.register(ExecutorMetadata::new(""), ()),
            Err(RegistryError::EmptyType)
        );
        assert!(matches!(
            r.register(ExecutorMetadata::new("x").max_concurrent_tasks(0), ()),
            Err(RegistryError::ZeroConcurrency(_))
        ));
    }

    #[test]
    fn communication_type_parses_case_insensitively() {
        assert_eq!("GRPC".parse(), Ok(CommunicationType::Grpc));
        assert_eq!("kafka".parse(), Ok(CommunicationType::Kafka));
        assert!("smoke".parse::<CommunicationType>().is_err());
    }
}
