//! `gamelan config check`: load, validate and print the effective configuration.

use std::io::{self, Write};
use std::path::PathBuf;

use super::engine::EngineConfig;
use super::error::ConfigError;
use super::executor::ExecutorConfig;
use super::files;
use super::load::{Effective, Sources};

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// Files in order of increasing precedence; empty means the conventional
    /// `application.{properties,yaml,yml}` (and `config/application.*`) in the working
    /// directory.
    pub files: Vec<PathBuf>,
    /// Check `gamelan.engine.*` instead of `gamelan.executor.*`.
    pub engine: bool,
    /// `KEY=VALUE` overrides.
    pub overrides: Vec<String>,
}

/// Runs the check: the effective configuration goes to `out`; warnings and problems go to
/// `err`. Returns whether the configuration is valid (the command exits 2 when not).
pub fn check(
    request: &CheckRequest,
    env: impl IntoIterator<Item = (String, String)>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    let files = if request.files.is_empty() {
        files::discover(std::path::Path::new("."))
    } else {
        request.files.clone()
    };
    let mut sources = Sources::new().files(&files).env(env);
    for arg in &request.overrides {
        sources = match sources.set_arg(arg) {
            Ok(s) => s,
            Err(e) => return report_error(&e, err),
        };
    }
    // Only what is printed matters here, not the typed configuration.
    let (what, result) = if request.engine {
        (
            "engine",
            EngineConfig::load_sources(&sources).map(|l| (l.effective, l.warnings)),
        )
    } else {
        (
            "executor",
            ExecutorConfig::load_sources(&sources).map(|l| (l.effective, l.warnings)),
        )
    };
    match result {
        Ok((effective, warnings)) => {
            for w in &warnings {
                writeln!(err, "warning: {w}")?;
            }
            print_effective(out, what, &files, &effective)?;
            Ok(true)
        }
        Err(e) => report_error(&e, err),
    }
}

fn report_error(e: &ConfigError, err: &mut dyn Write) -> io::Result<bool> {
    for w in &e.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let n = e.problems.len();
    writeln!(
        err,
        "error: invalid configuration ({n} problem{}):",
        if n == 1 { "" } else { "s" }
    )?;
    for p in &e.problems {
        writeln!(err, "  - {p}")?;
    }
    Ok(false)
}

fn print_effective(
    out: &mut dyn Write,
    what: &str,
    files: &[PathBuf],
    effective: &[Effective],
) -> io::Result<()> {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    writeln!(
        out,
        "# effective {what} configuration (files: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )?;
    // The output is itself a valid .properties file: unset settings are commented out.
    let width = effective.iter().map(|e| e.key.len()).max().unwrap_or(0);
    for e in effective {
        let Some(value) = &e.value else {
            writeln!(out, "# {} =  (not set)", e.key)?;
            continue;
        };
        let spelled = e
            .spelled_as
            .as_ref()
            .map(|s| format!(", as {s}"))
            .unwrap_or_default();
        writeln!(out, "{:width$} = {value}  # {}{spelled}", e.key, e.origin)?;
    }
    Ok(())
}
