//! The `gamelan` binary: a thin layer over the library, one function per subcommand.

mod builtins;
mod cli;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command, ConfigCheckArgs, ConfigCommand};
use gamelan::commands::{bench, demo, serve, submit};
use gamelan::config::{self, CheckRequest};
use gamelan::observability::logging;

/// Exit status for an invalid configuration (the usage-error status, as clap uses it).
const EXIT_INVALID_CONFIG: u8 = 2;

fn main() -> ExitCode {
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
        Command::Config(ConfigCommand::Check(args)) => {
            logging::init("warn");
            config_check(args)
        }
        Command::Config(ConfigCommand::Keys(args)) => {
            print!("{}", config::reference(args.engine));
            Ok(ExitCode::SUCCESS)
        }
        Command::Executor(args) => {
            let cfg = serve::load_executor(&args.config, &args.set)?;
            logging::init(&cfg.log_filter());
            serve::run_executor(&cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Engine(args) => {
            let mut set = args.serve.set.clone();
            if let Some(p) = args.port {
                set.push(format!("gamelan.engine.port={p}"));
            }
            if let Some(d) = &args.data_dir {
                set.push(format!("gamelan.engine.data-dir={}", d.display()));
            }
            if args.ephemeral {
                set.push("gamelan.engine.ephemeral=true".into());
            }
            let cfg = serve::load_engine(&args.serve.config, &set)?;
            logging::init(&cfg.log_filter());
            serve::run_engine(&cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            logging::init("error");
            let transport = args
                .transport
                .parse()
                .map_err(|e| anyhow::anyhow!("--transport: {e}"))?;
            let report = demo::run(&demo::DemoOptions {
                tasks: args.tasks,
                transport,
                timeout: Duration::from_secs(args.timeout_secs),
            })?;
            report.summary.print(&mut io::stdout().lock())?;
            for w in report.wrong.iter().take(10) {
                println!("WRONG {w}");
            }
            if report.ok() {
                println!(
                    "all {} outputs correct (tax = amount * 0.1)",
                    report.summary.completed
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!("demo FAILED");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Submit(args) => {
            logging::init("warn");
            let summary = submit::run(&submit::SubmitOptions {
                engine: args.engine,
                executor_type: args.executor_type,
                input: args.input,
                count: args.count,
                file: args.file,
                timeout: Duration::from_secs(args.timeout_secs),
                token: args.token,
            })?;
            summary.print(&mut io::stdout().lock())?;
            Ok(if summary.failed == 0 && summary.missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Probe(args) => Ok(probe(&args.url, Duration::from_secs(args.timeout_secs))),
        Command::Bench(args) => {
            logging::init("error");
            let report = bench::run(&bench::BenchOptions {
                transport: args.transport,
                tasks: args.tasks,
                payload_bytes: args.payload_bytes,
                executors: args.executors,
                threads: args.threads,
                queue_size: args.queue_size,
                result_batch: args.result_batch,
                result_batch_timeout: Duration::from_millis(args.result_batch_timeout_ms),
                submit_batch: args.submit_batch,
                window: args.window,
                warmup: args.warmup,
                rate: args.rate,
                in_process: args.in_process,
                baseline: !args.no_baseline,
                compare: args.compare,
                timeout: Duration::from_secs(args.timeout_secs),
                exe: None,
            })?;
            if args.json {
                report.print_json(&mut io::stdout().lock())?;
            } else {
                report.print(&mut io::stdout().lock())?;
            }
            Ok(if report.all_finished() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "gamelan",
                &mut io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn probe(url: &str, timeout: Duration) -> ExitCode {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(url).call() {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("{url}: HTTP {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
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
