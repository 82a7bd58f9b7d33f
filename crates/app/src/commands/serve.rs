//! `gamelan executor` and `gamelan engine`: long-running processes until SIGINT/SIGTERM.

use std::path::PathBuf;

use crate::config::{EngineConfig, ExecutorConfig, Sources};
use crate::wiring;

fn sources(files: &[PathBuf], set: &[String]) -> anyhow::Result<Sources> {
    let files = if files.is_empty() {
        crate::config::discover(std::path::Path::new("."))
    } else {
        files.to_vec()
    };
    let mut s = Sources::new().files(&files).env(std::env::vars());
    for arg in set {
        s = s.set_arg(arg)?;
    }
    Ok(s)
}

pub fn load_executor(files: &[PathBuf], set: &[String]) -> anyhow::Result<ExecutorConfig> {
    let loaded = ExecutorConfig::load_sources(&sources(files, set)?)?;
    for w in &loaded.warnings {
        log::warn!(target: "gamelan.executor.runtime", "{w}");
    }
    Ok(loaded.config)
}

pub fn load_engine(files: &[PathBuf], set: &[String]) -> anyhow::Result<EngineConfig> {
    let loaded = EngineConfig::load_sources(&sources(files, set)?)?;
    for w in &loaded.warnings {
        log::warn!(target: "gamelan.engine", "{w}");
    }
    Ok(loaded.config)
}

pub fn run_executor(cfg: &ExecutorConfig) -> anyhow::Result<()> {
    if !cfg.runtime.enabled {
        // Before building transports: a disabled runtime needs none of them to be valid.
        crate::runtime::log_disabled();
        return Ok(());
    }
    let report = wiring::runtime_builder(cfg)?.run()?;
    log::info!(
        target: "gamelan.executor.runtime",
        "stopped: {} tasks handed back, {} results unconfirmed",
        report.released,
        report.unreported
    );
    if report.unreported > 0 {
        anyhow::bail!(
            "{} results were never confirmed by the engine",
            report.unreported
        );
    }
    Ok(())
}

pub fn run_engine(cfg: &EngineConfig) -> anyhow::Result<()> {
    let process = wiring::start_engine(cfg)?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    if let Some(sig) = signals.forever().next() {
        log::info!(target: "gamelan.engine", "signal {sig} received: shutting down");
    }
    process.shutdown();
    Ok(())
}
