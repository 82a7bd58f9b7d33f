//! Values that must never reach a log line, a terminal or a `Debug` dump.

use std::fmt;

/// What every masked value prints as.
pub const MASK: &str = "****";

/// A secret string (JWT signing key, static token, broker password). `Debug` and `Display`
/// print [`MASK`]; the only way to the real value is [`Secret::expose`], so leaking it takes a
/// deliberate call that shows up in review.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the code that signs or authenticates with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Whether a key (a typed key or a pass-through client property such as `sasl.password`)
/// holds something secret. Deliberately broad: masking a harmless value costs nothing,
/// printing a password costs a rotation.
pub(crate) fn is_secret_key(key: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "password",
        "secret",
        "token",
        "jaas",
        "oauthbearer.config",
        "key.pem",
        "credential",
    ];
    let key = key.to_ascii_lowercase();
    MARKERS.iter().any(|m| key.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), MASK);
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secret_keys_are_recognised() {
        assert!(is_secret_key("gamelan.executor.jwt.secret"));
        assert!(is_secret_key("gamelan.executor.security.jwt.token"));
        assert!(is_secret_key("gamelan.executor.kafka.sasl.password"));
        assert!(is_secret_key("sasl.jaas.config"));
        assert!(!is_secret_key("gamelan.executor.jwt.issuer"));
        assert!(!is_secret_key("gamelan.executor.kafka.bootstrap-servers"));
    }
}
