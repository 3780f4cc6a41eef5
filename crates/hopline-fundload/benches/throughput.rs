//! fund_load throughput on the memory profile, beside the straight-line speed of light.
//!
//! Input: 1,000,000 generated records (`hopline generate fund_load -n 1000000 --seed 1`),
//! held in memory. Each iteration decides all of them from fresh state and writes every
//! output line into a buffer. Before timing, both outputs are checked to be byte-identical.
//!
//! `cargo bench -p hopline-fundload --bench throughput`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fundload_straightline::Rules;
use hopline_fundload::generate::{GenerateOptions, generate};
use hopline_fundload::{LoadMsg, registry};
use hopline_model::PipelineConfig;
use hopline_runtime::memory::run_bytes;

const RECORDS: u64 = 1_000_000;

fn input() -> Vec<u8> {
    let mut input = Vec::with_capacity(100 * RECORDS as usize);
    generate(&GenerateOptions { seed: 1, records: RECORDS, ..GenerateOptions::default() }, &mut input).unwrap();
    input
}

fn config(scenario: &str) -> PipelineConfig {
    let path = format!("{}/../../pipelines/fund_load/{scenario}.yml", env!("CARGO_MANIFEST_DIR"));
    PipelineConfig::from_yaml(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hopline(config: &PipelineConfig, input: &[u8]) -> Vec<u8> {
    let mut pipeline = registry().build(config, &["line"], &["record"]).unwrap();
    run_bytes::<LoadMsg>(&mut pipeline, input, config.runtime.batch_size).unwrap().0
}

fn straight_line(rules: &Rules, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2);
    fundload_straightline::run(input, rules, &mut out).unwrap();
    out
}

fn throughput(c: &mut Criterion) {
    let input = input();
    let mut group = c.benchmark_group("fund_load_1m");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (scenario, rules) in [("baseline", Rules::baseline()), ("exp_mp", Rules::exp_mp())] {
        let config = config(scenario);
        assert!(hopline(&config, &input) == straight_line(&rules, &input), "{scenario}: outputs differ");
        group.bench_with_input(BenchmarkId::new("straight_line", scenario), &input, |b, input| {
            b.iter(|| black_box(straight_line(&rules, input)))
        });
        group.bench_with_input(BenchmarkId::new("hopline_memory", scenario), &input, |b, input| {
            b.iter(|| black_box(hopline(&config, input)))
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
