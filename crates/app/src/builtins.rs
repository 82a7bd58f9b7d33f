//! The executors the `gamelan` binary hosts, registered exactly as a user registers theirs.

use gamelan::executors::{
    CalculateTax, Echo, Fault, NotificationSender, OrderValidator, PaymentProcessor, Sleep,
};

gamelan::executor!(
    CalculateTax,
    type = "calculate-tax",
    communication = Grpc,
    max_concurrent_tasks = 50,
    description = "tax = amount * 0.1"
);
gamelan::executor!(
    OrderValidator,
    type = "order-validator",
    communication = Grpc,
    description = "validates an order's items, quantities and prices"
);
gamelan::executor!(
    PaymentProcessor,
    type = "payment-processor",
    communication = Kafka,
    description = "captures a payment, declining amounts above the limit"
);
gamelan::executor!(
    NotificationSender,
    type = "notification-sender",
    communication = Grpc,
    description = "sends an email, sms or push notification"
);
gamelan::executor!(
    Echo,
    type = "echo",
    communication = Grpc,
    max_concurrent_tasks = 1000,
    description = "returns its input (benchmarks)"
);
gamelan::executor!(
    Sleep,
    type = "sleep",
    communication = Grpc,
    max_concurrent_tasks = 100,
    description = "waits 'ms' milliseconds (tests)"
);
gamelan::executor!(
    Fault,
    type = "fault",
    communication = Grpc,
    description = "fails on purpose as 'mode' asks (tests)"
);
