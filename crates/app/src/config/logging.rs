//! Log levels: the root level (`quarkus.log.level`), this process's level
//! (`gamelan.executor.log.level`) and per-category levels in the Java runtime's Quarkus spelling
//! (`quarkus.log.category."gamelan.executor.runtime".level=DEBUG`). Categories are `log`
//! targets (`gamelan.executor.runtime`, `gamelan.executor.task`, `gamelan.executor.error`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use log::LevelFilter;

use super::schema::{Family, Key, keys};
use super::value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `quarkus.log.level`: everything without a more specific level (default INFO).
    pub root: LevelFilter,
    /// `<prefix>log.level`: every target under this process's namespace.
    pub level: Option<LevelFilter>,
    /// Per-target levels; the most specific (longest) matching target wins.
    pub categories: BTreeMap<String, LevelFilter>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            root: LevelFilter::Info,
            level: None,
            categories: BTreeMap::new(),
        }
    }
}

impl LogSettings {
    /// The levels as an `env_logger` filter (`info,gamelan.executor=debug,...`), for
    /// `env_logger::Builder::parse_filters`. `namespace` is the target `level` applies to
    /// (`gamelan.executor`). A `RUST_LOG` set by the operator should take precedence.
    pub fn filter_spec(&self, namespace: &str) -> String {
        let lower = |l: LevelFilter| l.as_str().to_ascii_lowercase();
        let mut spec = lower(self.root);
        if let Some(l) = self.level {
            let _ = write!(spec, ",{namespace}={}", lower(l));
        }
        for (target, l) in &self.categories {
            let _ = write!(spec, ",{target}={}", lower(*l));
        }
        spec
    }
}

pub(crate) trait HasLog {
    fn log(&self) -> &LogSettings;
    fn log_mut(&mut self) -> &mut LogSettings;
}

pub(crate) fn keys<C: HasLog>(prefix: &str) -> Vec<Key<C>> {
    keys!(C, prefix, HasLog::log, HasLog::log_mut;
        "log.level" => level: |v| value::level(v).map(Some), "level of everything under this process's namespace; `RUST_LOG` overrides";
        "quarkus.log.level" => root: value::level, "level of everything else";
    )
}

pub(crate) fn categories<C: HasLog>() -> Family<C> {
    Family {
        prefix: "quarkus.log.category.".into(),
        suffix: ".level",
        env_prefix: "QUARKUS_LOG_CATEGORY_".into(),
        env_suffix: "_LEVEL",
        quote: true,
        set: |c: &mut C, member, v| {
            c.log_mut()
                .categories
                .insert(member.to_owned(), value::level(v)?);
            Ok(())
        },
        list: |c| {
            c.log()
                .categories
                .iter()
                .map(|(k, l)| (k.clone(), l.to_string()))
                .collect()
        },
        suspect: |_| None,
        member_doc: "<category>",
        meaning: "level of one category (`gamelan.executor.runtime`, `.task`, `.error`)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_spec_lists_root_namespace_and_categories() {
        let mut s = LogSettings::default();
        assert_eq!(s.filter_spec("gamelan.executor"), "info");
        s.level = Some(LevelFilter::Warn);
        s.categories
            .insert("gamelan.executor.runtime".into(), LevelFilter::Debug);
        assert_eq!(
            s.filter_spec("gamelan.executor"),
            "info,gamelan.executor=warn,gamelan.executor.runtime=debug"
        );
    }
}
