//! Reading typed values out of a task's JSON context, with business errors that name the
//! field and what was wrong.

use gamelan_domain::{ExecutionError, JsonObject};
use serde_json::Value;

pub(crate) fn field<'a>(
    ctx: &'a JsonObject,
    name: &str,
    code: &str,
) -> Result<&'a Value, ExecutionError> {
    ctx.get(name).filter(|v| !v.is_null()).ok_or_else(|| {
        ExecutionError::business(code, format!("'{name}' is required in the task context"))
    })
}

/// A number, or a string holding one (forms often send numbers as text).
pub(crate) fn number(
    ctx: &JsonObject,
    name: &str,
    missing: &str,
    invalid: &str,
) -> Result<f64, ExecutionError> {
    let v = field(ctx, name, missing)?;
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|x| x.is_finite()).ok_or_else(|| {
        ExecutionError::business(invalid, format!("'{name}' must be a number, got {v}"))
    })
}

pub(crate) fn string<'a>(
    ctx: &'a JsonObject,
    name: &str,
    missing: &str,
    invalid: &str,
) -> Result<&'a str, ExecutionError> {
    let v = field(ctx, name, missing)?;
    v.as_str().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        ExecutionError::business(
            invalid,
            format!("'{name}' must be a non-empty string, got {v}"),
        )
    })
}

/// A short stable id derived from `parts`, so repeated executions of one task agree.
pub(crate) fn stable_id(prefix: &str, parts: &[&str]) -> String {
    // FNV-1a: deterministic across processes, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{prefix}-{h:016x}")
}
