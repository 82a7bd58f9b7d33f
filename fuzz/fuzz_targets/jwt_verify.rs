//! The engine's token check with arbitrary input. Mode byte (bit 0): either the rest is the
//! `authorization` header value as received, or it is `header JSON`, NUL, `claims JSON`,
//! signed here with the engine's secret so that the claim checks behind the signature are
//! reached too.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use gamelan::security::JwtVerifier;
use gamelan_ports::TokenVerifier;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzzing-secret";

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| JwtVerifier::new(SECRET, "gamelan-executor"))
}

fn signed(header: &[u8], claims: &[u8]) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).ok()?;
    Some(format!("Bearer {message}.{signature}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let header = String::from_utf8_lossy(rest);
        let _ = verifier().verify(Some(&header));
    } else {
        let (header, claims) = match rest.iter().position(|b| *b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
        };
        if let Some(token) = signed(header, claims) {
            let _ = verifier().verify(Some(&token));
        }
    }
});
