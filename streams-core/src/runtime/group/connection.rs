//! [`Connection`]: one blocking connection to a broker that sends Kafka protocol requests and
//! reads their answers, each at the highest version both sides speak.
//!
//! The group member and its offset client each own one; a request is answered before the next
//! is sent, which is all the group protocol needs (Java's consumer keeps one request to the
//! coordinator in flight too). Encoding comes from the `kafka-protocol` crate; TLS and SASL
//! from [`Security`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange,
};
use openssl::ssl::SslStream;

use super::security::{SaslExchange, Security};

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The connection failed or timed out: reconnect (and find the coordinator again).
    Transport(String),
    /// The broker answered with an error code.
    Broker(ResponseError),
    /// The broker cannot take this request at all (no common version) or answered garbage.
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(m) | Failure::Protocol(m) => f.write_str(m),
            Failure::Broker(e) => write!(f, "{e:?}: {e}"),
        }
    }
}

impl Failure {
    /// `Ok` for error code 0, else the broker's error.
    pub fn check(code: i16) -> Result<(), Failure> {
        match code.err() {
            None => Ok(()),
            Some(e) => Err(Failure::Broker(e)),
        }
    }
}

/// The version of each group API this client prefers: the lowest with every field it uses, the
/// versions librdkafka's own consumer speaks (JoinGroup/SyncGroup/Heartbeat v3-v5 carry
/// `group.instance.id`, LeaveGroup v3 names members). Newer versions add fields it does not use
/// (a rebalance reason, the protocol echoed back), and the flexible encodings they bring are the
/// less-trodden path of some brokers: librdkafka's mock cluster, the demo broker, misreads a
/// flexible JoinGroup (v6). A broker that no longer speaks a preferred version (KIP-896) gets
/// its oldest. Other APIs go at the highest common version.
fn preferred_version(api_key: i16) -> i16 {
    use kafka_protocol::messages::{
        HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
    };
    match api_key {
        JoinGroupRequest::KEY => 5,
        SyncGroupRequest::KEY | HeartbeatRequest::KEY | LeaveGroupRequest::KEY => 3,
        _ => i16::MAX,
    }
}

/// Largest answer accepted; a JoinGroup answer to the leader of a large group is the biggest the
/// group protocol sees (every member's subscription), far below this.
const MAX_RESPONSE: usize = 100 * 1024 * 1024;

/// A socket, over TLS or not.
enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection to one broker.
pub(crate) struct Connection {
    stream: Stream,
    address: String,
    client_id: StrBytes,
    correlation: i32,
    /// The broker's version range per API key, from its ApiVersions answer.
    versions: HashMap<i16, VersionRange>,
}

impl Connection {
    /// Connects to `address` (`host:port`) as `security` says, learns the broker's API
    /// versions and authenticates.
    pub fn open(
        address: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self, Failure> {
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| Failure::Transport(format!("cannot resolve {address}: {e}")))?
            .collect();
        let mut last = format!("{address} resolves to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    // Requests are small and each waits for its answer: no batching to wait for.
                    stream
                        .set_nodelay(true)
                        .map_err(|e| Failure::Transport(format!("{address}: {e}")))?;
                    let stream = match &security.tls {
                        None => Stream::Plain(stream),
                        Some(tls) => {
                            Stream::Tls(Box::new(handshake(tls, address, stream, timeout)?))
                        }
                    };
                    let mut c = Connection {
                        stream,
                        address: address.to_string(),
                        client_id: StrBytes::from_string(client_id.to_string()),
                        correlation: 0,
                        versions: HashMap::new(),
                    };
                    c.learn_versions(timeout)?;
                    if let Some(sasl) = &security.sasl {
                        c.authenticate(
                            SaslExchange::new(sasl.clone()),
                            sasl.mechanism.name(),
                            timeout,
                        )?;
                    }
                    return Ok(c);
                }
                Err(e) => last = format!("cannot connect to {address} ({addr}): {e}"),
            }
        }
        Err(Failure::Transport(last))
    }

    /// ApiVersions, the only request sent before knowing versions: v3 (Kafka >= 2.4, KIP-511),
    /// and v2 (Kafka >= 2.0) where that is refused: librdkafka's mock cluster, the demo broker,
    /// speaks up to v2 and answers a version it does not know with UNSUPPORTED_VERSION.
    fn learn_versions(&mut self, timeout: Duration) -> Result<(), Failure> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("rstreams"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let answer = match self.exchange(&request, 3, timeout) {
            Ok(a) if a.error_code == ResponseError::UnsupportedVersion.code() => {
                self.exchange(&ApiVersionsRequest::default(), 2, timeout)?
            }
            other => other?,
        };
        Failure::check(answer.error_code)?;
        self.versions = answer
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        Ok(())
    }

    /// SaslHandshake v1 naming `mechanism`, then SaslAuthenticate until `exchange` is done. A
    /// refusal is a protocol failure (no retry helps); its message names the settings to check.
    fn authenticate(
        &mut self,
        mut exchange: SaslExchange,
        mechanism: &str,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let address = self.address.clone();
        let refused = |why: String| {
            Failure::Protocol(format!(
                "SASL {mechanism} authentication with {address} failed: {why}; check \
                 sasl.mechanism, sasl.username and sasl.password"
            ))
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        let answer = self.exchange(&handshake, 1, timeout)?;
        if answer.error_code != 0 {
            let enabled: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(refused(format!("the broker enables {enabled:?}")));
        }
        let mut server = Bytes::new();
        while let Some(message) = exchange.next(&server).map_err(refused)? {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
            let answer = self.send(&request, timeout)?;
            if answer.error_code != 0 {
                let why = answer
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| format!("error code {}", answer.error_code));
                return Err(refused(why));
            }
            server = answer.auth_bytes;
        }
        Ok(())
    }

    /// The version `R` is sent at: the lowest that carries every field this client uses
    /// ([`preferred_version`]) if the broker still speaks it, else the nearest it does.
    pub fn version<R: Request>(&self) -> Result<i16, Failure> {
        let broker = self.versions.get(&R::KEY).ok_or_else(|| {
            Failure::Protocol(format!(
                "broker {} does not support API key {} at all",
                self.address,
                R::KEY
            ))
        })?;
        let common = broker.intersect(&R::VERSIONS);
        if common.is_empty() {
            return Err(Failure::Protocol(format!(
                "broker {} speaks versions {broker} of API key {}, this client {}",
                self.address,
                R::KEY,
                R::VERSIONS
            )));
        }
        Ok(preferred_version(R::KEY).clamp(common.min, common.max))
    }

    /// Sends `request` at the negotiated version and waits up to `timeout` for its answer.
    pub fn send<R: Request>(
        &mut self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, Failure> {
        let version = self.version::<R>()?;
        self.exchange(request, version, timeout)
    }

    fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, Failure> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        let encode = |e: &dyn std::fmt::Display| {
            Failure::Protocol(format!("cannot encode request {}: {e}", R::KEY))
        };
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| encode(&e))?;
        request.encode(&mut body, version).map_err(|e| encode(&e))?;
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        let io = |e: std::io::Error| Failure::Transport(format!("{}: {e}", self.address));
        let tcp = self.stream.tcp();
        tcp.set_write_timeout(Some(timeout))
            .map_err(|e| Failure::Transport(e.to_string()))?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(|e| Failure::Transport(e.to_string()))?;
        self.stream.write_all(&frame).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE)
            .ok_or_else(|| {
                Failure::Protocol(format!("{} answered a frame of {size} bytes", self.address))
            })?;
        let mut answer = vec![0u8; size];
        self.stream.read_exact(&mut answer).map_err(io)?;
        let mut answer = Bytes::from(answer);
        let address = &self.address;
        let decode = |e: &dyn std::fmt::Display| {
            Failure::Protocol(format!("cannot decode the answer of {address}: {e}"))
        };
        let header = ResponseHeader::decode(&mut answer, R::Response::header_version(version))
            .map_err(|e| decode(&e))?;
        if header.correlation_id != correlation {
            return Err(Failure::Protocol(format!(
                "{} answered request {} to request {correlation}",
                self.address, header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut answer, version).map_err(|e| decode(&e))?;
        if answer.has_remaining() {
            tracing::debug!(
                api = R::KEY,
                left = answer.remaining(),
                "answer longer than its message"
            );
        }
        Ok(response)
    }
}

/// The TLS handshake on `stream` to `address`. A certificate the context does not trust is a
/// protocol failure (no retry helps); a connection that drops is a transport one.
fn handshake(
    tls: &super::security::Tls,
    address: &str,
    stream: TcpStream,
    timeout: Duration,
) -> Result<SslStream<TcpStream>, Failure> {
    use openssl::ssl::HandshakeError;
    let io = |e: std::io::Error| Failure::Transport(format!("{address}: {e}"));
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let config = tls
        .connector
        .configure()
        .map_err(|e| Failure::Protocol(format!("TLS to {address}: {e}")))?
        .verify_hostname(tls.verify_hostname);
    config.connect(host, stream).map_err(|e| match e {
        HandshakeError::Failure(mid) => Failure::Protocol(format!(
            "the TLS handshake with {address} failed: {} ({}); if the broker's certificate is \
             signed by a private CA, set ssl.ca.location to that CA's PEM file",
            mid.error(),
            mid.ssl().verify_result()
        )),
        HandshakeError::WouldBlock(_) => {
            Failure::Transport(format!("the TLS handshake with {address} timed out"))
        }
        HandshakeError::SetupFailure(e) => Failure::Protocol(format!("TLS to {address}: {e}")),
    })
}
