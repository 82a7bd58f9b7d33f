//! What an operator sees: health endpoints, Prometheus metrics, log categories.

pub mod http;
pub mod logging;
pub mod metrics;
mod window_max;

pub use http::{HealthSource, HttpServer};
pub use metrics::RuntimeMetrics;
