//! `read_frame` under arbitrary input: random bytes, and valid frames mutated (with and without a fresh
//! signature), delivered in random pieces. It never panics, never returns a frame that was not sent, and
//! never holds more than one frame's worth of bytes.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use hopline_model::{CorrelationId, EnvelopeHeader, Route, TraceContext};
use hopline_transport::{Frame, FrameKind, FrameReader, Limits, Rejected, WireEnvelope, encode_frame};
use proptest::prelude::*;

const MAX_FRAME_BYTES: u32 = 4096;

fn small_reader() -> FrameReader {
    FrameReader::new(key(), Limits { max_frame_bytes: MAX_FRAME_BYTES, ..Limits::default() }).unwrap()
}

fn arb_envelope() -> impl Strategy<Value = WireEnvelope> {
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

fn arb_frame() -> impl Strategy<Value = Frame> {
    let kind = prop_oneof![Just(FrameKind::Data), Just(FrameKind::Heartbeat), Just(FrameKind::End)];
    (kind, any::<u16>(), 1..u64::MAX, -30_000i64..=30_000, proptest::collection::vec(arb_envelope(), 0..12)).prop_map(
        |(kind, sender, sequence, skew, envelopes)| Frame {
            kind,
            sender,
            sequence,
            timestamp_ms: NOW_MS.checked_add_signed(skew).unwrap(),
            envelopes: if kind == FrameKind::Data { envelopes } else { Vec::new() },
        },
    )
}

/// One change to an encoded frame.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
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

/// Feeds `input` to `reader` in pieces of the given sizes (cycled), reading every frame it can after each
/// piece, and stops at the first rejection that closes the connection. Checks the bounds on the way and
/// returns every outcome.
fn feed(reader: &mut FrameReader, input: &[u8], pieces: &[usize]) -> Vec<Result<Frame, Rejected>> {
    let max = reader.limits().max_frame_bytes as usize;
    let mut buf = BytesMut::new();
    let mut outcomes = Vec::new();
    let mut rest = input;
    let mut piece = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*piece.next().unwrap()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let capacity_before = buf.capacity();
            let outcome = reader.read_frame(&mut buf, NOW_MS);
            assert!(
                buf.capacity() <= capacity_before.max(2 * (4 + max)),
                "read_frame grew the buffer from {capacity_before} to {} bytes",
                buf.capacity()
            );
            match outcome {
                Ok(None) => {
                    assert!(buf.len() < 4 + max, "holding {} bytes while waiting for a frame", buf.len());
                    break;
                }
                Ok(Some(frame)) => outcomes.push(Ok(frame)),
                Err(rejected) => {
                    let closes = rejected.closes_connection();
                    outcomes.push(Err(rejected));
                    if closes {
                        return outcomes;
                    }
                }
            }
        }
    }
    outcomes
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(frame, &key(), &mut out).unwrap();
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_never_accepted(
        input in proptest::collection::vec(any::<u8>(), 0..10_000),
        pieces in proptest::collection::vec(1usize..600, 1..8),
    ) {
        let mut reader = small_reader();
        let outcomes = feed(&mut reader, &input, &pieces);
        prop_assert!(outcomes.iter().all(Result::is_err), "random bytes verified as a frame");
        prop_assert_eq!(reader.reject_counts().total(), outcomes.len() as u64);
    }

    #[test]
    fn arbitrary_bytes_behind_a_plausible_prefix_never_panic(
        declared in 0u32..6000,
        version in prop_oneof![Just(0xA1u8), any::<u8>()],
        kind in 0u8..5,
        body in proptest::collection::vec(any::<u8>(), 0..6000),
        pieces in proptest::collection::vec(1usize..600, 1..8),
    ) {
        let mut input = declared.to_be_bytes().to_vec();
        input.extend([version, kind]);
        input.extend(body);
        let outcomes = feed(&mut small_reader(), &input, &pieces);
        prop_assert!(outcomes.iter().all(Result::is_err));
    }

    #[test]
    fn frames_round_trip_in_any_pieces(
        frames in proptest::collection::vec(arb_frame(), 1..4),
        pieces in proptest::collection::vec(1usize..300, 1..8),
    ) {
        // Distinct sequences, so no frame is a replay of another.
        let frames: Vec<Frame> =
            frames.into_iter().enumerate().map(|(i, f)| Frame { sequence: i as u64 + 1, ..f }).collect();
        let input: Vec<u8> = frames.iter().flat_map(encoded).collect();
        let outcomes = feed(&mut small_reader(), &input, &pieces);
        let read: Vec<Frame> = outcomes.into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(read, frames);
    }

    #[test]
    fn mutated_frames_are_rejected_or_read_unchanged(
        frame in arb_frame(),
        mutations in proptest::collection::vec(arb_mutation(), 1..4),
        pieces in proptest::collection::vec(1usize..300, 1..8),
    ) {
        let mut input = encoded(&frame);
        for mutation in &mutations {
            apply(&mut input, mutation);
        }
        for read in feed(&mut small_reader(), &input, &pieces).into_iter().flatten() {
            prop_assert_eq!(&read, &frame, "a mutated frame was accepted as a different frame");
        }
    }

    #[test]
    fn mutated_and_resigned_frames_never_panic_and_decode_canonically(
        frame in arb_frame(),
        mutations in proptest::collection::vec(arb_mutation(), 1..4),
        pieces in proptest::collection::vec(1usize..300, 1..8),
    ) {
        // A peer holding the key but sending garbage: the body parser sees arbitrary bytes.
        let mut input = encoded(&frame);
        for mutation in &mutations {
            apply(&mut input, mutation);
        }
        if input.len() >= 4 + 56 {
            fix_length(&mut input);
            resign(&mut input, &KEY);
        }
        // Whatever was accepted encodes back to exactly the bytes that were sent.
        for read in feed(&mut small_reader(), &input, &pieces).into_iter().flatten() {
            prop_assert_eq!(encoded(&read), input.clone());
        }
    }
}
