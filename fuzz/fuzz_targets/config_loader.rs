//! The configuration loader: a `.properties` or YAML file with `${VAR}` / `${VAR:default}`
//! interpolation against an injected environment, loaded as the executor's or the engine's
//! configuration through the public `load_sources`, as the `gamelan` command does.
//!
//! Input: one mode byte (bit 0: YAML instead of properties; bit 1: engine instead of
//! executor), then `NAME=value` environment lines, a NUL byte, and the file's text.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use gamelan::config::{EngineConfig, ExecutorConfig, Sources};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("gamelan-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temporary directory");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (env, file) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let name = if mode & 1 == 0 {
        "application.properties"
    } else {
        "application.yaml"
    };
    let path = dir().join(name);
    std::fs::write(&path, file).expect("write the configuration file");
    let sources = Sources::new().files(&[path]).env(env);
    if mode & 2 == 0 {
        let _ = ExecutorConfig::load_sources(&sources);
    } else {
        let _ = EngineConfig::load_sources(&sources);
    }
});
