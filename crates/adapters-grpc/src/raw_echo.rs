//! The raw baseline for `gamelan bench`: N messages of B bytes round-tripped over one
//! bidirectional tonic stream, with nothing of the Gamelan protocol around them. Measured in
//! the same run as the real transport, it turns an absolute figure into a ratio.

use std::time::{Duration, Instant};

use prost::bytes::Bytes;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status, Streaming};

use crate::error::GrpcError;
use crate::proto::bench::EchoFrame;
use crate::proto::bench::raw_echo_client::RawEchoClient;
use crate::proto::bench::raw_echo_server::{RawEcho, RawEchoServer};
use crate::settings::normalize_url;

/// Room for framing around the payload in the message size limits.
const SIZE_SLACK: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoRun {
    pub messages: usize,
    pub payload_bytes: usize,
    pub elapsed: Duration,
}

impl EchoRun {
    pub fn messages_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.messages as f64 / secs
        } else {
            f64::INFINITY
        }
    }
}

struct Echo;

#[tonic::async_trait]
impl RawEcho for Echo {
    type EchoStream = Streaming<EchoFrame>;

    /// The inbound stream is the outbound one: every frame goes straight back.
    async fn echo(
        &self,
        request: Request<Streaming<EchoFrame>>,
    ) -> Result<Response<Self::EchoStream>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// The echo service, to serve alone or next to other routes.
pub fn routes(max_message_size: usize) -> Routes {
    Routes::new(
        RawEchoServer::new(Echo)
            .max_decoding_message_size(max_message_size)
            .max_encoding_message_size(max_message_size),
    )
}

/// Sends `messages` frames of `payload_bytes` on one stream as fast as flow control allows and
/// returns the time until the last echo arrived.
pub async fn drive(
    url: &str,
    messages: usize,
    payload_bytes: usize,
) -> Result<Duration, GrpcError> {
    let url = normalize_url(url, false);
    let channel = Endpoint::from_shared(url.clone())
        .map_err(|e| GrpcError::InvalidUrl {
            url,
            reason: e.to_string(),
        })?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let limit = payload_bytes + SIZE_SLACK;
    let mut client = RawEchoClient::new(channel)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let payload = Bytes::from(vec![0xA5; payload_bytes]);
    let started = Instant::now();
    let outbound = tokio_stream::iter((0..messages).map(move |_| EchoFrame {
        payload: payload.clone(),
    }));
    let mut inbound = client.echo(outbound).await?.into_inner();
    let mut received = 0;
    while received < messages {
        match inbound.message().await? {
            Some(f) if f.payload.len() == payload_bytes => received += 1,
            Some(f) => {
                return Err(GrpcError::Other(format!(
                    "echo returned {} bytes instead of {payload_bytes}",
                    f.payload.len()
                )));
            }
            None => {
                return Err(GrpcError::Other(format!(
                    "echo stream ended after {received} of {messages} messages"
                )));
            }
        }
    }
    Ok(started.elapsed())
}

/// Server and client in one process on a loopback port, on a private two-thread runtime.
/// Call from a plain thread (not from inside a tokio runtime).
pub fn run_loopback(messages: usize, payload_bytes: usize) -> Result<EchoRun, GrpcError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::serve(
            listener,
            routes(payload_bytes + SIZE_SLACK),
            None,
            async {
                let _ = stopped.await;
            },
        ));
        let elapsed = drive(&addr.to_string(), messages, payload_bytes).await;
        let _ = stop.send(());
        let _ = server.await;
        Ok(EchoRun {
            messages,
            payload_bytes,
            elapsed: elapsed?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trips_a_few_hundred_messages() {
        let run = run_loopback(500, 128).unwrap();
        assert_eq!(run.messages, 500);
        assert!(run.elapsed > Duration::ZERO);
        assert!(run.messages_per_second().is_finite());
    }

    #[test]
    fn zero_byte_payloads_work_too() {
        let run = run_loopback(300, 0).unwrap();
        assert_eq!(run.messages, 300);
    }
}
