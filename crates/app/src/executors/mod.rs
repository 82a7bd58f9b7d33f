//! The executors from the Java runtime's documentation, shipped as real code: the `gamelan` binary hosts them and
//! the examples show how each is written. `echo`, `sleep` and `fault` serve tests and
//! benchmarks.

mod echo;
mod fault;
mod input;
mod notification;
mod order;
mod payment;
mod sleep;
mod tax;

pub use echo::Echo;
pub use fault::Fault;
pub use notification::NotificationSender;
pub use order::OrderValidator;
pub use payment::PaymentProcessor;
pub use sleep::Sleep;
pub use tax::CalculateTax;
