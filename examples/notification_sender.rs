//! The documentation's `notification-sender` executor (sends an email, sms or push notification), hosted in its own process:
//! `cargo run -p gamelan --example notification_sender`. The logic lives in `gamelan::executors`, where
//! the `gamelan` binary hosts it too.
use gamelan::executors::NotificationSender;

gamelan::executor!(NotificationSender, type = "notification-sender", communication = Grpc);

fn main() -> anyhow::Result<()> {
    let cfg = gamelan::commands::serve::load_executor(&[], &[])?;
    gamelan::observability::logging::init(&cfg.log_filter());
    gamelan::wiring::runtime_builder(&cfg)?.run()?;
    Ok(())
}
