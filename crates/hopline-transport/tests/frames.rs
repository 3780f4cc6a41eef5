//! Frames through the public API: round trips (control frames included), delivery in pieces, every
//! rejection reason with a crafted frame (a connection closed mid-frame included), and the order in which
//! the checks apply.

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use hopline_transport::{
    ConnectionPolicy, ConnectionVerdict, Frame, FrameKind, FrameReader, Limits, Rejected, TransportKey,
    control_encoded_len, encode_control_frame, encode_frame,
};

/// Offsets into an encoded frame (see the layout table in `frame.rs`).
const VERSION_AT: usize = 4;
const KIND_AT: usize = 5;
const TIMESTAMP_AT: usize = 16;
const COUNT_AT: usize = 24;
const FIRST_ENVELOPE_AT: usize = 28;
/// The trace presence byte of the first envelope.
const TRACE_PRESENCE_AT: usize = FIRST_ENVELOPE_AT + 30;

fn read_one(frame: &Frame) -> Frame {
    let mut buf = encode(frame);
    let decoded = reader().read_frame(&mut buf, NOW_MS).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "the frame was consumed whole");
    decoded
}

fn read_bytes(reader: &mut FrameReader, bytes: &[u8]) -> Result<Option<Frame>, Rejected> {
    reader.read_frame(&mut BytesMut::from(bytes), NOW_MS)
}

// Round trips.

#[test]
fn data_frame_with_no_envelopes_round_trips() {
    let frame = data_frame(1, 1, Vec::new());
    assert_eq!(read_one(&frame), frame);
}

#[test]
fn one_envelope_round_trips_with_and_without_trace_context() {
    for traced in [false, true] {
        let frame = data_frame(1, 1, vec![envelope(42, traced, b"{\"amount\":1234}")]);
        let decoded = read_one(&frame);
        assert_eq!(decoded, frame);
        assert_eq!(decoded.envelopes[0].header.trace.is_some(), traced);
    }
}

#[test]
fn many_envelopes_round_trip_with_mixed_trace_contexts_and_empty_payloads() {
    let frame = data_frame(7, 99, many_envelopes(1000));
    assert!(frame.envelopes.iter().any(|e| e.payload.is_empty()));
    assert_eq!(read_one(&frame), frame);
}

#[test]
fn heartbeat_and_end_frames_round_trip() {
    for kind in [FrameKind::Heartbeat, FrameKind::End] {
        let frame = Frame { kind, ..data_frame(3, 1, Vec::new()) };
        assert_eq!(read_one(&frame), frame);
    }
}

#[test]
fn route_without_a_hop_and_extreme_header_values_round_trip() {
    let mut extreme = envelope(u64::MAX, true, &[0xFF; 3]);
    extreme.header.correlation_id.0 = u128::MAX;
    extreme.header.route.handoff_from = Some(u16::MAX - 1);
    extreme.header.route.route_hop = u16::MAX;
    let mut no_hop = envelope(1, false, b"");
    no_hop.header.route.handoff_from = None;
    let frame = Frame { sender: u16::MAX, sequence: u64::MAX, ..data_frame(0, 1, vec![extreme, no_hop]) };
    assert_eq!(read_one(&frame), frame);
}

#[test]
fn payloads_are_slices_of_the_received_frame_not_copies() {
    let frame = data_frame(1, 1, many_envelopes(10));
    let buf = encode(&frame);
    let range = buf.as_ptr_range();
    let mut buf = buf;
    let decoded = reader().read_frame(&mut buf, NOW_MS).unwrap().unwrap();
    for envelope in decoded.envelopes.iter().filter(|e| !e.payload.is_empty()) {
        assert!(range.contains(&envelope.payload.as_ptr()), "payload copied out of the frame");
    }
}

// Control frames.

const READY: &[u8] = br#"{"type":"ready","worker":2,"pid":4242}"#;

#[test]
fn control_frames_round_trip_with_their_body() {
    for body in [READY, b"".as_slice(), &[0u8, 0xFF, 0x7B][..], &vec![b'x'; 100_000][..]] {
        let frame = control_frame(2, 1, body);
        let decoded = read_one(&frame);
        assert_eq!(decoded, frame);
        assert_eq!(decoded.kind, FrameKind::Control);
        assert_eq!(&decoded.body[..], body);
        assert!(decoded.envelopes.is_empty());
    }
}

#[test]
fn encode_control_frame_appends_what_encode_frame_would() {
    let mut out = BytesMut::from(&b"earlier"[..]);
    let appended = encode_control_frame(2, 7, NOW_MS, READY, &key(), &mut out).unwrap();
    assert_eq!(appended, control_encoded_len(READY.len()));
    assert_eq!(out.len(), 7 + appended);
    assert_eq!(&out[7..], &encode(&control_frame(2, 7, READY))[..]);
    assert_eq!(encode_control_frame(2, 0, NOW_MS, READY, &key(), &mut out).ok(), None, "sequence 0");
    assert_eq!(out.len(), 7 + appended, "a refused frame leaves the buffer as it was");
}

#[test]
fn control_frame_delivered_one_byte_at_a_time_is_read_once_whole() {
    let frame = control_frame(2, 1, READY);
    let encoded = encode(&frame);
    let mut reader = reader();
    let mut buf = BytesMut::new();
    for (i, byte) in encoded.iter().enumerate() {
        assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(None), "after {i} bytes");
        assert_eq!(buf.len(), i);
        buf.put_u8(*byte);
    }
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(Some(frame)));
    assert!(buf.is_empty());
}

#[test]
fn control_frames_between_data_frames_are_read_in_order() {
    let frames = [
        control_frame(2, 1, READY),
        data_frame(2, 2, many_envelopes(3)),
        control_frame(2, 3, br#"{"type":"heartbeat"}"#),
        Frame { kind: FrameKind::End, ..data_frame(2, 4, Vec::new()) },
        control_frame(2, 5, br#"{"type":"stop"}"#),
    ];
    let mut buf = BytesMut::new();
    for frame in &frames {
        buf.extend_from_slice(&encode(frame));
    }
    let mut reader = reader();
    for frame in frames {
        assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(Some(frame)));
    }
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(None));
}

#[test]
fn control_body_is_a_slice_of_the_received_frame_not_a_copy() {
    let buf = encode(&control_frame(2, 1, READY));
    let range = buf.as_ptr_range();
    let mut buf = buf;
    let decoded = reader().read_frame(&mut buf, NOW_MS).unwrap().unwrap();
    assert!(range.contains(&decoded.body.as_ptr()), "body copied out of the frame");
    assert_eq!(decoded.body.as_ptr(), range.start.wrapping_add(FIRST_ENVELOPE_AT));
}

#[test]
fn every_flipped_bit_of_a_control_body_is_a_bad_signature() {
    let encoded = encode(&control_frame(2, 1, READY));
    for at in FIRST_ENVELOPE_AT..FIRST_ENVELOPE_AT + READY.len() {
        for bit in [0, 3, 7] {
            let mut tampered = BytesMut::from(&encoded[..]);
            tampered[at] ^= 1 << bit;
            let mut reader = reader();
            assert_eq!(reader.read_frame(&mut tampered, NOW_MS), Err(Rejected::BadSignature), "byte {at} bit {bit}");
            assert!(tampered.is_empty(), "consumed whole");
        }
    }
}

#[test]
fn control_body_cut_or_extended_without_the_key_is_rejected() {
    let encoded = encode(&control_frame(2, 1, READY));
    let end = encoded.len() - 32;
    // One byte less of body, length fixed up: the tag no longer covers what is there.
    let mut shorter = encoded.to_vec();
    shorter.remove(end - 1);
    fix_length(&mut shorter);
    assert_eq!(read_bytes(&mut reader(), &shorter), Err(Rejected::BadSignature));
    let mut longer = encoded.to_vec();
    longer.insert(end, b' ');
    fix_length(&mut longer);
    assert_eq!(read_bytes(&mut reader(), &longer), Err(Rejected::BadSignature));
}

#[test]
fn signed_control_frame_with_an_envelope_count_is_malformed_and_does_not_burn_its_sequence() {
    for count in [1u32, 2, u32::MAX] {
        let mut crafted = encode(&control_frame(2, 9, READY)).to_vec();
        crafted[COUNT_AT..COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        resign(&mut crafted, &KEY);
        let mut reader = reader();
        assert_eq!(read_bytes(&mut reader, &crafted), Err(Rejected::Malformed("only data frames carry envelopes")));
        assert_eq!(reader.reject_counts().malformed, 1);
        assert_eq!(ConnectionPolicy::default().on_rejected(&Rejected::Malformed("")), ConnectionVerdict::Close);
        let genuine = control_frame(2, 9, READY);
        assert_eq!(read_bytes(&mut reader, &encode(&genuine)), Ok(Some(genuine)));
    }
}

#[test]
fn heartbeat_and_end_frames_with_bytes_before_the_tag_stay_malformed() {
    for kind in [FrameKind::Heartbeat, FrameKind::End] {
        let mut crafted = encode(&Frame { kind, ..data_frame(2, 1, Vec::new()) }).to_vec();
        let end = crafted.len() - 32;
        crafted.splice(end..end, READY.iter().copied());
        fix_length(&mut crafted);
        resign(&mut crafted, &KEY);
        assert_eq!(
            read_bytes(&mut reader(), &crafted),
            Err(Rejected::Malformed("trailing bytes after the last envelope")),
            "{kind:?}"
        );
    }
}

#[test]
fn control_frames_pass_the_same_freshness_and_replay_checks() {
    let mut reader = reader();
    let stale = Frame { timestamp_ms: NOW_MS - 60_000, ..control_frame(2, 1, READY) };
    assert_eq!(
        read_bytes(&mut reader, &encode(&stale)),
        Err(Rejected::Expired { timestamp_ms: NOW_MS - 60_000, now_ms: NOW_MS })
    );
    let ready = encode(&control_frame(2, 1, READY));
    assert!(read_bytes(&mut reader, &ready).unwrap().is_some());
    assert_eq!(read_bytes(&mut reader, &ready), Err(Rejected::Replayed { sender: 2, sequence: 1 }));
    // Control and data frames share the sender's sequence numbering.
    assert_eq!(
        read_bytes(&mut reader, &encode(&data_frame(2, 1, Vec::new()))),
        Err(Rejected::Replayed { sender: 2, sequence: 1 })
    );
    let mut stranger = BytesMut::new();
    encode_control_frame(2, 2, NOW_MS, READY, &TransportKey::from_bytes([9; 32]), &mut stranger).unwrap();
    assert_eq!(reader.read_frame(&mut stranger, NOW_MS), Err(Rejected::BadSignature));
}

#[test]
fn oversized_control_frame_is_rejected_from_its_prefix() {
    let limits = Limits { max_frame_bytes: 1024, ..Limits::default() };
    let mut reader = FrameReader::new(key(), limits).unwrap();
    let body = vec![b'x'; 1024 - 56 + 1];
    let encoded = encode(&control_frame(2, 1, &body));
    let mut prefix = BytesMut::from(&encoded[..4]);
    assert_eq!(reader.read_frame(&mut prefix, NOW_MS), Err(Rejected::Oversized { declared: 1025, max: 1024 }));
    let at_limit = control_frame(2, 1, &body[1..]);
    assert_eq!(read_bytes(&mut reader, &encode(&at_limit)), Ok(Some(at_limit)));
}

// A connection closed mid-frame.

#[test]
fn a_connection_closed_mid_frame_is_truncated_wherever_the_cut() {
    let encoded = encode(&control_frame(2, 1, READY));
    let declared = (encoded.len() - 4) as u32;
    for cut in [1, 3, 4, 5, 27, 28, encoded.len() - 1] {
        let mut reader = reader();
        let mut policy = ConnectionPolicy::default();
        let mut buf = BytesMut::from(&encoded[..cut]);
        assert_eq!(policy.observe(&reader.read_frame(&mut buf, NOW_MS)), ConnectionVerdict::Continue);
        let truncated = reader.connection_closed(&buf).expect("a partial frame");
        let expected = if cut < 4 { 0 } else { declared };
        assert_eq!(truncated, Rejected::Truncated { have: cut, declared: expected }, "cut at {cut}");
        assert_eq!(policy.on_rejected(&truncated), ConnectionVerdict::Close);
        assert_eq!(reader.reject_counts().truncated, 1);
        assert_eq!(reader.reject_counts().total(), 1);
    }
}

#[test]
fn a_connection_closed_between_frames_is_not_truncated() {
    let mut buf = encode(&control_frame(2, 1, READY));
    buf.extend_from_slice(&encode(&data_frame(2, 2, many_envelopes(2))));
    let mut reader = reader();
    while reader.read_frame(&mut buf, NOW_MS).unwrap().is_some() {}
    assert_eq!(reader.connection_closed(&buf), None);
    assert_eq!(reader.reject_counts().total(), 0);
}

// Delivery in pieces.

#[test]
fn split_delivery_one_byte_at_a_time_gives_the_same_frame() {
    let frame = data_frame(1, 1, many_envelopes(20));
    let encoded = encode(&frame);
    let mut reader = reader();
    let mut buf = BytesMut::new();
    for (i, byte) in encoded.iter().enumerate() {
        assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(None), "after {i} bytes");
        assert_eq!(buf.len(), i, "nothing consumed before the frame is whole");
        buf.put_u8(*byte);
    }
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(Some(frame)));
    assert!(buf.is_empty());
}

#[test]
fn bytes_wanted_counts_down_to_the_end_of_the_frame() {
    let encoded = encode(&data_frame(1, 1, many_envelopes(3)));
    let reader = reader();
    let mut buf = BytesMut::new();
    assert_eq!(reader.bytes_wanted(&buf), 4);
    buf.put_slice(&encoded[..2]);
    assert_eq!(reader.bytes_wanted(&buf), 2);
    buf.put_slice(&encoded[2..10]);
    assert_eq!(reader.bytes_wanted(&buf), encoded.len() - 10);
    buf.put_slice(&encoded[10..]);
    assert_eq!(reader.bytes_wanted(&buf), 0);
}

#[test]
fn two_frames_in_one_buffer_are_read_in_order() {
    let first = data_frame(1, 1, many_envelopes(3));
    let second = Frame { kind: FrameKind::End, ..data_frame(1, 2, Vec::new()) };
    let mut buf = encode(&first);
    buf.extend_from_slice(&encode(&second));
    buf.extend_from_slice(&encode(&data_frame(1, 3, Vec::new()))[..5]);
    let mut reader = reader();
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(Some(first)));
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(Some(second)));
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(None));
    assert_eq!(buf.len(), 5, "the start of the third frame stays in the buffer");
}

// Each rejection reason.

#[test]
fn forged_tag_is_rejected_and_counted() {
    let mut buf = encode(&data_frame(1, 1, many_envelopes(2)));
    let last = buf.len() - 1;
    buf[last] ^= 0x01;
    let mut reader = reader();
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Err(Rejected::BadSignature));
    assert_eq!(reader.reject_counts().bad_signature, 1);
    assert_eq!(reader.reject_counts().total(), 1);
    assert!(buf.is_empty(), "a frame with a bad signature is consumed whole");
}

#[test]
fn frame_signed_with_another_key_is_rejected() {
    let frame = data_frame(1, 1, many_envelopes(2));
    let mut buf = BytesMut::new();
    encode_frame(&frame, &TransportKey::from_bytes([9; 32]), &mut buf).unwrap();
    assert_eq!(reader().read_frame(&mut buf, NOW_MS), Err(Rejected::BadSignature));
}

#[test]
fn flipped_payload_bit_is_rejected_as_bad_signature() {
    let encoded = encode(&data_frame(1, 1, vec![envelope(1, false, b"payload")]));
    let payload_at = TRACE_PRESENCE_AT + 1 + 4;
    for bit in 0..8 {
        let mut tampered = BytesMut::from(&encoded[..]);
        tampered[payload_at + 3] ^= 1 << bit;
        assert_eq!(read_bytes(&mut reader(), &tampered), Err(Rejected::BadSignature), "bit {bit}");
    }
}

#[test]
fn every_flipped_bit_after_the_length_prefix_is_rejected() {
    let encoded = encode(&data_frame(1, 1, vec![envelope(1, true, b"abc")]));
    for at in 4..encoded.len() {
        let mut tampered = BytesMut::from(&encoded[..]);
        tampered[at] ^= 0x10;
        let outcome = read_bytes(&mut reader(), &tampered);
        assert!(outcome.is_err(), "flip at byte {at} was accepted");
    }
}

#[test]
fn truncated_frame_waits_for_the_rest_and_is_never_returned() {
    let encoded = encode(&data_frame(1, 1, many_envelopes(4)));
    let mut reader = reader();
    for cut in [0, 3, 4, 5, 27, 28, encoded.len() - 1] {
        let mut buf = BytesMut::from(&encoded[..cut]);
        assert_eq!(reader.read_frame(&mut buf, NOW_MS), Ok(None), "cut at {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn frame_cut_short_with_a_length_that_hides_the_cut_is_rejected() {
    let encoded = encode(&data_frame(1, 1, many_envelopes(4)));
    // The sender's length no longer matches: the tag is read from the wrong place.
    let mut cut = encoded[..encoded.len() - 10].to_vec();
    fix_length(&mut cut);
    assert_eq!(read_bytes(&mut reader(), &cut), Err(Rejected::BadSignature));
    // A holder of the key signing a body that does not hold its envelopes is malformed.
    resign(&mut cut, &KEY);
    assert!(matches!(read_bytes(&mut reader(), &cut), Err(Rejected::Malformed(_))));
}

#[test]
fn oversized_declared_length_is_rejected_before_any_body_arrives() {
    let limits = Limits { max_frame_bytes: 1024, ..Limits::default() };
    let mut reader = FrameReader::new(key(), limits).unwrap();
    let mut buf = BytesMut::from(&1025u32.to_be_bytes()[..]);
    let capacity = buf.capacity();
    assert_eq!(reader.read_frame(&mut buf, NOW_MS), Err(Rejected::Oversized { declared: 1025, max: 1024 }));
    assert_eq!(buf.capacity(), capacity, "no room reserved for the body");
    assert_eq!(reader.bytes_wanted(&buf), 0, "no more bytes wanted");
    assert_eq!(reader.reject_counts().oversized, 1);

    let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
    assert_eq!(reader.read_frame(&mut huge, NOW_MS), Err(Rejected::Oversized { declared: u32::MAX, max: 1024 }));
    assert!(huge.capacity() < 1024);

    // Exactly at the limit is allowed.
    let mut at_limit = BytesMut::from(&1024u32.to_be_bytes()[..]);
    assert_eq!(reader.read_frame(&mut at_limit, NOW_MS), Ok(None));
}

#[test]
fn declared_length_shorter_than_a_header_and_tag_is_malformed() {
    for declared in [0u32, 1, 55] {
        let outcome = read_bytes(&mut reader(), &declared.to_be_bytes());
        assert_eq!(outcome, Err(Rejected::Malformed("declared length is shorter than a frame header and tag")));
    }
}

#[test]
fn expired_frames_are_rejected_in_both_directions() {
    let skew = Limits::default().max_clock_skew_ms;
    for (timestamp_ms, accepted) in [
        (NOW_MS - skew - 1, false),
        (NOW_MS + skew + 1, false),
        (NOW_MS - skew, true),
        (NOW_MS + skew, true),
        (0, false),
        (u64::MAX, false),
    ] {
        let frame = Frame { timestamp_ms, ..data_frame(1, 1, many_envelopes(1)) };
        let mut buf = encode(&frame);
        let outcome = reader().read_frame(&mut buf, NOW_MS);
        if accepted {
            assert_eq!(outcome, Ok(Some(frame)), "timestamp {timestamp_ms}");
        } else {
            assert_eq!(outcome, Err(Rejected::Expired { timestamp_ms, now_ms: NOW_MS }));
            assert!(buf.is_empty(), "an expired frame is consumed whole");
        }
    }
}

#[test]
fn replayed_exact_frame_is_rejected_and_counted() {
    let encoded = encode(&data_frame(4, 17, many_envelopes(2)));
    let mut reader = reader();
    assert!(read_bytes(&mut reader, &encoded).unwrap().is_some());
    assert_eq!(read_bytes(&mut reader, &encoded), Err(Rejected::Replayed { sender: 4, sequence: 17 }));
    assert_eq!(reader.reject_counts().replayed, 1);
}

#[test]
fn sequence_older_than_the_window_is_rejected_as_replayed() {
    let limits = Limits { replay_window: 16, ..Limits::default() };
    let mut reader = FrameReader::new(key(), limits).unwrap();
    assert!(read_bytes(&mut reader, &encode(&data_frame(1, 100, vec![]))).unwrap().is_some());
    // Never seen, but 16 below the highest: outside the window.
    assert_eq!(
        read_bytes(&mut reader, &encode(&data_frame(1, 84, vec![]))),
        Err(Rejected::Replayed { sender: 1, sequence: 84 })
    );
    assert!(read_bytes(&mut reader, &encode(&data_frame(1, 85, vec![]))).unwrap().is_some());
}

#[test]
fn out_of_order_sequences_inside_the_window_are_accepted_once_each() {
    let mut reader = reader();
    let order = [3u64, 1, 2, 7, 5, 4, 6, 1000, 999, 8];
    for sequence in order {
        let outcome = read_bytes(&mut reader, &encode(&data_frame(1, sequence, vec![])));
        assert_eq!(outcome.unwrap().unwrap().sequence, sequence);
    }
    for sequence in order {
        let outcome = read_bytes(&mut reader, &encode(&data_frame(1, sequence, vec![])));
        assert_eq!(outcome, Err(Rejected::Replayed { sender: 1, sequence }));
    }
    assert_eq!(reader.reject_counts().replayed, order.len() as u64);
}

#[test]
fn replay_windows_are_kept_per_sender() {
    let mut reader = reader();
    for sender in [1, 2, 3] {
        assert!(read_bytes(&mut reader, &encode(&data_frame(sender, 1, vec![]))).unwrap().is_some());
    }
    assert!(read_bytes(&mut reader, &encode(&data_frame(2, 1, vec![]))).is_err());
}

#[test]
fn sequence_zero_is_never_accepted() {
    let mut crafted = encode(&data_frame(1, 1, vec![]));
    crafted[8..16].copy_from_slice(&0u64.to_be_bytes());
    resign(&mut crafted, &KEY);
    assert_eq!(read_bytes(&mut reader(), &crafted), Err(Rejected::Replayed { sender: 1, sequence: 0 }));
}

#[test]
fn unknown_kind_is_rejected_as_soon_as_the_kind_byte_arrives() {
    let mut crafted = encode(&data_frame(1, 1, vec![]));
    crafted[KIND_AT] = 9;
    resign(&mut crafted, &KEY);
    assert_eq!(read_bytes(&mut reader(), &crafted[..KIND_AT + 1]), Err(Rejected::UnknownKind(9)));
    assert_eq!(read_bytes(&mut reader(), &crafted), Err(Rejected::UnknownKind(9)));
    crafted[KIND_AT] = 0;
    assert_eq!(read_bytes(&mut reader(), &crafted), Err(Rejected::UnknownKind(0)));
}

#[test]
fn wrong_version_byte_is_rejected() {
    let mut crafted = encode(&data_frame(1, 1, vec![]));
    crafted[VERSION_AT] = 0xA2;
    resign(&mut crafted, &KEY);
    let mut reader = reader();
    assert_eq!(read_bytes(&mut reader, &crafted[..VERSION_AT + 1]), Err(Rejected::BadVersion(0xA2)));
    assert_eq!(reader.reject_counts().bad_version, 1);
}

/// A change to an encoded frame, made before it is re-signed.
type Craft = fn(&mut Vec<u8>);

#[test]
fn malformed_bodies_are_rejected_even_when_signed() {
    let one = encode(&data_frame(1, 1, vec![envelope(1, false, b"abcd")]));
    let cases: [(&str, Craft); 5] = [
        ("trace presence byte is neither 0 nor 1", |f| f[TRACE_PRESENCE_AT] = 2),
        ("trailing bytes after the last envelope", |f| {
            f.splice(f.len() - 32..f.len() - 32, [0u8; 3]);
        }),
        ("envelope count cannot fit in the frame", |f| {
            f[COUNT_AT..COUNT_AT + 4].copy_from_slice(&u32::MAX.to_be_bytes())
        }),
        ("payload length overruns the frame", |f| {
            f[TRACE_PRESENCE_AT + 1..TRACE_PRESENCE_AT + 5].copy_from_slice(&5u32.to_be_bytes())
        }),
        ("only data frames carry envelopes", |f| f[KIND_AT] = FrameKind::End.as_u8()),
    ];
    for (reason, craft) in cases {
        let mut crafted = one.to_vec();
        craft(&mut crafted);
        fix_length(&mut crafted);
        resign(&mut crafted, &KEY);
        let mut reader = reader();
        assert_eq!(read_bytes(&mut reader, &crafted), Err(Rejected::Malformed(reason)));
        assert_eq!(reader.reject_counts().malformed, 1);
    }
}

#[test]
fn a_second_envelope_overrunning_the_frame_is_malformed() {
    // Two envelopes declared, room for one and a half: the count fits the 35-byte minimum, the records do not.
    let mut crafted = encode(&data_frame(1, 1, vec![envelope(1, true, &[7; 40])])).to_vec();
    crafted[COUNT_AT..COUNT_AT + 4].copy_from_slice(&2u32.to_be_bytes());
    resign(&mut crafted, &KEY);
    assert_eq!(read_bytes(&mut reader(), &crafted), Err(Rejected::Malformed("envelope overruns the frame")));
}

// The order of the checks.

#[test]
fn oversized_and_unsigned_frame_is_oversized() {
    let limits = Limits { max_frame_bytes: 64, ..Limits::default() };
    let mut buf = encode(&data_frame(1, 1, many_envelopes(5)));
    let last = buf.len() - 1;
    buf[last] ^= 0xFF;
    buf[KIND_AT] = 77;
    let declared = (buf.len() - 4) as u32;
    let outcome = FrameReader::new(key(), limits).unwrap().read_frame(&mut buf, 0);
    assert_eq!(outcome, Err(Rejected::Oversized { declared, max: 64 }));
}

#[test]
fn unknown_kind_comes_before_expiry_and_signature() {
    let mut buf = encode(&Frame { timestamp_ms: 0, ..data_frame(1, 1, vec![]) });
    buf[KIND_AT] = 200;
    assert_eq!(reader().read_frame(&mut buf, NOW_MS), Err(Rejected::UnknownKind(200)));
}

#[test]
fn expired_frame_with_a_bad_signature_is_expired() {
    let mut buf = encode(&data_frame(1, 1, vec![]));
    buf[TIMESTAMP_AT..TIMESTAMP_AT + 8].copy_from_slice(&(NOW_MS - 3_600_000).to_be_bytes());
    assert_eq!(
        reader().read_frame(&mut buf, NOW_MS),
        Err(Rejected::Expired { timestamp_ms: NOW_MS - 3_600_000, now_ms: NOW_MS })
    );
}

#[test]
fn forged_frame_with_a_fresh_sequence_does_not_burn_it() {
    let genuine = data_frame(1, 5, many_envelopes(2));
    let mut forged = encode(&genuine);
    forged[FIRST_ENVELOPE_AT] ^= 0x80;
    let mut reader = reader();
    assert_eq!(reader.read_frame(&mut forged, NOW_MS), Err(Rejected::BadSignature));
    assert_eq!(read_bytes(&mut reader, &encode(&genuine)), Ok(Some(genuine)));
}

#[test]
fn replay_with_a_bad_signature_is_a_bad_signature() {
    let frame = data_frame(1, 5, vec![]);
    let mut reader = reader();
    assert!(read_bytes(&mut reader, &encode(&frame)).unwrap().is_some());
    let mut forged = encode(&frame);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(reader.read_frame(&mut forged, NOW_MS), Err(Rejected::BadSignature));
}

#[test]
fn signed_malformed_frame_does_not_burn_its_sequence() {
    let genuine = data_frame(1, 8, vec![envelope(1, false, b"x")]);
    let mut crafted = encode(&genuine).to_vec();
    crafted[TRACE_PRESENCE_AT] = 7;
    resign(&mut crafted, &KEY);
    let mut reader = reader();
    assert!(matches!(read_bytes(&mut reader, &crafted), Err(Rejected::Malformed(_))));
    assert_eq!(read_bytes(&mut reader, &encode(&genuine)), Ok(Some(genuine)));
}

#[test]
fn a_rejected_frame_is_consumed_and_the_next_frame_is_read() {
    let mut buf = encode(&Frame { timestamp_ms: 1, ..data_frame(1, 1, vec![]) });
    let mut forged = encode(&data_frame(1, 2, vec![]));
    forged[TIMESTAMP_AT + 7] ^= 1;
    buf.extend_from_slice(&forged);
    buf.extend_from_slice(&encode(&data_frame(1, 1, vec![])));
    buf.extend_from_slice(&encode(&data_frame(1, 1, vec![])));
    let next = data_frame(1, 3, many_envelopes(2));
    buf.extend_from_slice(&encode(&next));
    let mut reader = reader();
    let mut policy = ConnectionPolicy::default();
    let mut outcomes = Vec::new();
    while !buf.is_empty() {
        let outcome = reader.read_frame(&mut buf, NOW_MS);
        assert_eq!(policy.observe(&outcome), ConnectionVerdict::Continue);
        outcomes.push(outcome.map(|frame| frame.map(|f| f.sequence)));
    }
    assert_eq!(
        outcomes,
        [
            Err(Rejected::Expired { timestamp_ms: 1, now_ms: NOW_MS }),
            Err(Rejected::BadSignature),
            Ok(Some(1)),
            Err(Rejected::Replayed { sender: 1, sequence: 1 }),
            Ok(Some(3)),
        ]
    );
}

#[test]
fn a_peer_without_the_key_is_disconnected_after_three_forged_frames() {
    let stranger = TransportKey::from_bytes([0x55; 32]);
    let mut buf = BytesMut::new();
    for sequence in 1..=5 {
        encode_frame(&data_frame(1, sequence, vec![]), &stranger, &mut buf).unwrap();
    }
    let mut reader = reader();
    let mut policy = ConnectionPolicy::default();
    let mut frames_read = 0;
    loop {
        let outcome = reader.read_frame(&mut buf, NOW_MS);
        frames_read += 1;
        if policy.observe(&outcome) == ConnectionVerdict::Close {
            break;
        }
    }
    assert_eq!(frames_read, 3);
    assert_eq!(reader.reject_counts().bad_signature, 3);
}

#[test]
fn rejections_never_show_the_key() {
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    let rejections = [
        Rejected::Oversized { declared: u32::MAX, max: 8 << 20 },
        Rejected::UnknownKind(9),
        Rejected::BadVersion(2),
        Rejected::Expired { timestamp_ms: 0, now_ms: NOW_MS },
        Rejected::BadSignature,
        Rejected::Replayed { sender: 1, sequence: 1 },
        Rejected::Malformed("envelope overruns the frame"),
        Rejected::Truncated { have: 40, declared: 200 },
    ];
    let reader = reader();
    for text in rejections
        .iter()
        .flat_map(|r| [r.to_string(), format!("{r:?}"), r.reason().to_owned()])
        .chain([format!("{reader:?}"), format!("{:?}", key())])
    {
        assert!(!text.contains(&hex) && !text.contains(&hex[..16]), "{text}");
        let decimal = format!("{:?}", &KEY[..4]);
        assert!(!text.contains(decimal.trim_end_matches(']')), "{text}");
    }
    let labels: Vec<_> = rejections.iter().map(Rejected::reason).collect();
    assert_eq!(
        labels,
        ["oversized", "unknown_kind", "bad_version", "expired", "bad_signature", "replayed", "malformed", "truncated"]
    );
}
