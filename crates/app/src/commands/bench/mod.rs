//! `gamelan bench`: end-to-end throughput and latency of noop (`echo`) tasks over one
//! transport, printed beside a raw baseline measured in the same run, so the figure that
//! matters is the ratio ours/raw on whatever the machine offers right now.
//!
//! By default the engine and each executor runtime are separate `gamelan` processes (as in
//! production); `--in-process` puts everything in the bench process (for profilers), and
//! `--transport local` always runs in process over the in-memory transport.

mod baseline;
mod cpu;
mod error;
mod http;
mod inproc;
mod kafka;
mod load;
mod peer;
mod processes;
mod report;
mod rss;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gamelan_domain::CommunicationType;

pub use baseline::Raw;
pub use error::BenchError;
pub use load::{Done, Driver, Load, Measured};
pub use peer::{Peer, PeerRun};
pub use report::{BenchReport, CpuMs, Latency, RssBytes};

use inproc::{EngineDriver, LocalDriver, RuntimeShape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTransport {
    Grpc,
    Rest,
    Kafka,
    Local,
}

impl BenchTransport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Rest => "rest",
            Self::Kafka => "kafka",
            Self::Local => "local",
        }
    }

    fn communication(self) -> CommunicationType {
        match self {
            Self::Grpc => CommunicationType::Grpc,
            Self::Rest => CommunicationType::Rest,
            Self::Kafka => CommunicationType::Kafka,
            Self::Local => CommunicationType::Local,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub transport: BenchTransport,
    pub tasks: usize,
    pub payload_bytes: usize,
    /// Executor runtimes (processes, or runtimes in process).
    pub executors: usize,
    /// Worker threads per runtime (`task.dispatch-threads`).
    pub threads: usize,
    /// Admission queue per runtime (`task.queue-size`).
    pub queue_size: usize,
    /// Results per report (`result.batch-size`); also the raw REST baseline's batch.
    pub result_batch: usize,
    /// `result.batch-timeout`: how long a partial batch may wait for company. The bench
    /// defaults to 0 (send what is queued at once, which still batches under load); the
    /// product default of 10 ms adds up to 10 ms of latency at low rates.
    pub result_batch_timeout: Duration,
    /// Tasks per submission.
    pub submit_batch: usize,
    /// Closed loop: most tasks in flight (submitted, result not yet seen).
    pub window: usize,
    /// Tasks run and discarded before measuring (connections, streams, lazy set-up).
    pub warmup: usize,
    /// Open-loop arrival rate (tasks/s); `None` = closed loop, maximum throughput.
    pub rate: Option<f64>,
    pub in_process: bool,
    /// Measure the raw baseline as well (on by default).
    pub baseline: bool,
    pub compare: Option<Peer>,
    pub timeout: Duration,
    /// The `gamelan` binary to start engine and executors from (default: this one).
    pub exe: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            transport: BenchTransport::Grpc,
            tasks: 100_000,
            payload_bytes: 128,
            executors: 1,
            threads: 2,
            queue_size: 1000,
            result_batch: 100,
            result_batch_timeout: Duration::ZERO,
            submit_batch: 1000,
            window: 10_000,
            warmup: 1000,
            rate: None,
            in_process: false,
            baseline: true,
            compare: None,
            timeout: Duration::from_secs(300),
            exe: None,
        }
    }
}

/// Runs the benchmark described by `opts`; progress lines go to stderr.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    if opts.tasks == 0 || opts.executors == 0 || opts.threads == 0 {
        return Err(BenchError::Usage(
            "--tasks, --executors and --threads must be at least 1".into(),
        ));
    }
    let payload = "x".repeat(opts.payload_bytes);
    let load = Load {
        first: opts.warmup,
        tasks: opts.tasks,
        batch: opts.submit_batch,
        window: opts.window,
        rate: opts.rate,
        timeout: opts.timeout,
    };
    let shape = RuntimeShape {
        threads: opts.threads,
        queue_size: opts.queue_size,
        result_batch: opts.result_batch,
        result_batch_timeout: opts.result_batch_timeout,
    };
    let mut report = BenchReport::new(opts);
    // Kafka needs a broker: a throw-away one on a free port, for this run only.
    // Kept until the end of the run (after the baseline, which uses it too).
    let broker = if opts.transport == BenchTransport::Kafka {
        eprintln!("starting a tansu Kafka broker...");
        Some(kafka::Broker::start()?)
    } else {
        None
    };
    let bootstrap = broker.as_ref().map(kafka::Broker::bootstrap);
    if opts.transport == BenchTransport::Local {
        run_local(opts, &load, shape, &payload, &mut report)?;
    } else if opts.in_process {
        run_in_process(
            opts,
            &load,
            shape,
            bootstrap.as_deref(),
            &payload,
            &mut report,
        )?;
    } else {
        run_processes(opts, &load, bootstrap.as_deref(), &payload, &mut report)?;
    }
    if opts.baseline {
        eprintln!("measuring the raw {} baseline...", opts.transport.name());
        let raw = match opts.transport {
            BenchTransport::Grpc => baseline::grpc(opts.tasks, opts.payload_bytes)?,
            BenchTransport::Rest => baseline::rest(
                opts.tasks,
                opts.payload_bytes,
                opts.executors,
                opts.result_batch,
            )?,
            BenchTransport::Kafka => kafka::raw(
                bootstrap.as_deref().unwrap_or_default(),
                opts.tasks,
                opts.payload_bytes,
            )?,
            BenchTransport::Local => baseline::local(
                opts.tasks,
                opts.payload_bytes,
                opts.executors * opts.threads,
            )?,
        };
        report.set_baseline(raw);
    }
    if let Some(peer) = opts.compare {
        eprintln!("running the {peer:?} peer...");
        let run = peer::run(
            peer,
            opts.tasks,
            opts.payload_bytes,
            opts.executors * opts.threads,
        )?;
        report.set_peer(run);
    }
    Ok(report)
}

fn run_local(
    opts: &BenchOptions,
    load: &Load,
    shape: RuntimeShape,
    payload: &str,
    report: &mut BenchReport,
) -> Result<(), BenchError> {
    let local = inproc::start_local(opts.executors, shape)?;
    report.ready_ms = Some(ms(local.ready));
    report.rss_bytes.executor_idle = rss::own().map(|m| m.rss);
    let driver: Arc<dyn Driver> = Arc::new(LocalDriver {
        engine: local.engine.clone(),
        input: inproc::input(payload),
    });
    eprintln!(
        "running {} tasks in process over the local transport...",
        opts.tasks
    );
    warm_up(&driver, load)?;
    let cpu0 = cpu::own();
    let measured = load::run(&driver, load);
    report.cpu_ms.bench = cpu_ms(cpu0, cpu::own());
    report.rss_bytes.process = rss::own().map(|m| m.peak);
    local.shutdown();
    report.set_measured(&measured?);
    Ok(())
}

fn run_in_process(
    opts: &BenchOptions,
    load: &Load,
    shape: RuntimeShape,
    kafka: Option<&str>,
    payload: &str,
    report: &mut BenchReport,
) -> Result<(), BenchError> {
    let set_up =
        inproc::start_transport(opts.transport.communication(), opts.executors, shape, kafka)?;
    report.ready_ms = Some(ms(set_up.ready));
    report.rss_bytes.executor_idle = rss::own().map(|m| m.rss);
    let driver: Arc<dyn Driver> = Arc::new(EngineDriver {
        engine: Arc::clone(&set_up.engine.engine),
        input: inproc::input(payload),
    });
    eprintln!(
        "running {} tasks in process over {}...",
        opts.tasks,
        opts.transport.name()
    );
    warm_up(&driver, load)?;
    let cpu0 = cpu::own();
    let measured = load::run(&driver, load);
    report.cpu_ms.bench = cpu_ms(cpu0, cpu::own());
    report.rss_bytes.process = rss::own().map(|m| m.peak);
    set_up.shutdown();
    report.set_measured(&measured?);
    Ok(())
}

fn run_processes(
    opts: &BenchOptions,
    load: &Load,
    kafka: Option<&str>,
    payload: &str,
    report: &mut BenchReport,
) -> Result<(), BenchError> {
    let exe = match &opts.exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let start_timeout = Duration::from_secs(30);
    let kafka_env = |prefix: &str| -> Vec<(String, String)> {
        kafka
            .map(|b| vec![(format!("{prefix}KAFKA_BOOTSTRAP_SERVERS"), b.to_owned())])
            .unwrap_or_default()
    };
    let engine = processes::engine(&exe, &kafka_env("GAMELAN_ENGINE_"), start_timeout)?;
    report.engine_ready_ms = Some(ms(engine.ready_after));
    let env = processes::ExecutorEnv {
        engine: engine.addr,
        transport: opts.transport.name(),
        threads: opts.threads,
        queue_size: opts.queue_size,
        result_batch: opts.result_batch,
        result_batch_timeout: opts.result_batch_timeout,
        extra: kafka_env("GAMELAN_EXECUTOR_"),
    };
    let mut executors = Vec::with_capacity(opts.executors);
    for i in 0..opts.executors {
        let p = processes::executor(&exe, i, &env, start_timeout)?;
        report.ready_ms = Some(report.ready_ms.unwrap_or(0.0).max(ms(p.ready_after)));
        let idle = p.memory();
        report.rss_bytes.executor_idle = report.rss_bytes.executor_idle.max(idle.map(|m| m.rss));
        report.rss_bytes.executor_idle_anon = report
            .rss_bytes
            .executor_idle_anon
            .max(idle.map(|m| m.anon));
        executors.push(p);
    }
    eprintln!(
        "engine on {} ready in {:.1?}; {} executor process(es) over {} ready; running {} tasks...",
        engine.addr,
        engine.ready_after,
        executors.len(),
        opts.transport.name(),
        opts.tasks
    );
    let driver: Arc<dyn Driver> = Arc::new(http::HttpDriver::new(
        &format!("http://{}", engine.addr),
        inproc::ECHO,
        payload.to_owned(),
    ));
    warm_up(&driver, load)?;
    let executor_cpu =
        || -> Option<Duration> { executors.iter().map(|p| cpu::cpu_time(p.pid())).sum() };
    let cpu0 = (cpu::own(), cpu::cpu_time(engine.pid()), executor_cpu());
    let measured = load::run(&driver, load);
    report.cpu_ms.bench = cpu_ms(cpu0.0, cpu::own());
    report.cpu_ms.engine = cpu_ms(cpu0.1, cpu::cpu_time(engine.pid()));
    report.cpu_ms.executor = cpu_ms(cpu0.2, executor_cpu());
    report.rss_bytes.engine = engine.memory().map(|m| m.peak);
    report.rss_bytes.executor = executors
        .iter()
        .filter_map(|p| p.memory().map(|m| m.peak))
        .max();
    let measured = measured.map_err(|e| {
        let mut why = e.to_string();
        why.push_str(&engine.tail());
        for p in &executors {
            why.push_str(&p.tail());
        }
        BenchError::Runtime(why)
    })?;
    drop(executors);
    drop(engine);
    report.set_measured(&measured);
    Ok(())
}

/// Runs `load.first` warm-up tasks (closed loop, not measured).
fn warm_up(driver: &Arc<dyn Driver>, load: &Load) -> Result<(), BenchError> {
    if load.first > 0 {
        let warm = load::run(
            driver,
            &Load {
                first: 0,
                tasks: load.first,
                rate: None,
                ..load.clone()
            },
        )?;
        if warm.unfinished > 0 {
            return Err(BenchError::Runtime(format!(
                "{} of {} warm-up tasks did not finish within {:?}",
                warm.unfinished, load.first, load.timeout
            )));
        }
    }
    Ok(())
}

fn cpu_ms(before: Option<Duration>, after: Option<Duration>) -> Option<f64> {
    Some(ms(after?.saturating_sub(before?)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
