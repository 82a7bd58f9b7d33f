//! Kafka transport for the Gamelan executor runtime and reference engine.
