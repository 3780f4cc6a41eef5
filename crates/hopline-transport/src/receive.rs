//! Reading frames off a byte stream and deciding whether to trust them.
//!
//! A [`FrameReader`] turns the bytes a connection delivered (in a caller-owned `BytesMut`, filled by a
//! socket read, a thread or a tokio task: this module does no I/O) into verified [`Frame`]s. A frame that
//! fails a check is never returned as a `Frame`; it becomes a [`Rejected`] error, counted by reason in
//! [`RejectCounts`].
//!
//! # Checks, in order
//!
//! `read_frame` stops at the first check that fails:
//!
//! 1. **Length**: the declared length must be at most `max_frame_bytes` (and at least a header and a tag).
//!    This is decided from the 4-byte prefix alone, before the body is awaited, buffered or read, so an
//!    oversized frame never makes the reader hold its body.
//! 2. **Version and kind**: the magic/version byte must be `0xA1` and the kind known. Checked as soon as
//!    those two bytes have arrived.
//! 3. **Freshness**: the timestamp must be within ±`max_clock_skew_ms` of `now_ms` (the bound included).
//!    [`FrameReader::read_frame_on_authenticated_link`] skips this one check, for the frames that follow
//!    a fresh, verified frame on the same connection (they may queue behind a slow receiver).
//! 4. **Signature**: the HMAC-SHA256 tag must verify, compared in constant time.
//! 5. **Replay**: the sequence must be new for its sender (below). Checked only once the signature has
//!    verified, so a forged frame can never burn a sequence number.
//!
//! Then the body is parsed: a count that cannot fit, an envelope that overruns the frame, a trace
//! presence byte other than 0 or 1, bytes left before the tag, or envelopes in a non-`Data` frame are
//! [`Rejected::Malformed`]. A `Control` frame passes the same checks in the same order (its body is
//! covered by the tag); its envelope count must be 0, and every byte between its header and its tag is
//! its [`Frame::body`], a zero-copy slice of the received frame. Only a frame that passes everything marks
//! its sequence as seen.
//!
//! # A connection that closes mid-frame
//!
//! When the peer closes the connection (or the socket fails) call [`FrameReader::connection_closed`] with
//! the connection's buffer: if it still holds part of a frame, that is [`Rejected::Truncated`], counted
//! like any other rejection. A clean close leaves the buffer empty.
//!
//! # Anti-replay window
//!
//! Per sender the reader keeps the highest sequence accepted and a bitmap of the `replay_window`
//! sequences up to it (as IPsec and DTLS do). A sequence above the highest is accepted and slides the
//! window; one inside the window is accepted once; one at or below `highest - replay_window` is rejected
//! as replayed, seen or not, and so is sequence 0. Frames may therefore arrive out of order by up to
//! `replay_window - 1` sequences.
//!
//! The window outlives connections: keep one `FrameReader` per receiving process (or per sender) for the
//! whole run and pass it each connection's buffer, or a frame recorded on one connection could be
//! replayed on the next.
//!
//! # Bounds
//!
//! - Bytes held: when `read_frame` returns `Ok(None)` the buffer holds less than one whole frame, so fewer
//!   than `4 + max_frame_bytes` bytes. The reader reserves at most that much room in the buffer;
//!   [`FrameReader::bytes_wanted`] says how many more bytes the current frame needs, for a caller that
//!   wants to read no further than one frame.
//! - Memory per sender is fixed: `replay_window / 8` bytes (rounded up to 8) and the highest sequence.
//!   Windows are created only for senders whose frames verified, so at most one per process group of
//!   the run (and never more than 65,536).
//! - Before the signature verifies, nothing is allocated but the frame's own bytes. Decoding a verified
//!   frame allocates one vector of at most one element per 35 bytes of frame (96 bytes each, so under 3×
//!   the frame's length); payloads and control bodies are zero-copy slices of the received bytes (a
//!   retained payload or body keeps its frame's bytes alive). `tests/allocation_bound.rs` checks this
//!   with a counting allocator: whatever bytes arrive, feeding them never allocates more than a bound
//!   derived from `max_frame_bytes`, however large the declared length.
//!
//! # Connection policy
//!
//! After [`Rejected::Oversized`], [`Rejected::Malformed`], [`Rejected::BadVersion`] or
//! [`Rejected::UnknownKind`] the stream is out of sync (and after [`Rejected::Truncated`] it is gone) (the frame boundary cannot be trusted; the buffer
//! is not guaranteed to have been advanced): close the connection. After [`Rejected::Expired`],
//! [`Rejected::BadSignature`] or [`Rejected::Replayed`] the frame was consumed whole and the connection may
//! continue, but a run of bad signatures means a peer without the key (or with the wrong one): close after
//! `N` consecutive ones (default 3). [`ConnectionPolicy`] applies exactly this; keep one per connection.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use hmac::Mac;

use crate::frame::{self, Frame, FrameKind, HEADER_BYTES, LENGTH_PREFIX_BYTES, MIN_FRAME_BYTES, RawHeader, TAG_BYTES};
use crate::key::TransportKey;

/// The bounds a [`FrameReader`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest declared frame length accepted (bytes after the length prefix). Default 8 MiB.
    pub max_frame_bytes: u32,
    /// How far a frame's timestamp may be from the receiver's clock, either way. Default 30 s.
    pub max_clock_skew_ms: u64,
    /// How many sequences per sender the anti-replay window remembers. Default 1024, at most 65,536.
    pub replay_window: u32,
}

impl Limits {
    /// The largest accepted `replay_window` (8 KiB of bitmap per sender).
    pub const MAX_REPLAY_WINDOW: u32 = 1 << 16;

    /// Checks that the limits make sense: a frame can hold at least a header and a tag, the window holds
    /// at least one sequence and at most [`Limits::MAX_REPLAY_WINDOW`].
    pub fn validate(&self) -> Result<(), LimitsError> {
        if (self.max_frame_bytes as usize) < MIN_FRAME_BYTES {
            return Err(LimitsError {
                field: "max_frame_bytes",
                value: self.max_frame_bytes.into(),
                expected: "at least 56 (a frame header and its tag)",
            });
        }
        if !(1..=Limits::MAX_REPLAY_WINDOW).contains(&self.replay_window) {
            return Err(LimitsError {
                field: "replay_window",
                value: self.replay_window.into(),
                expected: "between 1 and 65536 sequences",
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_frame_bytes: 8 << 20, max_clock_skew_ms: 30_000, replay_window: 1024 }
    }
}

/// A [`Limits`] field out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport limit {field} is {value}; expected {expected}")]
pub struct LimitsError {
    pub field: &'static str,
    pub value: u64,
    pub expected: &'static str,
}

/// Why a frame was rejected. None of these carries key material or payload bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The declared length exceeds `max_frame_bytes`; the body was not read.
    #[error("frame declares {declared} bytes, more than the limit of {max} bytes")]
    Oversized { declared: u32, max: u32 },
    /// The kind byte names no [`FrameKind`].
    #[error("frame kind {0} is unknown")]
    UnknownKind(u8),
    /// The magic/version byte is not hopline wire version 1.
    #[error("frame version byte {0:#04x} is not hopline wire version 1 (0xa1)")]
    BadVersion(u8),
    /// The timestamp is further from the receiver's clock than `max_clock_skew_ms`.
    #[error("frame timestamp {timestamp_ms} ms is outside the allowed clock skew around now ({now_ms} ms)")]
    Expired { timestamp_ms: u64, now_ms: u64 },
    /// The tag does not verify under the reader's key.
    #[error("frame signature does not verify")]
    BadSignature,
    /// The sequence was already accepted from this sender, or is older than the replay window.
    #[error("frame {sequence} from process group {sender} was already received or is older than the replay window")]
    Replayed { sender: u16, sequence: u64 },
    /// The frame's structure is broken; the string says where.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The connection closed in the middle of a frame: `have` bytes of it had arrived (length prefix
    /// included), of `4 + declared` (`declared` is 0 when not even the 4-byte length prefix arrived).
    #[error("connection closed in the middle of a frame: {have} bytes arrived of a frame declaring {declared} bytes")]
    Truncated { have: usize, declared: u32 },
}

impl Rejected {
    /// Every [`Rejected::reason`] label, in check order (`truncated`, found when the connection closes,
    /// last).
    pub const REASONS: [&'static str; 8] =
        ["oversized", "bad_version", "unknown_kind", "expired", "bad_signature", "replayed", "malformed", "truncated"];

    /// A stable label for counting and reporting: `oversized`, `bad_version`, `unknown_kind`, `expired`,
    /// `bad_signature`, `replayed`, `malformed` or `truncated`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Oversized { .. } => "oversized",
            Rejected::BadVersion(_) => "bad_version",
            Rejected::UnknownKind(_) => "unknown_kind",
            Rejected::Expired { .. } => "expired",
            Rejected::BadSignature => "bad_signature",
            Rejected::Replayed { .. } => "replayed",
            Rejected::Malformed(_) => "malformed",
            Rejected::Truncated { .. } => "truncated",
        }
    }

    /// Whether the stream is out of sync after this rejection (or, for `Truncated`, already closed), so
    /// the connection must be closed.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Rejected::Oversized { .. }
                | Rejected::Malformed(_)
                | Rejected::BadVersion(_)
                | Rejected::UnknownKind(_)
                | Rejected::Truncated { .. }
        )
    }
}

/// Rejected frames, counted by [`Rejected::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectCounts {
    pub oversized: u64,
    pub bad_version: u64,
    pub unknown_kind: u64,
    pub expired: u64,
    pub bad_signature: u64,
    pub replayed: u64,
    pub malformed: u64,
    pub truncated: u64,
}

impl RejectCounts {
    /// Counts one rejection.
    pub fn record(&mut self, rejected: &Rejected) {
        let counter = match rejected {
            Rejected::Oversized { .. } => &mut self.oversized,
            Rejected::BadVersion(_) => &mut self.bad_version,
            Rejected::UnknownKind(_) => &mut self.unknown_kind,
            Rejected::Expired { .. } => &mut self.expired,
            Rejected::BadSignature => &mut self.bad_signature,
            Rejected::Replayed { .. } => &mut self.replayed,
            Rejected::Malformed(_) => &mut self.malformed,
            Rejected::Truncated { .. } => &mut self.truncated,
        };
        *counter += 1;
    }

    /// `(reason, count)` for every reason, in [`Rejected::REASONS`] order, zeros included.
    pub fn by_reason(&self) -> [(&'static str, u64); 8] {
        let counts = [
            self.oversized,
            self.bad_version,
            self.unknown_kind,
            self.expired,
            self.bad_signature,
            self.replayed,
            self.malformed,
            self.truncated,
        ];
        std::array::from_fn(|i| (Rejected::REASONS[i], counts[i]))
    }

    /// All rejections.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, count)| count).sum()
    }

    /// Adds another set of counts (from another reader) to this one.
    pub fn merge(&mut self, other: &RejectCounts) {
        self.oversized += other.oversized;
        self.bad_version += other.bad_version;
        self.unknown_kind += other.unknown_kind;
        self.expired += other.expired;
        self.bad_signature += other.bad_signature;
        self.replayed += other.replayed;
        self.malformed += other.malformed;
        self.truncated += other.truncated;
    }
}

/// Reads and verifies frames from a byte stream; see the module docs for the checks and their order.
#[derive(Debug)]
pub struct FrameReader {
    key: TransportKey,
    limits: Limits,
    windows: HashMap<u16, ReplayWindow>,
    rejects: RejectCounts,
}

impl FrameReader {
    /// A reader that verifies frames with `key` within `limits`.
    pub fn new(key: TransportKey, limits: Limits) -> Result<FrameReader, LimitsError> {
        limits.validate()?;
        Ok(FrameReader { key, limits, windows: HashMap::new(), rejects: RejectCounts::default() })
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Frames rejected so far, by reason.
    pub fn reject_counts(&self) -> &RejectCounts {
        &self.rejects
    }

    /// How many more bytes the frame at the front of `buf` needs before `read_frame` can decide it
    /// (4 minus what there is while the length prefix is incomplete; 0 when a frame is complete or
    /// the declared length will be rejected).
    pub fn bytes_wanted(&self, buf: &BytesMut) -> usize {
        match declared_len(buf) {
            None => LENGTH_PREFIX_BYTES - buf.len(),
            Some(declared) if declared > self.limits.max_frame_bytes => 0,
            Some(declared) => (LENGTH_PREFIX_BYTES + declared as usize).saturating_sub(buf.len()),
        }
    }

    /// Takes the next whole frame from the front of `buf`, verified.
    ///
    /// `Ok(None)`: `buf` does not yet hold a whole frame; read more into it and call again (nothing was
    /// consumed). `Ok(Some(frame))`: the frame's bytes were consumed. `Err(rejected)`: counted in
    /// [`FrameReader::reject_counts`]; see the module docs for what the connection should do.
    pub fn read_frame(&mut self, buf: &mut BytesMut, now_ms: u64) -> Result<Option<Frame>, Rejected> {
        let result = self.read_frame_unchecked_count(buf, Some(now_ms));
        if let Err(rejected) = &result {
            self.rejects.record(rejected);
        }
        result
    }

    /// [`FrameReader::read_frame`] without the freshness check (3), for a connection whose first frame
    /// passed every check, freshness included: the stream is then authenticated end to end, and a
    /// frame may wait in socket buffers under backpressure (a slow receiver) for longer than the clock
    /// window without being any less authentic. Signature and replay checks still apply, so nothing
    /// recorded elsewhere can be injected.
    pub fn read_frame_on_authenticated_link(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Rejected> {
        let result = self.read_frame_unchecked_count(buf, None);
        if let Err(rejected) = &result {
            self.rejects.record(rejected);
        }
        result
    }

    /// Call when the connection that filled `buf` has closed (or failed), after `read_frame` returned
    /// `Ok(None)`. If `buf` still holds part of a frame (any bytes at all), the peer went away in the
    /// middle of it: records and returns [`Rejected::Truncated`]. Returns `None` for an empty buffer (a
    /// clean close between frames). Nothing is consumed; drop the buffer with the connection.
    pub fn connection_closed(&mut self, buf: &BytesMut) -> Option<Rejected> {
        if buf.is_empty() {
            return None;
        }
        let rejected = Rejected::Truncated { have: buf.len(), declared: declared_len(buf).unwrap_or(0) };
        self.rejects.record(&rejected);
        Some(rejected)
    }

    fn read_frame_unchecked_count(
        &mut self,
        buf: &mut BytesMut,
        now_ms: Option<u64>,
    ) -> Result<Option<Frame>, Rejected> {
        // (1) Length, from the prefix alone.
        let Some(declared) = declared_len(buf) else {
            return Ok(None);
        };
        if declared > self.limits.max_frame_bytes {
            return Err(Rejected::Oversized { declared, max: self.limits.max_frame_bytes });
        }
        let declared = declared as usize;
        if declared < MIN_FRAME_BYTES {
            return Err(Rejected::Malformed("declared length is shorter than a frame header and tag"));
        }
        // (2) Version and kind, as soon as they are there.
        if let Some(&version) = buf.get(LENGTH_PREFIX_BYTES) {
            if version != frame::VERSION_BYTE {
                return Err(Rejected::BadVersion(version));
            }
        }
        if let Some(&kind) = buf.get(LENGTH_PREFIX_BYTES + 1) {
            FrameKind::from_u8(kind).ok_or(Rejected::UnknownKind(kind))?;
        }
        let total = LENGTH_PREFIX_BYTES + declared;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }

        // The whole frame is here: from now on every outcome consumes it.
        let header_bytes =
            <&[u8; HEADER_BYTES]>::try_from(&buf[LENGTH_PREFIX_BYTES..LENGTH_PREFIX_BYTES + HEADER_BYTES])
                .expect("a whole frame is longer than its header");
        let header = RawHeader::parse(header_bytes);
        let consume = |buf: &mut BytesMut, rejected: Rejected| {
            buf.advance(total);
            Err(rejected)
        };
        // (3) Freshness.
        if let Some(now_ms) = now_ms {
            if header.timestamp_ms.abs_diff(now_ms) > self.limits.max_clock_skew_ms {
                return consume(buf, Rejected::Expired { timestamp_ms: header.timestamp_ms, now_ms });
            }
        }
        // (4) Signature, in constant time.
        let mut mac = self.key.mac();
        mac.update(&buf[LENGTH_PREFIX_BYTES..total - TAG_BYTES]);
        if mac.verify_slice(&buf[total - TAG_BYTES..total]).is_err() {
            return consume(buf, Rejected::BadSignature);
        }
        // (5) Replay, for an authentic frame only.
        let window = self.limits.replay_window;
        let fresh = self.windows.get(&header.sender).is_none_or(|w| w.is_fresh(header.sequence, window));
        if !fresh || header.sequence == 0 {
            return consume(buf, Rejected::Replayed { sender: header.sender, sequence: header.sequence });
        }
        // The body.
        let kind = FrameKind::from_u8(header.kind).ok_or(Rejected::UnknownKind(header.kind))?;
        if !kind.carries_envelopes() && header.count != 0 {
            return consume(buf, Rejected::Malformed("only data frames carry envelopes"));
        }
        let bytes = buf.split_to(total).freeze();
        let (envelopes, body) = if kind.carries_body() {
            (Vec::new(), bytes.slice(LENGTH_PREFIX_BYTES + HEADER_BYTES..total - TAG_BYTES))
        } else {
            (frame::decode_envelopes(&bytes, header.count).map_err(Rejected::Malformed)?, Bytes::new())
        };
        self.windows.entry(header.sender).or_insert_with(|| ReplayWindow::new(window)).mark(header.sequence);
        Ok(Some(Frame {
            kind,
            sender: header.sender,
            sequence: header.sequence,
            timestamp_ms: header.timestamp_ms,
            envelopes,
            body,
        }))
    }
}

/// The declared length, once the 4-byte prefix has arrived.
fn declared_len(buf: &BytesMut) -> Option<u32> {
    buf.first_chunk::<LENGTH_PREFIX_BYTES>().map(|prefix| u32::from_be_bytes(*prefix))
}

/// One sender's sliding anti-replay window: the highest sequence accepted and a ring of bits, one per
/// sequence, for the sequences just below it. Its size is fixed at creation.
#[derive(Debug)]
struct ReplayWindow {
    highest: u64,
    /// Bit `s % (64 * bits.len())` is set when sequence `s` (within the window) was accepted.
    bits: Box<[u64]>,
}

impl ReplayWindow {
    fn new(window: u32) -> ReplayWindow {
        ReplayWindow { highest: 0, bits: vec![0; window.div_ceil(64) as usize].into_boxed_slice() }
    }

    fn ring_bits(&self) -> u64 {
        64 * self.bits.len() as u64
    }

    fn position(&self, sequence: u64) -> (usize, u64) {
        let bit = sequence % self.ring_bits();
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    /// Whether `sequence` may be accepted: above the highest, or inside the window and not yet seen.
    fn is_fresh(&self, sequence: u64, window: u32) -> bool {
        if sequence > self.highest {
            return true;
        }
        if self.highest - sequence >= u64::from(window) {
            return false;
        }
        let (word, mask) = self.position(sequence);
        self.bits[word] & mask == 0
    }

    /// Records `sequence` as accepted (it passed [`ReplayWindow::is_fresh`]), sliding the window if needed.
    fn mark(&mut self, sequence: u64) {
        if sequence > self.highest {
            if sequence - self.highest >= self.ring_bits() {
                self.bits.fill(0);
            } else {
                for skipped in self.highest + 1..sequence {
                    let (word, mask) = self.position(skipped);
                    self.bits[word] &= !mask;
                }
            }
            self.highest = sequence;
        }
        let (word, mask) = self.position(sequence);
        self.bits[word] |= mask;
    }
}

/// Whether a connection should stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionVerdict {
    Continue,
    Close,
}

/// The connection policy of the module docs, for one connection: close on a rejection that leaves the
/// stream out of sync, or after `max_consecutive_bad_signatures` bad signatures with no authentic frame
/// (accepted or replayed) between them.
#[derive(Debug, Clone)]
pub struct ConnectionPolicy {
    max_consecutive_bad_signatures: u32,
    consecutive_bad_signatures: u32,
}

impl ConnectionPolicy {
    /// The default number of consecutive bad signatures that closes a connection.
    pub const DEFAULT_MAX_CONSECUTIVE_BAD_SIGNATURES: u32 = 3;

    /// A policy that closes after `max_consecutive_bad_signatures` in a row (0 is taken as 1: close on
    /// the first).
    pub fn new(max_consecutive_bad_signatures: u32) -> ConnectionPolicy {
        ConnectionPolicy {
            max_consecutive_bad_signatures: max_consecutive_bad_signatures.max(1),
            consecutive_bad_signatures: 0,
        }
    }

    /// Bad signatures since the last authentic frame.
    pub fn consecutive_bad_signatures(&self) -> u32 {
        self.consecutive_bad_signatures
    }

    /// Applies the policy to one outcome of [`FrameReader::read_frame`].
    pub fn observe(&mut self, outcome: &Result<Option<Frame>, Rejected>) -> ConnectionVerdict {
        match outcome {
            Ok(Some(_)) => {
                self.consecutive_bad_signatures = 0;
                ConnectionVerdict::Continue
            }
            Ok(None) => ConnectionVerdict::Continue,
            Err(rejected) => self.on_rejected(rejected),
        }
    }

    /// Applies the policy to one rejection.
    pub fn on_rejected(&mut self, rejected: &Rejected) -> ConnectionVerdict {
        match rejected {
            _ if rejected.closes_connection() => ConnectionVerdict::Close,
            Rejected::BadSignature => {
                self.consecutive_bad_signatures += 1;
                if self.consecutive_bad_signatures >= self.max_consecutive_bad_signatures {
                    ConnectionVerdict::Close
                } else {
                    ConnectionVerdict::Continue
                }
            }
            // A replayed frame's signature verified: the peer holds the key.
            Rejected::Replayed { .. } => {
                self.consecutive_bad_signatures = 0;
                ConnectionVerdict::Continue
            }
            _ => ConnectionVerdict::Continue,
        }
    }
}

impl Default for ConnectionPolicy {
    fn default() -> ConnectionPolicy {
        ConnectionPolicy::new(ConnectionPolicy::DEFAULT_MAX_CONSECUTIVE_BAD_SIGNATURES)
    }
}

#[cfg(test)]
mod authenticated_link_tests {
    use super::*;
    use crate::frame::{FrameEncoder, FrameKind};

    fn frame(key: &TransportKey, sequence: u64, timestamp_ms: u64) -> BytesMut {
        let mut out = BytesMut::new();
        FrameEncoder::begin(&mut out, FrameKind::Heartbeat, 0, sequence, timestamp_ms).unwrap().finish(key).unwrap();
        out
    }

    #[test]
    fn an_authenticated_link_skips_freshness_but_not_signature_or_replay() {
        let key = TransportKey::from_bytes([3; 32]);
        let mut reader = FrameReader::new(key.clone(), Limits::default()).unwrap();
        let old = 1_000;
        assert!(matches!(reader.read_frame(&mut frame(&key, 1, old), 1_000_000), Err(Rejected::Expired { .. })));
        assert!(reader.read_frame_on_authenticated_link(&mut frame(&key, 1, old)).unwrap().is_some());
        assert!(matches!(
            reader.read_frame_on_authenticated_link(&mut frame(&key, 1, old)),
            Err(Rejected::Replayed { .. })
        ));
        let forged = TransportKey::from_bytes([4; 32]);
        assert!(matches!(
            reader.read_frame_on_authenticated_link(&mut frame(&forged, 2, old)),
            Err(Rejected::BadSignature)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(window: &mut ReplayWindow, size: u32, sequence: u64) -> bool {
        let fresh = sequence != 0 && window.is_fresh(sequence, size);
        if fresh {
            window.mark(sequence);
        }
        fresh
    }

    #[test]
    fn window_accepts_each_sequence_once_in_any_order_inside_the_window() {
        let mut window = ReplayWindow::new(64);
        for sequence in [5, 3, 4, 1, 2, 10, 7] {
            assert!(accept(&mut window, 64, sequence), "first {sequence}");
        }
        for sequence in [5, 3, 4, 1, 2, 10, 7] {
            assert!(!accept(&mut window, 64, sequence), "again {sequence}");
        }
        assert!(accept(&mut window, 64, 6));
        assert!(accept(&mut window, 64, 8));
    }

    #[test]
    fn window_rejects_sequences_at_or_below_highest_minus_window() {
        let mut window = ReplayWindow::new(100);
        assert!(accept(&mut window, 100, 1000));
        assert!(!accept(&mut window, 100, 900), "exactly window below the highest");
        assert!(!accept(&mut window, 100, 1));
        assert!(accept(&mut window, 100, 901), "the oldest sequence inside the window");
        assert!(!accept(&mut window, 100, 901));
    }

    #[test]
    fn window_forgets_old_bits_when_it_slides() {
        // A ring of 64 bits: sequence 65 shares a position with sequence 1.
        let mut window = ReplayWindow::new(64);
        assert!(accept(&mut window, 64, 1));
        assert!(accept(&mut window, 64, 65));
        assert!(!accept(&mut window, 64, 1), "fell out of the window");
        assert!(accept(&mut window, 64, 64));
        // A jump longer than the ring clears everything.
        assert!(accept(&mut window, 64, 10_000));
        assert!(accept(&mut window, 64, 9_999));
        assert!(accept(&mut window, 64, 9_937), "63 below the highest: inside");
        assert!(!accept(&mut window, 64, 9_936), "64 below the highest: outside");
    }

    #[test]
    fn window_of_one_accepts_only_increasing_sequences() {
        let mut window = ReplayWindow::new(1);
        assert!(accept(&mut window, 1, 2));
        assert!(!accept(&mut window, 1, 1));
        assert!(!accept(&mut window, 1, 2));
        assert!(accept(&mut window, 1, 3));
    }

    #[test]
    fn window_memory_is_fixed_by_its_size() {
        let mut window = ReplayWindow::new(1024);
        let words = window.bits.len();
        for sequence in (1..100_000).step_by(7) {
            accept(&mut window, 1024, sequence);
        }
        assert_eq!(window.bits.len(), words);
        assert_eq!(words, 16);
    }

    #[test]
    fn limits_out_of_range_are_refused_naming_the_field() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let small = Limits { max_frame_bytes: 55, ..Limits::default() };
        assert_eq!(small.validate().unwrap_err().field, "max_frame_bytes");
        let no_window = Limits { replay_window: 0, ..Limits::default() };
        let error = no_window.validate().unwrap_err();
        assert_eq!(error.field, "replay_window");
        assert!(error.to_string().contains("replay_window is 0"), "{error}");
        let huge = Limits { replay_window: Limits::MAX_REPLAY_WINDOW + 1, ..Limits::default() };
        assert!(huge.validate().is_err());
    }

    #[test]
    fn policy_closes_on_out_of_sync_rejections() {
        for rejected in [
            Rejected::Oversized { declared: 1 << 30, max: 8 << 20 },
            Rejected::Malformed("trailing bytes after the last envelope"),
            Rejected::BadVersion(0),
            Rejected::UnknownKind(9),
            Rejected::Truncated { have: 3, declared: 0 },
        ] {
            assert!(rejected.closes_connection(), "{rejected}");
            assert_eq!(ConnectionPolicy::default().on_rejected(&rejected), ConnectionVerdict::Close, "{rejected}");
        }
    }

    #[test]
    fn policy_closes_after_three_consecutive_bad_signatures_by_default() {
        let mut policy = ConnectionPolicy::default();
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Continue);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Continue);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Close);
    }

    #[test]
    fn policy_forgets_bad_signatures_after_an_authentic_frame() {
        let mut policy = ConnectionPolicy::new(2);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Continue);
        assert_eq!(policy.on_rejected(&Rejected::Replayed { sender: 1, sequence: 4 }), ConnectionVerdict::Continue);
        assert_eq!(policy.consecutive_bad_signatures(), 0);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Continue);
        let frame = Frame {
            kind: FrameKind::Heartbeat,
            sender: 1,
            sequence: 5,
            timestamp_ms: 0,
            envelopes: vec![],
            body: Bytes::new(),
        };
        assert_eq!(policy.observe(&Ok(Some(frame))), ConnectionVerdict::Continue);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Continue);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Close);
    }

    #[test]
    fn policy_keeps_the_bad_signature_run_across_expired_frames_and_partial_reads() {
        let mut policy = ConnectionPolicy::new(2);
        assert_eq!(policy.on_rejected(&Rejected::BadSignature), ConnectionVerdict::Continue);
        let expired = Rejected::Expired { timestamp_ms: 0, now_ms: 1 << 40 };
        assert_eq!(policy.on_rejected(&expired), ConnectionVerdict::Continue);
        assert_eq!(policy.observe(&Ok(None)), ConnectionVerdict::Continue);
        assert_eq!(policy.observe(&Err(Rejected::BadSignature)), ConnectionVerdict::Close);
    }

    #[test]
    fn policy_threshold_of_zero_closes_on_the_first_bad_signature() {
        assert_eq!(ConnectionPolicy::new(0).on_rejected(&Rejected::BadSignature), ConnectionVerdict::Close);
    }

    #[test]
    fn reject_counts_count_by_reason_label() {
        let mut counts = RejectCounts::default();
        for rejected in [
            Rejected::BadSignature,
            Rejected::BadSignature,
            Rejected::Replayed { sender: 1, sequence: 1 },
            Rejected::Malformed("x"),
            Rejected::Oversized { declared: 2, max: 1 },
            Rejected::Expired { timestamp_ms: 0, now_ms: 0 },
            Rejected::UnknownKind(7),
            Rejected::BadVersion(7),
            Rejected::Truncated { have: 10, declared: 100 },
        ] {
            counts.record(&rejected);
        }
        assert_eq!(counts.bad_signature, 2);
        assert_eq!(counts.truncated, 1);
        assert_eq!(counts.total(), 9);
        let labels: Vec<_> = counts.by_reason().iter().map(|(reason, _)| *reason).collect();
        assert_eq!(labels, Rejected::REASONS);
        assert!(
            counts.by_reason().iter().all(|&(reason, count)| count == if reason == "bad_signature" { 2 } else { 1 })
        );
        let mut merged = counts;
        merged.merge(&counts);
        assert_eq!(merged.total(), 18);
        assert_eq!(merged.truncated, 2);
    }

    fn reader() -> FrameReader {
        FrameReader::new(TransportKey::from_bytes([3; 32]), Limits::default()).unwrap()
    }

    #[test]
    fn a_clean_close_between_frames_is_not_truncated() {
        let mut reader = reader();
        assert_eq!(reader.connection_closed(&BytesMut::new()), None);
        assert_eq!(reader.reject_counts().total(), 0);
    }

    #[test]
    fn closing_inside_the_length_prefix_is_truncated_with_no_declared_length() {
        let mut reader = reader();
        let buf = BytesMut::from(&[0u8, 0, 1][..]);
        assert_eq!(reader.connection_closed(&buf), Some(Rejected::Truncated { have: 3, declared: 0 }));
        assert_eq!(reader.reject_counts().truncated, 1);
        assert_eq!(buf.len(), 3, "nothing consumed");
    }

    #[test]
    fn closing_inside_a_frame_is_truncated_counted_and_closes_the_connection() {
        let mut frame = BytesMut::new();
        crate::encode_control_frame(1, 1, 0, b"{\"type\":\"stop\"}", &TransportKey::from_bytes([3; 32]), &mut frame)
            .unwrap();
        let declared = (frame.len() - 4) as u32;
        let mut reader = reader();
        let mut buf = BytesMut::from(&frame[..frame.len() - 1]);
        assert_eq!(reader.read_frame(&mut buf, 0), Ok(None));
        let truncated = reader.connection_closed(&buf).unwrap();
        assert_eq!(truncated, Rejected::Truncated { have: frame.len() - 1, declared });
        assert_eq!(truncated.reason(), "truncated");
        assert!(truncated.closes_connection());
        assert_eq!(ConnectionPolicy::default().on_rejected(&truncated), ConnectionVerdict::Close);
        assert_eq!(reader.reject_counts().truncated, 1);
        assert_eq!(reader.reject_counts().by_reason()[7], ("truncated", 1));
        assert_eq!(
            truncated.to_string(),
            format!(
                "connection closed in the middle of a frame: {} bytes arrived of a frame declaring {declared} bytes",
                frame.len() - 1
            )
        );
        // Counted each time it happens (one per connection).
        reader.connection_closed(&BytesMut::from(&b"x"[..]));
        assert_eq!(reader.reject_counts().truncated, 2);
        assert_eq!(reader.reject_counts().total(), 2);
    }
}
