//! Frames and keys shared by the integration tests, and a way to craft frames the encoder refuses to make.

#![allow(dead_code)]

pub mod arb;

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use hopline_model::{CorrelationId, EnvelopeHeader, Route, TraceContext};
use hopline_transport::{Frame, FrameKind, FrameReader, Limits, TransportKey, WireEnvelope, encode_frame};
use sha2::Sha256;

pub const KEY: [u8; 32] = [
    0xc4, 0x1e, 0x77, 0x09, 0xa2, 0x5b, 0xd3, 0x6f, 0x88, 0x14, 0xe9, 0x30, 0x5a, 0xbf, 0x02, 0x6d, 0x91, 0x47, 0xcc,
    0x28, 0xf5, 0x63, 0x1a, 0xb0, 0x7d, 0x3e, 0x84, 0xd9, 0x56, 0x0b, 0xe2, 0x99,
];

/// The receiver's clock in every test.
pub const NOW_MS: u64 = 1_760_000_000_000;

pub fn key() -> TransportKey {
    TransportKey::from_bytes(KEY)
}

pub fn reader() -> FrameReader {
    FrameReader::new(key(), Limits::default()).unwrap()
}

pub fn trace(i: u64) -> TraceContext {
    let mut trace_id = [0x4b; 16];
    trace_id[..8].copy_from_slice(&i.to_be_bytes());
    TraceContext { trace_id, span_id: i.wrapping_add(1).to_le_bytes(), flags: (i % 2) as u8 }
}

pub fn envelope(seq: u64, traced: bool, payload: &[u8]) -> WireEnvelope {
    WireEnvelope {
        header: EnvelopeHeader {
            seq,
            correlation_id: CorrelationId(0x0af7651916cd43dd8448eb211c80319c ^ u128::from(seq)),
            trace: traced.then(|| trace(seq)),
            route: Route {
                process_group: 2,
                handoff_from: if seq % 3 == 0 { None } else { Some(1) },
                route_hop: (seq % 5) as u16,
            },
        },
        payload: Bytes::copy_from_slice(payload),
    }
}

pub fn data_frame(sender: u16, sequence: u64, envelopes: Vec<WireEnvelope>) -> Frame {
    Frame { kind: FrameKind::Data, sender, sequence, timestamp_ms: NOW_MS, envelopes, body: Bytes::new() }
}

pub fn control_frame(sender: u16, sequence: u64, body: &[u8]) -> Frame {
    Frame {
        kind: FrameKind::Control,
        sender,
        sequence,
        timestamp_ms: NOW_MS,
        envelopes: Vec::new(),
        body: Bytes::copy_from_slice(body),
    }
}

pub fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(frame, &key(), &mut out).unwrap();
    out
}

/// Recomputes the tag of a whole encoded frame (as its length prefix declares it) under `key`, so a test
/// can craft a frame with a bad field that still verifies.
pub fn resign(frame: &mut [u8], key: &[u8; 32]) {
    let end = frame.len() - 32;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(&frame[4..end]);
    frame[end..].copy_from_slice(&mac.finalize().into_bytes());
}

/// Sets the length prefix to the buffer's actual length.
pub fn fix_length(frame: &mut [u8]) {
    let declared = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&declared.to_be_bytes());
}

/// A frame of `count` envelopes with trace context on every other one and payloads of varied lengths.
pub fn many_envelopes(count: u64) -> Vec<WireEnvelope> {
    (1..=count).map(|seq| envelope(seq, seq % 2 == 0, &vec![seq as u8; (seq % 97) as usize])).collect()
}
