//! JWT (HS256) as the Java SDK uses it: the executor signs short-lived tokens naming itself;
//! the engine accepts any token with a valid signature, the expected issuer and an unexpired
//! `exp` (other claims optional), so tokens from any standard JWT tool work too.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gamelan_ports::{AuthError, TokenSource, TokenVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mints tokens for one executor process and re-mints them when a fifth of their life is
/// left, so a request never leaves with a token about to expire.
pub struct JwtSigner {
    key: EncodingKey,
    template: Claims,
    lifetime: Duration,
    cached: Mutex<Option<(String, u64)>>,
}

impl JwtSigner {
    pub fn new(
        secret: &str,
        issuer: &str,
        subject: &str,
        lifetime: Duration,
        name: Option<String>,
        version: Option<String>,
        tenant_id: Option<String>,
    ) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            template: Claims {
                iss: issuer.to_owned(),
                sub: subject.to_owned(),
                exp: 0,
                iat: 0,
                executor_name: name,
                executor_version: version,
                tenant_id,
            },
            lifetime: lifetime.max(Duration::from_secs(10)),
            cached: Mutex::new(None),
        }
    }

    fn mint(&self, now: u64) -> Option<(String, u64)> {
        let exp = now + self.lifetime.as_secs();
        let claims = Claims {
            exp,
            iat: now,
            ..self.template.clone()
        };
        match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key) {
            Ok(t) => Some((t, exp)),
            Err(e) => {
                log::error!(target: "gamelan.executor.error", "cannot sign token: {e}");
                None
            }
        }
    }
}

impl TokenSource for JwtSigner {
    fn bearer(&self) -> Option<String> {
        let now = now_secs();
        let refresh_margin = self.lifetime.as_secs() / 5;
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*cached {
            Some((token, exp)) if now + refresh_margin < *exp => Some(token.clone()),
            _ => {
                let fresh = self.mint(now)?;
                let token = fresh.0.clone();
                *cached = Some(fresh);
                Some(token)
            }
        }
    }
}

/// A ready-made token (`security.jwt.token`), sent as is.
pub struct StaticToken(pub String);

impl TokenSource for StaticToken {
    fn bearer(&self) -> Option<String> {
        Some(self.0.clone())
    }
}

/// The engine's check: signature, issuer and expiry (with a small leeway for clock skew).
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    issuer: String,
}

/// Clock skew tolerated on `exp`.
pub const LEEWAY: Duration = Duration::from_secs(30);

impl JwtVerifier {
    pub fn new(secret: &str, issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_aud = false;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            issuer: issuer.to_owned(),
        }
    }

    /// Decodes and checks a raw token (no `Bearer ` prefix).
    pub fn check(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
                    expected: self.issuer.clone(),
                    found: unverified_issuer(token).unwrap_or_else(|| "<none>".into()),
                },
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Malformed(format!("required claim '{c}' is missing"))
                }
                _ => AuthError::Malformed(e.to_string()),
            })
    }
}

/// The `iss` claim read without verification, only to say what was wrong.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?.trim();
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                AuthError::Malformed("authorization header must be 'Bearer <token>'".into())
            })?
            .trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        self.check(token).map(|c| c.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str, issuer: &str) -> JwtSigner {
        JwtSigner::new(
            secret,
            issuer,
            "rt-echo",
            Duration::from_secs(300),
            Some("svc".into()),
            Some("1.0.0".into()),
            None,
        )
    }

    #[test]
    fn signed_tokens_verify_and_carry_the_subject() {
        let v = JwtVerifier::new("s3cret", "gamelan-executor");
        let token = signer("s3cret", "gamelan-executor").bearer().unwrap();
        assert_eq!(
            v.verify(Some(&format!("Bearer {token}"))),
            Ok("rt-echo".into())
        );
    }

    #[test]
    fn each_failure_says_what_was_wrong() {
        let v = JwtVerifier::new("s3cret", "gamelan-executor");
        assert_eq!(v.verify(None), Err(AuthError::Missing));
        assert!(matches!(
            v.verify(Some("Basic abc")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            v.verify(Some("Bearer not.a.jwt")),
            Err(AuthError::Malformed(_))
        ));
        let other = signer("wrong", "gamelan-executor").bearer().unwrap();
        assert_eq!(
            v.verify(Some(&format!("Bearer {other}"))),
            Err(AuthError::BadSignature)
        );
        let wrong_iss = signer("s3cret", "someone-else").bearer().unwrap();
        assert_eq!(
            v.verify(Some(&format!("Bearer {wrong_iss}"))),
            Err(AuthError::WrongIssuer {
                expected: "gamelan-executor".into(),
                found: "someone-else".into()
            })
        );
        let expired = Claims {
            iss: "gamelan-executor".into(),
            sub: String::new(),
            exp: now_secs() - 3600,
            iat: 0,
            executor_name: None,
            executor_version: None,
            tenant_id: None,
        };
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(
            v.verify(Some(&format!("Bearer {t}"))),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn minimal_third_party_tokens_are_accepted() {
        #[derive(Serialize)]
        struct Minimal {
            iss: &'static str,
            exp: u64,
        }
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Minimal {
                iss: "gamelan-executor",
                exp: now_secs() + 60,
            },
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        let v = JwtVerifier::new("s3cret", "gamelan-executor");
        assert!(v.verify(Some(&format!("Bearer {t}"))).is_ok());
    }

    #[test]
    fn tokens_are_reused_until_near_expiry() {
        let s = signer("k", "i");
        assert_eq!(s.bearer(), s.bearer());
    }
}
