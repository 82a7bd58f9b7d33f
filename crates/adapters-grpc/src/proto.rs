//! Code generated from `proto/` at build time.

#![allow(clippy::pedantic, clippy::all, missing_docs, unreachable_pub)]

/// `tech.kayys.gamelan.grpc.v1`: the executor-facing engine service.
pub mod v1 {
    tonic::include_proto!("tech.kayys.gamelan.grpc.v1");
}

/// `tech.kayys.gamelan.dispatcher`: push delivery served by executors.
pub mod dispatcher {
    tonic::include_proto!("tech.kayys.gamelan.dispatcher");
}

/// `gamelan.bench.v1`: the raw echo baseline.
pub mod bench {
    tonic::include_proto!("gamelan.bench.v1");
}
