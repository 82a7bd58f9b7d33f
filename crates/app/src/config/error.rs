//! What loading reports: where a value came from, what is wrong with it, what looks odd.

use std::fmt;
use std::path::PathBuf;

/// Where an effective value came from. Printed next to every value by `gamelan config check`
/// so an operator can see which layer to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default (or a default derived from other values).
    Default,
    /// A configuration file; `line` is known for `.properties` files, not for YAML.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable.
    Env { var: String },
    /// A `--set KEY=VALUE` override on the command line.
    Override,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File {
                path,
                line: Some(line),
            } => write!(f, "file {}:{line}", path.display()),
            Self::File { path, line: None } => write!(f, "file {}", path.display()),
            Self::Env { var } => write!(f, "env {var}"),
            Self::Override => f.write_str("--set"),
        }
    }
}

/// One reason the configuration cannot be used. Every problem names the key, the value as
/// given (masked for secrets) and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A file could not be read or parsed at all.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A value is malformed, out of range or inconsistent with another value.
    #[error("{key} = {value:?} ({origin}): expected {expected}")]
    Value {
        key: String,
        value: String,
        expected: String,
        origin: Origin,
    },
}

impl Problem {
    /// The key the problem is about, as the user spelled it.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::File { .. } => None,
            Self::Value { key, .. } => Some(key),
        }
    }
}

/// Why a [`Warning`] was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A `gamelan.*` key (or `GAMELAN_*` variable) that no setting reads.
    UnknownKey,
    /// Two spellings of one setting in the same file disagree; the later one is used.
    ConflictingSpellings,
    /// A Kafka pass-through property that looks like a typo of a typed key.
    SuspiciousPassThrough,
    /// A documented key this process reads but that cannot do anything here.
    NoEffect,
}

/// Something that does not stop the process but probably is not what the user meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    /// The key (or environment variable) as the user spelled it.
    pub key: String,
    pub origin: Origin,
    pub message: String,
    /// The nearest known key, when there is one.
    pub suggestion: Option<String>,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.origin, self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean {s}?")?;
        }
        Ok(())
    }
}

/// The configuration is unusable. Carries every problem found, not just the first, so one
/// run of `gamelan config check` is enough to fix a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration ({} problem{}):{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, render(.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
    /// Warnings found on the way; an unknown key is often the cause of a missing value.
    pub warnings: Vec<Warning>,
}

impl ConfigError {
    /// Whether some problem is about `key` (any spelling given by the user).
    pub fn mentions(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key() == Some(key))
    }
}

fn render(problems: &[Problem]) -> String {
    problems.iter().fold(String::new(), |mut s, p| {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
        s
    })
}
