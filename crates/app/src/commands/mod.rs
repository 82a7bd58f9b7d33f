//! What the `gamelan` subcommands do, as library functions so tests can drive them.

pub mod bench;
pub mod demo;
pub mod follow;
pub mod serve;
pub mod submit;
