//! The Gamelan executor runtime, the reference engine and everything the `gamelan` command
//! runs. Transports are chosen with the `grpc`, `kafka` and `rest` cargo features.
pub mod commands;
pub mod config;
pub mod engine;
pub mod executors;
pub mod observability;
pub mod runtime;
pub mod sdk;
pub mod security;
pub mod wiring;
