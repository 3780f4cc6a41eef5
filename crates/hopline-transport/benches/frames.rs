//! Encode+sign and read+verify of one frame: 1,024 envelopes with 64-byte payloads (a full batch crossing
//! a hop), and a single envelope (the fixed cost of a frame). Every envelope carries a trace context, so
//! the large frame is 1,024 × 124 + 60 = 127,036 bytes. `hmac_sha256_floor` signs the same bytes with no
//! framing: the part of the cost that is the hash itself.
//!
//! `CARGO_TARGET_DIR=/tmp/target-transport cargo bench -p hopline-transport --bench frames`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use hopline_model::{CorrelationId, EnvelopeHeader, Route, TraceContext};
use hopline_transport::{Frame, FrameKind, FrameReader, Limits, TransportKey, WireEnvelope, encode_frame, encoded_len};
use sha2::Sha256;

const NOW_MS: u64 = 1_760_000_000_000;

fn frame(envelopes: u64, sequence: u64) -> Frame {
    let envelopes = (1..=envelopes)
        .map(|seq| WireEnvelope {
            header: EnvelopeHeader {
                seq,
                correlation_id: CorrelationId(u128::from(seq) << 64 | 0xfeed),
                trace: Some(TraceContext { trace_id: [0x4b; 16], span_id: seq.to_be_bytes(), flags: 1 }),
                route: Route { process_group: 2, handoff_from: Some(1), route_hop: 1 },
            },
            payload: Bytes::from(vec![seq as u8; 64]),
        })
        .collect();
    Frame { kind: FrameKind::Data, sender: 1, sequence, timestamp_ms: NOW_MS, envelopes, body: Bytes::new() }
}

fn frames(c: &mut Criterion) {
    let key = TransportKey::from_bytes([0x42; 32]);
    for envelopes in [1024u64, 1] {
        let template = frame(envelopes, 1);
        let mut group = c.benchmark_group(format!("frame_{envelopes}x64B"));
        group.throughput(Throughput::Elements(envelopes));

        let mut out = BytesMut::with_capacity(encoded_len(&template));
        group.bench_function("encode_sign", |b| {
            b.iter(|| {
                out.clear();
                encode_frame(black_box(&template), &key, &mut out).unwrap();
                black_box(out.len())
            })
        });

        let mut reader = FrameReader::new(key.clone(), Limits::default()).unwrap();
        let mut sequence = 0;
        let mut wire = BytesMut::new();
        group.bench_function("read_verify", |b| {
            b.iter_batched(
                || {
                    // A fresh sequence each time, so the replay window accepts every frame.
                    sequence += 1;
                    wire.clear();
                    encode_frame(&Frame { sequence, ..template.clone() }, &key, &mut wire).unwrap();
                    BytesMut::from(&wire[..])
                },
                |mut buf| reader.read_frame(&mut buf, NOW_MS).unwrap().unwrap(),
                // A large frame is read warm, as one just copied in from a socket is (batching thousands
                // of them up front would measure cache misses instead); a small one in batches, where
                // timing each call would cost more than the call.
                if envelopes > 1 { BatchSize::PerIteration } else { BatchSize::SmallInput },
            )
        });
        // The floor: HMAC-SHA256 over the same bytes with a pre-keyed state, no framing at all.
        let signed = out.clone();
        let keyed = Hmac::<Sha256>::new_from_slice(&[0x42; 32]).unwrap();
        group.bench_function("hmac_sha256_floor", |b| {
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(black_box(&signed[4..signed.len() - 32]));
                black_box(mac.finalize().into_bytes())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, frames);
criterion_main!(benches);
