//! The configuration reference (README.md's key tables), rendered from the key tables so that
//! the documentation says what the loader accepts; a test keeps the two equal.

use std::fmt::Write as _;

use super::engine::EngineConfig;
use super::executor::ExecutorConfig;
use super::schema::Schema;

/// `gamelan config keys [--engine]`: the reference table of the executor's (or the
/// engine's) settings, as README.md shows it.
pub fn reference(engine: bool) -> String {
    if engine {
        markdown::<EngineConfig>()
    } else {
        markdown::<ExecutorConfig>()
    }
}

/// Where a process's table stands in README.md, between `<!-- keys:NAME -->` and
/// `<!-- /keys:NAME -->`.
#[cfg(test)]
pub(crate) fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- keys:{name} -->\n"),
        format!("<!-- /keys:{name} -->"),
    )
}

/// The markdown table of every setting of `C`: keys relative to the process prefix, the
/// built-in default (or the documented note where it derives from other settings) and the
/// meaning.
pub(crate) fn markdown<C: Schema>() -> String {
    let table = C::table();
    let defaults = C::default();
    let relative = |name: &str| format!("`{}`", name.strip_prefix(C::PREFIX).unwrap_or(name));
    let mut out = String::from("| key (all spellings) | default | meaning |\n|---|---|---|\n");
    for key in &table.keys {
        let mut names: Vec<String> = key.names.iter().map(|n| relative(n)).collect();
        names.extend(key.env_aliases.iter().map(|var| format!("env `{var}`")));
        let default = match (key.default_note, (key.get)(&defaults)) {
            (Some(note), _) => note.to_owned(),
            (None, Some(value)) => format!("`{value}`"),
            (None, None) => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {default} | {} |",
            names.join(", "),
            key.meaning
        );
    }
    for family in &table.families {
        let key = relative(&family.full_key(family.member_doc));
        let _ = writeln!(out, "| {key} | - | {} |", family.meaning);
    }
    out
}
