//! A throw-away Kafka-protocol broker for tests and benchmarks: `tansu` with in-memory
//! storage on a free 127.0.0.1 port, killed on drop. No mock: the clients speak the real
//! protocol to a real broker.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the CI installs the broker (`.ci/install.sh`).
pub const INSTALL_COMMAND: &str =
    "cargo install tansu --version 0.6.0 --locked --features dynostore";

/// How long a starting broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct TansuBroker {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

/// `tansu` on PATH, else in `~/.cargo/bin` (where `cargo install` puts it).
pub fn tansu_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        let p = home.join("bin").join("tansu");
        p.is_file().then_some(p)
    })
}

/// A port nobody listens on right now (bound to port 0, then released).
pub fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

impl TansuBroker {
    /// Starts a broker on a free port; panics with the install command when `tansu` is
    /// missing, or with the broker's log when it does not come up.
    pub fn start() -> Self {
        let port = free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
        Self::start_on(port)
    }

    /// Starts a broker on `port` (e.g. one a client already tries to reach).
    pub fn start_on(port: u16) -> Self {
        Self::try_start_on(port).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start_on(port: u16) -> Result<Self, String> {
        let bin = tansu_binary().ok_or_else(|| {
            format!("the Kafka tests need the `tansu` broker on PATH or in ~/.cargo/bin; install it with `{INSTALL_COMMAND}` (or run .ci/install.sh)")
        })?;
        let log =
            std::env::temp_dir().join(format!("gamelan-tansu-{port}-{}.log", std::process::id()));
        let log_file =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut broker = Self {
            child: Some(child),
            port,
            log,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "tansu exited with {status} before accepting connections on port {}; log:\n{}",
                    self.port,
                    self.log_text()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "tansu did not accept connections on port {} within {START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log_text()
                ));
            }
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the broker printed so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the broker and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}
