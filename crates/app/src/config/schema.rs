//! The key tables: every accepted spelling of every setting, how to parse it into the typed
//! configuration and how to print it back. One table per process; the loader is generic.

use std::collections::HashMap;
use std::fmt::Display;
use std::time::Duration;

use super::error::{Origin, Problem, Warning, WarningKind};
use super::kafka::{self, HasKafka};
use super::logging::{self, HasLog};
use super::secret::{MASK, is_secret_key};
use super::value::show_duration;

/// Parses a value into its field; on failure says what would have been accepted.
pub(crate) type Setter<C> = fn(&mut C, &str) -> Result<(), String>;
/// The field's value as `config check` prints it; `None` when unset.
pub(crate) type Getter<C> = fn(&C) -> Option<String>;

/// One typed setting and every key that reaches it. Built by [`keys!`], one line a setting.
pub(crate) struct Key<C> {
    /// Full keys; the first is the canonical spelling used in output.
    pub names: Vec<String>,
    /// Environment variables that reach this key besides the mechanical mapping of a name
    /// (the Java runtime's compose file uses `GAMELAN_EXECUTOR_NAME` for `executor-name`).
    pub env_aliases: Vec<&'static str>,
    pub set: Setter<C>,
    pub get: Getter<C>,
    /// The default as documented, where the built-in value alone would mislead (a default
    /// derived from other settings); otherwise the reference shows the built-in value.
    pub default_note: Option<&'static str>,
    /// One line for the configuration reference.
    pub meaning: &'static str,
}

impl<C> Key<C> {
    pub fn canonical(&self) -> &str {
        &self.names[0]
    }
}

/// A key as written in a table: relative to the process prefix, unless it is a `quarkus.*`
/// key shared with Quarkus.
pub(crate) fn full_name(prefix: &str, name: &str) -> String {
    if name.starts_with("quarkus.") {
        name.to_owned()
    } else {
        format!("{prefix}{name}")
    }
}

/// The key table of a configuration type, one line a setting:
///
/// `"name" | "alias" [env "VAR"] => field.path: parser, "meaning" [, default "note"];`
///
/// The parser (`fn(&str) -> Result<T, String>`, mostly from `value`) both reads and
/// validates the value; `config check` prints the field with [`Show`](super::value::Show).
/// The first form reaches into a section of the configuration through accessor functions
/// (`HasKafka::kafka`/`kafka_mut`), so that shared sections have one table.
macro_rules! keys {
    ($C:ty, $prefix:expr; $($rest:tt)*) => {
        $crate::config::schema::keys!(
            $C, $prefix, ::std::convert::identity, ::std::convert::identity; $($rest)*
        )
    };
    ($C:ty, $prefix:expr, $get:path, $get_mut:path; $(
        $($name:literal)|+ $(env $alias:literal)? => $($field:ident).+ : $parse:expr,
        $meaning:literal $(, default $note:literal)?;
    )*) => {
        vec![$($crate::config::schema::Key::<$C> {
            names: vec![$($crate::config::schema::full_name($prefix, $name)),+],
            env_aliases: vec![$($alias)?],
            set: |c: &mut $C, v: &str| {
                $get_mut(c).$($field).+ = ($parse)(v)?;
                Ok(())
            },
            get: |c: &$C| $crate::config::value::Show::show(&$get(c).$($field).+),
            default_note: [$($note)?].first().copied(),
            meaning: $meaning,
        }),*]
    };
}

pub(crate) use keys;

/// What every configuration type has alike: its loading entry points and its Kafka and log
/// sections.
macro_rules! config_type {
    ($C:ty) => {
        impl $C {
            /// Loads `files` (later ones override earlier ones) and `env` (over the files),
            /// then validates. The error lists every problem found.
            pub fn load(
                files: &[::std::path::PathBuf],
                env: impl IntoIterator<Item = (String, String)>,
            ) -> Result<(Self, Vec<$crate::config::Warning>), $crate::config::ConfigError> {
                let sources = $crate::config::Sources::new().files(files).env(env);
                let loaded = Self::load_sources(&sources)?;
                Ok((loaded.config, loaded.warnings))
            }

            /// Like `load`, with `--set` overrides and the effective values and their
            /// origins for display.
            pub fn load_sources(
                sources: &$crate::config::Sources,
            ) -> Result<$crate::config::Loaded<Self>, $crate::config::ConfigError> {
                $crate::config::load::load(sources)
            }

            /// An `env_logger` filter built from the configured levels.
            pub fn log_filter(&self) -> String {
                let prefix = <Self as $crate::config::schema::Schema>::PREFIX;
                self.log.filter_spec(prefix.trim_end_matches('.'))
            }
        }

        impl $crate::config::kafka::HasKafka for $C {
            fn kafka(&self) -> &$crate::config::KafkaSettings {
                &self.kafka
            }
            fn kafka_mut(&mut self) -> &mut $crate::config::KafkaSettings {
                &mut self.kafka
            }
        }

        impl $crate::config::logging::HasLog for $C {
            fn log(&self) -> &$crate::config::LogSettings {
                &self.log
            }
            fn log_mut(&mut self) -> &mut $crate::config::LogSettings {
                &mut self.log
            }
        }
    };
}

pub(crate) use config_type;

/// What looks wrong about a family member's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspicion {
    /// Probably meant this typed key (relative to the family's prefix).
    LooksLike(&'static str),
    /// Not a well-formed name for this family.
    Malformed,
}

pub(crate) type Suspect = fn(&str) -> Option<Suspicion>;

/// Open-ended keys under a prefix: Kafka client pass-through properties
/// (`gamelan.executor.kafka.sasl.password`) and log categories
/// (`quarkus.log.category."gamelan.executor.task".level`).
pub(crate) struct Family<C> {
    pub prefix: String,
    pub suffix: &'static str,
    pub env_prefix: String,
    pub env_suffix: &'static str,
    /// Whether to print the member in quotes (a log category contains dots of its own).
    pub quote: bool,
    pub set: fn(&mut C, &str, &str) -> Result<(), String>,
    pub list: fn(&C) -> Vec<(String, String)>,
    pub suspect: Suspect,
    /// The member as the configuration reference names it (`<client property>`).
    pub member_doc: &'static str,
    pub meaning: &'static str,
}

impl<C> Family<C> {
    pub fn full_key(&self, member: &str) -> String {
        if self.quote {
            format!("{}\"{member}\"{}", self.prefix, self.suffix)
        } else {
            format!("{}{member}{}", self.prefix, self.suffix)
        }
    }

    fn member_of(&self, key: &str) -> Option<String> {
        let middle = key.strip_prefix(&self.prefix)?.strip_suffix(self.suffix)?;
        let middle = middle
            .strip_prefix('"')
            .and_then(|m| m.strip_suffix('"'))
            .unwrap_or(middle);
        (!middle.is_empty()).then(|| middle.to_owned())
    }

    /// `GAMELAN_EXECUTOR_KAFKA_SASL_PASSWORD` -> `sasl.password`;
    /// `QUARKUS_LOG_CATEGORY__GAMELAN_EXECUTOR_TASK__LEVEL` -> `gamelan.executor.task`.
    fn member_of_env(&self, var: &str) -> Option<String> {
        let middle = var
            .strip_prefix(&self.env_prefix)?
            .strip_suffix(self.env_suffix)?;
        let middle = middle.trim_matches('_');
        (!middle.is_empty()).then(|| middle.to_ascii_lowercase().replace('_', "."))
    }
}

/// Which setting a key reaches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    Key(usize),
    Member(usize, String),
}

pub(crate) struct Table<C> {
    pub keys: Vec<Key<C>>,
    pub families: Vec<Family<C>>,
    by_name: HashMap<String, usize>,
    by_env: HashMap<String, (usize, usize)>,
}

/// The environment variable a key maps to: upper case, `.`, `-` and `"` folded to `_`
/// (`gamelan.executor.engine-url` and `gamelan.executor.engine.url` both become
/// `GAMELAN_EXECUTOR_ENGINE_URL`). Matching a variable against the env form of every known
/// key is the same as trying every split of its underscores into `.` and `-`.
pub(crate) fn env_form(name: &str) -> String {
    name.chars()
        .filter(|&c| c != '"')
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

impl<C> Table<C> {
    pub fn new(keys: Vec<Key<C>>, families: Vec<Family<C>>) -> Self {
        let mut by_name = HashMap::new();
        let mut by_env = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            for (n, name) in key.names.iter().enumerate() {
                let previous = by_name.insert(name.clone(), i);
                debug_assert!(previous.is_none(), "duplicate key {name}");
                by_env.entry(env_form(name)).or_insert((i, n));
            }
            for alias in &key.env_aliases {
                by_env.insert((*alias).to_owned(), (i, 0));
            }
        }
        Self {
            keys,
            families,
            by_name,
            by_env,
        }
    }

    /// A process's table: its own keys, then the Kafka and log keys and families every
    /// process has.
    pub fn process(mut keys: Vec<Key<C>>) -> Self
    where
        C: Schema + HasKafka + HasLog,
    {
        keys.extend(kafka::keys(C::PREFIX));
        keys.extend(logging::keys(C::PREFIX));
        let families = vec![
            kafka::pass_through(C::PREFIX, C::ENV_PREFIX),
            logging::categories(),
        ];
        Self::new(keys, families)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Resolves a key as written in a file (or on the command line).
    pub fn resolve(&self, key: &str) -> Option<Target> {
        if let Some(i) = self.index(key) {
            return Some(Target::Key(i));
        }
        self.families
            .iter()
            .enumerate()
            .find_map(|(j, f)| f.member_of(key).map(|m| Target::Member(j, m)))
    }

    /// Resolves an environment variable; returns the target and the key spelling it stands
    /// for.
    pub fn resolve_env(&self, var: &str) -> Option<(Target, String)> {
        if let Some(&(i, n)) = self.by_env.get(var) {
            return Some((Target::Key(i), self.keys[i].names[n].clone()));
        }
        self.families.iter().enumerate().find_map(|(j, f)| {
            f.member_of_env(var)
                .map(|m| (Target::Member(j, m.clone()), f.full_key(&m)))
        })
    }

    pub fn full_key(&self, target: &Target) -> String {
        match target {
            Target::Key(i) => self.keys[*i].canonical().to_owned(),
            Target::Member(j, m) => self.families[*j].full_key(m),
        }
    }

    pub fn is_secret(&self, target: &Target) -> bool {
        match target {
            Target::Key(i) => self.keys[*i].names.iter().any(|n| is_secret_key(n)),
            Target::Member(_, m) => is_secret_key(m),
        }
    }

    /// The known key closest to a misspelt one.
    pub fn nearest(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .flat_map(|k| k.names.iter())
            .min_by_key(|n| strsim::levenshtein(key, n))
            .map(String::as_str)
    }

    /// The known variable closest to a misspelt one.
    pub fn nearest_env(&self, var: &str) -> Option<&str> {
        self.by_env
            .keys()
            .min_by_key(|n| (strsim::levenshtein(var, n), n.as_str()))
            .map(String::as_str)
    }
}

/// A process's configuration type: its keys, its derived defaults and its cross-field rules.
pub(crate) trait Schema: Default + Sized + 'static {
    /// The namespace of this process's keys (`gamelan.executor.`).
    const PREFIX: &'static str;
    /// Unknown variables under this prefix are warned about (`GAMELAN_EXECUTOR_`).
    const ENV_PREFIX: &'static str;
    /// Keys of the other process, which may share a file; ignored without a warning.
    const FOREIGN: &'static [&'static str];

    fn table() -> &'static Table<Self>;

    /// Fills defaults that depend on other values; `explicit(key)` tells whether the
    /// canonical `key` was given by some source.
    fn finish(&mut self, explicit: &dyn Fn(&str) -> bool);

    /// Rules that span several keys.
    fn validate(&self, check: &mut Checker<'_>);
}

/// Where each applied key came from, by full canonical key: the spelling used and the origin.
pub(crate) type Provenance = HashMap<String, (String, Origin)>;

/// Collects cross-field problems (and warnings), naming each key as the user spelled it.
pub(crate) struct Checker<'a> {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Warning>,
    pub provenance: &'a Provenance,
}

impl Checker<'_> {
    /// Whether some source gave the canonical `key`.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.provenance.contains_key(key)
    }

    /// A key that was read but does nothing in this process: say so, it does not stop it.
    pub fn warn(&mut self, key: &str, message: impl Into<String>) {
        let (spelled, origin) = self
            .provenance
            .get(key)
            .cloned()
            .unwrap_or_else(|| (key.to_owned(), Origin::Default));
        self.warnings.push(Warning {
            kind: WarningKind::NoEffect,
            key: spelled,
            origin,
            message: message.into(),
            suggestion: None,
        });
    }

    /// `<prefix><section>.backoff-max` must not be below `backoff-initial`, or delays would
    /// shrink.
    pub fn backoff(&mut self, prefix: &str, section: &str, initial: Duration, max: Duration) {
        if max < initial {
            self.fail(
                &format!("{prefix}{section}.backoff-max"),
                show_duration(max),
                format!(
                    "at least {section}.backoff-initial ({})",
                    show_duration(initial)
                ),
            );
        }
    }

    pub fn fail(&mut self, key: &str, value: impl Display, expected: impl Into<String>) {
        let (spelled, origin) = self
            .provenance
            .get(key)
            .cloned()
            .unwrap_or_else(|| (key.to_owned(), Origin::Default));
        let value = if is_secret_key(key) {
            MASK.to_owned()
        } else {
            value.to_string()
        };
        self.problems.push(Problem::Value {
            key: spelled,
            value,
            expected: expected.into(),
            origin,
        });
    }
}
