//! The `gamelan` binary: a thin layer over the library, one function per subcommand.

mod cli;

use std::io;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use cli::{Cli, Command, ConfigCheckArgs, ConfigCommand};
use gamelan::config::{self, CheckRequest};

/// Exit status for an invalid configuration (the usage-error status, as clap uses it).
const EXIT_INVALID_CONFIG: u8 = 2;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(ConfigCommand::Check(args)) => config_check(args),
    }
}

fn config_check(args: ConfigCheckArgs) -> anyhow::Result<ExitCode> {
    let request = CheckRequest {
        files: args.files,
        engine: args.engine,
        overrides: args.set,
    };
    let valid = config::check(
        &request,
        std::env::vars(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )
    .context("writing the configuration report")?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID_CONFIG)
    })
}
