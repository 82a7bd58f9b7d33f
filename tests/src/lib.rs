//! Support for end-to-end tests: locate the `gamelan` binary, spawn processes, wait on conditions.
