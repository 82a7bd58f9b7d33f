//! Timestamps on the wire: RFC 3339 UTC text (how a Java `Instant` is written by Jackson
//! with `WRITE_DATES_AS_TIMESTAMPS` off, the Quarkus default). Reading also accepts numbers,
//! what Jackson writes with that option on: seconds (with a fraction), or epoch milliseconds
//! from clients that send those.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Numbers at or above this are epoch milliseconds (as seconds it would be year 5138).
const MILLIS_THRESHOLD: f64 = 1e11;

/// The last millisecond RFC 3339 text can hold (9999-12-31T23:59:59.999Z). A later instant
/// (a peer may send any number) is written as epoch milliseconds instead, which reads back
/// as the same value; formatting it as text would fail inside the JSON writer.
const MAX_TEXT_MS: u64 = 253_402_300_799_999;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Epoch milliseconds of RFC 3339 text, `None` when it is not that.
pub(crate) fn parse_text(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    Some(
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

fn from_number(n: f64) -> u64 {
    if !n.is_finite() || n <= 0.0 {
        0
    } else if n >= MILLIS_THRESHOLD {
        n as u64
    } else {
        (n * 1000.0) as u64
    }
}

/// `Option<u64>` epoch milliseconds, `None` (and 0) written as `null`.
#[allow(
    clippy::ref_option,
    reason = "the signature serde's `with` attribute calls"
)]
pub(crate) fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(ms) if *ms > MAX_TEXT_MS => s.serialize_u64(*ms),
        Some(ms) if *ms > 0 => s.collect_str(&humantime::format_rfc3339_millis(
            UNIX_EPOCH + Duration::from_millis(*ms),
        )),
        _ => s.serialize_none(),
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(TimestampVisitor)
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp, epoch seconds or epoch milliseconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_text(v)
            .map(Some)
            .ok_or_else(|| E::custom(format!("'{v}' is not an RFC 3339 timestamp")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        // Milliseconds as given: through f64 they would lose precision above 2^53.
        if v as f64 >= MILLIS_THRESHOLD {
            Ok(Some(v))
        } else {
            Ok(Some(from_number(v as f64)))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(from_number(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(from_number(v)))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_TEXT_MS;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(default, with = "super")]
        at: Option<u64>,
    }

    #[test]
    fn text_round_trips_at_millisecond_precision() {
        let t = T {
            at: Some(1_700_000_000_123),
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"at":"2023-11-14T22:13:20.123Z"}"#);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
    }

    #[test]
    fn numbers_are_seconds_or_millis_by_magnitude() {
        let s: T = serde_json::from_str(r#"{"at":1700000000.5}"#).unwrap();
        assert_eq!(s.at, Some(1_700_000_000_500));
        let ms: T = serde_json::from_str(r#"{"at":1700000000123}"#).unwrap();
        assert_eq!(ms.at, Some(1_700_000_000_123));
        let none: T = serde_json::from_str(r#"{"at":null}"#).unwrap();
        assert_eq!(none.at, None);
        let absent: T = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.at, None);
        assert!(serde_json::from_str::<T>(r#"{"at":"yesterday"}"#).is_err());
    }

    /// Found with the kafka_messages fuzz target (its decode/re-encode check; the input is
    /// one of its seeds): a timestamp past year 9999 decoded fine, but writing it again
    /// panicked inside serde_json ("there should be an error"), because RFC 3339 text cannot
    /// hold it. Such instants are now written as epoch milliseconds.
    #[test]
    fn instants_past_year_9999_are_written_as_millis_and_read_back() {
        for ms in [
            MAX_TEXT_MS + 1,
            1_000_000_000_000_000,
            9_007_199_254_740_993,
            u64::MAX,
        ] {
            let t = T { at: Some(ms) };
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!(r#"{{"at":{ms}}}"#));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
        }
        let last = T {
            at: Some(MAX_TEXT_MS),
        };
        let json = serde_json::to_string(&last).unwrap();
        assert_eq!(json, r#"{"at":"9999-12-31T23:59:59.999Z"}"#);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), last);
    }
}
