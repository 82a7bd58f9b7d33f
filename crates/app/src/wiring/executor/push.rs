//! Push delivery's own settings: where the push server listens, its TLS identity and how it
//! checks the engine's token. Checked at start so a bad value stops the process with a
//! message naming the key.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use gamelan_grpc::ServerTls;
use gamelan_ports::{AllowAll, TokenVerifier};

use super::WiringError;
use crate::config::ExecutorConfig;
use crate::security::JwtVerifier;

/// `grpc.host` as an address: an IP as is, a host name resolved now (first address).
pub(super) fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, WiringError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let refuse = |reason: String| WiringError::Setting {
        key: "gamelan.executor.grpc.host",
        value: host.to_owned(),
        reason,
    };
    let addr = (bare, port)
        .to_socket_addrs()
        .map_err(|e| {
            refuse(format!(
                "does not resolve ({e}); give an IP or a resolvable name"
            ))
        })?
        .next()
        .ok_or_else(|| refuse("resolves to no address; give an IP".into()))?;
    log::info!(target: "gamelan.executor.runtime", "grpc.host '{host}' resolved to {}", addr.ip());
    Ok(addr)
}

/// With `grpc.use-ssl` the push server serves TLS with the executor's certificate; a CA makes
/// it mutual (the engine must present a certificate signed by that CA).
pub(super) fn server_tls(
    identity: Option<(Vec<u8>, Vec<u8>)>,
    ca: Option<Vec<u8>>,
) -> Result<ServerTls, WiringError> {
    let (certificate_pem, key_pem) = identity.ok_or_else(|| WiringError::Setting {
        key: "gamelan.executor.grpc.certificate-path",
        value: String::new(),
        reason: "push delivery with grpc.use-ssl needs grpc.certificate-path and \
                 grpc.private-key-path: they are the push server's TLS identity"
            .into(),
    })?;
    Ok(ServerTls {
        certificate_pem,
        key_pem,
        client_ca_pem: ca,
    })
}

/// The engine signs its push calls with its `jwt.secret`/`jwt.issuer`; the push server checks
/// them with the executor's, so both sides must share the secret and issuer.
pub(super) fn verifier(cfg: &ExecutorConfig) -> Arc<dyn TokenVerifier> {
    match (&cfg.jwt.secret, cfg.jwt.enabled) {
        (Some(secret), true) => Arc::new(JwtVerifier::new(secret.expose(), &cfg.jwt.issuer)),
        (None, true) => {
            log::warn!(target: "gamelan.executor.runtime",
                "push server: a static token (security.jwt.token) cannot check the engine's \
                 token; set jwt.secret to authenticate push calls");
            Arc::new(AllowAll)
        }
        (_, false) => {
            log::warn!(target: "gamelan.executor.runtime",
                "push server accepts unauthenticated calls (set jwt.secret, shared with the engine)");
            Arc::new(AllowAll)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_pass_names_resolve_and_unknown_names_are_refused_by_key() {
        assert_eq!(
            listen_addr("0.0.0.0", 9090).unwrap(),
            "0.0.0.0:9090".parse().unwrap()
        );
        assert_eq!(listen_addr("[::1]", 1).unwrap(), "[::1]:1".parse().unwrap());
        assert!(listen_addr("localhost", 9090).unwrap().ip().is_loopback());
        let err = listen_addr("no-such-host.invalid", 9090)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gamelan.executor.grpc.host"), "{err}");
        assert!(err.contains("no-such-host.invalid"), "{err}");
    }
}
