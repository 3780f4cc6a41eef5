//! The data plane: envelopes from one process group straight to the next, in signed frames
//! over TCP. The supervisor is never on this path.
//!
//! - [`LinkSender`] is the sending group's [`Sink`]: it encodes each batch's payloads
//!   ([`WireMessage`]) into frames of at most `batch_size` envelopes and `max_frame_bytes`
//!   bytes, signs them with the link's key and writes them. [`LinkSender::greet`] sends a
//!   `Heartbeat` frame as soon as the link is up, so the next group knows the connection;
//!   [`LinkSender::finish`] sends the `End` frame that tells it the stream is complete.
//! - [`spawn_listener`] accepts connections on the receiving group's data port. Each
//!   connection gets a thread that reads frames through one [`FrameReader`] shared by all
//!   connections (so the replay window outlives any connection), decodes verified `Data`
//!   frames into typed envelopes and hands them, in order, to [`UpstreamSource`] through a
//!   bounded channel (a slow group slows its sender down through TCP, never buffers without
//!   bound).
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
use hopline_transport::{ConnectionPolicy, ConnectionVerdict, FrameEncoder, FrameKind, FrameReader, TransportKey};

use super::control::now_ms;
use crate::adapters::{Sink, SinkError, Source, SourceError};

/// Connections served at once on a data port; the upstream link needs one.
pub const MAX_CONNECTIONS: usize = 16;

/// Frames a receiving group holds decoded but not yet processed, per data port.
const INBOUND_FRAMES: usize = 4;

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

/// What a connection thread hands to the group's executor.
pub enum Inbound<M> {
    Batch(Vec<Envelope<M>>),
    End,
    Broken(String),
}

/// The receiving group's [`Source`]: batches from the previous group, in order.
pub struct UpstreamSource<M> {
    rx: Receiver<Inbound<M>>,
    /// A message taken off the channel by [`Source::idle`], delivered next.
    peeked: Option<Inbound<M>>,
    from_name: String,
}

impl<M> UpstreamSource<M> {
    pub fn new(rx: Receiver<Inbound<M>>, from_name: &str) -> UpstreamSource<M> {
        UpstreamSource { rx, peeked: None, from_name: from_name.into() }
    }
}

impl<M: hopline_model::Message> Source<M> for UpstreamSource<M> {
    fn next_batch(&mut self, out: &mut Vec<Envelope<M>>, _max: usize) -> Result<bool, SourceError> {
        let next = match self.peeked.take() {
            Some(inbound) => Ok(inbound),
            None => self.rx.recv(),
        };
        match next {
            Ok(Inbound::Batch(mut batch)) => {
                out.append(&mut batch);
                Ok(true)
            }
            Ok(Inbound::End) => Ok(false),
            Ok(Inbound::Broken(message)) => Err(SourceError::Link { from: self.from_name.clone(), message }),
            Err(_) => {
                Err(SourceError::Link { from: self.from_name.clone(), message: "the data listener stopped".into() })
            }
        }
    }

    fn position(&self) -> (u64, Option<u64>) {
        (0, None)
    }

    fn idle(&mut self) -> bool {
        if self.peeked.is_none() {
            self.peeked = self.rx.try_recv().ok();
        }
        self.peeked.is_none()
    }
}

/// Everything a data port's threads share.
struct Port<M> {
    reader: Arc<Mutex<FrameReader>>,
    upstream: u16,
    upstream_name: String,
    tx: SyncSender<Inbound<M>>,
    counters: Arc<LinkCounters>,
    open: AtomicUsize,
}

/// Accepts connections on `listener` for the whole run, one thread per connection, and
/// delivers the upstream group's envelopes to the returned [`UpstreamSource`]. `reader` is
/// shared by every connection; its reject counts are the port's.
pub fn spawn_listener<M: WireMessage>(
    listener: TcpListener,
    reader: Arc<Mutex<FrameReader>>,
    upstream: u16,
    upstream_name: &str,
    counters: Arc<LinkCounters>,
) -> io::Result<UpstreamSource<M>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(INBOUND_FRAMES);
    let port = Arc::new(Port {
        reader,
        upstream,
        upstream_name: upstream_name.into(),
        tx,
        counters,
        open: AtomicUsize::new(0),
    });
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
                serve(&conn_port, stream);
                conn_port.open.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                port.open.fetch_sub(1, Ordering::SeqCst);
                port.counters.refused_connections.fetch_add(1, Ordering::Relaxed);
            }
        }
    })?;
    Ok(UpstreamSource::new(rx, upstream_name))
}

/// Reads one connection until it ends or the policy closes it.
fn serve<M: WireMessage>(port: &Port<M>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut policy = ConnectionPolicy::default();
    let mut authenticated = false;
    let broken = |message: String| {
        let _ = port.tx.send(Inbound::Broken(message));
    };
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let truncated = port.reader.lock().expect("frame reader lock").connection_closed(&buf);
                if authenticated {
                    let why = match truncated {
                        Some(t) => format!("the link closed in the middle of a frame ({t})"),
                        None => "the link closed before its End frame".into(),
                    };
                    broken(format!("{why}; the worker of `{}` is probably gone", port.upstream_name));
                }
                return;
            }
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let before = buf.len();
            let outcome = port.reader.lock().expect("frame reader lock").read_frame(&mut buf, now_ms());
            let verdict = policy.observe(&outcome);
            match outcome {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    if frame.sender != port.upstream {
                        // The link key names both ends, so this is a bug rather than an attack.
                        broken(format!(
                            "a frame verified with the key of the link from group {} but names sender {}",
                            port.upstream, frame.sender
                        ));
                        return;
                    }
                    authenticated = true;
                    port.counters.frames_received.fetch_add(1, Ordering::Relaxed);
                    port.counters.bytes_received.fetch_add((before - buf.len()) as u64, Ordering::Relaxed);
                    match frame.kind {
                        FrameKind::Data => {
                            let mut batch = Vec::with_capacity(frame.envelopes.len());
                            for wire in &frame.envelopes {
                                match M::decode(&wire.payload) {
                                    Ok(payload) => batch.push(Envelope::new(wire.header, payload)),
                                    Err(e) => {
                                        broken(format!("event {} from `{}`: {e}", wire.header.seq, port.upstream_name));
                                        return;
                                    }
                                }
                            }
                            if port.tx.send(Inbound::Batch(batch)).is_err() {
                                return;
                            }
                        }
                        FrameKind::End => {
                            let _ = port.tx.send(Inbound::End);
                            return;
                        }
                        FrameKind::Heartbeat => {}
                        FrameKind::Control => {
                            broken("a control frame arrived on the data link".into());
                            return;
                        }
                    }
                }
                Err(rejected) => {
                    if authenticated {
                        broken(format!("a frame on the link from `{}` was rejected: {rejected}", port.upstream_name));
                        return;
                    }
                }
            }
            if verdict == ConnectionVerdict::Close {
                return;
            }
        }
    }
}
