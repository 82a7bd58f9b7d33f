//! `${VAR}` and `${VAR:default}` in file values, resolved against the (injected)
//! environment. A default may itself contain `${...}`. A value taken from the environment is
//! used as is, never expanded again, so a secret containing `${` cannot be mangled.

/// Expands every `${...}` in `value`. On failure, says what is missing or malformed.
pub(crate) fn expand(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = closing_brace(after).ok_or_else(|| {
            "a closing '}' for '${' (syntax: ${VAR} or ${VAR:default})".to_owned()
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() {
            return Err("a variable name inside '${}' (syntax: ${VAR} or ${VAR:default})".into());
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(&expand(d, lookup)?),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} to be set (or a default: ${{{name}:value}})"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${` whose content starts at `s`, honouring nesting.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("engine".into()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("${HOST}".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(
            expand("http://${HOST}:8080", &env).as_deref(),
            Ok("http://engine:8080")
        );
        assert_eq!(expand("${PORT:9090}", &env).as_deref(), Ok("9090"));
        assert_eq!(expand("${HOST:other}", &env).as_deref(), Ok("engine"));
        assert_eq!(expand("${EMPTY:x}", &env).as_deref(), Ok(""));
        assert_eq!(expand("${NOPE:}", &env).as_deref(), Ok(""));
        assert_eq!(
            expand("${A:${HOST}}-${B:${C:z}}", &env).as_deref(),
            Ok("engine-z")
        );
        assert_eq!(
            expand("plain $ text {}", &env).as_deref(),
            Ok("plain $ text {}")
        );
    }

    #[test]
    fn values_from_the_environment_are_not_expanded_again() {
        assert_eq!(expand("${TRICKY}", &env).as_deref(), Ok("${HOST}"));
    }

    #[test]
    fn reports_missing_and_malformed() {
        let e = expand("${JWT_SECRET}", &env).unwrap_err();
        assert!(e.contains("JWT_SECRET"), "{e}");
        assert!(expand("${HOST", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }
}
