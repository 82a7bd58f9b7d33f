//! A TCP proxy between an executor and the engine that can cut the network the two ways
//! networks fail: by resetting every connection ([`Mode::Reset`]) or by silently dropping
//! every byte while keeping connections open ([`Mode::Blackhole`], what a dead middlebox or
//! a pulled cable looks like to both ends).
//!
//! Plain `std::net` sockets and a thread per direction per connection: the proxy knows
//! nothing of HTTP or gRPC, so what the executor sees is what a real network does to it.
//! A connection that was live during a blackhole stays wedged after [`Mode::Pass`] is
//! restored (its bytes are gone and neither end was told): only the peers' own timeouts
//! can end it, which is the point.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use socket2::SockRef;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Resets every live connection (RST, no FIN) and every new one as soon as it is
    /// accepted.
    Reset,
    /// Forwards nothing and closes nothing: live connections stop moving (the proxy stops
    /// reading, so the senders' buffers fill), new ones are accepted and never answered.
    Blackhole,
}

/// One proxied connection: the executor's side and the engine's side.
struct Link {
    client: TcpStream,
    upstream: Option<TcpStream>,
    /// Set once a blackhole swallowed this connection: it never forwards again.
    wedged: AtomicBool,
    /// Set when the proxy resets it: the pumps end without passing an EOF on.
    killed: AtomicBool,
}

impl Link {
    /// Ends both sockets with RST: linger 0 makes the last close abort the connection, and
    /// shutting down the read side wakes the pumps blocked in `read`, which then drop
    /// their handles.
    fn reset(&self) {
        self.killed.store(true, Ordering::Release);
        for s in std::iter::once(&self.client).chain(&self.upstream) {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Read);
        }
    }
}

struct State {
    mode: Mode,
    links: Vec<Arc<Link>>,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes pumps parked on a wedged connection (reset or proxy dropped).
    changed: Condvar,
    accepted: AtomicU64,
    reset: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running proxy on 127.0.0.1 forwarding to `upstream`. Dropping it closes everything.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Mode::Pass,
                links: Vec::new(),
                stopping: false,
            }),
            changed: Condvar::new(),
            accepted: AtomicU64::new(0),
            reset: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(&listener, upstream, &s))?;
        Ok(Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, to give an executor as its engine URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn mode(&self) -> Mode {
        self.shared.lock().mode
    }

    /// Switches the mode. Reset resets every live connection now; Blackhole wedges every
    /// live connection for good; Pass forwards new connections again.
    pub fn set(&self, mode: Mode) {
        let mut st = self.shared.lock();
        st.mode = mode;
        match mode {
            Mode::Pass => {}
            Mode::Blackhole => {
                for l in &st.links {
                    l.wedged.store(true, Ordering::Release);
                }
            }
            Mode::Reset => {
                for l in st.links.drain(..) {
                    l.reset();
                    self.shared.reset.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Connections accepted so far, and how many of them were reset.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.accepted.load(Ordering::Relaxed),
            self.shared.reset.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let links = {
            let mut st = self.shared.lock();
            st.stopping = true;
            std::mem::take(&mut st.links)
        };
        self.shared.changed.notify_all();
        for l in links {
            l.reset();
        }
        // Wake the acceptor out of `accept` with a connection of our own.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let mode = {
            let st = shared.lock();
            if st.stopping {
                return;
            }
            st.mode
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let link = match mode {
            Mode::Reset => {
                let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
                shared.reset.fetch_add(1, Ordering::Relaxed);
                drop(client);
                continue;
            }
            // Accepted and never answered: held until a reset or the proxy's end.
            Mode::Blackhole => Link {
                client,
                upstream: None,
                wedged: AtomicBool::new(true),
                killed: AtomicBool::new(false),
            },
            Mode::Pass => {
                let Ok(up) = TcpStream::connect(upstream) else {
                    // The engine is down: the executor sees a refusal-like reset.
                    let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
                    continue;
                };
                let _ = up.set_nodelay(true);
                Link {
                    client,
                    upstream: Some(up),
                    wedged: AtomicBool::new(false),
                    killed: AtomicBool::new(false),
                }
            }
        };
        let link = Arc::new(link);
        {
            // Listed under the lock, against the mode of now: a switch made since the
            // accept applies to this connection too.
            let mut st = shared.lock();
            match st.mode {
                Mode::Pass => st.links.push(Arc::clone(&link)),
                Mode::Blackhole => {
                    link.wedged.store(true, Ordering::Release);
                    st.links.push(Arc::clone(&link));
                }
                Mode::Reset => {
                    link.reset();
                    shared.reset.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        if let Some(up) = &link.upstream
            && let (Ok(c_read), Ok(u_write), Ok(u_read), Ok(c_write)) = (
                link.client.try_clone(),
                up.try_clone(),
                up.try_clone(),
                link.client.try_clone(),
            )
        {
            spawn_pump(shared, &link, c_read, u_write);
            spawn_pump(shared, &link, u_read, c_write);
        }
    }
}

fn spawn_pump(shared: &Arc<Shared>, link: &Arc<Link>, from: TcpStream, to: TcpStream) {
    let shared = Arc::clone(shared);
    let link = Arc::clone(link);
    let _ = std::thread::Builder::new()
        .name("proxy-pump".into())
        .spawn(move || pump(&shared, &link, from, to));
}

/// Copies `from` to `to` until either ends, or parks once the link is wedged (keeping both
/// sockets open and unread) until it is reset or the proxy goes away.
fn pump(shared: &Shared, link: &Link, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if link.wedged.load(Ordering::Acquire) {
            let mut st = shared.lock();
            while !st.stopping && !link.killed.load(Ordering::Acquire) {
                st = shared
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if link.killed.load(Ordering::Acquire) {
            return;
        }
        if n == 0 {
            // An orderly end on one side is passed on as one.
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        // Bytes read just as the blackhole started are swallowed with the rest.
        if link.wedged.load(Ordering::Acquire) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            let _ = from.shutdown(Shutdown::Read);
            return;
        }
    }
}
