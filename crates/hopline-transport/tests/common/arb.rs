//! Proptest strategies shared by the hostile-input and allocation tests: arbitrary envelopes and frames of
//! every kind, and mutations of encoded frames.

use bytes::{Bytes, BytesMut};
use hopline_model::{CorrelationId, EnvelopeHeader, Route, TraceContext};
use hopline_transport::{Frame, FrameKind, WireEnvelope, encode_frame};
use proptest::prelude::*;

use super::{NOW_MS, key};

pub fn arb_envelope() -> impl Strategy<Value = WireEnvelope> {
    let trace = proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>()))
        .prop_map(|t| t.map(|(trace_id, span_id, flags)| TraceContext { trace_id, span_id, flags }));
    let route = (any::<u16>(), proptest::option::of(0..u16::MAX), any::<u16>())
        .prop_map(|(process_group, handoff_from, route_hop)| Route { process_group, handoff_from, route_hop });
    (any::<u64>(), any::<u128>(), trace, route, proptest::collection::vec(any::<u8>(), 0..48)).prop_map(
        |(seq, correlation, trace, route, payload)| WireEnvelope {
            header: EnvelopeHeader { seq, correlation_id: CorrelationId(correlation), trace, route },
            payload: Bytes::from(payload),
        },
    )
}

/// A frame of any kind, fresh at [`NOW_MS`]: envelopes only in `Data`, a body (arbitrary bytes, sometimes
/// empty) only in `Control`.
pub fn arb_frame() -> impl Strategy<Value = Frame> {
    let kind =
        prop_oneof![Just(FrameKind::Data), Just(FrameKind::Heartbeat), Just(FrameKind::End), Just(FrameKind::Control)];
    (
        kind,
        any::<u16>(),
        1..u64::MAX,
        -30_000i64..=30_000,
        proptest::collection::vec(arb_envelope(), 0..12),
        proptest::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(kind, sender, sequence, skew, envelopes, body)| Frame {
            kind,
            sender,
            sequence,
            timestamp_ms: NOW_MS.checked_add_signed(skew).unwrap(),
            envelopes: if kind == FrameKind::Data { envelopes } else { Vec::new() },
            body: if kind == FrameKind::Control { Bytes::from(body) } else { Bytes::new() },
        })
}

/// One change to an encoded frame.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

pub fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

pub fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Flip { at, mask } => bytes[at % len] ^= mask,
        Mutation::Set { at, value } => bytes[at % len] = *value,
        Mutation::Truncate { at } => bytes.truncate(at % len),
        Mutation::Insert { at, bytes: inserted } => {
            bytes.splice(at % len..at % len, inserted.iter().copied());
        }
    }
}

pub fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(frame, &key(), &mut out).unwrap();
    out.to_vec()
}
