//! Connection settings of both sides, and how they become tonic endpoints.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use gamelan_ports::{AllowAll, NoToken, TokenSource, TokenVerifier};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::error::GrpcError;

/// gRPC's usual default, and the Java runtime's.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// How tasks reach the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// One bidirectional `ExecuteStream` per connection: the fast path, with result verdicts.
    #[default]
    ExecuteStream,
    /// `StreamTasks` + `AcknowledgeTask` + `ReportResults`: what the Java engine serves.
    StreamTasks,
    /// The engine calls `dispatcher.Executor.Execute` on a server the executor runs.
    Push,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecuteStream => "execute-stream",
            Self::StreamTasks => "stream-tasks",
            Self::Push => "push",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown gRPC delivery '{0}' (expected execute-stream, stream-tasks or push)")]
pub struct UnknownDelivery(pub String);

impl FromStr for Delivery {
    type Err = UnknownDelivery;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "execute-stream" | "executestream" | "bidi" | "stream" => Ok(Self::ExecuteStream),
            "stream-tasks" | "streamtasks" | "pull" => Ok(Self::StreamTasks),
            "push" => Ok(Self::Push),
            _ => Err(UnknownDelivery(s.to_owned())),
        }
    }
}

/// TLS towards a server. Without a CA the roots compiled into tonic (if any) are used.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Overrides the name checked against the server certificate.
    pub domain: Option<String>,
}

/// Key material stays out of logs.
impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_certificate", &self.ca_certificate_pem.is_some())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("domain", &self.domain)
            .finish()
    }
}

impl ClientTls {
    fn config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &self.ca_certificate_pem {
            c = c.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &self.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        if let Some(d) = &self.domain {
            c = c.domain_name(d.clone());
        }
        c
    }
}

/// TLS of a listener (engine, or an executor's push server).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("key", &"<redacted>")
            .field("client_ca", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    pub(crate) fn config(&self) -> ServerTlsConfig {
        let mut c = ServerTlsConfig::new().identity(Identity::from_pem(
            self.certificate_pem.clone(),
            self.key_pem.clone(),
        ));
        if let Some(ca) = &self.client_ca_pem {
            c = c.client_ca_root(Certificate::from_pem(ca));
        }
        c
    }
}

/// Executor side.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcClientSettings {
    /// `http://host:port` (or `https://` with `tls`); a bare `host:port` gets `http://`.
    pub engine_url: String,
    pub delivery: Delivery,
    /// Where the push server listens (push delivery only).
    pub push_listen_addr: SocketAddr,
    /// The host registered with the engine (the port is the bound one); default: the bound
    /// IP, or for an unspecified IP `$HOSTNAME` when it resolves, else 127.0.0.1.
    pub push_advertised_host: Option<String>,
    /// TLS of the push server (registered as `https://`); with a client CA the engine must
    /// present a certificate signed by it.
    pub push_tls: Option<ServerTls>,
    pub connect_timeout: Duration,
    /// Bound on every unary call and on waiting for result verdicts.
    pub request_timeout: Duration,
    pub keep_alive_time: Duration,
    pub keep_alive_timeout: Duration,
    pub max_message_size: usize,
    pub flow_control_window: Option<u32>,
    /// HTTP/2 streams the push server accepts per connection.
    pub max_concurrent_streams: Option<u32>,
    pub tls: Option<ClientTls>,
}

impl Default for GrpcClientSettings {
    fn default() -> Self {
        Self {
            engine_url: "http://localhost:8080".to_owned(),
            delivery: Delivery::default(),
            push_listen_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            push_advertised_host: None,
            push_tls: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            keep_alive_time: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            flow_control_window: None,
            max_concurrent_streams: None,
            tls: None,
        }
    }
}

impl GrpcClientSettings {
    pub fn new(engine_url: impl Into<String>) -> Self {
        Self {
            engine_url: engine_url.into(),
            ..Self::default()
        }
    }

    pub(crate) fn endpoint(&self) -> Result<Endpoint, GrpcError> {
        EndpointSpec {
            url: &self.engine_url,
            connect_timeout: self.connect_timeout,
            keep_alive: Some((self.keep_alive_time, self.keep_alive_timeout)),
            window: self.flow_control_window,
            tls: self.tls.as_ref(),
        }
        .build()
    }
}

/// Engine side: how it calls executors that registered a push endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct PushClientSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_message_size: usize,
    pub tls: Option<ClientTls>,
}

impl Default for PushClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            tls: None,
        }
    }
}

impl PushClientSettings {
    /// TLS only towards an executor that registered an `https://` (or `grpcs://`) endpoint: a
    /// bare `host:port` is plain, as the Java runtime registers it.
    pub(crate) fn is_tls(url: &str) -> bool {
        normalize_url(url, false).starts_with("https://")
    }

    pub(crate) fn endpoint(&self, url: &str) -> Result<Endpoint, GrpcError> {
        let tls = if Self::is_tls(url) {
            Some(self.tls.clone().unwrap_or_default())
        } else {
            None
        };
        EndpointSpec {
            url: &normalize_url(url, false),
            connect_timeout: self.connect_timeout,
            keep_alive: None,
            window: None,
            tls: tls.as_ref(),
        }
        .build()
    }
}

/// Engine side.
#[derive(Clone)]
pub struct GrpcServerSettings {
    /// Largest message accepted or sent; larger ones fail that call with a status.
    pub max_message_size: usize,
    /// Checks the `authorization` metadata of every call.
    pub verifier: Arc<dyn TokenVerifier>,
    pub push_client: PushClientSettings,
    /// The token sent on every push call (`authorization: Bearer`), checked by the
    /// executor's push server.
    pub push_token: Arc<dyn TokenSource>,
}

impl Default for GrpcServerSettings {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            verifier: Arc::new(AllowAll),
            push_client: PushClientSettings::default(),
            push_token: Arc::new(NoToken),
        }
    }
}

struct EndpointSpec<'a> {
    url: &'a str,
    connect_timeout: Duration,
    keep_alive: Option<(Duration, Duration)>,
    window: Option<u32>,
    tls: Option<&'a ClientTls>,
}

impl EndpointSpec<'_> {
    /// No per-request timeout on the endpoint: it would also cut the long-lived streams.
    fn build(self) -> Result<Endpoint, GrpcError> {
        let url = normalize_url(self.url, self.tls.is_some());
        let invalid = |reason: String| GrpcError::InvalidUrl {
            url: url.clone(),
            reason,
        };
        let mut ep = Endpoint::from_shared(url.clone())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(self.window)
            .initial_connection_window_size(self.window);
        if let Some((interval, timeout)) = self.keep_alive
            && !interval.is_zero()
        {
            ep = ep
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        if let Some(tls) = self.tls {
            ep = ep
                .tls_config(tls.config())
                .map_err(|e| GrpcError::Tls(e.to_string()))?;
        }
        Ok(ep)
    }
}

/// Accepts the forms people write in config files (`host:port`, `grpc://host:port`).
pub fn normalize_url(url: &str, tls: bool) -> String {
    let url = url.trim().trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("grpc://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("grpcs://") {
        format!("https://{rest}")
    } else if url.contains("://") {
        url.to_owned()
    } else if tls {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_parses_config_spellings() {
        assert_eq!("stream-tasks".parse(), Ok(Delivery::StreamTasks));
        assert_eq!("STREAM_TASKS".parse(), Ok(Delivery::StreamTasks));
        assert_eq!("push".parse(), Ok(Delivery::Push));
        assert_eq!("execute-stream".parse(), Ok(Delivery::ExecuteStream));
        assert!("carrier-pigeon".parse::<Delivery>().is_err());
    }

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("engine:8080", false), "http://engine:8080");
        assert_eq!(normalize_url("engine:8080", true), "https://engine:8080");
        assert_eq!(normalize_url("grpc://e:1/", false), "http://e:1");
        assert_eq!(normalize_url("http://e:1", true), "http://e:1");
    }

    #[test]
    fn debug_output_hides_keys() {
        let tls = ClientTls {
            identity: Some((b"CERT".to_vec(), b"SECRET-KEY".to_vec())),
            ..ClientTls::default()
        };
        assert!(!format!("{tls:?}").contains("SECRET"));
        let server = ServerTls {
            certificate_pem: b"CERT".to_vec(),
            key_pem: b"SECRET-KEY".to_vec(),
            client_ca_pem: None,
        };
        assert!(!format!("{server:?}").contains("SECRET"));
        assert!(!format!("{server:?}").contains("83, 69"));
    }

    #[test]
    fn a_bad_url_is_an_error() {
        let s = GrpcClientSettings::new("http://bad host:99999");
        assert!(matches!(s.endpoint(), Err(GrpcError::InvalidUrl { .. })));
        assert!(GrpcClientSettings::default().endpoint().is_ok());
    }
}
