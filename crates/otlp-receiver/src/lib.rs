//! A real OTLP/HTTP traces receiver that tests start in-process.
//!
//! Docker does not run on the machines this project is built and tested on, so there is no
//! collector to export to. This crate is the stand-in: a small HTTP server on an ephemeral
//! loopback port that speaks the receiving side of [OTLP/HTTP] for traces, decodes every
//! body with the official OTLP definitions (the `opentelemetry-proto` crate of the pinned 0.33
//! set), records what arrived, and answers the way a test asks it to ([`Behaviour`]).
//!
//! What it guarantees:
//!
//! - **Both encodings, decoded by the official types.** `Content-Type: application/x-protobuf`
//!   bodies are decoded with prost into [`ExportTraceServiceRequest`]; `application/json`
//!   bodies are decoded as OTLP/JSON (hex trace and span ids, 64-bit integers as strings or
//!   numbers, enums as integers, unknown fields ignored) into the same type. `Content-Encoding:
//!   gzip` is undone first. The answer to an accepted request is an empty
//!   `ExportTraceServiceResponse` in the request's encoding.
//! - **Strict where exporters go wrong.** A request is rejected, and recorded with the reason,
//!   when its path is not `/v1/traces` (404), its method is not `POST` (405), its content type
//!   or encoding is not one of the above (415), its body (or the body once decompressed) is
//!   over [`MAX_BODY_BYTES`] (413), or its body does not decode or carries an id of the wrong
//!   length or all zeroes (400; base64 ids in JSON, the classic mistake, land here). Error
//!   answers carry a `google.rpc.Status` in the request's encoding, as the specification asks.
//! - **Everything that arrives is recorded**, accepted or not, with its headers, in arrival
//!   order ([`Receiver::requests`]). A request is recorded as soon as it is decoded, before any
//!   [`Behaviour::Delay`]: a test can see that a request arrived while its sender still waits.
//! - **Waiting is event-driven.** [`Receiver::wait_for_spans`] and
//!   [`Receiver::wait_for_requests`] sleep on a condition variable that every recorded request
//!   signals, up to a deadline; no test needs a fixed sleep.
//! - **It stops when dropped.** Dropping the [`Receiver`] closes the port and ends every
//!   connection and every delayed answer; nothing outlives it.
//!
//! The server is hyper's HTTP/1.1 connection driver on a private current-thread tokio runtime,
//! on one thread named after the port. HTTP/1.1 is what the OTLP/HTTP exporters use over plain
//! TCP; there is no TLS and no HTTP/2.
//!
//! [OTLP/HTTP]: https://opentelemetry.io/docs/specs/otlp/#otlphttp

mod decode;
mod server;
mod span;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The official OTLP definitions this receiver decodes into, re-exported so that tests build
/// request bodies with exactly the version the receiver reads.
pub use opentelemetry_proto;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
/// The protobuf runtime of those definitions, for `Message::encode_to_vec` and `decode`.
pub use prost;
pub use span::{ReceivedEvent, ReceivedLink, ReceivedSpan};

/// The OTLP/HTTP path for traces, relative to [`Receiver::endpoint`].
pub const TRACES_PATH: &str = "/v1/traces";

/// The largest body accepted, both as received and once decompressed (32 MiB); larger ones
/// are answered 413. It bounds the receiver's memory per request, gzip bombs included.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How the receiver answers well-formed export requests.
///
/// Malformed requests are always answered with the 4xx status that describes them, whatever
/// the behaviour; the behaviour only decides the answer to requests it could have accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer 200 with an empty `ExportTraceServiceResponse`.
    Accept,
    /// Answer with this status, which must be a client or server error (400..=599), and a
    /// `google.rpc.Status` body. The request is still decoded and recorded. Note that the
    /// 0.33 OTLP exporters retry 429, 502, 503 and 504 (and network errors), not 500.
    Fail(u16),
    /// Wait this long, then accept. The request is recorded before the wait.
    Delay(Duration),
    /// Answer the n-th well-formed request (counting from 0, since this behaviour was set)
    /// like element n; the last element answers every request after it. Elements must not be
    /// sequences themselves, and there must be at least one.
    Sequence(Vec<Behaviour>),
}

impl Behaviour {
    fn validate(&self, nested: bool) -> io::Result<()> {
        let invalid = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        match self {
            Behaviour::Accept | Behaviour::Delay(_) => Ok(()),
            Behaviour::Fail(status) if (400..=599).contains(status) => Ok(()),
            Behaviour::Fail(status) => invalid(format!("Behaviour::Fail({status}): the status must be in 400..=599")),
            Behaviour::Sequence(_) if nested => invalid("Behaviour::Sequence inside a Sequence".to_owned()),
            Behaviour::Sequence(steps) if steps.is_empty() => invalid("Behaviour::Sequence is empty".to_owned()),
            Behaviour::Sequence(steps) => steps.iter().try_for_each(|step| step.validate(true)),
        }
    }

    /// The answer to the `index`-th well-formed request: never a `Sequence`.
    fn step(&self, index: usize) -> &Behaviour {
        match self {
            Behaviour::Sequence(steps) => &steps[index.min(steps.len() - 1)],
            other => other,
        }
    }
}

/// Resource or attribute key-value pairs rendered as strings, sorted by key.
pub type Attributes = BTreeMap<String, String>;

/// The OTLP/HTTP encoding of a request body, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `application/x-protobuf`: binary protobuf.
    Protobuf,
    /// `application/json`: OTLP/JSON.
    Json,
}

/// One HTTP request as the receiver saw it, accepted or not.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The `Content-Type` header as sent, if any.
    pub content_type: Option<String>,
    /// The `Content-Encoding` header as sent, if any.
    pub content_encoding: Option<String>,
    /// Every header, with lower-case names, once per value.
    pub headers: Vec<(String, String)>,
    /// The encoding named by the content type, when it is one the receiver reads.
    pub protocol: Option<Protocol>,
    /// The body's length in bytes as received (compressed, if it was); 0 when the request was
    /// rejected before its body was read.
    pub body_len: usize,
    /// The status the receiver answered (or, under [`Behaviour::Delay`], will answer).
    pub status: u16,
    /// The decoded export request, when the body decoded.
    pub traces: Option<ExportTraceServiceRequest>,
    /// Why the request was rejected, for 4xx answers the receiver chose itself; `None` for
    /// accepted requests and for failures ordered by [`Behaviour::Fail`].
    pub error: Option<String>,
}

impl Request {
    /// The first value of the header `name` (matched without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Whether the receiver answered with a 2xx status.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The number of spans in the decoded body (0 when it did not decode).
    pub fn span_count(&self) -> usize {
        self.traces.as_ref().map_or(0, span::count)
    }
}

/// [`Receiver::wait_for_spans`] or [`Receiver::wait_for_requests`] reached its deadline.
///
/// It carries what did arrive, and its `Display` summarises it, so that a failing test says
/// whether nothing came, or something came and was rejected.
#[derive(Clone, Debug)]
pub struct WaitTimeout {
    /// What was waited for: `"spans"` or `"requests"`.
    pub waited_for: &'static str,
    /// How many were wanted.
    pub wanted: usize,
    /// How many had arrived at the deadline.
    pub got: usize,
    /// The timeout that ran out.
    pub timeout: Duration,
    /// Every request recorded by the deadline.
    pub requests: Vec<Request>,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {} {}: got {}, in {} request(s)",
            self.timeout,
            self.wanted,
            self.waited_for,
            self.got,
            self.requests.len()
        )?;
        // The last few requests say what is going on; a flood of them would bury the message.
        const SHOWN: usize = 20;
        let skipped = self.requests.len().saturating_sub(SHOWN);
        if skipped > 0 {
            write!(f, "\n  ({skipped} earlier requests not shown)")?;
        }
        for (index, request) in self.requests.iter().enumerate().skip(skipped) {
            write!(f, "\n  #{index}: {} {} -> {}", request.method, request.path, request.status)?;
            if let Some(error) = &request.error {
                write!(f, " ({error})")?;
            } else {
                write!(f, " ({} spans)", request.span_count())?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for WaitTimeout {}

/// State shared between the test's thread and the server thread.
struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
}

struct State {
    behaviour: Behaviour,
    /// Well-formed requests answered under the current behaviour.
    answered: usize,
    requests: Vec<Request>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated: every update is
        // one assignment or one push.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The behaviour step for the next well-formed request.
    fn next_step(&self) -> Behaviour {
        let mut state = self.lock();
        let step = state.behaviour.step(state.answered).clone();
        state.answered += 1;
        step
    }

    fn record(&self, request: Request) {
        self.lock().requests.push(request);
        self.arrived.notify_all();
    }
}

/// A running OTLP/HTTP traces receiver on `127.0.0.1` and an ephemeral port.
///
/// Dropping it stops the server and closes the port.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds `127.0.0.1:0` and starts serving in the background, answering well-formed
    /// requests as `behaviour` says.
    ///
    /// The port is bound when this returns, so the endpoint can be handed out at once.
    /// Fails with [`io::ErrorKind::InvalidInput`] for an invalid behaviour (see [`Behaviour`]),
    /// or with the error of binding the port or starting the server thread.
    pub fn start(behaviour: Behaviour) -> io::Result<Receiver> {
        behaviour.validate(false)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { behaviour, answered: 0, requests: Vec::new() }),
            arrived: Condvar::new(),
        });
        let (addr, stop, thread) = server::spawn(Arc::clone(&shared))?;
        Ok(Receiver { addr, shared, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the receiver listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OTLP/HTTP base endpoint, e.g. `http://127.0.0.1:40123`: the value for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, to which exporters append `/v1/traces` themselves.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full traces URL, e.g. `http://127.0.0.1:40123/v1/traces`: the value for
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and for an exporter builder's `with_endpoint`,
    /// both of which are used as given.
    pub fn traces_url(&self) -> String {
        format!("http://{}{TRACES_PATH}", self.addr)
    }

    /// Replaces the behaviour for the requests that arrive from now on, and restarts the
    /// count a [`Behaviour::Sequence`] goes by. Requests already being answered keep theirs.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> io::Result<()> {
        behaviour.validate(false)?;
        let mut state = self.shared.lock();
        state.behaviour = behaviour;
        state.answered = 0;
        Ok(())
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Every span of every accepted request so far, in arrival order, flattened with its
    /// resource and scope. Spans of requests the receiver failed or rejected are left out, so a
    /// batch an exporter retried until it was accepted appears once.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        span::flatten(&self.shared.lock().requests)
    }

    /// Waits until at least `n` spans have been accepted, and returns them all (see
    /// [`Receiver::spans`]); or, when `timeout` runs out first, says what did arrive.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Result<Vec<ReceivedSpan>, WaitTimeout> {
        self.wait_until("spans", n, timeout, |requests| {
            let got = requests.iter().filter(|request| request.accepted()).map(Request::span_count).sum();
            (got, got >= n)
        })
        .map(|requests| span::flatten(&requests))
    }

    /// Waits until at least `n` requests have been recorded, whatever their outcome, and
    /// returns them all; or, when `timeout` runs out first, says what did arrive.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Result<Vec<Request>, WaitTimeout> {
        self.wait_until("requests", n, timeout, |requests| (requests.len(), requests.len() >= n))
    }

    /// Sleeps on the condition variable until `done` says so or the deadline passes.
    /// `done` returns how many of the awaited things there are, and whether that is enough.
    fn wait_until(
        &self,
        waited_for: &'static str,
        wanted: usize,
        timeout: Duration,
        done: impl Fn(&[Request]) -> (usize, bool),
    ) -> Result<Vec<Request>, WaitTimeout> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        loop {
            let (got, enough) = done(&state.requests);
            if enough {
                return Ok(state.requests.clone());
            }
            let now = Instant::now();
            let remaining = match deadline {
                Some(deadline) if deadline > now => deadline - now,
                Some(_) => {
                    return Err(WaitTimeout { waited_for, wanted, got, timeout, requests: state.requests.clone() });
                }
                // A timeout too long to represent: wait as long as it takes.
                None => Duration::from_secs(3600),
            };
            state = self.shared.arrived.wait_timeout(state, remaining).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server thread may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported on stderr; re-raising it
            // from a destructor could abort the test process instead of failing the test.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Receiver>();
    }

    #[test]
    fn sequences_repeat_their_last_step() {
        let sequence = Behaviour::Sequence(vec![Behaviour::Fail(503), Behaviour::Accept]);
        assert_eq!(
            [sequence.step(0), sequence.step(1), sequence.step(7)],
            [&Behaviour::Fail(503), &Behaviour::Accept, &Behaviour::Accept]
        );
        assert_eq!(Behaviour::Fail(500).step(3), &Behaviour::Fail(500));
    }
}
