//! Merging the layers (defaults < files in order < environment < `--set`), applying them to
//! the typed configuration and collecting every problem and warning on the way.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::error::{ConfigError, Origin, Problem, Warning, WarningKind};
use super::files;
use super::interpolate;
use super::schema::{Checker, Provenance, Schema, Suspicion, Table, Target};
use super::secret::MASK;

/// Everything a configuration is loaded from. Built up with the methods below; the
/// environment is passed in explicitly so that tests (and embedders) never touch the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
    overrides: Vec<(String, String)>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds files; a later file overrides an earlier one.
    #[must_use]
    pub fn files<P: Into<PathBuf> + Clone>(mut self, files: &[P]) -> Self {
        self.files.extend(files.iter().cloned().map(Into::into));
        self
    }

    /// Adds environment variables (typically `std::env::vars()`).
    #[must_use]
    pub fn env(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    /// An override above every other layer, as `--set key=value` gives it. The key may
    /// leave out the process prefix (`heartbeat.interval` for
    /// `gamelan.executor.heartbeat.interval`).
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Parses `KEY=VALUE` (the `--set` argument syntax).
    pub fn set_arg(self, arg: &str) -> Result<Self, ConfigError> {
        match arg.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(self.set(k.trim(), v.trim())),
            _ => Err(ConfigError {
                problems: vec![Problem::Value {
                    key: arg.to_owned(),
                    value: String::new(),
                    expected: "KEY=VALUE".into(),
                    origin: Origin::Override,
                }],
                warnings: Vec::new(),
            }),
        }
    }

    pub fn file_list(&self) -> &[PathBuf] {
        &self.files
    }
}

/// A successfully loaded configuration with what `config check` shows about it.
#[derive(Debug, Clone)]
pub struct Loaded<C> {
    pub config: C,
    pub warnings: Vec<Warning>,
    /// Every setting with its effective value (secrets masked) and origin, in table order.
    pub effective: Vec<Effective>,
}

/// One line of `gamelan config check` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The canonical key.
    pub key: String,
    /// The value as printed (secrets masked); `None` when the setting is unset.
    pub value: Option<String>,
    pub origin: Origin,
    /// The spelling the source used, when it differs from the canonical key.
    pub spelled_as: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    File(usize),
    Env,
    Override,
}

struct Assignment {
    /// Order of arrival, so that problems are reported in file and line order.
    seq: usize,
    spelled: String,
    value: String,
    /// Why `value` could not be expanded (`${VAR}` unset without default).
    unresolved: Option<String>,
    origin: Origin,
    layer: Layer,
}

pub(crate) fn load<C: Schema>(sources: &Sources) -> Result<Loaded<C>, ConfigError> {
    let table = C::table();
    let env: BTreeMap<&str, &str> = sources
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let lookup = |name: &str| env.get(name).map(|v| (*v).to_owned());
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut winners: BTreeMap<Target, Assignment> = BTreeMap::new();

    for (index, path) in sources.files.iter().enumerate() {
        let entries = match files::read(path) {
            Ok(entries) => entries,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        for entry in entries {
            let Some(target) = table.resolve(&entry.key) else {
                if is_unknown::<C>(&entry.key) {
                    warnings.push(unknown_key(table, &entry.key, entry.origin));
                }
                continue;
            };
            // A value that cannot be expanded is only a problem if nothing overrides it.
            let (value, unresolved) = match interpolate::expand(&entry.value, &lookup) {
                Ok(v) => (v, None),
                Err(expected) => (entry.value, Some(expected)),
            };
            let assignment = Assignment {
                seq: 0,
                spelled: entry.key,
                value,
                unresolved,
                origin: entry.origin,
                layer: Layer::File(index),
            };
            assign(table, &mut winners, target, assignment, &mut warnings);
        }
    }

    for (var, value) in &env {
        match table.resolve_env(var) {
            Some((target, spelled)) => {
                let assignment = Assignment {
                    seq: 0,
                    spelled,
                    value: (*value).to_owned(),
                    unresolved: None,
                    origin: Origin::Env {
                        var: (*var).to_owned(),
                    },
                    layer: Layer::Env,
                };
                assign(table, &mut winners, target, assignment, &mut warnings);
            }
            None if var.starts_with(C::ENV_PREFIX) => warnings.push(Warning {
                kind: WarningKind::UnknownKey,
                key: (*var).to_owned(),
                origin: Origin::Env {
                    var: (*var).to_owned(),
                },
                message: "environment variable matches no known key and is ignored".into(),
                suggestion: table.nearest_env(var).map(str::to_owned),
            }),
            None => {}
        }
    }

    for (key, value) in &sources.overrides {
        let full = if key.starts_with("gamelan.") || key.starts_with("quarkus.") {
            key.clone()
        } else {
            format!("{}{key}", C::PREFIX)
        };
        match table.resolve(&full) {
            Some(target) => {
                let assignment = Assignment {
                    seq: 0,
                    spelled: full,
                    value: value.clone(),
                    unresolved: None,
                    origin: Origin::Override,
                    layer: Layer::Override,
                };
                assign(table, &mut winners, target, assignment, &mut warnings);
            }
            None => problems.push(Problem::Value {
                key: key.clone(),
                value: value.clone(),
                expected: format!(
                    "a known key (nearest: {})",
                    table.nearest(&full).unwrap_or("none")
                ),
                origin: Origin::Override,
            }),
        }
    }

    let mut config = C::default();
    let mut provenance: Provenance = HashMap::new();
    let mut ordered: Vec<(&Target, &Assignment)> = winners.iter().collect();
    ordered.sort_by_key(|(_, a)| a.seq);
    for (target, a) in ordered {
        let value = a.value.trim();
        let result = match (&a.unresolved, target) {
            (Some(expected), _) => Err(expected.clone()),
            (None, Target::Key(i)) => (table.keys[*i].set)(&mut config, value),
            (None, Target::Member(j, m)) => (table.families[*j].set)(&mut config, m, value),
        };
        match result {
            Ok(()) => {
                provenance.insert(
                    table.full_key(target),
                    (a.spelled.clone(), a.origin.clone()),
                );
            }
            Err(expected) => problems.push(Problem::Value {
                key: a.spelled.clone(),
                value: if table.is_secret(target) {
                    MASK.into()
                } else {
                    value.to_owned()
                },
                expected,
                origin: a.origin.clone(),
            }),
        }
    }

    config.finish(&|key| provenance.contains_key(key));
    let mut checker = Checker {
        problems: Vec::new(),
        warnings: Vec::new(),
        provenance: &provenance,
    };
    config.validate(&mut checker);
    problems.extend(checker.problems);
    warnings.extend(checker.warnings);

    if !problems.is_empty() {
        return Err(ConfigError { problems, warnings });
    }
    let effective = effective(table, &config, &provenance);
    Ok(Loaded {
        config,
        warnings,
        effective,
    })
}

/// Records an assignment (its `seq` is set here), later layers and later lines replacing
/// earlier ones. Two different
/// spellings of one setting with different values in the same file are almost always a
/// leftover from a copy-paste: say which one is used.
fn assign<C>(
    table: &Table<C>,
    winners: &mut BTreeMap<Target, Assignment>,
    target: Target,
    a: Assignment,
    warnings: &mut Vec<Warning>,
) {
    if let Target::Member(j, member) = &target {
        let family = &table.families[*j];
        if let Some(suspicion) = (family.suspect)(member) {
            let (message, suggestion) = match suspicion {
                Suspicion::LooksLike(key) => (
                    "not a typed setting; passed to the client library unchanged",
                    Some(format!("{}{key}", family.prefix)),
                ),
                Suspicion::Malformed => (
                    "client library property names are dotted lower case without '-'; passed on unchanged",
                    None,
                ),
            };
            warnings.push(Warning {
                kind: WarningKind::SuspiciousPassThrough,
                key: a.spelled.clone(),
                origin: a.origin.clone(),
                message: message.into(),
                suggestion,
            });
        }
    }
    if let Some(previous) = winners.get(&target)
        && previous.layer == a.layer
        && matches!(a.layer, Layer::File(_))
        && previous.spelled != a.spelled
        && previous.value != a.value
    {
        warnings.push(Warning {
            kind: WarningKind::ConflictingSpellings,
            key: a.spelled.clone(),
            origin: a.origin.clone(),
            message: format!(
                "also set as {} ({}) to a different value; the later one is used",
                previous.spelled, previous.origin
            ),
            suggestion: None,
        });
    }
    // Arrival order: one more than any assignment seen so far.
    let seq = winners.values().map(|p| p.seq + 1).max().unwrap_or(0);
    winners.insert(target, Assignment { seq, ..a });
}

fn is_unknown<C: Schema>(key: &str) -> bool {
    key.starts_with("gamelan.") && !C::FOREIGN.iter().any(|f| key.starts_with(f))
}

fn unknown_key<C>(table: &Table<C>, key: &str, origin: Origin) -> Warning {
    Warning {
        kind: WarningKind::UnknownKey,
        key: key.to_owned(),
        origin,
        message: "unknown key, ignored".into(),
        suggestion: table.nearest(key).map(str::to_owned),
    }
}

fn effective<C>(table: &Table<C>, config: &C, provenance: &Provenance) -> Vec<Effective> {
    let mut out = Vec::new();
    let mut push = |key: String, value: Option<String>, secret: bool| {
        let (origin, spelled_as) = match provenance.get(&key) {
            Some((spelled, origin)) => (origin.clone(), (spelled != &key).then(|| spelled.clone())),
            None => (Origin::Default, None),
        };
        let value = value.map(|v| if secret { MASK.to_owned() } else { v });
        out.push(Effective {
            key,
            value,
            origin,
            spelled_as,
        });
    };
    for (i, key) in table.keys.iter().enumerate() {
        let secret = table.is_secret(&Target::Key(i));
        push(key.canonical().to_owned(), (key.get)(config), secret);
    }
    for (j, family) in table.families.iter().enumerate() {
        for (member, value) in (family.list)(config) {
            let secret = table.is_secret(&Target::Member(j, member.clone()));
            push(family.full_key(&member), Some(value), secret);
        }
    }
    out
}
