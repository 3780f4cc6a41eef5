//! hopline's wire: signed, batched frames between process groups.
//!
//! When a pipeline runs over several worker processes, envelopes cross each hop in frames: a header and a
//! batch of envelopes, signed with HMAC-SHA256 under a per-run [`TransportKey`]. The supervisor and its
//! workers exchange control messages (READY, heartbeats, failures, stop) the same way, in `Control` frames
//! that carry one opaque body (JSON by convention) instead of envelopes: same signature, same checks, same
//! anti-replay window. This crate is the wire format and its security checks only: pure functions and
//! state machines over `bytes::BytesMut`, with no sockets, threads or clocks, so workers can drive it from
//! threads or from tokio alike.
//!
//! - [`key`]: the transport key (generated, or read from a file or an environment variable; redacted in
//!   `Debug`, zeroized on drop).
//! - [`frame`]: the frame layout, [`encode_frame`], [`encode_control_frame`] and the streaming
//!   [`FrameEncoder`].
//! - [`receive`]: [`FrameReader`], which checks length, version and kind, freshness, signature and replay,
//!   in that order, and [`ConnectionPolicy`], which says when to close a connection.
//!
//! # Using it over a connection
//!
//! - Keep one [`FrameReader`] per receiving process for the whole run and feed it every
//!   connection's buffer: the anti-replay window must outlive connections, or a recorded frame
//!   could be replayed on a reconnect. Keep one [`ConnectionPolicy`] per connection.
//! - The loop: read from the socket into a `BytesMut`; call [`FrameReader::read_frame`] until it
//!   returns `Ok(None)`, giving each outcome to [`ConnectionPolicy::observe`]; on
//!   [`ConnectionVerdict::Close`] drop the connection and its buffer. When the peer closes the
//!   connection (a read of 0 bytes) or the read fails, call [`FrameReader::connection_closed`] with
//!   the buffer: a frame cut short is [`Rejected::Truncated`], counted like the other rejections.
//!   Report [`FrameReader::reject_counts`] in the run summary.
//! - Control messages: [`encode_control_frame`]`(sender, sequence, now_ms, json, &key, &mut out)`;
//!   the receiver gets a [`Frame`] of kind [`FrameKind::Control`] whose [`Frame::body`] is the JSON
//!   (a zero-copy slice of the buffer). Control frames share the sender's sequence numbering with
//!   its other frames on that link key: one counter per sender and key.
//! - Sign each link with [`TransportKey::for_link`]`(sender, receiver)` on both ends: the tag does
//!   not name the receiver, so with one shared key a frame captured on link A→B would be
//!   accepted once by C. Also check that `frame.sender` is the peer expected on that connection.
//! - Each sender numbers its frames from 1 upwards; a worker restarted within a run must carry
//!   on its sequence or use a new key. Timestamps are real "now" in ms (±30 s by default).
//! - Split batches with [`encoded_len`] or [`FrameEncoder::encoded_len`] to stay under
//!   `max_frame_bytes` (8 MiB by default; 1,024 envelopes of 64 bytes are about 127 KB).
//! - Payloads are slices of the receive buffer: decode them into typed messages and drop them,
//!   or they keep the whole frame's memory alive.
//! - The key travels to workers through a 0600 file or a pipe, never argv; an environment
//!   variable is inherited by children, so clear it once read.

#![forbid(unsafe_code)]

pub mod frame;
pub mod key;
pub mod receive;

pub use frame::{
    EncodeError, Frame, FrameEncoder, FrameKind, WireEnvelope, control_encoded_len, encode_control_frame, encode_frame,
    encoded_len,
};
pub use key::{KeyError, TransportKey};
pub use receive::{ConnectionPolicy, ConnectionVerdict, FrameReader, Limits, LimitsError, RejectCounts, Rejected};
