//! The documentation's `order-validator` executor (validates an order's items before payment), hosted in its own process:
//! `cargo run -p gamelan --example order_validator`. The logic lives in `gamelan::executors`, where
//! the `gamelan` binary hosts it too.
use gamelan::executors::OrderValidator;

gamelan::executor!(OrderValidator, type = "order-validator", communication = Grpc);

fn main() -> anyhow::Result<()> {
    let cfg = gamelan::commands::serve::load_executor(&[], &[])?;
    gamelan::observability::logging::init(&cfg.log_filter());
    gamelan::wiring::runtime_builder(&cfg)?.run()?;
    Ok(())
}
