//! Parsing of single values. Each parser returns, on failure, a phrase saying what would
//! have been accepted; the loader adds the key, the value and its origin.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use gamelan_domain::CommunicationType;
use log::LevelFilter;
use url::Url;

use super::secret::{MASK, Secret};

/// The unit of a bare number in a duration key (`heartbeat.interval=30` is seconds,
/// `error.backoff-initial=1000` is milliseconds, as in the Java runtime's documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    Seconds,
    Millis,
}

pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("true or false".into()),
    }
}

pub(crate) fn number<T: FromStr>(v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("a whole number from 0{}", at_most::<T>()))
}

/// A count that must be at least 1 (queue sizes, thread counts, batch sizes).
pub(crate) fn positive<T: FromStr + PartialOrd + Default>(v: &str) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("a whole number greater than 0{}", at_most::<T>())),
    }
}

/// The upper bound worth telling a user about (nobody needs to hear 2^64-1).
fn at_most<T>() -> &'static str {
    match std::mem::size_of::<T>() {
        2 => " up to 65535",
        4 => " up to 4294967295",
        _ => "",
    }
}

/// A TCP port; 0 asks the OS for any free port.
pub(crate) fn port(v: &str) -> Result<u16, String> {
    v.parse()
        .map_err(|_| "a port number between 0 and 65535 (0 = any free port)".into())
}

/// A duration: a bare number in the key's unit (decimals allowed), or a value with a unit
/// such as `30s`, `500ms`, `2m`, `1h 30m`.
pub(crate) fn duration(v: &str, unit: Unit) -> Result<Duration, String> {
    let expected = || {
        let unit = match unit {
            Unit::Seconds => "seconds",
            Unit::Millis => "milliseconds",
        };
        format!("a duration: a number of {unit} or a value such as 30s, 500ms, 2m")
    };
    if let Ok(n) = v.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return Err(expected());
        }
        let secs = match unit {
            Unit::Seconds => n,
            Unit::Millis => n / 1000.0,
        };
        return Duration::try_from_secs_f64(secs).map_err(|_| expected());
    }
    humantime::parse_duration(v).map_err(|_| expected())
}

pub(crate) fn positive_duration(v: &str, unit: Unit) -> Result<Duration, String> {
    match duration(v, unit) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a duration greater than 0".into()),
        Err(e) => Err(e),
    }
}

/// The duration parsers the key tables name: bare numbers in seconds must be positive;
/// bare numbers in milliseconds may be 0 (no delay) unless the setting is a wait.
pub(crate) fn positive_secs(v: &str) -> Result<Duration, String> {
    positive_duration(v, Unit::Seconds)
}

pub(crate) fn millis(v: &str) -> Result<Duration, String> {
    duration(v, Unit::Millis)
}

pub(crate) fn positive_millis(v: &str) -> Result<Duration, String> {
    positive_duration(v, Unit::Millis)
}

/// A byte size: a bare number of bytes or a value such as `4MiB`, `512KiB`, `1MB`.
pub(crate) fn size(v: &str) -> Result<u64, String> {
    let expected = || "a size greater than 0: a number of bytes or a value such as 4MiB".into();
    let n = match v.parse::<u64>() {
        Ok(n) => n,
        Err(_) => bytesize::ByteSize::from_str(v)
            .map_err(|_| expected())?
            .as_u64(),
    };
    if n == 0 { Err(expected()) } else { Ok(n) }
}

/// A byte size that is also a length in memory.
pub(crate) fn memory_size(v: &str) -> Result<usize, String> {
    usize::try_from(size(v)?).map_err(|_| "a size that fits in memory".to_owned())
}

/// A multiplier for exponential backoff: at least 1, or delays would shrink.
pub(crate) fn multiplier(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(m) if m.is_finite() && m >= 1.0 => Ok(m),
        _ => Err("a number >= 1 (backoff delays must not shrink)".into()),
    }
}

/// How executors talk to the engine.
pub(crate) fn transport(v: &str) -> Result<CommunicationType, String> {
    CommunicationType::from_str(v).map_err(|_| "one of grpc, kafka, rest, local".to_owned())
}

/// An absolute `http://` or `https://` URL with a host.
pub(crate) fn http_url(v: &str) -> Result<Url, String> {
    let expected = || {
        "an absolute http:// or https:// URL with a host, e.g. http://gamelan-engine:8080".into()
    };
    let url = Url::parse(v).map_err(|_| expected())?;
    let scheme_ok = matches!(url.scheme(), "http" | "https");
    if scheme_ok && url.host_str().is_some_and(|h| !h.is_empty()) {
        Ok(url)
    } else {
        Err(expected())
    }
}

/// A non-empty string.
pub(crate) fn text(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("a non-empty value".into())
    } else {
        Ok(v.to_owned())
    }
}

/// A non-empty path.
pub(crate) fn path(v: &str) -> Result<PathBuf, String> {
    text(v).map(PathBuf::from)
}

/// A non-empty secret, masked wherever it is printed.
pub(crate) fn secret(v: &str) -> Result<Secret, String> {
    text(v).map(Secret::new)
}

/// An optional setting: an empty value (e.g. `${VAR:}`) means "not set", anything else must
/// parse.
pub(crate) fn optional<T>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Option<T>, String> {
    move |v| {
        if v.is_empty() {
            Ok(None)
        } else {
            parse(v).map(Some)
        }
    }
}

/// A comma-separated `host:port` list, as Kafka clients take it.
pub(crate) fn host_port_list(v: &str) -> Result<String, String> {
    let expected = || "a comma-separated list of host:port, e.g. kafka:29092".to_owned();
    let mut parts = v.split(',').map(str::trim).peekable();
    if parts.peek().is_none() {
        return Err(expected());
    }
    for part in parts {
        let Some((host, port)) = part.rsplit_once(':') else {
            return Err(expected());
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(expected());
        }
    }
    Ok(v.split(',').map(str::trim).collect::<Vec<_>>().join(","))
}

/// A log level in Quarkus/JBoss spelling (DEBUG, WARN, FINE, SEVERE, ...) or Rust spelling.
pub(crate) fn level(v: &str) -> Result<LevelFilter, String> {
    Ok(match v.to_ascii_uppercase().as_str() {
        "OFF" => LevelFilter::Off,
        "FATAL" | "SEVERE" | "ERROR" => LevelFilter::Error,
        "WARN" | "WARNING" => LevelFilter::Warn,
        "INFO" | "CONFIG" => LevelFilter::Info,
        "DEBUG" | "FINE" => LevelFilter::Debug,
        "TRACE" | "FINER" | "FINEST" | "ALL" => LevelFilter::Trace,
        _ => return Err("a log level: OFF, ERROR, WARN, INFO, DEBUG or TRACE".into()),
    })
}

/// Durations as `config check` prints them (`30s`, `1m`, `10ms`).
pub(crate) fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A value as `config check` prints it (in a form its parser reads back); `None` when unset.
pub(crate) trait Show {
    fn show(&self) -> Option<String>;
}

macro_rules! show_with_to_string {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

show_with_to_string!(bool, u16, u32, u64, usize, f64, String, Secret, LevelFilter);

impl Show for CommunicationType {
    fn show(&self) -> Option<String> {
        Some(self.as_str().to_ascii_lowercase())
    }
}

impl Show for Duration {
    fn show(&self) -> Option<String> {
        Some(show_duration(*self))
    }
}

impl Show for PathBuf {
    fn show(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

/// A URL as printed: without any password it may carry.
impl Show for Url {
    fn show(&self) -> Option<String> {
        let mut u = self.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some(MASK));
        }
        Some(u.to_string())
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self) -> Option<String> {
        self.as_ref().and_then(Show::show)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_durations_use_the_key_unit() {
        assert_eq!(duration("30", Unit::Seconds), Ok(Duration::from_secs(30)));
        assert_eq!(duration("1000", Unit::Millis), Ok(Duration::from_secs(1)));
        assert_eq!(
            duration("1.5", Unit::Seconds),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            duration("500ms", Unit::Seconds),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(duration("2m", Unit::Millis), Ok(Duration::from_secs(120)));
        assert!(duration("-1", Unit::Seconds).is_err());
        assert!(duration("soon", Unit::Seconds).is_err());
        assert!(positive_duration("0", Unit::Seconds).is_err());
    }

    #[test]
    fn sizes_accept_bytes_and_units() {
        assert_eq!(size("1048576"), Ok(1_048_576));
        assert_eq!(size("4MiB"), Ok(4 * 1024 * 1024));
        assert!(size("0").is_err());
        assert!(size("lots").is_err());
    }

    #[test]
    fn counts_ports_and_multipliers() {
        assert_eq!(positive::<usize>("5"), Ok(5));
        assert!(positive::<usize>("0").is_err());
        assert!(positive::<usize>("-3").is_err());
        assert_eq!(port("0"), Ok(0));
        assert!(port("65536").is_err());
        assert_eq!(multiplier("2"), Ok(2.0));
        assert!(multiplier("0.5").is_err());
        assert!(multiplier("NaN").is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(http_url("http://gamelan-engine:8080").is_ok());
        assert!(http_url("https://x").is_ok());
        assert!(http_url("gamelan-engine:8080").is_err());
        assert!(http_url("not a url").is_err());
        assert!(http_url("file:///etc").is_err());
    }

    #[test]
    fn host_port_lists() {
        assert_eq!(host_port_list("a:1, b:2").as_deref(), Ok("a:1,b:2"));
        assert!(host_port_list("kafka").is_err());
        assert!(host_port_list("kafka:x").is_err());
        assert!(host_port_list("a:1,").is_err());
    }

    #[test]
    fn quarkus_levels_map_to_rust_levels() {
        assert_eq!(level("DEBUG"), Ok(LevelFilter::Debug));
        assert_eq!(level("warning"), Ok(LevelFilter::Warn));
        assert_eq!(level("FINEST"), Ok(LevelFilter::Trace));
        assert!(level("LOUD").is_err());
    }
}
