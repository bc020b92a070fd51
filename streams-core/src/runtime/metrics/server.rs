//! The `/metrics` endpoint (`metrics.http.address`): Prometheus' text format over plain HTTP/1.1.
//!
//! A scrape endpoint answers one GET at a time and needs no routing, TLS or keep-alive, so a
//! blocking listener on its own thread is enough; an HTTP framework would add a dependency tree
//! for nothing the scraper uses.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::runtime::metrics::StreamsMetrics;
use crate::{Result, StreamsError};

/// How often the idle listener checks for shutdown.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A running endpoint; stops when dropped.
pub(crate) struct MetricsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `address` (`host:port`, port 0 for any free port) and serves `metrics` there.
    pub fn start(address: &str, metrics: Arc<StreamsMetrics>) -> Result<Self> {
        let listener = TcpListener::bind(address).map_err(|e| {
            StreamsError::Config(format!(
                "`metrics.http.address` = `{address}` cannot be bound ({e}); give a free host:port, or port 0"
            ))
        })?;
        let io = |source| StreamsError::Io {
            path: format!("metrics listener {address}").into(),
            source,
        };
        let bound = listener.local_addr().map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Err(e) = serve(stream, &metrics) {
                                tracing::debug!(error = %e, "metrics request failed");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(ACCEPT_POLL)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "metrics listener failed");
                            std::thread::sleep(ACCEPT_POLL)
                        }
                    }
                }
            })
            .map_err(io)?;
        tracing::info!(address = %bound, "serving metrics at http://{bound}/metrics");
        Ok(MetricsServer {
            address: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, metrics: &StreamsMetrics) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Headers are read and ignored up to the blank line, so the client sees its request consumed.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") | ("GET", "/") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found; metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".to_string(),
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::metrics::{RecordingLevel, THREAD_COMMIT};
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn serves_the_text_format_and_stops_on_drop() {
        let metrics =
            Arc::new(StreamsMetrics::new(RecordingLevel::Info).unwrap_or_else(|e| panic!("{e}")));
        let commit = metrics.sensor(THREAD_COMMIT, &["t-1"]);
        commit.record(4.0);
        let server =
            MetricsServer::start("127.0.0.1:0", metrics.clone()).unwrap_or_else(|e| panic!("{e}"));
        let addr = server.address();
        let body = get(addr, "/metrics");
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("# TYPE kafka_streams_stream_thread_metrics_commit_total counter"));
        assert!(
            body.contains("kafka_streams_stream_thread_metrics_commit_total{thread_id=\"t-1\"} 1")
        );
        commit.record(6.0);
        assert!(get(addr, "/metrics")
            .contains("kafka_streams_stream_thread_metrics_commit_total{thread_id=\"t-1\"} 2"));
        assert!(get(addr, "/other").starts_with("HTTP/1.1 404"));
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    }

    #[test]
    fn an_address_in_use_is_a_config_error() {
        let metrics =
            Arc::new(StreamsMetrics::new(RecordingLevel::Info).unwrap_or_else(|e| panic!("{e}")));
        let first =
            MetricsServer::start("127.0.0.1:0", metrics.clone()).unwrap_or_else(|e| panic!("{e}"));
        let taken = first.address().to_string();
        let e = MetricsServer::start(&taken, metrics)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("metrics.http.address"), "{e}");
    }
}
