//! Reading configuration files into flat `key = value` entries, in file order.

use std::path::{Path, PathBuf};

use java_properties::{LineContent, PropertiesIter};
use serde_norway::Value;

use super::error::{Origin, Problem};

/// One `key = value` as found in a file (or the environment), before interpretation.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// The files looked for when none are named, in the order they are applied (Quarkus looks
/// in `config/` after the working directory, so that one wins).
const CONVENTIONAL: [&str; 6] = [
    "application.properties",
    "application.yaml",
    "application.yml",
    "config/application.properties",
    "config/application.yaml",
    "config/application.yml",
];

/// The conventional configuration files that exist under `dir`.
pub fn discover(dir: &Path) -> Vec<PathBuf> {
    CONVENTIONAL
        .iter()
        .map(|name| dir.join(name))
        .filter(|p| p.is_file())
        .collect()
}

pub(crate) fn read(path: &Path) -> Result<Vec<RawEntry>, Problem> {
    let fail = |message: String| Problem::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("properties") => properties(&text, path).map_err(fail),
        Some("yml" | "yaml") => yaml(&text, path).map_err(fail),
        _ => Err(fail(
            "unsupported file type (expected .properties, .yml or .yaml)".into(),
        )),
    }
}

/// `.properties` in UTF-8 (as Quarkus reads them, not ISO-8859-1).
///
/// The Java runtime's documentation writes `key=50  # comment`, which plain Java properties would read as
/// the value `50  # comment`; a `#` preceded by whitespace therefore starts a comment here.
/// A value that really needs ` #` can come from the environment through `${VAR}`.
fn properties(text: &str, path: &Path) -> Result<Vec<RawEntry>, String> {
    let mut entries = Vec::new();
    for line in PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8) {
        let line = line.map_err(|e| e.to_string())?;
        let number = line.line_number();
        if let LineContent::KVPair(key, value) = line.consume_content() {
            entries.push(RawEntry {
                key,
                value: strip_inline_comment(&value).to_owned(),
                origin: Origin::File {
                    path: path.to_owned(),
                    line: Some(number),
                },
            });
        }
    }
    Ok(entries)
}

fn strip_inline_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    let cut = (1..bytes.len())
        .find(|&i| bytes[i] == b'#' && bytes[i - 1].is_ascii_whitespace())
        .unwrap_or(bytes.len());
    value[..cut].trim_end()
}

/// YAML, flattened to dotted keys (`gamelan: {executor: {engine: {url: x}}}` becomes
/// `gamelan.executor.engine.url = x`). A list of scalars becomes a comma-separated value;
/// `null` means "not set".
fn yaml(text: &str, path: &Path) -> Result<Vec<RawEntry>, String> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    match doc {
        Value::Null => {}
        Value::Mapping(_) => flatten("", &doc, path, &mut entries)?,
        _ => return Err("expected a mapping of keys at the top level".into()),
    }
    Ok(entries)
}

fn flatten(
    prefix: &str,
    value: &Value,
    path: &Path,
    out: &mut Vec<RawEntry>,
) -> Result<(), String> {
    let push = |out: &mut Vec<RawEntry>, value: String| {
        out.push(RawEntry {
            key: prefix.to_owned(),
            value,
            origin: Origin::File {
                path: path.to_owned(),
                line: None,
            },
        });
    };
    match value {
        Value::Null => {}
        Value::Tagged(t) => flatten(prefix, &t.value, path, out)?,
        Value::Mapping(map) => {
            for (k, v) in map {
                let Some(k) = scalar(k) else { continue };
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, path, out)?;
            }
        }
        Value::Sequence(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
            match parts {
                Some(parts) => push(out, parts.join(",")),
                // Structured lists are fine elsewhere in a shared file (a compose file, say),
                // but no gamelan setting takes one.
                None if prefix.starts_with("gamelan.") => {
                    return Err(format!(
                        "{prefix}: expected a value or a list of values, found a list of mappings"
                    ));
                }
                None => {}
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                push(out, s);
            }
        }
    }
    Ok(())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar(&t.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(entries: &[RawEntry]) -> Vec<(&str, &str)> {
        entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn properties_keep_order_lines_and_strip_inline_comments() {
        let text = "# c\na.b=1\n\nquarkus.log.category.\"x.y\".level=DEBUG\nn=50  # Don't\nh=a#b\n";
        let e = properties(text, Path::new("t.properties")).unwrap();
        assert_eq!(
            kv(&e),
            [
                ("a.b", "1"),
                ("quarkus.log.category.\"x.y\".level", "DEBUG"),
                ("n", "50"),
                ("h", "a#b")
            ]
        );
        assert_eq!(
            e[2].origin,
            Origin::File {
                path: "t.properties".into(),
                line: Some(5)
            }
        );
    }

    #[test]
    fn yaml_flattens_nested_maps_and_lists() {
        let text = "a:\n  b: 1\n  c: [x, y]\n  d: ~\n  e: true\n  f: 1.0.0\n";
        let e = yaml(text, Path::new("t.yml")).unwrap();
        assert_eq!(
            kv(&e),
            [
                ("a.b", "1"),
                ("a.c", "x,y"),
                ("a.e", "true"),
                ("a.f", "1.0.0")
            ]
        );
        assert!(yaml("- 1\n- 2\n", Path::new("t.yml")).is_err());
        assert!(yaml("", Path::new("t.yml")).unwrap().is_empty());
    }

    #[test]
    fn unknown_extensions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.toml");
        std::fs::write(&p, "a=1").unwrap();
        assert!(matches!(read(&p), Err(Problem::File { .. })));
        assert!(matches!(
            read(&dir.path().join("missing.yml")),
            Err(Problem::File { .. })
        ));
    }
}
