//! hopline's fund_load pipeline against an independent implementation of the same rules
//! (`fundload-straightline`), on generated inputs that reach every rule: byte-identical output
//! for every seed, density and set of params.

use fundload_straightline::Rules;
use hopline_fundload::generate::{GenerateOptions, generate};
use hopline_fundload::{LoadMsg, registry};
use hopline_model::PipelineConfig;
use hopline_runtime::memory::run_bytes;

const BASELINE: &str = include_str!("../../../pipelines/fund_load/baseline.yml");
const EXP_MP: &str = include_str!("../../../pipelines/fund_load/exp_mp.yml");

fn hopline(config: &str, input: &[u8]) -> Vec<u8> {
    let config = PipelineConfig::from_yaml("oracle.yml", config).unwrap();
    let mut pipeline = registry().build(&config, &["line"], &["record"]).unwrap();
    run_bytes::<LoadMsg>(&mut pipeline, input, config.runtime.batch_size).unwrap().0
}

fn straight_line(rules: &Rules, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    fundload_straightline::run(input, rules, &mut out).unwrap();
    out
}

fn input(options: GenerateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    generate(&options, &mut out).unwrap();
    out
}

/// A config and the same rules for the straight line.
fn scenarios() -> Vec<(&'static str, String, Rules)> {
    let raised = |text: &str| text.replace("daily_amount: 5000.00", "daily_amount: 50000.00");
    vec![
        ("baseline", BASELINE.to_string(), Rules::baseline()),
        ("exp_mp", EXP_MP.to_string(), Rules::exp_mp()),
        (
            "baseline, weeks from Sunday, two attempts a day",
            BASELINE
                .replace("week_start: monday", "week_start: sunday")
                .replace("daily_attempts: 3", "daily_attempts: 2"),
            Rules { week_start: 6, daily_attempts: 2, ..Rules::baseline() },
        ),
        (
            "exp_mp with a raised daily limit, so the prime cap decides",
            raised(EXP_MP),
            Rules { daily_amount_cents: 5_000_000, ..Rules::exp_mp() },
        ),
        (
            "exp_mp, Monday x1.5, two prime accepts a day, weeks from Wednesday",
            EXP_MP
                .replace("monday_multiplier: 2", "monday_multiplier: 1.5")
                .replace("daily_accepts: 1", "daily_accepts: 2")
                .replace("week_start: monday", "week_start: wednesday"),
            Rules { monday_multiplier_e4: 15_000, prime_daily_accepts: 2, week_start: 2, ..Rules::exp_mp() },
        ),
    ]
}

fn agree(options: GenerateOptions) {
    let input = input(options.clone());
    for (name, config, rules) in scenarios() {
        let expected = straight_line(&rules, &input);
        let got = hopline(&config, &input);
        if got != expected {
            let line = got.split(|&b| b == b'\n').zip(expected.split(|&b| b == b'\n')).position(|(a, b)| a != b);
            panic!("{name}, {options:?}: outputs differ first at line {:?}", line.map(|l| l + 1));
        }
    }
}

#[test]
fn default_generated_input_is_decided_like_the_straight_line() {
    agree(GenerateOptions { seed: 11, records: 30_000, ..GenerateOptions::default() });
}

#[test]
fn few_busy_customers_reach_attempt_and_weekly_limits_alike() {
    agree(GenerateOptions {
        seed: 12,
        records: 20_000,
        customers: 40,
        loads_per_day: 400,
        ..GenerateOptions::default()
    });
}

#[test]
fn many_malformed_replayed_and_reused_lines_are_decided_alike() {
    agree(GenerateOptions {
        seed: 13,
        records: 20_000,
        customers: 300,
        malformed_per_million: 50_000,
        replay_per_million: 50_000,
        id_reuse_per_million: 50_000,
        ..GenerateOptions::default()
    });
}

mod mutated_lines {
    //! Lines mutated at random, byte by byte and field by field, decided by both
    //! implementations: every verdict, echo and escape must agree.

    use proptest::prelude::*;

    use super::*;

    const TEMPLATES: &[&str] = &[
        r#"{"id":"15887","customer_id":"528","load_amount":"$3318.47","time":"2000-01-03T00:00:00Z"}"#,
        r#"{"id":"7","customer_id":"0528","load_amount":"USD$5000.00","time":"2000-01-03T23:59:59.5+02:00"}"#,
        r#"{ "time": "2000-01-04T01:00:00-05:30", "load_amount": " $ 12.30 ", "customer_id": " 528 ", "id": "13" }"#,
        r#"{"id":"\u0031\u0039","customer_id":"528","load_amount":"$USD0.00","time":"2000-01-09t10:00:00z","x":[1,{"y":null}]}"#,
    ];

    /// Pieces that tend to sit on the edges of the grammars.
    const PIECES: &[&str] = &[
        "\"",
        "\\",
        "\\\"",
        "\\u0030",
        "\\n",
        "\t",
        " ",
        "\r",
        "$",
        "USD",
        "usd",
        ".",
        "..",
        "0",
        "9",
        "00",
        "-",
        "+",
        ":",
        "T",
        "Z",
        "z",
        "60",
        "02-29",
        "13",
        "é",
        "\u{7f}",
        "{",
        "}",
        ",",
        "\"id\":\"1\",",
        "null",
        "1e400",
        "[]",
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        Insert(usize, usize),
        Delete(usize, usize),
        Replace(usize, usize, usize),
        RawByte(usize, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0..PIECES.len()).prop_map(|(at, p)| Mutation::Insert(at, p)),
            (any::<usize>(), 1..6usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
            (any::<usize>(), 1..4usize, 0..PIECES.len()).prop_map(|(at, n, p)| Mutation::Replace(at, n, p)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::RawByte(at, b)),
        ]
    }

    fn apply(line: &mut Vec<u8>, m: &Mutation) {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *m {
            Mutation::Insert(i, p) => {
                let i = at(i, line.len());
                line.splice(i..i, PIECES[p].bytes());
            }
            Mutation::Delete(i, n) => {
                let i = at(i, line.len());
                let end = (i + n).min(line.len());
                line.drain(i..end);
            }
            Mutation::Replace(i, n, p) => {
                let i = at(i, line.len());
                let end = (i + n).min(line.len());
                line.splice(i..end, PIECES[p].bytes());
            }
            Mutation::RawByte(i, b) => {
                let i = at(i, line.len());
                line.insert(i, b);
            }
        }
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        (0..TEMPLATES.len(), prop::collection::vec(mutation(), 0..4)).prop_map(|(t, mutations)| {
            let mut line = TEMPLATES[t].as_bytes().to_vec();
            mutations.iter().for_each(|m| apply(&mut line, m));
            line.retain(|&b| b != b'\n');
            line
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn mutated_lines_are_decided_like_the_straight_line(lines in prop::collection::vec(line(), 1..12)) {
            let input = lines.join(&b'\n');
            for (name, config, rules) in scenarios().into_iter().take(2) {
                let expected = straight_line(&rules, &input);
                let got = hopline(&config, &input);
                prop_assert!(
                    got == expected,
                    "{name}\ninput:\n{}\nhopline:\n{}\nstraight line:\n{}",
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&expected)
                );
            }
        }
    }
}
