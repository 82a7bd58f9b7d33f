//! Where the `gamelan` binary under test comes from.
//!
//! Cargo gives `CARGO_BIN_EXE_<name>` only to tests of the package that owns the binary, so
//! this package finds it itself, once per test process:
//! 1. `GAMELAN_BIN=/path/to/gamelan` (to test an installed binary);
//! 2. `gamelan` next to the running test executable (`target/debug/`), when it is newer than
//!    every source file of the workspace: `cargo test --workspace` has just built it, and
//!    building it again with other feature unification would only recompile it;
//! 3. otherwise `cargo build -p gamelan --bin gamelan` in the same target directory and
//!    profile as the running test (a clean clone, or sources edited since). Cargo prints the
//!    artifact's path, so nothing here guesses where the binary lands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The `gamelan` executable, built on first use. Panics with cargo's output if it cannot be
/// built: every end-to-end test needs it.
pub fn gamelan_binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(locate) {
        Ok(p) => p,
        Err(e) => panic!("cannot provide the gamelan binary: {e}"),
    }
}

fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GAMELAN_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("GAMELAN_BIN={} is not a file", p.display()))
        };
    }
    let (profile_dir, _, _) = test_layout();
    if let Some(candidate) = profile_dir.map(|d| d.join("gamelan"))
        && is_fresh(&candidate)
    {
        return Ok(candidate);
    }
    build()
}

/// Whether `binary` exists and is newer than every file the workspace builds it from.
fn is_fresh(binary: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    let Some(workspace) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() else {
        return false;
    };
    let mut newest = SystemTime::UNIX_EPOCH;
    for top in ["crates", "proto", "Cargo.toml", "Cargo.lock"] {
        newest = newest.max(newest_under(&workspace.join(top)));
    }
    newest < built
}

/// The latest modification time of `path` or anything below it.
fn newest_under(path: &Path) -> SystemTime {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return SystemTime::UNIX_EPOCH;
    };
    let mut newest = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            if e.file_name() != "target" {
                newest = newest.max(newest_under(&e.path()));
            }
        }
    }
    newest
}

/// Where the running test executable lives: its profile directory (`<target>/debug` for
/// `<target>/debug/deps/x`), the profile's name, and the target directory (the ancestor
/// holding `CACHEDIR.TAG`).
fn test_layout() -> (Option<PathBuf>, Option<String>, Option<PathBuf>) {
    let Ok(exe) = std::env::current_exe() else {
        return (None, None, None);
    };
    let profile_dir = exe
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent);
    let profile = profile_dir
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let target = exe
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf);
    (profile_dir.map(Path::to_path_buf), profile, target)
}

fn build() -> Result<PathBuf, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the e2e package has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args([
        "build",
        "--package",
        "gamelan",
        "--bin",
        "gamelan",
        "--message-format=json-render-diagnostics",
    ]);
    let (_, profile, target) = test_layout();
    match profile.as_deref() {
        None | Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_none()
        && let Some(t) = target
    {
        cmd.arg("--target-dir").arg(t);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "gamelan")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("{cmd:?} reported no gamelan executable"))
}
