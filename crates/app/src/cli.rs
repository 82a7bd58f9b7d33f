//! The `gamelan` command line. One variant of [`Command`] per subcommand, each with its own
//! argument struct, so a new subcommand (executor, engine, demo, submit, bench, completions)
//! is one variant here and one match arm in `main.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gamelan",
    version,
    about = "Gamelan executor runtime and reference engine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and validate configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate a configuration and print the effective values with their origin.
    /// Exits 2 and lists every problem when the configuration is invalid.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Configuration files (.properties, .yml, .yaml); later ones override earlier ones.
    /// Default: application.{properties,yaml,yml} in the working directory and in config/.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Check the engine's configuration (gamelan.engine.*) instead of the executor's.
    #[arg(long)]
    pub engine: bool,
    /// Override a key above files and environment, e.g. --set heartbeat.interval=10s
    /// (repeatable; the gamelan.executor./gamelan.engine. prefix may be left out).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_check_parses_files_and_flags() {
        let cli = Cli::try_parse_from([
            "gamelan",
            "config",
            "check",
            "a.properties",
            "b.yml",
            "--engine",
            "--set",
            "port=1",
        ])
        .unwrap();
        let Command::Config(ConfigCommand::Check(args)) = cli.command;
        assert_eq!(
            args.files,
            [PathBuf::from("a.properties"), PathBuf::from("b.yml")]
        );
        assert!(args.engine);
        assert_eq!(args.set, ["port=1"]);
    }
}
