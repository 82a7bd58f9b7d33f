//! The JSON messages on the topics (docs/PROTOCOL.md) and their conversions to and from
//! the domain. Everything decoded is validated; bad input is an error value naming the
//! problem, never a panic.

mod executor;
mod result;
mod task;
pub(crate) mod time;

pub use executor::{ExecutorRecord, decode_record};
pub use result::{ErrorMessage, TaskResultMessage, decode_result, encode_result};
pub use task::{PoisonTask, TaskMessage, decode_task, encode_task};

use gamelan_domain::{ResultError, TaskError};

/// Why a message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message has no value")]
    NoValue,
    #[error("the message is not JSON: {0}")]
    NotJson(String),
    /// Valid JSON of the wrong shape: a required field missing or of the wrong type.
    #[error("the message does not have the expected fields: {0}")]
    Shape(String),
    #[error("invalid task: {0}")]
    Task(#[from] TaskError),
    #[error("invalid result: {0}")]
    Result(#[from] ResultError),
    #[error("field '{0}' must not be empty")]
    EmptyField(&'static str),
}

impl MessageError {
    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Self::Shape(e.to_string()),
            Category::Io | Category::Syntax | Category::Eof => Self::NotJson(e.to_string()),
        }
    }
}
