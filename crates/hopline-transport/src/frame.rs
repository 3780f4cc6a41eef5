//! The frame: the unit on the wire between process groups, a header and a batch of envelopes (or, for a
//! control frame, one opaque body), signed.
//!
//! This module owns the byte layout in both directions: [`FrameEncoder`], [`encode_frame`] and
//! [`encode_control_frame`] write it, [`crate::FrameReader`] reads it (with the checks in `receive.rs`,
//! using the parsers here).
//!
//! # Layout
//!
//! All integers are big-endian. Offsets are from the first byte of the frame.
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 4 | length: u32, the number of bytes after this field (header + envelopes or body + tag) |
//! | 4 | 1 | magic/version byte: `0xA1` (high nibble `0xA`: hopline; low nibble: wire version 1) |
//! | 5 | 1 | kind: 1 `Data`, 2 `Heartbeat`, 3 `End`, 4 `Control` ([`FrameKind`]) |
//! | 6 | 2 | sender: u16, the sending process group |
//! | 8 | 8 | sequence: u64, per sender, starting at 1 (0 is never valid) |
//! | 16 | 8 | timestamp: u64, milliseconds since the Unix epoch, at the sender |
//! | 24 | 4 | envelope count: u32 (0 for `Heartbeat`, `End` and `Control`) |
//! | 28 | … | `Data`: envelopes, `count` times, as below. `Control`: the body, opaque bytes (every byte up to the tag). `Heartbeat`, `End`: nothing |
//! | end − 32 | 32 | tag: HMAC-SHA256 over bytes 4 .. end − 32 (header and envelopes or body, not the length) |
//!
//! One envelope, 35 bytes plus 25 with a trace context, plus the payload:
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 8 | seq: u64 |
//! | 8 | 16 | correlation id: u128 |
//! | 24 | 2 | route: process_group, u16 |
//! | 26 | 2 | route: handoff_from, u16; `0xFFFF` means none (so group 65535 cannot be a sender of a hop) |
//! | 28 | 2 | route: route_hop, u16 |
//! | 30 | 1 | trace presence: 0 none, 1 present; any other value is malformed |
//! | 31 | 25 | only when present: trace id (16), span id (8), flags (1) |
//! | … | 4 | payload length: u32 |
//! | … | n | payload: opaque bytes (the app's own encoding) |
//!
//! The length is not covered by the tag, but it decides where the tag is read from, so any change to it
//! fails verification (or is caught earlier as oversized or malformed).
//!
//! # Guarantees
//!
//! - Encoding appends one whole signed frame to the output buffer, or, on error, leaves the buffer as it
//!   was. It allocates nothing apart from growing the output buffer ([`encode_frame`] reserves the exact
//!   length once).
//! - Decoding envelopes never panics and never reads outside the frame; payloads and control bodies are
//!   zero-copy slices of the received frame.
//! - Only `Control` frames have bytes between the header and the tag other than envelopes; in any other
//!   kind such bytes are malformed.

use bytes::{BufMut, Bytes, BytesMut};
use hmac::Mac;
use hopline_model::{CorrelationId, EnvelopeHeader, Route, TraceContext};

use crate::key::TransportKey;

/// The magic/version byte: hopline (`0xA`), wire version 1.
pub const VERSION_BYTE: u8 = 0xA1;
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of the fixed header after the length prefix (version, kind, sender, sequence, timestamp, count).
pub const HEADER_BYTES: usize = 24;
/// Bytes of the HMAC-SHA256 tag.
pub const TAG_BYTES: usize = 32;
/// The shortest possible frame after the length prefix: a header and a tag, no envelopes.
pub const MIN_FRAME_BYTES: usize = HEADER_BYTES + TAG_BYTES;
/// The shortest possible envelope on the wire: no trace context, empty payload.
pub const MIN_ENVELOPE_BYTES: usize = 8 + 16 + 6 + 1 + 4;
/// Bytes of a trace context when present.
pub const TRACE_BYTES: usize = 16 + 8 + 1;
/// `handoff_from` on the wire when the envelope has not crossed a hop.
pub const NO_HANDOFF: u16 = u16::MAX;

/// What a frame means to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A batch of envelopes (possibly empty).
    Data = 1,
    /// The sender is alive and has nothing to send; carries no envelopes.
    Heartbeat = 2,
    /// The sender has finished: every frame it will send on this link precedes this one (the drain
    /// marker). Carries no envelopes.
    End = 3,
    /// A control message between the supervisor and a worker (READY, heartbeat, failure, stop, ...):
    /// carries no envelopes, only one opaque body ([`Frame::body`]; JSON by convention, not checked here).
    Control = 4,
}

impl FrameKind {
    /// The kind for a wire byte, or `None` for an unknown kind.
    pub fn from_u8(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Data),
            2 => Some(FrameKind::Heartbeat),
            3 => Some(FrameKind::End),
            4 => Some(FrameKind::Control),
            _ => None,
        }
    }

    /// The wire byte of this kind.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether frames of this kind may carry envelopes (only `Data`).
    pub fn carries_envelopes(self) -> bool {
        self == FrameKind::Data
    }

    /// Whether frames of this kind carry a body (only `Control`).
    pub fn carries_body(self) -> bool {
        self == FrameKind::Control
    }
}

/// One envelope on the wire: its header and its payload, already encoded by the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEnvelope {
    pub header: EnvelopeHeader,
    pub payload: Bytes,
}

/// A frame: who sent it, when, in which order, and the envelopes (or, for `Control`, the body) it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    /// The sending process group.
    pub sender: u16,
    /// Per sender, starting at 1, one more for every frame the sender signs.
    pub sequence: u64,
    /// Milliseconds since the Unix epoch, on the sender's clock.
    pub timestamp_ms: u64,
    /// The envelopes of a `Data` frame; empty for every other kind.
    pub envelopes: Vec<WireEnvelope>,
    /// The body of a `Control` frame: every byte between the header and the tag (a zero-copy slice of the
    /// received frame). Empty for every other kind.
    pub body: Bytes,
}

/// Why a frame could not be encoded. The output buffer is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Sequence 0 is never valid on the wire.
    #[error("cannot encode a frame from process group {sender} with sequence 0: frame sequences start at 1")]
    ZeroSequence { sender: u16 },
    /// `handoff_from == Some(65535)` collides with the wire's "no hop" sentinel.
    #[error(
        "cannot encode envelope seq {seq}: handoff_from 65535 is reserved on the wire for \"no hop\" \
         (process groups are numbered below 65535)"
    )]
    ReservedHandoff { seq: u64 },
    /// Only `Data` frames carry envelopes.
    #[error("cannot encode envelope seq {seq} into a {kind:?} frame: only Data frames carry envelopes")]
    EnvelopeInControlFrame { kind: FrameKind, seq: u64 },
    /// Only `Control` frames carry a body.
    #[error("cannot encode a {len}-byte body into a {kind:?} frame: only Control frames carry a body")]
    BodyInNonControlFrame { kind: FrameKind, len: usize },
    /// The frame would not fit the wire's u32 length or count fields.
    #[error(
        "cannot encode frame {sequence} from process group {sender}: it would exceed the wire's limits \
         (4 GiB per frame, per payload and per body, 2^32 envelopes)"
    )]
    TooLarge { sender: u16, sequence: u64 },
}

/// The number of bytes [`encode_frame`] appends for `frame`, length prefix and tag included.
///
/// A sender compares it with the receiver's `max_frame_bytes` (which counts everything after the length
/// prefix, so the bound is `max_frame_bytes + 4`) to decide where to split a batch.
pub fn encoded_len(frame: &Frame) -> usize {
    LENGTH_PREFIX_BYTES
        + MIN_FRAME_BYTES
        + frame.body.len()
        + frame.envelopes.iter().map(|e| envelope_len(&e.header, e.payload.len())).sum::<usize>()
}

/// The number of bytes [`encode_control_frame`] appends for a body of `body_len` bytes, length prefix and
/// tag included.
pub fn control_encoded_len(body_len: usize) -> usize {
    LENGTH_PREFIX_BYTES + MIN_FRAME_BYTES + body_len
}

/// Bytes one envelope takes on the wire.
pub fn envelope_len(header: &EnvelopeHeader, payload_len: usize) -> usize {
    MIN_ENVELOPE_BYTES + if header.trace.is_some() { TRACE_BYTES } else { 0 } + payload_len
}

/// Appends `frame`, signed with `key`, to `out`.
///
/// A `Data` frame carries its envelopes, a `Control` frame its body; envelopes in any other kind, or a
/// body in any kind but `Control`, are refused. On error `out` is left as it was.
pub fn encode_frame(frame: &Frame, key: &TransportKey, out: &mut BytesMut) -> Result<(), EncodeError> {
    if !frame.body.is_empty() && !frame.kind.carries_body() {
        return Err(EncodeError::BodyInNonControlFrame { kind: frame.kind, len: frame.body.len() });
    }
    if frame.kind.carries_body() {
        if let Some(envelope) = frame.envelopes.first() {
            return Err(EncodeError::EnvelopeInControlFrame { kind: frame.kind, seq: envelope.header.seq });
        }
        encode_control_frame(frame.sender, frame.sequence, frame.timestamp_ms, &frame.body, key, out)?;
        return Ok(());
    }
    out.reserve(encoded_len(frame));
    let mut encoder = FrameEncoder::begin(out, frame.kind, frame.sender, frame.sequence, frame.timestamp_ms)?;
    for envelope in &frame.envelopes {
        encoder.push(&envelope.header, &envelope.payload)?;
    }
    encoder.finish(key)?;
    Ok(())
}

/// Appends a `Control` frame carrying `body` (opaque bytes; JSON by convention), signed with `key`, to
/// `out`, and returns the number of bytes appended ([`control_encoded_len`]).
///
/// The same guarantees as [`encode_frame`]: one whole signed frame is appended, reserving its exact
/// length once, or on error (sequence 0, a body over 4 GiB) `out` is left as it was.
pub fn encode_control_frame(
    sender: u16,
    sequence: u64,
    timestamp_ms: u64,
    body: &[u8],
    key: &TransportKey,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if sequence == 0 {
        return Err(EncodeError::ZeroSequence { sender });
    }
    let total = control_encoded_len(body.len());
    if u32::try_from(total - LENGTH_PREFIX_BYTES).is_err() {
        return Err(EncodeError::TooLarge { sender, sequence });
    }
    out.reserve(total);
    let encoder = FrameEncoder::begin(out, FrameKind::Control, sender, sequence, timestamp_ms)?;
    encoder.out.extend_from_slice(body);
    encoder.finish(key)
}

/// Writes one frame straight into an output buffer, envelope by envelope, so a sender can encode typed
/// payloads directly into the frame ([`FrameEncoder::push_with`]) with no intermediate buffer.
///
/// The frame is appended only when [`FrameEncoder::finish`] succeeds; an encoder dropped before that (or
/// an error) truncates the buffer back to where the frame began.
pub struct FrameEncoder<'a> {
    out: &'a mut BytesMut,
    start: usize,
    kind: FrameKind,
    sender: u16,
    sequence: u64,
    count: u32,
    finished: bool,
}

impl<'a> FrameEncoder<'a> {
    /// Starts a frame at the end of `out`.
    pub fn begin(
        out: &'a mut BytesMut,
        kind: FrameKind,
        sender: u16,
        sequence: u64,
        timestamp_ms: u64,
    ) -> Result<FrameEncoder<'a>, EncodeError> {
        if sequence == 0 {
            return Err(EncodeError::ZeroSequence { sender });
        }
        let start = out.len();
        out.reserve(LENGTH_PREFIX_BYTES + MIN_FRAME_BYTES);
        out.put_u32(0); // patched by `finish`
        out.put_u8(VERSION_BYTE);
        out.put_u8(kind.as_u8());
        out.put_u16(sender);
        out.put_u64(sequence);
        out.put_u64(timestamp_ms);
        out.put_u32(0); // envelope count, patched by `finish`
        Ok(FrameEncoder { out, start, kind, sender, sequence, count: 0, finished: false })
    }

    /// Appends one envelope with an already encoded payload.
    pub fn push(&mut self, header: &EnvelopeHeader, payload: &[u8]) -> Result<(), EncodeError> {
        self.push_with(header, |out| out.extend_from_slice(payload))
    }

    /// Appends one envelope whose payload `write_payload` appends to the buffer it is given (and does
    /// nothing else to it).
    pub fn push_with(
        &mut self,
        header: &EnvelopeHeader,
        write_payload: impl FnOnce(&mut BytesMut),
    ) -> Result<(), EncodeError> {
        if !self.kind.carries_envelopes() {
            return Err(EncodeError::EnvelopeInControlFrame { kind: self.kind, seq: header.seq });
        }
        if header.route.handoff_from == Some(NO_HANDOFF) {
            return Err(EncodeError::ReservedHandoff { seq: header.seq });
        }
        let too_large = EncodeError::TooLarge { sender: self.sender, sequence: self.sequence };
        let count = self.count.checked_add(1).ok_or_else(|| too_large.clone())?;
        let envelope_start = self.out.len();
        put_envelope_header(self.out, header);
        let length_at = self.out.len();
        self.out.put_u32(0); // payload length, patched below
        write_payload(self.out);
        let payload_len = self.out.len() - length_at - 4;
        let Ok(payload_len) = u32::try_from(payload_len) else {
            self.out.truncate(envelope_start);
            return Err(too_large);
        };
        self.out[length_at..length_at + 4].copy_from_slice(&payload_len.to_be_bytes());
        self.count = count;
        Ok(())
    }

    /// Envelopes pushed so far.
    pub fn envelope_count(&self) -> u32 {
        self.count
    }

    /// The bytes the frame will take once finished (length prefix and tag included).
    pub fn encoded_len(&self) -> usize {
        self.out.len() - self.start + TAG_BYTES
    }

    /// Patches the length and count, signs the frame with `key` and returns its length in bytes.
    pub fn finish(mut self, key: &TransportKey) -> Result<usize, EncodeError> {
        let total = self.encoded_len();
        let Ok(declared) = u32::try_from(total - LENGTH_PREFIX_BYTES) else {
            // Dropping `self` truncates the buffer.
            return Err(EncodeError::TooLarge { sender: self.sender, sequence: self.sequence });
        };
        let start = self.start;
        self.out[start..start + 4].copy_from_slice(&declared.to_be_bytes());
        let count_at = start + LENGTH_PREFIX_BYTES + HEADER_BYTES - 4;
        self.out[count_at..count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        let mut mac = key.mac();
        mac.update(&self.out[start + LENGTH_PREFIX_BYTES..]);
        self.out.put_slice(&mac.finalize().into_bytes());
        self.finished = true;
        Ok(total)
    }
}

impl Drop for FrameEncoder<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

/// Writes an envelope's header fields (everything before the payload length) in one copy.
fn put_envelope_header(out: &mut BytesMut, header: &EnvelopeHeader) {
    let mut fields = [0u8; MIN_ENVELOPE_BYTES - 4 + TRACE_BYTES];
    fields[0..8].copy_from_slice(&header.seq.to_be_bytes());
    fields[8..24].copy_from_slice(&header.correlation_id.0.to_be_bytes());
    fields[24..26].copy_from_slice(&header.route.process_group.to_be_bytes());
    fields[26..28].copy_from_slice(&header.route.handoff_from.unwrap_or(NO_HANDOFF).to_be_bytes());
    fields[28..30].copy_from_slice(&header.route.route_hop.to_be_bytes());
    let len = match &header.trace {
        None => 31,
        Some(trace) => {
            fields[30] = 1;
            fields[31..47].copy_from_slice(&trace.trace_id);
            fields[47..55].copy_from_slice(&trace.span_id);
            fields[55] = trace.flags;
            56
        }
    };
    out.extend_from_slice(&fields[..len]);
}

/// The fixed header of a frame, as read from the wire and not yet trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub kind: u8,
    pub sender: u16,
    pub sequence: u64,
    pub timestamp_ms: u64,
    pub count: u32,
}

impl RawHeader {
    /// Parses the header bytes that follow the length prefix (the version byte is checked by the caller).
    pub(crate) fn parse(header: &[u8; HEADER_BYTES]) -> RawHeader {
        let mut reader = Cursor { bytes: header, pos: 1 };
        // The array is exactly HEADER_BYTES long, so none of these can run short.
        let kind = reader.u8().unwrap_or_default();
        let sender = reader.u16().unwrap_or_default();
        let sequence = reader.u64().unwrap_or_default();
        let timestamp_ms = reader.u64().unwrap_or_default();
        let count = reader.u32().unwrap_or_default();
        RawHeader { kind, sender, sequence, timestamp_ms, count }
    }
}

/// Decodes the `count` envelopes of a whole frame (length prefix included, signature already verified).
///
/// Rejects a count that cannot fit before allocating, a record that overruns the envelope section, a trace
/// presence byte other than 0 or 1, and bytes left between the last envelope and the tag. The vector it
/// allocates is bounded by the frame's length (at most one element per 35 bytes).
pub(crate) fn decode_envelopes(frame: &Bytes, count: u32) -> Result<Vec<WireEnvelope>, &'static str> {
    let first = LENGTH_PREFIX_BYTES + HEADER_BYTES;
    let end = frame.len().checked_sub(TAG_BYTES).filter(|&end| end >= first).ok_or("frame shorter than its header")?;
    let count = count as usize;
    if count > (end - first) / MIN_ENVELOPE_BYTES {
        return Err("envelope count cannot fit in the frame");
    }
    let mut reader = Cursor { bytes: &frame[..end], pos: first };
    let mut envelopes = Vec::with_capacity(count);
    for _ in 0..count {
        const OVERRUN: &str = "envelope overruns the frame";
        let seq = reader.u64().ok_or(OVERRUN)?;
        let correlation_id = CorrelationId(reader.u128().ok_or(OVERRUN)?);
        let process_group = reader.u16().ok_or(OVERRUN)?;
        let handoff_from = reader.u16().ok_or(OVERRUN)?;
        let route_hop = reader.u16().ok_or(OVERRUN)?;
        let trace = match reader.u8().ok_or(OVERRUN)? {
            0 => None,
            1 => Some(TraceContext {
                trace_id: reader.array().ok_or(OVERRUN)?,
                span_id: reader.array().ok_or(OVERRUN)?,
                flags: reader.u8().ok_or(OVERRUN)?,
            }),
            _ => return Err("trace presence byte is neither 0 nor 1"),
        };
        let payload_len = reader.u32().ok_or(OVERRUN)? as usize;
        let payload_start = reader.pos;
        reader.skip(payload_len).ok_or("payload length overruns the frame")?;
        let route =
            Route { process_group, handoff_from: (handoff_from != NO_HANDOFF).then_some(handoff_from), route_hop };
        envelopes.push(WireEnvelope {
            header: EnvelopeHeader { seq, correlation_id, trace, route },
            payload: frame.slice(payload_start..payload_start + payload_len),
        });
    }
    if reader.pos != end {
        return Err("trailing bytes after the last envelope");
    }
    Ok(envelopes)
}

/// Bounds-checked big-endian reads over a byte slice; every read returns `None` instead of running short.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let array = <[u8; N]>::try_from(self.bytes.get(self.pos..end)?).ok()?;
        self.pos = end;
        Some(array)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len())?;
        self.pos = end;
        Some(())
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn u128(&mut self) -> Option<u128> {
        self.array().map(u128::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TransportKey {
        TransportKey::from_bytes([7; 32])
    }

    fn header(seq: u64) -> EnvelopeHeader {
        EnvelopeHeader {
            seq,
            correlation_id: CorrelationId(0x0af7651916cd43dd8448eb211c80319c),
            trace: None,
            route: Route { process_group: 2, handoff_from: Some(1), route_hop: 1 },
        }
    }

    fn data_frame(envelopes: Vec<WireEnvelope>) -> Frame {
        Frame {
            kind: FrameKind::Data,
            sender: 1,
            sequence: 1,
            timestamp_ms: 1_700_000_000_000,
            envelopes,
            body: Bytes::new(),
        }
    }

    #[test]
    fn encoded_bytes_follow_the_documented_layout() {
        let frame = Frame {
            kind: FrameKind::Data,
            sender: 0x0102,
            sequence: 0x0304,
            timestamp_ms: 0x0506,
            envelopes: vec![WireEnvelope { header: header(9), payload: Bytes::from_static(b"xy") }],
            body: Bytes::new(),
        };
        let mut out = BytesMut::new();
        encode_frame(&frame, &key(), &mut out).unwrap();
        assert_eq!(out.len(), encoded_len(&frame));
        assert_eq!(out.len(), 4 + 24 + 35 + 2 + 32);
        assert_eq!(&out[0..4], &((out.len() - 4) as u32).to_be_bytes());
        assert_eq!(out[4], 0xA1);
        assert_eq!(out[5], 1);
        assert_eq!(&out[6..8], &[1, 2]);
        assert_eq!(&out[8..16], &0x0304u64.to_be_bytes());
        assert_eq!(&out[16..24], &0x0506u64.to_be_bytes());
        assert_eq!(&out[24..28], &1u32.to_be_bytes());
        assert_eq!(&out[28..36], &9u64.to_be_bytes());
        assert_eq!(&out[36..52], &0x0af7651916cd43dd8448eb211c80319cu128.to_be_bytes());
        assert_eq!(&out[52..58], &[0, 2, 0, 1, 0, 1]);
        assert_eq!(out[58], 0);
        assert_eq!(&out[59..63], &2u32.to_be_bytes());
        assert_eq!(&out[63..65], b"xy");
        let mut mac = key().mac();
        mac.update(&out[4..65]);
        assert_eq!(&out[65..], mac.finalize().into_bytes().as_slice());
    }

    #[test]
    fn no_handoff_is_written_as_the_sentinel() {
        let mut h = header(1);
        h.route.handoff_from = None;
        let mut out = BytesMut::new();
        encode_frame(&data_frame(vec![WireEnvelope { header: h, payload: Bytes::new() }]), &key(), &mut out).unwrap();
        assert_eq!(&out[54..56], &[0xFF, 0xFF]);
    }

    #[test]
    fn encode_errors_leave_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"earlier frame"[..]);
        let mut reserved = header(5);
        reserved.route.handoff_from = Some(NO_HANDOFF);
        let frame = data_frame(vec![
            WireEnvelope { header: header(4), payload: Bytes::from_static(b"ok") },
            WireEnvelope { header: reserved, payload: Bytes::new() },
        ]);
        assert_eq!(encode_frame(&frame, &key(), &mut out), Err(EncodeError::ReservedHandoff { seq: 5 }));
        assert_eq!(&out[..], b"earlier frame");

        let zero = Frame { sequence: 0, ..data_frame(Vec::new()) };
        assert_eq!(encode_frame(&zero, &key(), &mut out), Err(EncodeError::ZeroSequence { sender: 1 }));
        let heartbeat = Frame { kind: FrameKind::Heartbeat, ..data_frame(frame.envelopes[..1].to_vec()) };
        assert_eq!(
            encode_frame(&heartbeat, &key(), &mut out),
            Err(EncodeError::EnvelopeInControlFrame { kind: FrameKind::Heartbeat, seq: 4 })
        );
        assert_eq!(&out[..], b"earlier frame");
    }

    #[test]
    fn an_unfinished_encoder_leaves_nothing_behind() {
        let mut out = BytesMut::from(&b"x"[..]);
        {
            let mut encoder = FrameEncoder::begin(&mut out, FrameKind::Data, 1, 1, 0).unwrap();
            encoder.push(&header(1), b"payload").unwrap();
        }
        assert_eq!(&out[..], b"x");
    }

    #[test]
    fn push_with_writes_the_payload_in_place_and_matches_push() {
        let mut direct = BytesMut::new();
        let mut encoder = FrameEncoder::begin(&mut direct, FrameKind::Data, 1, 1, 0).unwrap();
        encoder.push_with(&header(1), |out| out.put_slice(b"typed payload")).unwrap();
        assert_eq!(encoder.envelope_count(), 1);
        encoder.finish(&key()).unwrap();

        let mut copied = BytesMut::new();
        let mut encoder = FrameEncoder::begin(&mut copied, FrameKind::Data, 1, 1, 0).unwrap();
        encoder.push(&header(1), b"typed payload").unwrap();
        encoder.finish(&key()).unwrap();
        assert_eq!(direct, copied);
    }

    #[test]
    fn encoding_reserves_once_and_never_grows_the_buffer_again() {
        let envelopes = (1..=100)
            .map(|seq| WireEnvelope { header: header(seq), payload: Bytes::from(vec![seq as u8; 64]) })
            .collect();
        let frame = data_frame(envelopes);
        let mut out = BytesMut::new();
        out.reserve(encoded_len(&frame));
        let capacity = out.capacity();
        let pointer = out.as_ptr();
        encode_frame(&frame, &key(), &mut out).unwrap();
        assert_eq!(out.len(), encoded_len(&frame));
        assert_eq!((out.capacity(), out.as_ptr()), (capacity, pointer));
    }

    #[test]
    fn envelope_decoding_rejects_counts_that_cannot_fit_before_allocating() {
        let mut out = BytesMut::new();
        encode_frame(&data_frame(Vec::new()), &key(), &mut out).unwrap();
        let frame = out.freeze();
        assert_eq!(decode_envelopes(&frame, 0), Ok(Vec::new()));
        assert_eq!(decode_envelopes(&frame, 1), Err("envelope count cannot fit in the frame"));
        assert_eq!(decode_envelopes(&frame, u32::MAX), Err("envelope count cannot fit in the frame"));
    }

    #[test]
    fn frame_kinds_round_trip_through_their_byte() {
        for kind in [FrameKind::Data, FrameKind::Heartbeat, FrameKind::End, FrameKind::Control] {
            assert_eq!(FrameKind::from_u8(kind.as_u8()), Some(kind));
        }
        assert_eq!(FrameKind::Control.as_u8(), 4);
        assert!(!FrameKind::Control.carries_envelopes());
        assert!(FrameKind::Control.carries_body());
        assert_eq!(FrameKind::from_u8(0), None);
        assert_eq!(FrameKind::from_u8(5), None);
    }

    #[test]
    fn control_frame_bytes_follow_the_documented_layout() {
        let body = br#"{"type":"ready","worker":2}"#;
        let mut out = BytesMut::from(&b"earlier"[..]);
        let appended = encode_control_frame(0x0102, 0x0304, 0x0506, body, &key(), &mut out).unwrap();
        assert_eq!(appended, control_encoded_len(body.len()));
        assert_eq!(appended, 4 + 24 + body.len() + 32);
        let frame = &out[7..];
        assert_eq!(frame.len(), appended);
        assert_eq!(&frame[0..4], &((appended - 4) as u32).to_be_bytes());
        assert_eq!(frame[4], 0xA1);
        assert_eq!(frame[5], 4);
        assert_eq!(&frame[6..8], &[1, 2]);
        assert_eq!(&frame[8..16], &0x0304u64.to_be_bytes());
        assert_eq!(&frame[16..24], &0x0506u64.to_be_bytes());
        assert_eq!(&frame[24..28], &0u32.to_be_bytes());
        assert_eq!(&frame[28..28 + body.len()], body);
        let mut mac = key().mac();
        mac.update(&frame[4..28 + body.len()]);
        assert_eq!(&frame[28 + body.len()..], mac.finalize().into_bytes().as_slice());

        // encode_frame with kind Control writes the same bytes.
        let as_frame = Frame {
            kind: FrameKind::Control,
            sender: 0x0102,
            sequence: 0x0304,
            timestamp_ms: 0x0506,
            envelopes: Vec::new(),
            body: Bytes::from_static(body),
        };
        assert_eq!(encoded_len(&as_frame), appended);
        let mut again = BytesMut::new();
        encode_frame(&as_frame, &key(), &mut again).unwrap();
        assert_eq!(&again[..], frame);
    }

    #[test]
    fn control_frame_encode_errors_leave_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"earlier frame"[..]);
        assert_eq!(
            encode_control_frame(3, 0, 0, b"{}", &key(), &mut out),
            Err(EncodeError::ZeroSequence { sender: 3 })
        );
        let with_envelope = Frame {
            kind: FrameKind::Control,
            body: Bytes::from_static(b"{}"),
            ..data_frame(vec![WireEnvelope { header: header(6), payload: Bytes::new() }])
        };
        assert_eq!(
            encode_frame(&with_envelope, &key(), &mut out),
            Err(EncodeError::EnvelopeInControlFrame { kind: FrameKind::Control, seq: 6 })
        );
        for kind in [FrameKind::Data, FrameKind::Heartbeat, FrameKind::End] {
            let with_body = Frame { kind, body: Bytes::from_static(b"{}"), ..data_frame(Vec::new()) };
            assert_eq!(
                encode_frame(&with_body, &key(), &mut out),
                Err(EncodeError::BodyInNonControlFrame { kind, len: 2 })
            );
        }
        assert_eq!(&out[..], b"earlier frame");
    }

    #[test]
    fn an_empty_control_body_is_a_minimal_frame() {
        let mut out = BytesMut::new();
        assert_eq!(encode_control_frame(1, 1, 0, b"", &key(), &mut out), Ok(4 + MIN_FRAME_BYTES));
    }
}
