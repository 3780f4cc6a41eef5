//! `read_frame` under arbitrary input: random bytes, and valid frames of every kind (`Control` included)
//! mutated (with and without a fresh signature), delivered in random pieces, then the connection closed.
//! It never panics, never returns a frame that was not sent, never holds more than one frame's worth of
//! bytes, and counts a frame cut short by the close as truncated.

mod common;

use bytes::BytesMut;
use common::arb::*;
use common::*;
use hopline_transport::{Frame, FrameReader, Limits, Rejected};
use proptest::prelude::*;

const MAX_FRAME_BYTES: u32 = 4096;

fn small_reader() -> FrameReader {
    FrameReader::new(key(), Limits { max_frame_bytes: MAX_FRAME_BYTES, ..Limits::default() }).unwrap()
}

/// Feeds `input` to `reader` in pieces of the given sizes (cycled), reading every frame it can after each
/// piece, and stops at the first rejection that closes the connection; at the end of the input the
/// connection closes ([`FrameReader::connection_closed`]). Checks the bounds on the way and returns every
/// outcome.
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
    let left = buf.len();
    match reader.connection_closed(&buf) {
        None => assert_eq!(left, 0, "bytes left unreported at close"),
        Some(truncated) => {
            assert!(matches!(truncated, Rejected::Truncated { have, .. } if have == left && left > 0));
            outcomes.push(Err(truncated));
        }
    }
    outcomes
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
        kind in 0u8..6,
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

    #[test]
    fn control_bodies_up_to_the_limit_round_trip_in_any_pieces(
        body in proptest::collection::vec(any::<u8>(), 0..=(MAX_FRAME_BYTES as usize - 56)),
        sender in any::<u16>(),
        pieces in proptest::collection::vec(1usize..600, 1..8),
    ) {
        let frame = control_frame(sender, 1, &body);
        let outcomes = feed(&mut small_reader(), &encoded(&frame), &pieces);
        prop_assert_eq!(outcomes, vec![Ok(frame)]);
    }

    #[test]
    fn signed_control_frames_with_an_envelope_count_are_malformed(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        count in 1u32..=u32::MAX,
    ) {
        let mut input = encoded(&control_frame(1, 1, &body));
        input[24..28].copy_from_slice(&count.to_be_bytes());
        resign(&mut input, &KEY);
        let mut reader = small_reader();
        let outcomes = feed(&mut reader, &input, &[input.len()]);
        prop_assert_eq!(outcomes, vec![Err(Rejected::Malformed("only data frames carry envelopes"))]);
    }
}
