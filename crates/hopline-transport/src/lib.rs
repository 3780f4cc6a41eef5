//! hopline's wire: signed, batched frames between process groups.
//!
//! When a pipeline runs over several worker processes, envelopes cross each hop in frames: a header and a
//! batch of envelopes, signed with HMAC-SHA256 under a per-run [`TransportKey`]. This crate is the wire
//! format and its security checks only: pure functions and state machines over `bytes::BytesMut`, with no
//! sockets, threads or clocks, so workers can drive it from threads or from tokio alike.
//!
//! - [`key`]: the transport key (generated, or read from a file or an environment variable; redacted in
//!   `Debug`, zeroized on drop).
//! - [`frame`]: the frame layout, [`encode_frame`] and the streaming [`FrameEncoder`].
//! - [`receive`]: [`FrameReader`], which checks length, version and kind, freshness, signature and replay,
//!   in that order, and [`ConnectionPolicy`], which says when to close a connection.

#![forbid(unsafe_code)]

pub mod frame;
pub mod key;
pub mod receive;

pub use frame::{EncodeError, Frame, FrameEncoder, FrameKind, WireEnvelope, encode_frame, encoded_len};
pub use key::{KeyError, TransportKey};
pub use receive::{ConnectionPolicy, ConnectionVerdict, FrameReader, Limits, LimitsError, RejectCounts, Rejected};
