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
    /// Run an engine and an executor runtime in one process over real gRPC on 127.0.0.1,
    /// submit calculate-tax tasks, and check every answer.
    Demo(DemoArgs),
    /// Run the executor runtime hosting the built-in executors (calculate-tax,
    /// order-validator, payment-processor, notification-sender, echo, sleep, fault).
    /// Configured by application.properties/.yml and GAMELAN_EXECUTOR_* variables.
    Executor(ServeArgs),
    /// Run the reference engine: one port for gRPC and the HTTP API (gamelan.engine.port,
    /// default 8080). Configured by files and GAMELAN_ENGINE_* variables.
    Engine(EngineArgs),
    /// Submit tasks to a running engine and wait for their results.
    Submit(SubmitArgs),
    /// Measure noop task throughput, latency, memory and start-up over a transport, beside
    /// a raw baseline measured in the same run (and optionally a peer such as Celery).
    Bench(BenchArgs),
    /// Inspect and validate configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions(CompletionsArgs),
    /// GET a URL and exit 0 on a 2xx answer: a health check for images without curl.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// e.g. http://localhost:8080/q/health/ready
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many calculate-tax tasks to run.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,
    /// Transport between executor and engine: grpc or rest.
    #[arg(long, default_value = "grpc")]
    pub transport: String,
    /// Give up waiting for results after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration files (.properties, .yml, .yaml); later ones override earlier ones.
    /// Default: application.{properties,yaml,yml} in the working directory and in config/.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Override a key, e.g. --set transport=rest (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Listening port for gRPC and HTTP (gamelan.engine.port; 0 = any free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Where accepted tasks and results are stored (gamelan.engine.data-dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory; a restart forgets all (gamelan.engine.ephemeral).
    #[arg(long)]
    pub ephemeral: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The engine's base URL.
    #[arg(
        long,
        default_value = "http://localhost:8080",
        env = "GAMELAN_ENGINE_URL"
    )]
    pub engine: String,
    /// Executor type of the tasks.
    #[arg(long = "type", short = 't')]
    pub executor_type: Option<String>,
    /// Task input as a JSON object, e.g. '{"amount": 100}'.
    #[arg(long, short = 'i')]
    pub input: Option<String>,
    /// How many copies of the task to submit.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// A JSONL file of task requests ({"executorType": .., "input": {..}} per line).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Bearer token for an engine with JWT enabled.
    #[arg(long, env = "GAMELAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Transport between the executors and the engine.
    #[arg(long, value_enum, default_value = "grpc")]
    pub transport: gamelan::commands::bench::BenchTransport,
    /// How many noop (echo) tasks to run.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    /// Size of each task's payload (echoed back as its output).
    #[arg(long, default_value_t = 128)]
    pub payload_bytes: usize,
    /// Executor runtimes to start.
    #[arg(long, default_value_t = 1)]
    pub executors: usize,
    /// Worker threads per executor runtime.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Open-loop arrival rate in tasks/s (for latency); without it, closed-loop maximum
    /// throughput.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Run engine and executors inside this process instead of as separate processes.
    #[arg(long)]
    pub in_process: bool,
    /// Also run a peer on the same machine and print ours beside it.
    #[arg(long, value_enum)]
    pub compare: Option<gamelan::commands::bench::Peer>,
    /// Skip the raw baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Results per report (result.batch-size); also the raw REST baseline's batch.
    #[arg(long, default_value_t = 100)]
    pub result_batch: usize,
    /// How long a partial result batch waits for company (result.batch-timeout); 0 sends
    /// what is queued at once.
    #[arg(long, default_value_t = 0)]
    pub result_batch_timeout_ms: u64,
    /// Admission queue per executor runtime (task.queue-size).
    #[arg(long, default_value_t = 1000)]
    pub queue_size: usize,
    /// Tasks per submission request.
    #[arg(long, default_value_t = 1000)]
    pub submit_batch: usize,
    /// Closed loop: most tasks in flight at once.
    #[arg(long, default_value_t = 10_000)]
    pub window: usize,
    /// Tasks run (and not measured) before the measured ones.
    #[arg(long, default_value_t = 1000)]
    pub warmup: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate a configuration and print the effective values with their origin.
    /// Exits 2 and lists every problem when the configuration is invalid.
    Check(ConfigCheckArgs),
    /// Print every setting (all spellings, default, meaning) as a markdown table, as the
    /// README's configuration reference shows it.
    Keys(ConfigKeysArgs),
}

#[derive(Debug, Args)]
pub struct ConfigKeysArgs {
    /// List the engine's settings (gamelan.engine.*) instead of the executor's.
    #[arg(long)]
    pub engine: bool,
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
        let Command::Config(ConfigCommand::Check(args)) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(
            args.files,
            [PathBuf::from("a.properties"), PathBuf::from("b.yml")]
        );
        assert!(args.engine);
        assert_eq!(args.set, ["port=1"]);
    }
}
