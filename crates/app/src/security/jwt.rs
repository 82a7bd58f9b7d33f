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
    /// Defaults only so that a token without it is refused by the validation, naming the
    /// missing claim, instead of failing to deserialize; `iss` and `exp` are required.
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
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

/// The engine's check: signature (HS256 only), issuer, expiry and not-before, the times with a
/// small leeway for clock skew. All of it is jsonwebtoken's [`Validation`]; this type only
/// turns its verdicts into [`AuthError`]s that say what was wrong.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    issuer: String,
}

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// The only algorithm accepted: the executors sign with it, and accepting a second one (or
/// `none`) would only widen what a forged token may try.
const ACCEPTED: Algorithm = Algorithm::HS256;

impl JwtVerifier {
    pub fn new(secret: &str, issuer: &str) -> Self {
        let mut validation = Validation::new(ACCEPTED);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
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
            .map_err(|e| self.describe(token, &e))
    }

    fn describe(&self, token: &str, e: &jsonwebtoken::errors::Error) -> AuthError {
        let not_accepted = |found: String| AuthError::AlgorithmNotAccepted {
            found,
            accepted: format!("{ACCEPTED:?}"),
        };
        match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
                expected: self.issuer.clone(),
                found: unverified_issuer(token).unwrap_or_else(|| "<none>".into()),
            },
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::InvalidClaimFormat(c) => {
                AuthError::Malformed(format!("claim '{c}' is not a number of seconds"))
            }
            ErrorKind::InvalidAlgorithm => {
                not_accepted(announced_algorithm(token).unwrap_or_else(|| "<unknown>".into()))
            }
            // An algorithm jsonwebtoken does not know at all (`none` among them) fails as a
            // header it cannot read; say which algorithm it was when the header names one.
            _ => match announced_algorithm(token) {
                Some(alg) if alg != format!("{ACCEPTED:?}") => not_accepted(alg),
                _ => AuthError::Malformed(e.to_string()),
            },
        }
    }
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: String,
}

/// The `iss` claim read without verification, only to say what was wrong.
fn unverified_issuer(token: &str) -> Option<String> {
    jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
        .ok()
        .map(|c| c.iss)
}

#[derive(Deserialize)]
struct AlgorithmOnly {
    alg: String,
}

/// The header's `alg` read without verification, only to name a refused algorithm: a token
/// the library already refused, perhaps because it does not know the algorithm (`none`).
fn announced_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    serde_json::from_slice::<AlgorithmOnly>(&bytes)
        .ok()
        .map(|h| h.alg)
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

    fn hs(alg: Algorithm, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap()
    }

    #[test]
    fn times_algorithms_and_required_claims_are_enforced() {
        use base64::Engine as _;
        let v = JwtVerifier::new("s3cret", "gamelan-executor");
        let now = now_secs();
        let iss = "gamelan-executor";
        let check = |t: &str| v.verify(Some(&format!("Bearer {t}")));
        let future = serde_json::json!({"iss": iss, "exp": now + 3600, "nbf": now + 600});
        assert_eq!(
            check(&hs(Algorithm::HS256, &future)),
            Err(AuthError::NotYetValid)
        );
        let skewed = serde_json::json!({"iss": iss, "exp": now + 3600, "nbf": now + 20});
        assert!(check(&hs(Algorithm::HS256, &skewed)).is_ok());
        let just_expired = serde_json::json!({"iss": iss, "exp": now - 20});
        assert!(check(&hs(Algorithm::HS256, &just_expired)).is_ok());
        let long_expired = serde_json::json!({"iss": iss, "exp": now - 40});
        assert_eq!(
            check(&hs(Algorithm::HS256, &long_expired)),
            Err(AuthError::Expired)
        );
        let no_exp = serde_json::json!({"iss": iss});
        assert_eq!(
            check(&hs(Algorithm::HS256, &no_exp)),
            Err(AuthError::MissingClaim("exp".into()))
        );
        let bad_nbf = serde_json::json!({"iss": iss, "exp": now + 60, "nbf": "soon"});
        assert!(matches!(
            check(&hs(Algorithm::HS256, &bad_nbf)),
            Err(AuthError::Malformed(m)) if m.contains("nbf")
        ));
        let valid = serde_json::json!({"iss": iss, "exp": now + 60});
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(
                check(&hs(alg, &valid)),
                Err(AuthError::AlgorithmNotAccepted {
                    found: format!("{alg:?}"),
                    accepted: "HS256".into()
                })
            );
        }
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none"})),
            b64(&valid)
        );
        assert_eq!(
            check(&none),
            Err(AuthError::AlgorithmNotAccepted {
                found: "none".into(),
                accepted: "HS256".into()
            })
        );
    }

    #[test]
    fn tokens_are_reused_until_near_expiry() {
        let s = signer("k", "i");
        assert_eq!(s.bearer(), s.bearer());
    }
}
