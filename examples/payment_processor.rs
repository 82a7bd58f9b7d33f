//! The documentation's `payment-processor` executor (captures a payment; declared KAFKA as in the documentation (falls back to the configured transport when Kafka is not configured)), hosted in its own process:
//! `cargo run -p gamelan --example payment_processor`. The logic lives in `gamelan::executors`, where
//! the `gamelan` binary hosts it too.
use gamelan::executors::PaymentProcessor;

gamelan::executor!(PaymentProcessor, type = "payment-processor", communication = Kafka);

fn main() -> anyhow::Result<()> {
    let cfg = gamelan::commands::serve::load_executor(&[], &[])?;
    gamelan::observability::logging::init(&cfg.log_filter());
    gamelan::wiring::runtime_builder(&cfg)?.run()?;
    Ok(())
}
