//! The data plane: envelopes from one process group straight to the next, in signed frames
//! over TCP. The supervisor is never on this path.
//!
//! - [`LinkSender`] is the sending group's [`Sink`]: it encodes each batch's payloads
//!   ([`WireMessage`]) into frames of at most `batch_size` envelopes and `max_frame_bytes`
//!   bytes, signs them with the link's key and writes them. [`LinkSender::greet`] sends a
//!   `Heartbeat` frame as soon as the link is up, so the next group knows the connection;
//!   [`LinkSender::finish`] sends the `End` frame that tells it the stream is complete.
//! - [`spawn_listener`] accepts connections on the receiving group's data port, one thread
//!   per new connection, all verifying through one [`FrameReader`] (so the replay window
//!   outlives any connection). The first connection whose frame verifies under the link's key
//!   is the upstream link: its thread hands the socket to [`UpstreamSource`], and the
//!   executor's own thread reads, verifies and decodes frames from then on. No thread or
//!   queue sits between the socket and the nodes: a slow group slows its sender down through
//!   TCP's window (never a buffer without bound), and a frame costs no thread wake-up beyond
//!   the socket's own.
//!
//! # Connection policy
//!
//! A connection is the upstream link once a frame on it has verified, every check included
//! (freshness too). From then on its frames are not judged by their age: under backpressure
//! they may wait in socket buffers longer than `max_clock_skew`, and the connection is already
//! authenticated; signature and replay checks still apply to every frame. A connection that
//! presents no verified frame within 10 s is closed.
//!
//! Every rejected frame is counted by reason and never delivered. A connection that has not
//! authenticated (a stranger) is closed when [`ConnectionPolicy`] says so, when it ends or when
//! its 10 s are up; the run goes on. The upstream
//! link ending before its `End` frame, or carrying a frame that is rejected or does not
//! decode, breaks the run with a transport failure, since envelopes would be lost. At most
//! [`MAX_CONNECTIONS`] connections are served at once; more are closed at once and counted.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use hopline_model::trace::{self, Level, Outcome, SpanKind, SpanRecord};
use hopline_model::{CorrelationId, Envelope, EnvelopeHeader, TraceContext, WireMessage};
use hopline_transport::frame::envelope_len;
use hopline_transport::{
    ConnectionPolicy, ConnectionVerdict, Frame, FrameEncoder, FrameKind, FrameReader, TransportKey,
};

use super::control::now_ms;
use crate::adapters::{Sink, SinkError, Source, SourceError};

/// Connections served at once on a data port; the upstream link needs one.
pub const MAX_CONNECTIONS: usize = 16;

/// Bytes gathered before a write to the socket (several small frames go out in one write).
const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// A worker's transport counters, shared with its heartbeat thread.
#[derive(Debug, Default)]
pub struct LinkCounters {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub refused_connections: AtomicU64,
}

/// Sends batches to the next process group.
pub struct LinkSender<M> {
    stream: TcpStream,
    key: TransportKey,
    /// This group's id and the next group's.
    from: u16,
    to: u16,
    to_name: String,
    sequence: u64,
    max_frame_bytes: usize,
    max_envelopes: usize,
    buf: BytesMut,
    scratch: Vec<u8>,
    counters: Arc<LinkCounters>,
    /// Producer spans of the batch being sent, noted once it is written.
    sends: Vec<HopSpan>,
    _message: std::marker::PhantomData<fn(M)>,
}

/// A hop span waiting for its end time: the event's context before the hop, the hop span's
/// id, and what the record says about the event.
struct HopSpan {
    parent: TraceContext,
    span_id: [u8; 8],
    seq: u64,
    correlation_id: CorrelationId,
    route_hop: u16,
}

impl HopSpan {
    fn record(self, kind: SpanKind, start_ns: u64, end_ns: u64, outcome: Outcome) {
        trace::record(SpanRecord {
            trace_id: self.parent.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent.span_id,
            kind,
            start_ns,
            end_ns,
            seq: self.seq,
            correlation_id: self.correlation_id,
            route_hop: self.route_hop,
            handoff_from: None,
            outcome,
            custom: None,
        });
    }
}

/// If the event is sampled and this thread traces: a new hop span as the event's context, the
/// previous context kept for the span's record.
#[inline]
fn hop_span(header: &mut EnvelopeHeader, traced: bool) -> Option<HopSpan> {
    let parent = trace::sampled(header).filter(|_| traced)?;
    let span_id = trace::new_span_id();
    header.trace = Some(TraceContext { span_id, ..parent });
    Some(HopSpan {
        parent,
        span_id,
        seq: header.seq,
        correlation_id: header.correlation_id,
        route_hop: header.route.route_hop,
    })
}

impl<M: WireMessage> LinkSender<M> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: TcpStream,
        run_key: &TransportKey,
        from: u16,
        to: u16,
        to_name: &str,
        max_frame_bytes: u32,
        max_envelopes: usize,
        counters: Arc<LinkCounters>,
    ) -> LinkSender<M> {
        // One small frame must leave at once, not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        LinkSender {
            stream,
            key: run_key.for_link(from, to),
            from,
            to,
            to_name: to_name.into(),
            sequence: 0,
            max_frame_bytes: max_frame_bytes as usize,
            max_envelopes: max_envelopes.max(1),
            buf: BytesMut::with_capacity(WRITE_BUFFER_BYTES),
            scratch: Vec::new(),
            counters,
            sends: Vec::new(),
            _message: std::marker::PhantomData,
        }
    }

    fn link_error(&self, source: io::Error) -> SinkError {
        SinkError::Link { to: self.to_name.clone(), source }
    }

    fn write_out(&mut self) -> Result<(), SinkError> {
        if !self.buf.is_empty() {
            let result = self.stream.write_all(&self.buf);
            self.buf.clear();
            result.map_err(|e| self.link_error(e))?;
        }
        Ok(())
    }

    /// Encodes `batch[..]` from `start` into one frame; returns where the next frame starts.
    fn encode_frame(&mut self, batch: &[Envelope<M>], start: usize, traced: bool) -> Result<usize, SinkError> {
        self.sequence += 1;
        let (from, to, sequence) = (self.from, self.to, self.sequence);
        let mut encoder = FrameEncoder::begin(&mut self.buf, FrameKind::Data, from, sequence, now_ms())
            .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
        let mut next = start;
        while next < batch.len() && (encoder.envelope_count() as usize) < self.max_envelopes {
            let envelope = &batch[next];
            self.scratch.clear();
            envelope.payload.encode(&mut self.scratch);
            let mut header = envelope.header;
            header.route.handoff_from = Some(from);
            header.route.process_group = to;
            header.route.route_hop = header.route.route_hop.saturating_add(1);
            // `max_frame_bytes` counts everything after the length prefix.
            let after = encoder.encoded_len() + envelope_len(&header, self.scratch.len()) - 4;
            if after > self.max_frame_bytes {
                if encoder.envelope_count() == 0 {
                    let message = format!(
                        "event {} takes {after} bytes on the wire, more than max_frame_bytes ({})",
                        header.seq, self.max_frame_bytes
                    );
                    return Err(SinkError::Link { to: self.to_name.clone(), source: io::Error::other(message) });
                }
                break;
            }
            // The next group's spans of this event are children of this hop's producer span.
            let send = hop_span(&mut header, traced);
            encoder
                .push(&header, &self.scratch)
                .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
            self.sends.extend(send);
            next += 1;
        }
        let bytes = encoder
            .finish(&self.key)
            .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
        self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(next)
    }

    fn send_batch(&mut self, batch: &mut Vec<Envelope<M>>, traced: bool) -> Result<(), SinkError> {
        let mut start = 0;
        while start < batch.len() {
            start = self.encode_frame(batch, start, traced)?;
            if self.buf.len() >= WRITE_BUFFER_BYTES {
                self.write_out()?;
            }
        }
        batch.clear();
        // A batch is sent when it is complete: the next group never waits for a fuller buffer.
        self.write_out()
    }

    /// Sends a `Heartbeat` frame at once: the next group then knows this connection as its
    /// upstream link (it verified), so losing it, even before any data, breaks the run
    /// instead of passing for a stranger hanging up.
    pub fn greet(&mut self) -> Result<(), SinkError> {
        self.send_empty(FrameKind::Heartbeat)
    }

    /// Sends the `End` frame: the next group has every envelope.
    pub fn finish(&mut self) -> Result<(), SinkError> {
        self.send_empty(FrameKind::End)
    }

    fn send_empty(&mut self, kind: FrameKind) -> Result<(), SinkError> {
        self.sequence += 1;
        let encoder = FrameEncoder::begin(&mut self.buf, kind, self.from, self.sequence, now_ms())
            .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
        let bytes = encoder
            .finish(&self.key)
            .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
        self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.write_out()?;
        self.stream.flush().map_err(|e| self.link_error(e))
    }
}

impl<M: WireMessage> Sink<M> for LinkSender<M> {
    fn write_batch(&mut self, batch: &mut Vec<Envelope<M>>) -> Result<(), SinkError> {
        let traced = trace::level() != Level::Off;
        let start_ns = if traced { trace::now_ns() } else { 0 };
        let result = self.send_batch(batch, traced);
        if !self.sends.is_empty() {
            // The next group may already hold consumer spans under these: they are recorded,
            // failed if the batch did not go out whole.
            let (end_ns, to) = (trace::now_ns(), self.to);
            let outcome = match &result {
                Ok(()) => Outcome::None,
                Err(e) => Outcome::failed(e.to_string()),
            };
            self.sends.drain(..).for_each(|send| send.record(SpanKind::Send { to }, start_ns, end_ns, outcome.clone()));
        }
        result
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.write_out()
    }

    fn holds_unflushed(&self) -> bool {
        // Every batch is written out whole before write_batch returns.
        false
    }
}

/// A connection whose first frame verified under the link key: the upstream link, handed
/// from its connection thread to the executor, which reads it from then on.
pub struct Upstream {
    stream: TcpStream,
    /// Bytes read past the first frame.
    buf: BytesMut,
    /// The frame that authenticated the connection, and its length on the wire.
    first: Option<(Frame, usize)>,
}

/// The receiving group's [`Source`]: batches from the previous group, in order.
///
/// Until the upstream link has authenticated, it waits for the listener to hand it over;
/// from then on it reads, verifies and decodes frames itself, on the executor's thread, so a
/// frame costs no thread hand-off between the socket and the nodes.
pub struct UpstreamSource<M> {
    handoff: Receiver<Upstream>,
    upstream: Option<Upstream>,
    reader: Arc<Mutex<FrameReader>>,
    upstream_id: u16,
    from_name: String,
    counters: Arc<LinkCounters>,
    chunk: Vec<u8>,
    ended: bool,
    /// The sequence of the last frame read: the sender numbers frames 1, 2, 3, ... and TCP
    /// keeps their order, so anything else means frames were lost or put there by someone else.
    last_sequence: u64,
    /// Consumer spans of the frame being decoded.
    receives: Vec<HopSpan>,
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<M: WireMessage> UpstreamSource<M> {
    fn broken(&self, message: impl Into<String>) -> SourceError {
        SourceError::Link { from: self.from_name.clone(), message: message.into(), hung_up: false }
    }

    /// The upstream link, waiting for it if it has not connected yet.
    fn upstream(&mut self) -> Result<&mut Upstream, SourceError> {
        if self.upstream.is_none() {
            match self.handoff.recv() {
                Ok(upstream) => self.upstream = Some(upstream),
                Err(_) => return Err(self.broken("the data listener stopped")),
            }
        }
        Ok(self.upstream.as_mut().expect("set above"))
    }

    /// Reads until one frame is verified; appends its envelopes to `out`. Returns false after
    /// the `End` frame.
    fn next_frame(&mut self, out: &mut Vec<Envelope<M>>) -> Result<bool, SourceError> {
        loop {
            let (frame, len) = self.read_verified()?;
            if frame.sequence != self.last_sequence + 1 {
                return Err(self.broken(format!(
                    "frame {} follows frame {} on the link: frames are missing or were injected",
                    frame.sequence, self.last_sequence
                )));
            }
            self.last_sequence = frame.sequence;
            if frame.sender != self.upstream_id {
                return Err(self.broken(format!(
                    "a frame verified with the link's key names sender {} instead of {}",
                    frame.sender, self.upstream_id
                )));
            }
            self.counters.frames_received.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
            match frame.kind {
                FrameKind::Data => {
                    let traced = trace::level() != Level::Off;
                    let start_ns = if traced { trace::now_ns() } else { 0 };
                    out.reserve(frame.envelopes.len());
                    let mut decoded = Ok(true);
                    for wire in &frame.envelopes {
                        let payload = match M::decode(&wire.payload) {
                            Ok(payload) => payload,
                            Err(e) => {
                                decoded = Err(self.broken(format!("event {}: {e}", wire.header.seq)));
                                break;
                            }
                        };
                        let mut header = wire.header;
                        // This group's spans of the event are children of its consumer span.
                        self.receives.extend(hop_span(&mut header, traced));
                        out.push(Envelope::new(header, payload));
                    }
                    if !self.receives.is_empty() {
                        let (end_ns, from) = (trace::now_ns(), self.upstream_id);
                        let outcome = match &decoded {
                            Ok(_) => Outcome::None,
                            Err(e) => Outcome::failed(e.to_string()),
                        };
                        self.receives
                            .drain(..)
                            .for_each(|r| r.record(SpanKind::Receive { from }, start_ns, end_ns, outcome.clone()));
                    }
                    return decoded;
                }
                FrameKind::End => {
                    self.ended = true;
                    return Ok(false);
                }
                FrameKind::Heartbeat => {}
                FrameKind::Control => return Err(self.broken("a control frame arrived on the data link")),
            }
        }
    }

    /// The next verified frame on the upstream link and its length on the wire.
    fn read_verified(&mut self) -> Result<(Frame, usize), SourceError> {
        self.upstream()?;
        let UpstreamSource { upstream, reader, chunk, from_name, .. } = self;
        let upstream = upstream.as_mut().expect("connected above");
        if let Some(first) = upstream.first.take() {
            return Ok(first);
        }
        loop {
            let before = upstream.buf.len();
            // The connection authenticated with a fresh frame; later frames may have waited in
            // the socket buffers behind a slow group for any time.
            let outcome = reader.lock().expect("frame reader lock").read_frame_on_authenticated_link(&mut upstream.buf);
            match outcome {
                Ok(Some(frame)) => return Ok((frame, before - upstream.buf.len())),
                Ok(None) => {}
                Err(rejected) => {
                    return Err(SourceError::Link {
                        from: from_name.clone(),
                        message: format!("a frame was rejected: {rejected}"),
                        hung_up: false,
                    });
                }
            }
            let n = loop {
                match upstream.stream.read(chunk) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // `idle` could not put the socket back in blocking mode: try again here.
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock && upstream.stream.set_nonblocking(false).is_ok() =>
                    {
                        continue;
                    }
                    other => break other,
                }
            };
            match n {
                Ok(n) if n > 0 => upstream.buf.extend_from_slice(&chunk[..n]),
                end => {
                    let cut = reader.lock().expect("frame reader lock").connection_closed(&upstream.buf);
                    let why = match (end, cut) {
                        (Err(e), _) => format!("reading the link failed: {e}"),
                        (_, Some(rejected)) => format!("the link closed in the middle of a frame ({rejected})"),
                        (_, None) => "the link closed before its End frame".into(),
                    };
                    return Err(SourceError::Link {
                        from: from_name.clone(),
                        message: format!("{why}; the worker of `{from_name}` is probably gone"),
                        hung_up: true,
                    });
                }
            }
        }
    }
}

impl<M: WireMessage> Source<M> for UpstreamSource<M> {
    fn next_batch(&mut self, out: &mut Vec<Envelope<M>>, _max: usize) -> Result<bool, SourceError> {
        if self.ended {
            return Ok(false);
        }
        self.next_frame(out)
    }

    fn position(&self) -> (u64, Option<u64>) {
        (0, None)
    }

    fn idle(&mut self) -> bool {
        // Idle when no whole frame is buffered and the socket has nothing ready to read.
        let Some(upstream) = self.upstream.as_mut() else { return true };
        let reader = self.reader.lock().expect("frame reader lock");
        if reader.bytes_wanted(&upstream.buf) == 0 && !upstream.buf.is_empty() {
            return false;
        }
        drop(reader);
        if upstream.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let ready = matches!(upstream.stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
        let _ = upstream.stream.set_nonblocking(false);
        !ready
    }
}

/// Everything a data port's threads share.
struct Port {
    reader: Arc<Mutex<FrameReader>>,
    handoff: SyncSender<Upstream>,
    open: AtomicUsize,
    counters: Arc<LinkCounters>,
}

/// Accepts connections on `listener` for the whole run, one thread per connection, and
/// returns the [`UpstreamSource`] that reads the upstream group's link once it has
/// authenticated. `reader` (keyed for the link from `upstream` to this group) is shared by
/// every connection; its reject counts are the port's.
pub fn spawn_listener<M: WireMessage>(
    listener: TcpListener,
    reader: Arc<Mutex<FrameReader>>,
    upstream: u16,
    upstream_name: &str,
    counters: Arc<LinkCounters>,
) -> io::Result<UpstreamSource<M>> {
    let (handoff, handed) = std::sync::mpsc::sync_channel(1);
    let port =
        Arc::new(Port { reader: Arc::clone(&reader), handoff, open: AtomicUsize::new(0), counters: counters.clone() });
    std::thread::Builder::new().name("data-accept".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if port.open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                port.open.fetch_sub(1, Ordering::SeqCst);
                port.counters.refused_connections.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let conn_port = Arc::clone(&port);
            let spawned = std::thread::Builder::new().name("data-conn".into()).spawn(move || {
                screen(&conn_port, stream);
                conn_port.open.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                port.open.fetch_sub(1, Ordering::SeqCst);
                port.counters.refused_connections.fetch_add(1, Ordering::Relaxed);
            }
        }
    })?;
    Ok(UpstreamSource {
        handoff: handed,
        upstream: None,
        reader,
        upstream_id: upstream,
        from_name: upstream_name.into(),
        counters,
        chunk: vec![0u8; READ_CHUNK_BYTES],
        ended: false,
        last_sequence: 0,
        receives: Vec::new(),
        _message: std::marker::PhantomData,
    })
}

/// How long a new connection may take to present a frame that verifies.
const SCREEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes asked of the socket per read on the upstream link.
const READ_CHUNK_BYTES: usize = 256 << 10;

/// Reads a new connection until its first frame verifies (it is the upstream link: hand it
/// to the executor with that frame) or the connection policy closes it (a stranger: its
/// rejected frames are counted, nothing is delivered).
fn screen(port: &Port, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // A connection that presents no verified frame in time gives its slot back, however it
    // trickles its bytes.
    let deadline = std::time::Instant::now() + SCREEN_TIMEOUT;
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut policy = ConnectionPolicy::default();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                port.reader.lock().expect("frame reader lock").connection_closed(&buf);
                return;
            }
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let before = buf.len();
            let outcome = port.reader.lock().expect("frame reader lock").read_frame(&mut buf, now_ms());
            match outcome {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    if stream.set_read_timeout(None).is_err() {
                        return;
                    }
                    let first = Some((frame, before - buf.len()));
                    // Only one upstream link: a second authenticated connection is dropped.
                    let _ = port.handoff.try_send(Upstream { stream, buf, first });
                    return;
                }
                Err(rejected) => {
                    if policy.on_rejected(&rejected) == ConnectionVerdict::Close {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use bytes::Bytes;
    use hopline_model::{EnvelopeHeader, Message, WireError};
    use hopline_transport::Limits;

    use super::*;

    /// A payload of bytes, for links without an app.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Text(Bytes);

    impl Message for Text {
        fn kind(&self) -> &'static str {
            "text"
        }
    }

    impl WireMessage for Text {
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0);
        }
        fn decode(payload: &Bytes) -> Result<Self, WireError> {
            if payload.first() == Some(&0xff) {
                return Err(WireError("0xff is not text"));
            }
            Ok(Text(payload.clone()))
        }
    }

    fn envelopes(range: std::ops::Range<u64>, size: usize) -> Vec<Envelope<Text>> {
        range
            .map(|seq| {
                let header = EnvelopeHeader { seq, ..Default::default() };
                Envelope::new(header, Text(Bytes::from(vec![b'a' + (seq % 26) as u8; size])))
            })
            .collect()
    }

    struct Link {
        sender: LinkSender<Text>,
        source: UpstreamSource<Text>,
        reader: Arc<Mutex<FrameReader>>,
        counters: Arc<LinkCounters>,
        addr: std::net::SocketAddr,
    }

    fn link(max_frame_bytes: u32, max_envelopes: usize) -> Link {
        let key = TransportKey::from_bytes([9; 32]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits { max_frame_bytes, ..Limits::default() };
        let reader = Arc::new(Mutex::new(FrameReader::new(key.for_link(0, 1), limits).unwrap()));
        let counters = Arc::new(LinkCounters::default());
        let source = spawn_listener::<Text>(listener, Arc::clone(&reader), 0, "up", Arc::clone(&counters)).unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let sender = LinkSender::new(
            stream,
            &key,
            0,
            1,
            "down",
            max_frame_bytes,
            max_envelopes,
            Arc::new(LinkCounters::default()),
        );
        Link { sender, source, reader, counters, addr }
    }

    fn drain(source: &mut UpstreamSource<Text>) -> Result<Vec<Envelope<Text>>, SourceError> {
        let mut all = Vec::new();
        while source.next_batch(&mut all, usize::MAX)? {}
        Ok(all)
    }

    #[test]
    fn envelopes_cross_in_order_with_their_route_stamped() {
        let mut link = link(8 << 20, 1024);
        link.sender.greet().unwrap();
        let sent = envelopes(1..2001, 40);
        link.sender.write_batch(&mut sent.clone()).unwrap();
        link.sender.finish().unwrap();
        let got = drain(&mut link.source).unwrap();
        assert_eq!(got.len(), 2000);
        for (a, b) in sent.iter().zip(&got) {
            assert_eq!(a.payload, b.payload);
            assert_eq!(b.header.seq, a.header.seq);
            assert_eq!(b.header.route.handoff_from, Some(0));
            assert_eq!(b.header.route.process_group, 1);
            assert_eq!(b.header.route.route_hop, 1);
        }
        // greeting + two data frames (1,024 + 976) + End
        assert_eq!(link.counters.frames_received.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn frames_split_at_max_envelopes_and_at_max_frame_bytes() {
        let mut link = link(8 << 20, 3);
        link.sender.write_batch(&mut envelopes(1..11, 8)).unwrap();
        link.sender.finish().unwrap();
        assert_eq!(drain(&mut link.source).unwrap().len(), 10);
        assert_eq!(link.counters.frames_received.load(Ordering::Relaxed), 4 + 1, "3+3+3+1 and End");

        // 100-byte payloads, 35 bytes of envelope header: three fit in 56 + 3 × 139 bytes.
        let mut link = link_with_limit(56 + 3 * 139);
        link.sender.write_batch(&mut envelopes(1..8, 100)).unwrap();
        link.sender.finish().unwrap();
        assert_eq!(drain(&mut link.source).unwrap().len(), 7);
        assert_eq!(link.counters.frames_received.load(Ordering::Relaxed), 3 + 1, "3+3+1 and End");
    }

    fn link_with_limit(max_frame_bytes: u32) -> Link {
        link(max_frame_bytes, 1024)
    }

    #[test]
    fn an_envelope_larger_than_a_frame_is_refused_by_the_sender() {
        let mut link = link_with_limit(200);
        let err = link.sender.write_batch(&mut envelopes(1..2, 500)).unwrap_err();
        assert!(err.to_string().contains("process group `down`"), "{err}");
        assert!(chain(&err).contains("more than max_frame_bytes (200)"), "{}", chain(&err));
    }

    fn chain(e: &dyn std::error::Error) -> String {
        crate::multiprocess::failure::chain(e)
    }

    #[test]
    fn an_upstream_that_hangs_up_before_its_end_frame_breaks_the_source() {
        let mut link = link(8 << 20, 1024);
        link.sender.write_batch(&mut envelopes(1..6, 10)).unwrap();
        drop(link.sender);
        let err = drain(&mut link.source).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("the link from process group `up` broke"), "{text}");
        assert!(text.contains("closed before its End frame"), "{text}");
    }

    #[test]
    fn a_payload_that_does_not_decode_breaks_the_source_naming_the_event() {
        let mut link = link(8 << 20, 1024);
        let mut batch = envelopes(1..4, 10);
        batch[1].payload = Text(Bytes::from_static(&[0xff, 1]));
        link.sender.write_batch(&mut batch).unwrap();
        let err = drain(&mut link.source).unwrap_err();
        assert!(err.to_string().contains("event 2: payload does not decode: 0xff is not text"), "{err}");
    }

    #[test]
    fn a_stranger_is_counted_and_ignored_while_the_link_goes_on() {
        let mut link = link(8 << 20, 1024);
        link.sender.greet().unwrap();
        // A stranger with the wrong key sends three frames (the policy closes after three bad
        // signatures), and another hangs up half-way through a frame.
        let wrong = TransportKey::from_bytes([1; 32]);
        let mut stranger = LinkSender::<Text>::new(
            TcpStream::connect(link.addr).unwrap(),
            &wrong,
            0,
            1,
            "down",
            8 << 20,
            1024,
            Arc::new(LinkCounters::default()),
        );
        for seq in 1..4 {
            stranger.write_batch(&mut envelopes(seq..seq + 1, 5)).unwrap();
        }
        let mut half = TcpStream::connect(link.addr).unwrap();
        half.write_all(&[0, 0, 1, 0, 0xa1, 1, 0, 0]).unwrap();
        drop(half);
        link.sender.write_batch(&mut envelopes(1..4, 10)).unwrap();
        link.sender.finish().unwrap();
        assert_eq!(drain(&mut link.source).unwrap().len(), 3);
        // The stranger threads finish on their own; wait for their counts.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let counts = *link.reader.lock().unwrap().reject_counts();
            if counts.bad_signature == 3 && counts.truncated == 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{counts:?}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
