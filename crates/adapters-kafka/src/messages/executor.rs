//! Records on `executor-registrations`, `executor-heartbeats` and
//! `executor-unregistrations`. All three share one shape, so a heartbeat carries enough to
//! register its executor again with an engine that forgot it (restarted without a store).

use std::collections::BTreeMap;

use gamelan_domain::{CommunicationType, ExecutorMetadata};
use gamelan_ports::{HealthStatus, Heartbeat, Registration};
use serde::{Deserialize, Serialize};

use super::MessageError;
use super::time;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorRecord {
    pub executor_id: String,
    #[serde(default)]
    pub executor_type: String,
    #[serde(default)]
    pub supported_types: Vec<String>,
    #[serde(default)]
    pub max_concurrent_tasks: u32,
    #[serde(default)]
    pub version: String,
    #[serde(default, with = "time")]
    pub timestamp: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Registration attributes (`gamelan.executor.version`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    // Load, on heartbeats only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HealthStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_tasks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_tasks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<f64>,
}

impl ExecutorRecord {
    fn base(executor_id: &str, meta: Option<&ExecutorMetadata>, now_ms: u64) -> Self {
        Self {
            executor_id: executor_id.to_owned(),
            executor_type: meta.map(|m| m.executor_type.clone()).unwrap_or_default(),
            supported_types: meta
                .map(|m| m.supported_node_types.clone())
                .unwrap_or_default(),
            max_concurrent_tasks: meta.map_or(0, |m| m.max_concurrent_tasks),
            version: meta.map(|m| m.version.clone()).unwrap_or_default(),
            timestamp: Some(now_ms),
            description: meta.map(|m| m.description.clone()).unwrap_or_default(),
            metadata: BTreeMap::new(),
            status: None,
            current_task_count: None,
            completed_tasks: None,
            failed_tasks: None,
            cpu_usage: None,
            memory_usage: None,
        }
    }

    pub fn registration(r: &Registration, now_ms: u64) -> Self {
        let mut rec = Self::base(&r.executor_id, Some(&r.metadata), now_ms);
        rec.metadata.clone_from(&r.attributes);
        rec
    }

    /// `meta` is the executor's registration, when known, so the engine can re-register it.
    pub fn heartbeat(h: &Heartbeat, meta: Option<&ExecutorMetadata>, now_ms: u64) -> Self {
        let mut rec = Self::base(&h.executor_id, meta, now_ms);
        rec.status = Some(h.status);
        rec.current_task_count = Some(h.current_task_count);
        rec.completed_tasks = Some(h.completed_tasks);
        rec.failed_tasks = Some(h.failed_tasks);
        rec.cpu_usage = Some(h.cpu_usage);
        rec.memory_usage = Some(h.memory_usage);
        rec
    }

    pub fn unregistration(executor_id: &str, meta: Option<&ExecutorMetadata>, now_ms: u64) -> Self {
        Self::base(executor_id, meta, now_ms)
    }

    /// The registration this record announces (a Kafka executor, pulling from its topic).
    pub fn to_registration(&self) -> Result<Registration, MessageError> {
        if self.executor_id.trim().is_empty() {
            return Err(MessageError::EmptyField("executorId"));
        }
        if self.executor_type.trim().is_empty() {
            return Err(MessageError::EmptyField("executorType"));
        }
        let mut metadata = ExecutorMetadata::new(self.executor_type.clone())
            .communication(CommunicationType::Kafka)
            .node_types(self.supported_types.iter().cloned())
            .description(self.description.clone());
        if self.max_concurrent_tasks > 0 {
            metadata = metadata.max_concurrent_tasks(self.max_concurrent_tasks);
        }
        if !self.version.is_empty() {
            metadata = metadata.version(self.version.clone());
        }
        Ok(Registration {
            executor_id: self.executor_id.clone(),
            metadata,
            endpoint: String::new(),
            attributes: self.metadata.clone(),
        })
    }

    pub fn to_heartbeat(&self) -> Heartbeat {
        Heartbeat {
            executor_id: self.executor_id.clone(),
            current_task_count: self.current_task_count.unwrap_or(0),
            status: self.status.unwrap_or_default(),
            completed_tasks: self.completed_tasks.unwrap_or(0),
            failed_tasks: self.failed_tasks.unwrap_or(0),
            cpu_usage: self.cpu_usage.unwrap_or(0.0),
            memory_usage: self.memory_usage.unwrap_or(0.0),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Decodes one executor record; the executor id is required.
pub fn decode_record(payload: Option<&[u8]>) -> Result<ExecutorRecord, MessageError> {
    let payload = payload
        .filter(|p| !p.is_empty())
        .ok_or(MessageError::NoValue)?;
    let rec: ExecutorRecord =
        serde_json::from_slice(payload).map_err(|e| MessageError::from_json(&e))?;
    if rec.executor_id.trim().is_empty() {
        return Err(MessageError::EmptyField("executorId"));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn registration() -> Registration {
        Registration {
            executor_id: "rt1-tax".into(),
            metadata: ExecutorMetadata::new("tax")
                .communication(CommunicationType::Kafka)
                .max_concurrent_tasks(8)
                .node_types(["tax", "vat"])
                .version("2.0.0"),
            endpoint: String::new(),
            attributes: BTreeMap::from([("gamelan.executor.version".into(), "2.0.0".into())]),
        }
    }

    #[test]
    fn registration_record_shape_and_round_trip() {
        let rec = ExecutorRecord::registration(&registration(), 1_700_000_000_000);
        let v: Value = serde_json::from_slice(&rec.encode()).unwrap();
        assert_eq!(
            v,
            json!({
                "executorId": "rt1-tax",
                "executorType": "tax",
                "supportedTypes": ["tax", "vat"],
                "maxConcurrentTasks": 8,
                "version": "2.0.0",
                "timestamp": "2023-11-14T22:13:20.000Z",
                "metadata": {"gamelan.executor.version": "2.0.0"}
            })
        );
        let back = decode_record(Some(&rec.encode())).unwrap();
        assert_eq!(back.to_registration().unwrap(), registration());
    }

    #[test]
    fn heartbeat_record_carries_load_and_identity() {
        let hb = Heartbeat {
            executor_id: "rt1-tax".into(),
            current_task_count: 3,
            status: HealthStatus::Busy,
            completed_tasks: 10,
            failed_tasks: 1,
            cpu_usage: 0.5,
            memory_usage: 0.25,
        };
        let reg = registration();
        let rec = ExecutorRecord::heartbeat(&hb, Some(&reg.metadata), 7);
        let v: Value = serde_json::from_slice(&rec.encode()).unwrap();
        assert_eq!(v["status"], "BUSY");
        assert_eq!(v["currentTaskCount"], 3);
        assert_eq!(v["executorType"], "tax");
        let back = decode_record(Some(&rec.encode())).unwrap();
        assert_eq!(back.to_heartbeat(), hb);
        assert_eq!(
            back.to_registration().unwrap().metadata.executor_type,
            "tax"
        );
    }

    #[test]
    fn records_without_an_executor_are_errors() {
        assert_eq!(
            decode_record(Some(br#"{"executorId":" "}"#)),
            Err(MessageError::EmptyField("executorId"))
        );
        assert!(matches!(
            decode_record(Some(b"{}")),
            Err(MessageError::Shape(_))
        ));
        let rec = decode_record(Some(br#"{"executorId":"x"}"#)).unwrap();
        assert_eq!(
            rec.to_registration(),
            Err(MessageError::EmptyField("executorType"))
        );
        // Defaults fill what the record leaves out.
        let rec = decode_record(Some(br#"{"executorId":"x","executorType":"echo"}"#)).unwrap();
        let reg = rec.to_registration().unwrap();
        assert_eq!(
            reg.metadata.max_concurrent_tasks,
            ExecutorMetadata::DEFAULT_MAX_CONCURRENT_TASKS
        );
        assert_eq!(reg.metadata.communication_type, CommunicationType::Kafka);
    }
}
