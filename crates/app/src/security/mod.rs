//! Authentication between executors and the engine: HS256 JWTs minted by executors and
//! checked by the engine, plugged into every transport through the port traits.

mod jwt;

pub use jwt::{Claims, JwtSigner, JwtVerifier, StaticToken};
