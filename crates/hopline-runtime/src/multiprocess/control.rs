//! The control connection between the supervisor and one worker: small JSON messages inside
//! signed `Control` frames, over TCP.
//!
//! Each direction is its own link with its own key (`for_link(group, SUPERVISOR)` worker to
//! supervisor, `for_link(SUPERVISOR, group)` back), so the same checks as the data plane apply:
//! signature, freshness, replay. A forged control message (a fake STOP, a fake READY) is
//! rejected like a forged data frame.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use hopline_model::NodeReport;
use hopline_transport::{FrameKind, FrameReader, Limits, TransportKey, encode_control_frame};
use serde::{Deserialize, Serialize};

use crate::tracing::TraceStats;

use super::failure::Failure;

/// The supervisor's id on control links (process groups are numbered from 0).
pub(crate) const SUPERVISOR: u16 = 0xFFFE;

/// The largest control frame: reports with their incident samples fit many times over.
const MAX_CONTROL_FRAME_BYTES: u32 = 4 << 20;

/// From a worker to the supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToSupervisor {
    /// First message on a new control connection: who the worker is and where it takes frames.
    Hello { group: u16, pid: u32, data_addr: Option<String> },
    /// Nodes built, links connected, the source open (first group): the worker can take input.
    Ready,
    /// The last group has created the sink (after OPEN-SINK).
    SinkOpen,
    /// Sent every `heartbeat_interval` while the worker runs.
    Heartbeat { status: GroupStatus },
    /// The worker has finished its part: its last frames are sent (or its sink flushed).
    Done { status: GroupStatus, nodes: Vec<(String, NodeReport)> },
    /// The worker cannot go on. It exits after sending this.
    Failed { failure: Failure, status: GroupStatus, nodes: Vec<(String, NodeReport)> },
    /// Spans for the forensic trace: one OTLP JSON line (a `TracesData` object).
    Spans { line: String },
    /// Spans for the `stdout` exporter, printed by the supervisor (so that the lines of every
    /// process reach standard output whole): one OTLP JSON line.
    Stdout { line: String },
}

/// From the supervisor to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// Where the next process group takes frames (none for the last group).
    Peers { downstream: Option<String> },
    /// Every worker is ready: the last group creates the sink, and says SINK-OPEN.
    OpenSink,
    /// The sink is open: start reading the source.
    Start,
    /// Stop reading the source and drain: finish the nodes, send what is left, end the stream.
    Stop,
}

/// A worker's counters, as heartbeats and the final report carry them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupStatus {
    /// Envelopes read from the source or received from the previous group.
    pub records_in: u64,
    /// Envelopes written to the sink or sent to the next group.
    pub records_out: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Frames this worker's data listener rejected, by reason (only reasons with a count).
    pub rejects: Vec<(String, u64)>,
    /// Connections refused because too many were open at once.
    pub refused_connections: u64,
    /// Source bytes read and the source's size, when this group reads the source.
    pub source_bytes: Option<(u64, Option<u64>)>,
    /// What tracing did in this worker (final statuses only: the tracer has finished).
    #[serde(default)]
    pub tracing: Option<TraceStats>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The sending half of a control link.
pub(crate) struct ControlWriter {
    stream: TcpStream,
    key: TransportKey,
    sender: u16,
    sequence: u64,
    buf: BytesMut,
}

impl ControlWriter {
    pub(crate) fn new(stream: TcpStream, key: TransportKey, sender: u16) -> ControlWriter {
        ControlWriter { stream, key, sender, sequence: 0, buf: BytesMut::new() }
    }

    pub(crate) fn send<T: Serialize>(&mut self, message: &T) -> io::Result<()> {
        let body = serde_json::to_vec(message).map_err(io::Error::other)?;
        self.sequence += 1;
        self.buf.clear();
        encode_control_frame(self.sender, self.sequence, now_ms(), &body, &self.key, &mut self.buf)
            .map_err(io::Error::other)?;
        self.stream.write_all(&self.buf)
    }
}

/// The receiving half of a control link.
pub(crate) struct ControlReader {
    stream: TcpStream,
    reader: FrameReader,
    buf: BytesMut,
    /// Whether a frame has verified, freshness included: later frames are not judged by their
    /// age (a paused supervisor or worker must not turn its backlog into "expired" frames).
    authenticated: bool,
}

/// Why a control message could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    #[error("control connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("control connection closed")]
    Closed,
    #[error("control frame rejected: {0}")]
    Rejected(#[from] hopline_transport::Rejected),
    #[error("control message does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("control connection carried a non-control frame")]
    NotControl,
}

impl ControlReader {
    pub(crate) fn new(stream: TcpStream, key: TransportKey, max_clock_skew_ms: u64) -> ControlReader {
        let limits = Limits { max_frame_bytes: MAX_CONTROL_FRAME_BYTES, max_clock_skew_ms, replay_window: 64 };
        let reader = FrameReader::new(key, limits).expect("control limits are valid");
        ControlReader { stream, reader, buf: BytesMut::new(), authenticated: false }
    }

    /// Reads the first bytes of a connection far enough to see which sender it claims to be,
    /// without trusting it: the claim only picks the key the first frame must verify with.
    pub(crate) fn claimed_sender(stream: &mut TcpStream) -> io::Result<(u16, BytesMut)> {
        let mut head = [0u8; 8];
        stream.read_exact(&mut head)?;
        Ok((u16::from_be_bytes([head[6], head[7]]), BytesMut::from(&head[..])))
    }

    /// Puts bytes already read from the stream back in front of it.
    pub(crate) fn with_prefix(mut self, prefix: BytesMut) -> ControlReader {
        self.buf = prefix;
        self
    }

    /// The next message; [`ControlError::Closed`] on a clean end of stream.
    pub(crate) fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, ControlError> {
        let mut chunk = [0u8; 8192];
        loop {
            let frame = if self.authenticated {
                self.reader.read_frame_on_authenticated_link(&mut self.buf)?
            } else {
                self.reader.read_frame(&mut self.buf, now_ms())?
            };
            if let Some(frame) = frame {
                self.authenticated = true;
                if frame.kind != FrameKind::Control {
                    return Err(ControlError::NotControl);
                }
                return Ok(serde_json::from_slice(&frame.body)?);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ControlError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
