//! The frame decoder never allocates more than the configured maximum allows, whatever bytes arrive.
//!
//! A counting global allocator measures the bytes allocated while a [`FrameReader`] with a small
//! `max_frame_bytes` is fed arbitrary input the way a socket loop feeds it: read a piece into a `BytesMut`,
//! call `read_frame` until `Ok(None)` or a rejection that closes the connection, repeat, and at the end of
//! the input report the close with `connection_closed`. The inputs are arbitrary bytes, arbitrary bytes
//! behind a plausible length prefix (the declared length anywhere up to 4 GiB), and valid frames of every
//! kind, mutated, with and without a fresh signature.
//!
//! # The bound
//!
//! The peak of live bytes allocated while feeding (reader, buffer, decoded frames; each frame is dropped as
//! soon as it is read, as a worker that decodes its payloads would) stays under [`bound`]:
//!
//! - the buffer: while waiting it holds less than one frame (`4 + max_frame_bytes`) plus the piece just
//!   read; `BytesMut` at most doubles its capacity when it grows, and while growing it briefly holds the
//!   old block and the new one, so `4 × (4 + max_frame_bytes + largest piece)`;
//! - decoding a verified frame: one vector of at most `max_frame_bytes / 35` envelopes (the smallest
//!   envelope is 35 bytes), `size_of::<WireEnvelope>()` each; payloads and control bodies are slices of
//!   the buffer, not copies;
//! - a small constant: the anti-replay windows of the few senders whose frames verified (128 bytes each
//!   with the default window, plus the map).
//!
//! In particular nothing is ever sized by the declared length before it has been checked against
//! `max_frame_bytes`: a prefix declaring 4 GiB makes `read_frame` allocate nothing at all.
//!
//! Counting is per thread (the test harness runs tests on several threads, and the allocator sees them
//! all): only allocations made by the thread that switched counting on, while it is on, are counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::mem::size_of;

use bytes::BytesMut;
use common::arb::*;
use common::*;
use hopline_transport::frame::{MIN_ENVELOPE_BYTES, MIN_FRAME_BYTES};
use hopline_transport::{FrameReader, Limits, Rejected, WireEnvelope};
use proptest::prelude::*;

// The counting allocator.

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated minus bytes freed since counting started on this thread.
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    /// The highest `CURRENT` reached since counting started on this thread.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Adds `delta` to this thread's live bytes if it is counting; `transient` is how far above the new
/// current the live bytes briefly went (a reallocation holds its old and new blocks at once).
fn record(delta: isize, transient: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if !counting {
        return;
    }
    let _ = CURRENT.try_with(|current| {
        let before = current.get();
        let after = before + delta;
        current.set(after);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(before + transient).max(after)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping only touches const-initialised
// thread-locals without destructors (so it never allocates or re-enters the allocator).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(layout.size() as isize, 0);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(layout.size() as isize, 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as if the block moved: old and new both live for a moment.
            record(new_size as isize - layout.size() as isize, new_size as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` counting this thread's allocations; returns its result and the peak of live bytes it
/// allocated (net of what it freed).
fn peak_allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
    CURRENT.set(0);
    PEAK.set(0);
    COUNTING.set(true);
    let result = f();
    COUNTING.set(false);
    (result, PEAK.get().max(0) as usize)
}

// The bound.

const MAX_FRAME_BYTES: u32 = 4096;
/// The largest piece a test reads at once (pieces are `1..MAX_PIECE`).
const MAX_PIECE: usize = 600;

/// The documented bound (module docs) for `MAX_FRAME_BYTES` and pieces up to `MAX_PIECE`.
fn bound() -> usize {
    let max = MAX_FRAME_BYTES as usize;
    let buffer = 4 * (4 + max + MAX_PIECE);
    let envelopes = (max - MIN_FRAME_BYTES) / MIN_ENVELOPE_BYTES * size_of::<WireEnvelope>();
    let windows = 4096;
    buffer + envelopes + windows
}

fn small_limits() -> Limits {
    Limits { max_frame_bytes: MAX_FRAME_BYTES, ..Limits::default() }
}

/// What a feed saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fed {
    frames: usize,
    rejections: usize,
    closed_early: bool,
}

/// The socket loop: a fresh reader and buffer, `input` delivered in `pieces` (cycled), every frame read
/// and dropped at once, stop at a rejection that closes the connection, report the close at the end.
fn feed(input: &[u8], pieces: &[usize]) -> Fed {
    let mut reader = FrameReader::new(key(), small_limits()).unwrap();
    let mut buf = BytesMut::new();
    let mut fed = Fed::default();
    let mut rest = input;
    let mut piece = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*piece.next().unwrap()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match reader.read_frame(&mut buf, NOW_MS) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    fed.frames += 1;
                    drop(frame);
                }
                Err(rejected) => {
                    fed.rejections += 1;
                    if rejected.closes_connection() {
                        fed.closed_early = true;
                        return fed;
                    }
                }
            }
        }
    }
    if reader.connection_closed(&buf).is_some() {
        fed.rejections += 1;
    }
    fed
}

/// Feeds `input` under the counting allocator and checks the peak against the bound.
fn feed_within_bound(input: &[u8], pieces: &[usize]) -> Result<(Fed, usize), TestCaseError> {
    let (fed, peak) = peak_allocated(|| feed(input, pieces));
    prop_assert!(peak <= bound(), "peak {peak} bytes allocated while feeding, over the bound of {} bytes", bound());
    Ok((fed, peak))
}

// Properties.

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_allocate_within_the_bound(
        input in proptest::collection::vec(any::<u8>(), 0..12_000),
        pieces in proptest::collection::vec(1..MAX_PIECE, 1..8),
    ) {
        feed_within_bound(&input, &pieces)?;
    }

    #[test]
    fn arbitrary_bytes_behind_a_plausible_prefix_allocate_within_the_bound(
        declared in prop_oneof![0u32..=2 * MAX_FRAME_BYTES, any::<u32>(), Just(u32::MAX)],
        version in prop_oneof![Just(0xA1u8), any::<u8>()],
        kind in 0u8..6,
        body in proptest::collection::vec(any::<u8>(), 0..10_000),
        pieces in proptest::collection::vec(1..MAX_PIECE, 1..8),
    ) {
        let mut input = declared.to_be_bytes().to_vec();
        input.extend([version, kind]);
        input.extend(body);
        let (fed, peak) = feed_within_bound(&input, &pieces)?;
        if declared > MAX_FRAME_BYTES {
            // Rejected from the prefix: only the caller's buffer (the first piece) was ever allocated.
            prop_assert!(fed.closed_early);
            prop_assert!(peak <= 2 * MAX_PIECE, "{peak} bytes allocated for an oversized frame");
        }
    }

    #[test]
    fn valid_frames_mutated_allocate_within_the_bound(
        frames in proptest::collection::vec(arb_frame(), 1..4),
        mutations in proptest::collection::vec(arb_mutation(), 0..4),
        pieces in proptest::collection::vec(1..MAX_PIECE, 1..8),
    ) {
        let mut input = Vec::new();
        for (i, frame) in frames.into_iter().enumerate() {
            input.extend(encoded(&hopline_transport::Frame { sequence: i as u64 + 1, ..frame }));
        }
        for mutation in &mutations {
            apply(&mut input, mutation);
        }
        feed_within_bound(&input, &pieces)?;
    }

    #[test]
    fn mutated_and_resigned_frames_allocate_within_the_bound(
        frame in arb_frame(),
        mutations in proptest::collection::vec(arb_mutation(), 1..4),
        pieces in proptest::collection::vec(1..MAX_PIECE, 1..8),
    ) {
        // A peer holding the key: the body parser (and its envelope vector) sees arbitrary bytes.
        let mut input = encoded(&frame);
        for mutation in &mutations {
            apply(&mut input, mutation);
        }
        if input.len() >= 4 + MIN_FRAME_BYTES {
            fix_length(&mut input);
            resign(&mut input, &KEY);
        }
        feed_within_bound(&input, &pieces)?;
    }
}

// The edges, exactly.

#[test]
fn a_prefix_declaring_4_gib_makes_read_frame_allocate_nothing() {
    for declared in [u32::MAX, 1 << 31, MAX_FRAME_BYTES + 1] {
        let mut reader = FrameReader::new(key(), small_limits()).unwrap();
        let mut buf = BytesMut::from(&declared.to_be_bytes()[..]);
        buf.extend_from_slice(&[0xA1, 1, 0, 0]);
        let (outcome, peak) = peak_allocated(|| reader.read_frame(&mut buf, NOW_MS));
        assert_eq!(outcome, Err(Rejected::Oversized { declared, max: MAX_FRAME_BYTES }));
        assert_eq!(peak, 0, "read_frame allocated {peak} bytes for a frame declaring {declared} bytes");
        assert!(buf.capacity() < 64);
    }
}

#[test]
fn a_prefix_at_the_limit_reserves_at_most_one_frame() {
    let mut reader = FrameReader::new(key(), small_limits()).unwrap();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&MAX_FRAME_BYTES.to_be_bytes());
    let (outcome, peak) = peak_allocated(|| reader.read_frame(&mut buf, NOW_MS));
    assert_eq!(outcome, Ok(None));
    let frame = 4 + MAX_FRAME_BYTES as usize;
    assert!(peak <= 2 * frame, "read_frame allocated {peak} bytes waiting for a {frame}-byte frame");
    assert!(buf.capacity() >= frame);
}

#[test]
fn a_frame_full_of_the_smallest_envelopes_stays_within_the_bound() {
    // The worst case for the envelope vector: as many 35-byte envelopes as the limit allows.
    let count = (MAX_FRAME_BYTES as usize - MIN_FRAME_BYTES) / MIN_ENVELOPE_BYTES;
    let envelopes: Vec<WireEnvelope> = (1..=count as u64)
        .map(|seq| {
            let mut envelope = envelope(seq, false, b"");
            envelope.header.route.handoff_from = Some(1);
            envelope
        })
        .collect();
    let input = encoded(&data_frame(1, 1, envelopes)).to_vec();
    assert!(input.len() <= 4 + MAX_FRAME_BYTES as usize);
    let vector = count * size_of::<WireEnvelope>();
    for pieces in [&[input.len()][..], &[1], &[MAX_PIECE - 1, 7]] {
        let (fed, peak) = peak_allocated(|| feed(&input, pieces));
        assert_eq!(fed, Fed { frames: 1, rejections: 0, closed_early: false });
        assert!(peak >= vector, "the envelope vector ({vector} bytes) was not measured: peak {peak}");
        assert!(peak <= bound(), "peak {peak} over the bound of {}", bound());
    }
}

#[test]
fn the_bound_is_far_below_any_huge_declared_length() {
    // A sanity check on the arithmetic the properties rely on.
    assert!(bound() < 64 * 1024, "bound {} bytes", bound());
}
