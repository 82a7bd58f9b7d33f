//! The Gamelan executor runtime, the reference engine and everything the `gamelan` command
//! runs. Transports are chosen with the `grpc`, `kafka` and `rest` cargo features.
