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
//! A connection is the upstream link once a frame on it has verified. Every rejected frame is
//! counted by reason and never delivered. A connection that has not authenticated (a stranger)
//! is closed when [`ConnectionPolicy`] says so or when it ends; the run goes on. The upstream
//! link ending before its `End` frame, or carrying a frame that is rejected or does not
//! decode, breaks the run with a transport failure, since envelopes would be lost. At most
//! [`MAX_CONNECTIONS`] connections are served at once; more are closed at once and counted.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use hopline_model::{Envelope, WireMessage};
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
    _message: std::marker::PhantomData<fn(M)>,
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
    fn encode_frame(&mut self, batch: &[Envelope<M>], start: usize) -> Result<usize, SinkError> {
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
            encoder
                .push(&header, &self.scratch)
                .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
            next += 1;
        }
        let bytes = encoder
            .finish(&self.key)
            .map_err(|e| SinkError::Link { to: self.to_name.clone(), source: io::Error::other(e) })?;
        self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(next)
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
        let mut start = 0;
        while start < batch.len() {
            start = self.encode_frame(batch, start)?;
            if self.buf.len() >= WRITE_BUFFER_BYTES {
                self.write_out()?;
            }
        }
        batch.clear();
        // A batch is sent when it is complete: the next group never waits for a fuller buffer.
        self.write_out()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.write_out()
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
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<M: WireMessage> UpstreamSource<M> {
    fn broken(&self, message: impl Into<String>) -> SourceError {
        SourceError::Link { from: self.from_name.clone(), message: message.into() }
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
                    out.reserve(frame.envelopes.len());
                    for wire in &frame.envelopes {
                        let payload = M::decode(&wire.payload)
                            .map_err(|e| self.broken(format!("event {}: {e}", wire.header.seq)))?;
                        out.push(Envelope::new(wire.header, payload));
                    }
                    return Ok(true);
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
            let outcome = reader.lock().expect("frame reader lock").read_frame(&mut upstream.buf, now_ms());
            match outcome {
                Ok(Some(frame)) => return Ok((frame, before - upstream.buf.len())),
                Ok(None) => {}
                Err(rejected) => {
                    return Err(SourceError::Link {
                        from: from_name.clone(),
                        message: format!("a frame was rejected: {rejected}"),
                    });
                }
            }
            let n = loop {
                match upstream.stream.read(chunk) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match n {
                Ok(n) if n > 0 => upstream.buf.extend_from_slice(&chunk[..n]),
                _ => {
                    let cut = reader.lock().expect("frame reader lock").connection_closed(&upstream.buf);
                    let why = match cut {
                        Some(rejected) => format!("the link closed in the middle of a frame ({rejected})"),
                        None => "the link closed before its End frame".into(),
                    };
                    return Err(SourceError::Link {
                        from: from_name.clone(),
                        message: format!("{why}; the worker of `{from_name}` is probably gone"),
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
        _message: std::marker::PhantomData,
    })
}

/// Bytes asked of the socket per read on the upstream link.
const READ_CHUNK_BYTES: usize = 256 << 10;

/// Reads a new connection until its first frame verifies (it is the upstream link: hand it
/// to the executor with that frame) or the connection policy closes it (a stranger: its
/// rejected frames are counted, nothing is delivered).
fn screen(port: &Port, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut policy = ConnectionPolicy::default();
    loop {
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
