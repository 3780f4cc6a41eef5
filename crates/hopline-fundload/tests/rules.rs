//! One test per rule of `RULES.md`, run through the real pipeline (the shipped configs, in memory).
//!
//! Each test is named for the behaviour it pins and quotes (or paraphrases) the sentence of `RULES.md` it checks.
//! Inputs are small and hand-written; outputs are compared whole, byte for byte. The last tests run generated
//! data through the pipeline and through the straight-line implementation of the rules, line by line.
//!
//! Dates: 2000-01-03 is a Monday; the week of the default (Monday) start runs 2000-01-03 to 2000-01-09.

use fundload_straightline::Rules;
use hopline_fundload::generate::{GenerateOptions, generate};
use hopline_fundload::{LoadMsg, registry};
use hopline_model::{ConfigError, NodeReport, PipelineConfig};
use hopline_runtime::memory::run_bytes;

const BASELINE: &str = include_str!("../../../pipelines/fund_load/baseline.yml");
const EXP_MP: &str = include_str!("../../../pipelines/fund_load/exp_mp.yml");

const SUN: &str = "2000-01-02T12:00:00Z";
const MON: &str = "2000-01-03T12:00:00Z";
const TUE: &str = "2000-01-04T12:00:00Z";
const WED: &str = "2000-01-05T12:00:00Z";
const THU: &str = "2000-01-06T12:00:00Z";
const FRI: &str = "2000-01-07T12:00:00Z";
const SAT: &str = "2000-01-08T12:00:00Z";
const SUN2: &str = "2000-01-09T12:00:00Z";
const MON2: &str = "2000-01-10T12:00:00Z";

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/// `config` with the first `from` replaced by `to` (which must be there: a test must not silently edit nothing).
fn edit(config: &str, from: &str, to: &str) -> String {
    assert!(config.contains(from), "the config has no {from:?}:\n{config}");
    config.replacen(from, to, 1)
}

/// exp_mp with daily and weekly limits raised far above the prime cap, so the cap decides on its own.
fn exp_mp_raised() -> String {
    let config = edit(EXP_MP, "daily_amount: 5000.00", "daily_amount: 50000.00");
    edit(&config, "weekly_amount: 20000.00", "weekly_amount: 200000.00")
}

/// A finished run: the output and each node's report, by node kind.
struct Run {
    out: String,
    records_in: u64,
    records_out: u64,
    reports: Vec<(String, NodeReport)>,
}

impl Run {
    fn report(&self, kind: &str) -> &NodeReport {
        &self.reports.iter().find(|(k, _)| k == kind).unwrap_or_else(|| panic!("no {kind} node")).1
    }

    /// A named count of a node's report (0 when absent).
    fn count(&self, kind: &str, name: &str) -> u64 {
        self.report(kind).counts.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
    }

    /// Malformed lines reported by `parse`, over all reasons.
    fn malformed(&self) -> u64 {
        self.report("parse").incidents.iter().map(|i| i.count).sum()
    }
}

fn run_full(config_yaml: &str, input: &[u8]) -> Run {
    let config = PipelineConfig::from_yaml("test.yml", config_yaml).unwrap();
    let mut pipeline = registry().build(&config, &["line"], &["record"]).unwrap();
    let (out, counts) = run_bytes::<LoadMsg>(&mut pipeline, input, 1024).unwrap();
    let reports = pipeline.stages.iter().map(|s| (s.info.kind.to_string(), s.node.report())).collect();
    Run {
        out: String::from_utf8(out).unwrap(),
        records_in: counts.records_in,
        records_out: counts.records_out,
        reports,
    }
}

fn output_of(config_yaml: &str, input: &str) -> String {
    run_full(config_yaml, input.as_bytes()).out
}

/// One input line (no newline).
fn line(id: &str, customer: &str, amount: &str, time: &str) -> String {
    format!(r#"{{"id":"{id}","customer_id":"{customer}","load_amount":"{amount}","time":"{time}"}}"#)
}

/// One output line, with its newline.
fn out(id: &str, customer: &str, accepted: bool) -> String {
    format!("{{\"id\":\"{id}\",\"customer_id\":\"{customer}\",\"accepted\":{accepted}}}\n")
}

/// An attempt and the decision expected for it: (id, customer_id, load_amount, time, accepted).
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, bool);

fn input_of(rows: &[Row<'_>]) -> String {
    rows.iter().map(|&(id, c, a, t, _)| line(id, c, a, t) + "\n").collect()
}

fn expected_of(rows: &[Row<'_>]) -> String {
    rows.iter().map(|&(id, c, _, _, ok)| out(id, c, ok)).collect()
}

/// Runs the rows under `config` and asserts the whole output.
fn check(config: &str, rows: &[Row<'_>]) -> Run {
    let input = input_of(rows);
    let run = run_full(config, input.as_bytes());
    assert_eq!(run.out, expected_of(rows), "input:\n{input}");
    run
}

/// The follow-up line of [`assert_malformed`]: a well-formed line with id 77.
fn follow_up() -> String {
    line("77", "9", "$1.00", "2000-01-04T00:00:00Z")
}

/// Runs `bad`, then a well-formed line with id `77`, under baseline. The bad line must be declined with the
/// echoed ids, reported malformed (on line 1, for a reason containing `reason`), and must not claim id 77.
fn assert_malformed(bad: &[u8], echo: (&str, &str), reason: &str) {
    let mut input = bad.to_vec();
    input.push(b'\n');
    input.extend_from_slice(follow_up().as_bytes());
    input.push(b'\n');
    let run = run_full(BASELINE, &input);
    let shown = String::from_utf8_lossy(bad);
    assert_eq!(run.out, out(echo.0, echo.1, false) + &out("77", "9", true), "bad line: {shown}");
    let incidents = &run.report("parse").incidents;
    assert_eq!(incidents.len(), 1, "bad line: {shown}: {incidents:?}");
    assert_eq!((incidents[0].count, incidents[0].first_seqs.as_slice()), (1, &[1u64][..]), "bad line: {shown}");
    assert!(
        incidents[0].reason.to_lowercase().contains(&reason.to_lowercase()),
        "bad line: {shown}: reason {:?} does not mention {reason:?}",
        incidents[0].reason
    );
}

/// The config error of a config text, from reading it or from building its pipeline.
fn config_error(config_yaml: &str) -> ConfigError {
    let config = match PipelineConfig::from_yaml("test.yml", config_yaml) {
        Ok(config) => config,
        Err(e) => return e,
    };
    match registry().build(&config, &["line"], &["record"]) {
        Ok(_) => panic!("the config should be refused:\n{config_yaml}"),
        Err(e) => e,
    }
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?}")) + 1
}

// ---------------------------------------------------------------------------------------------------------------
// Reference data: "Outputs must match these byte for byte (each line ends with `\n`, the last one too)."
// ---------------------------------------------------------------------------------------------------------------

const REFERENCE_INPUT: &str = include_str!("../../../tests/fixtures/fund_load/input.txt");

#[test]
fn reference_input_gives_the_reference_output_in_baseline() {
    let expected = include_str!("../../../tests/fixtures/fund_load/output.txt");
    let got = output_of(BASELINE, REFERENCE_INPUT);
    assert!(got.ends_with('\n'));
    assert_eq!(got.lines().count(), 1_000);
    assert!(got == expected, "baseline output differs from output.txt");
}

#[test]
fn reference_input_gives_the_reference_output_in_exp_mp() {
    let expected = include_str!("../../../tests/fixtures/fund_load/output_exp_mp.txt");
    let got = output_of(EXP_MP, REFERENCE_INPUT);
    assert!(got.ends_with('\n'));
    assert_eq!(got.lines().count(), 1_000);
    assert!(got == expected, "exp_mp output differs from output_exp_mp.txt");
}

// ---------------------------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------------------------

/// "The 1-based line number is the event's sequence number."
#[test]
fn line_number_is_the_sequence_number() {
    let input = [
        line("1", "1", "$1.00", TUE),
        String::new(),
        line("2", "1", "$1.00", TUE),
        line("1", "1", "$1.00", TUE),
        "oops".to_string(),
        line("3", "1", "$1.0", TUE),
    ]
    .join("\n");
    let run = run_full(BASELINE, input.as_bytes());
    let parse = &run.report("parse").incidents;
    let seqs = |word: &str| {
        parse
            .iter()
            .find(|i| i.reason.contains(word))
            .unwrap_or_else(|| panic!("no {word}: {parse:?}"))
            .first_seqs
            .clone()
    };
    assert_eq!(seqs("blank"), vec![2]);
    assert_eq!(seqs("JSON"), vec![5]);
    assert_eq!(seqs("load_amount"), vec![6]);
    let duplicates = &run.report("idempotency").incidents;
    assert_eq!(duplicates.len(), 1);
    assert_eq!((duplicates[0].count, duplicates[0].first_seqs.as_slice()), (1, &[4u64][..]));
}

/// "`id`, `customer_id`: JSON strings of ASCII digits, surrounding whitespace trimmed. Kept as written ... and
/// echoed to the output."
#[test]
fn ids_are_trimmed_and_echoed_as_written() {
    let input = concat!(
        r#"{"id":" 15887 ","customer_id":"\t528\r\n","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#,
        "\n",
        r#"{"id":"\n 15888","customer_id":"528  ","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#,
        "\n",
    );
    assert_eq!(output_of(BASELINE, input), out("15887", "528", true) + &out("15888", "528", true));
}

/// "Kept as written (leading zeros too) and echoed to the output."
#[test]
fn leading_zeros_are_kept_and_echoed() {
    check(BASELINE, &[("00015887", "0528", "$1.00", TUE, true), ("0", "000", "$1.00", TUE, true)]);
}

/// "`"007"` and `"7"` are different ids."
#[test]
fn ids_007_and_7_are_different_ids() {
    check(
        BASELINE,
        &[("007", "1", "$1.00", TUE, true), ("7", "1", "$1.00", TUE, true), ("07", "2", "$1.00", WED, true)],
    );
}

/// "Kept as written (leading zeros too)": a customer id is a string key, so `0528` and `528` are two customers.
#[test]
fn customer_ids_with_leading_zeros_are_other_customers() {
    check(
        BASELINE,
        &[
            ("1", "528", "$5000.00", TUE, true),
            ("2", "0528", "$5000.00", TUE, true),
            ("3", "00528", "$5000.00", TUE, true),
            ("4", "528", "$0.01", TUE, false),
        ],
    );
}

/// "the prime test reads both as the integer 7."
#[test]
fn prime_test_reads_an_id_with_leading_zeros_as_its_integer() {
    check(
        EXP_MP,
        &[
            // 007 is the prime 7: it takes Tuesday's prime slot, so 11 is declined.
            ("007", "1", "$1.00", TUE, true),
            ("11", "2", "$1.00", TUE, false),
            // 7 takes Wednesday's slot; 0007 is another id but the same prime.
            ("7", "3", "$1.00", WED, true),
            ("0007", "4", "$1.00", WED, false),
            // 0004 and 0009 are not prime.
            ("0004", "5", "$1.00", WED, true),
            ("0009", "6", "$1.00", WED, true),
        ],
    );
}

/// "`load_amount`: a JSON string. Remove all whitespace, then what remains must match the grammar."
#[test]
fn whitespace_inside_an_amount_is_removed() {
    let input = concat!(
        r#"{"id":"1","customer_id":"1","load_amount":" $1 234.56 ","time":"2000-01-04T00:00:00Z"}"#,
        "\n",
        r#"{"id":"2","customer_id":"1","load_amount":"USD $\t3 7\r6\n5 . 4 4","time":"2000-01-04T00:00:00Z"}"#,
        "\n",
        r#"{"id":"3","customer_id":"1","load_amount":"$ 0.01","time":"2000-01-04T00:00:00Z"}"#,
        "\n",
    );
    // 1,234.56 + 3,765.44 is exactly 5,000.00; one more cent is over.
    assert_eq!(output_of(BASELINE, input), out("1", "1", true) + &out("2", "1", true) + &out("3", "1", false));
}

/// "`(\$|USD|USD\$|\$USD)?[0-9]+\.[0-9]{2}`: `12.30`, `$0.00`, `USD$7.05`", and `$USD` too.
#[test]
fn every_amount_prefix_is_read_exactly() {
    let prefixes = ["", "$", "USD", "USD$", "$USD"];
    let ids: Vec<String> = (0..prefixes.len() * 2).map(|i| (100 + i).to_string()).collect();
    let amounts: Vec<(String, String)> = prefixes.iter().map(|p| (format!("{p}4999.99"), format!("{p}0.01"))).collect();
    let customers = ["1", "2", "3", "4", "5"];
    let mut rows = Vec::new();
    for (i, (full, cent)) in amounts.iter().enumerate() {
        rows.push((ids[2 * i].as_str(), customers[i], full.as_str(), TUE, true));
        rows.push((ids[2 * i + 1].as_str(), customers[i], cent.as_str(), TUE, true));
    }
    // Every customer is now at exactly 5,000.00: one more cent is declined.
    for (i, &c) in customers.iter().enumerate() {
        let id = ["200", "201", "202", "203", "204"][i];
        rows.push((id, c, "$0.01", TUE, false));
    }
    check(BASELINE, &rows);
}

/// "not `12.3`"
#[test]
fn amount_with_one_decimal_is_malformed() {
    assert_malformed(line("77", "9", "12.3", TUE).as_bytes(), ("77", "9"), "load_amount");
}

/// "not `12`"
#[test]
fn amount_without_cents_is_malformed() {
    assert_malformed(line("77", "9", "12", TUE).as_bytes(), ("77", "9"), "load_amount");
}

/// "not `usd12.30`" (case-sensitive)
#[test]
fn lowercase_usd_is_malformed() {
    for amount in ["usd12.30", "Usd12.30", "uSD$12.30", "$usd12.30"] {
        assert_malformed(line("77", "9", amount, TUE).as_bytes(), ("77", "9"), "load_amount");
    }
}

/// "not `-$10.00`"
#[test]
fn negative_amount_is_malformed() {
    for amount in ["-$10.00", "$-10.00", "-10.00", "USD-5.00", "$-0.00"] {
        assert_malformed(line("77", "9", amount, TUE).as_bytes(), ("77", "9"), "load_amount");
    }
}

/// "what remains must match `^(\$|USD|USD\$|\$USD)?[0-9]+\.[0-9]{2}$`"
#[test]
fn amount_outside_the_grammar_is_malformed() {
    for amount in [
        "",
        "$",
        ".50",
        "$.50",
        "12.",
        "$12.345",
        "1,234.56",
        "$$12.30",
        "USD$USD1.00",
        "USDUSD1.00",
        "12.30$",
        "12.30USD",
        "$ 12.30 USD",
        "€12.00",
        "EUR12.30",
        "1e3",
        "$12.3O",
        "0x10.00",
        "$１２.３０",
        "+12.30",
    ] {
        assert_malformed(line("77", "9", amount, TUE).as_bytes(), ("77", "9"), "load_amount");
    }
}

/// "Money is exact: use integer cents, never floats." (0.10 + 0.20 is not 0.30 in binary floating point.)
#[test]
fn money_is_exact_cents_not_floats() {
    let config = edit(BASELINE, "daily_amount: 5000.00", "daily_amount: 0.30");
    check(&config, &[("1", "1", "$0.10", TUE, true), ("2", "1", "$0.20", TUE, true), ("3", "1", "$0.01", TUE, false)]);
    // 9,999,999,999,999,999.99 is not a float (the nearest is 10^16): with limits of exactly 10^16 it fits,
    // one more cent fits exactly, and the cent after that does not.
    let big = edit(BASELINE, "daily_amount: 5000.00", "daily_amount: 10000000000000000.00");
    let big = edit(&big, "weekly_amount: 20000.00", "weekly_amount: 10000000000000000.00");
    check(
        &big,
        &[
            ("1", "1", "$9999999999999999.99", TUE, true),
            ("2", "1", "$0.01", TUE, true),
            ("3", "1", "$0.01", TUE, false),
        ],
    );
}

/// "A zero amount is valid."
#[test]
fn zero_amount_is_valid() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$0.00", TUE, true),
            ("2", "1", "0.00", TUE, true),
            // Zero adds nothing to the day: 5,000.00 still fits.
            ("3", "1", "USD$5000.00", TUE, true),
            // A zero amount is still an attempt: this is the 4th.
            ("4", "1", "$0.00", TUE, false),
        ],
    );
    assert_eq!(run.malformed(), 0);
}

/// "Amounts up to 18 integer digits must be handled exactly (a huge one is simply declined by the limits)"
#[test]
fn eighteen_digit_amount_is_exact_and_declined_by_limits() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$999999999999999999.99", TUE, false),
            // Well-formed: it claimed its id ...
            ("1", "1", "$1.00", TUE, false),
            // ... added nothing to the day ...
            ("2", "1", "$5000.00", TUE, true),
            // ... and counted as an attempt (this is the 3rd; the 4th is declined).
            ("3", "1", "$0.00", TUE, true),
            ("6", "1", "$0.00", TUE, false),
            ("4", "2", "USD$100000000000000000.00", TUE, false),
            ("5", "3", "$USD999999999999999999.99", MON, false),
        ],
    );
    assert_eq!(run.malformed(), 0);
    // Declined by the daily amount, not by the attempts or as malformed.
    assert_eq!(run.count("policies", "declined by daily amount"), 3);
    // Under exp_mp, doubled on a Monday, still exact and still declined.
    check(&exp_mp_raised(), &[("10", "1", "$999999999999999999.99", MON, false), ("12", "1", "$1.00", MON, true)]);
}

/// "longer ones may be reported malformed": either way they are declined.
#[test]
fn nineteen_digit_amount_is_declined() {
    let input = line("1", "1", "$1000000000000000000.00", TUE) + "\n";
    assert_eq!(output_of(BASELINE, &input), out("1", "1", false));
    let input = line("1", "1", "$9999999999999999999999999.99", TUE) + "\n";
    assert_eq!(output_of(EXP_MP, &input), out("1", "1", false));
}

/// "Convert to UTC: `2000-01-03T00:00:03+02:00` falls on 2000-01-02 in UTC."
#[test]
fn offset_time_counts_in_its_utc_day() {
    check(
        BASELINE,
        &[
            ("1", "1", "$1.00", "2000-01-02T10:00:00Z", true),
            ("2", "1", "$1.00", "2000-01-02T11:00:00Z", true),
            ("3", "1", "$1.00", "2000-01-02T12:00:00Z", true),
            // Local 2000-01-03, UTC 2000-01-02: the customer's 4th attempt that day.
            ("4", "1", "$1.00", "2000-01-03T00:00:03+02:00", false),
            // Local 02:00 at +02:00 is 00:00 UTC on 2000-01-03: a new day.
            ("5", "1", "$1.00", "2000-01-03T02:00:00+02:00", true),
        ],
    );
}

/// "Convert to UTC": a negative offset can move a time to the next UTC day.
#[test]
fn negative_offset_can_move_a_time_to_the_next_utc_day() {
    check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", "2000-01-04T12:00:00Z", true),
            // Local 2000-01-04 23:30 at -01:00 is 2000-01-05 00:30 UTC: another day, another 5,000.00.
            ("2", "1", "$5000.00", "2000-01-04T23:30:00-01:00", true),
            // Local 2000-01-05 00:30 at +01:00 is 2000-01-04 23:30 UTC: the first day, which is full.
            ("3", "1", "$0.01", "2000-01-05T00:30:00+01:00", false),
            // -00:00 is UTC.
            ("4", "2", "$5000.00", "2000-01-04T23:59:59-00:00", true),
            ("5", "2", "$0.01", "2000-01-04T00:00:00Z", false),
        ],
    );
}

/// "optional fraction"
#[test]
fn fractional_seconds_are_valid() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$1.00", "2000-01-04T23:59:59.999999999Z", true),
            ("2", "1", "$4999.00", "2000-01-04T00:00:00.5+00:00", true),
            ("3", "1", "$0.01", "2000-01-04T12:00:00.0Z", false),
        ],
    );
    assert_eq!(run.malformed(), 0);
}

/// "No zone ... is malformed."
#[test]
fn time_without_zone_is_malformed() {
    for time in ["2000-01-04T00:00:00", "2000-01-04T00:00:00.123", "2000-01-04"] {
        assert_malformed(line("77", "9", "$1.00", time).as_bytes(), ("77", "9"), "time");
    }
}

/// "a leap second (`:60`) ... is malformed."
#[test]
fn leap_second_is_malformed() {
    for time in ["1998-12-31T23:59:60Z", "2000-01-04T00:00:60Z", "2016-12-31T23:59:60+00:00"] {
        assert_malformed(line("77", "9", "$1.00", time).as_bytes(), ("77", "9"), "time");
    }
}

/// "an impossible date is malformed."
#[test]
fn impossible_date_is_malformed() {
    for time in [
        "2001-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2000-02-30T00:00:00Z",
        "2000-04-31T00:00:00Z",
        "2000-13-01T00:00:00Z",
        "2000-00-10T00:00:00Z",
        "2000-01-00T00:00:00Z",
        "2000-01-32T00:00:00Z",
        "2000-01-04T24:00:00Z",
        "2000-01-04T23:60:00Z",
    ] {
        assert_malformed(line("77", "9", "$1.00", time).as_bytes(), ("77", "9"), "time");
    }
    // Possible dates at the edges are fine.
    check(
        BASELINE,
        &[
            ("1", "1", "$1.00", "2000-02-29T00:00:00Z", true),
            ("2", "1", "$1.00", "2004-02-29T23:59:59Z", true),
            ("3", "1", "$1.00", "2000-12-31T23:59:59Z", true),
        ],
    );
}

/// "`time`: an RFC 3339 date-time with a zone: `YYYY-MM-DDTHH:MM:SS`, optional fraction, then `Z` or
/// `+HH:MM`/`-HH:MM`": anything else is a bad timestamp.
#[test]
fn time_outside_the_rfc3339_shape_is_malformed() {
    for time in [
        "",
        "2000-01-04 00:00:00Z",
        "2000-01-04T00:00Z",
        "2000-1-04T00:00:00Z",
        "2000-01-04T0:00:00Z",
        "2000-01-04T00:00:00.Z",
        "2000-01-04T00:00:00+0200",
        "2000-01-04T00:00:00+02",
        "2000-01-04T00:00:00+24:00",
        "2000-01-04T00:00:00ZZ",
        "2000-01-04T00:00:00 Z",
        "946944000",
        "Tue, 04 Jan 2000 00:00:00 GMT",
    ] {
        assert_malformed(line("77", "9", "$1.00", time).as_bytes(), ("77", "9"), "time");
    }
}

/// "Unknown fields are ignored."
#[test]
fn unknown_fields_are_ignored() {
    let input = concat!(
        r#"{"id":"1","customer_id":"1","load_amount":"$4000.00","time":"2000-01-04T00:00:00Z","note":"x","n":-1.5e3,"#,
        r#""o":{"id":"999","load_amount":"$1.00"},"a":[1,"two",null,{}],"b":true,"z":null,"ID":"x","amount":"$9"}"#,
        "\n",
        r#"{"channel":"mobile","time":"2000-01-04T01:00:00Z","load_amount":"$1000.00","customer_id":"1","id":"2"}"#,
        "\n",
        r#"{"id":"3","customer_id":"1","load_amount":"$0.01","time":"2000-01-04T00:00:00Z","memo":"café ☕ \" } {"}"#,
        "\n",
    );
    let run = run_full(BASELINE, input.as_bytes());
    assert_eq!(run.out, out("1", "1", true) + &out("2", "1", true) + &out("3", "1", false));
    assert_eq!(run.malformed(), 0);
}

/// "Whitespace means JSON whitespace: space, tab, CR, LF." Around the object, between tokens, around ids and
/// inside amounts.
#[test]
fn json_whitespace_is_space_tab_cr_and_lf() {
    let input = concat!(
        " \t{ \"id\" :\t\" \\t\\r\\n 1 \\n\" , \"customer_id\"\t: \"\\r1\\t\" ,\r",
        "\"load_amount\" : \"\\t$\\r4999\\n.99 \" , \"time\" : \"2000-01-04T00:00:00Z\" } \t\r\n",
        r#"{"id":"2","customer_id":"1","load_amount":"$0.01","time":"2000-01-04T00:00:00Z"}"#,
        "\n",
    );
    let run = run_full(BASELINE, input.as_bytes());
    assert_eq!(run.out, out("1", "1", true) + &out("2", "1", true));
    assert_eq!(run.malformed(), 0);
}

/// "Whitespace means JSON whitespace": other spaces (no-break space, form feed, vertical tab, ideographic
/// space) are not trimmed nor removed, so the field is malformed.
#[test]
fn other_whitespace_is_not_whitespace() {
    for (bad, word) in [
        (r#"{"id":"\u00a077","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#, "id is not"),
        (r#"{"id":"\f77","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#, "id is not"),
        (r#"{"id":"77","customer_id":"9\u000b","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#, "customer_id"),
        (
            r#"{"id":"77","customer_id":"9","load_amount":"$1\u00a0000.00","time":"2000-01-04T00:00:00Z"}"#,
            "load_amount",
        ),
        (r#"{"id":"77","customer_id":"9","load_amount":"$1\f.00","time":"2000-01-04T00:00:00Z"}"#, "load_amount"),
        (r#"{"id":"77","customer_id":"9","load_amount":"$1\u3000.00","time":"2000-01-04T00:00:00Z"}"#, "load_amount"),
    ] {
        let run = run_full(BASELINE, format!("{bad}\n{}\n", follow_up()).as_bytes());
        assert!(run.out.starts_with("{\"id\":\""), "{bad}");
        assert!(
            run.out.ends_with(&(String::from("\"accepted\":false}\n") + &out("77", "9", true))),
            "{bad}: {}",
            run.out
        );
        assert_eq!(run.malformed(), 1, "{bad}");
        let reason = &run.report("parse").incidents[0].reason;
        assert!(reason.contains(word), "{bad}: {reason}");
    }
}

/// "Lines are decided in file order, which need not be time order: each attempt counts in the day ... of its own
/// timestamp, even when a later line of the file has an earlier time."
#[test]
fn lines_out_of_time_order_count_in_their_own_day() {
    check(
        BASELINE,
        &[
            ("1", "1", "$4000.00", WED, true),
            ("2", "1", "$4000.00", TUE, true),
            ("3", "1", "$1000.00", "2000-01-05T23:00:00Z", true),
            ("4", "1", "$1000.00", "2000-01-04T01:00:00Z", true),
            // Wednesday is full (5,000.00), Tuesday too.
            ("5", "1", "$0.01", "2000-01-05T00:00:00Z", false),
            ("6", "1", "$0.01", "2000-01-04T23:00:00Z", false),
            // Both days have had 3 attempts now; Monday, earlier than all of them, has had none.
            ("7", "1", "$0.00", WED, false),
            ("8", "1", "$0.00", TUE, false),
            ("9", "1", "$5000.00", MON, true),
        ],
    );
}

/// "each attempt counts in the day and week of its own timestamp, even when a later line of the file has an
/// earlier time."
#[test]
fn lines_out_of_time_order_count_in_their_own_week() {
    check(
        BASELINE,
        &[
            // The week of 2000-01-10 reaches exactly 20,000.00.
            ("1", "1", "$5000.00", "2000-01-13T12:00:00Z", true),
            ("2", "1", "$5000.00", "2000-01-12T12:00:00Z", true),
            ("3", "1", "$5000.00", "2000-01-11T12:00:00Z", true),
            ("4", "1", "$5000.00", MON2, true),
            // An earlier week is untouched by it ...
            ("5", "1", "$5000.00", SUN2, true),
            ("6", "1", "$5000.00", MON, true),
            // ... and the later week stays full.
            ("7", "1", "$0.01", "2000-01-16T23:59:59Z", false),
            // The earlier week (Jan 3-9) is at 10,000.00 and takes 10,000.00 more over two days.
            ("8", "1", "$5000.00", TUE, true),
            ("9", "1", "$5000.00", WED, true),
            ("10", "1", "$0.01", THU, false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------------------------

/// "Exactly one line per input line, in input order ... Compact JSON, keys in that order, values echoed from the
/// (trimmed) input."
#[test]
fn one_compact_output_line_per_input_line_in_input_order() {
    let input = [
        line("15887", "528", "$3318.47", "2000-01-01T00:00:00Z"),
        line("30081", "154", "$1413.18", "2000-01-01T01:01:22Z"),
        line("15887", "154", "$1.00", "2000-01-01T01:01:22Z"),
        String::new(),
        line("1", "528", "$1681.53", "2000-01-01T02:00:00Z"),
        "[1]".to_string(),
        line("2", "528", "$0.01", "2000-01-01T03:00:00Z"),
    ]
    .join("\n")
        + "\n";
    let result = run_full(BASELINE, input.as_bytes());
    let expected = [
        r#"{"id":"15887","customer_id":"528","accepted":true}"#,
        r#"{"id":"30081","customer_id":"154","accepted":true}"#,
        r#"{"id":"15887","customer_id":"154","accepted":false}"#,
        r#"{"id":"","customer_id":"","accepted":false}"#,
        r#"{"id":"1","customer_id":"528","accepted":true}"#,
        r#"{"id":"","customer_id":"","accepted":false}"#,
        r#"{"id":"2","customer_id":"528","accepted":false}"#,
    ]
    .map(|l| l.to_string() + "\n")
    .concat();
    assert_eq!(result.out, expected);
    assert_eq!((result.records_in, result.records_out), (7, 7));
    assert_eq!(output_of(BASELINE, ""), "");
}

// ---------------------------------------------------------------------------------------------------------------
// Time windows
// ---------------------------------------------------------------------------------------------------------------

/// "day: the UTC calendar date."
#[test]
fn day_is_the_utc_calendar_date() {
    check(
        BASELINE,
        &[
            ("1", "1", "$1.00", "2000-01-04T00:00:00Z", true),
            ("2", "1", "$1.00", "2000-01-04T12:00:00Z", true),
            ("3", "1", "$4998.00", "2000-01-04T23:59:59.999Z", true),
            // Midnight UTC starts a new day: new attempts, new total.
            ("4", "1", "$5000.00", "2000-01-05T00:00:00Z", true),
            // The last second of the first day is still the first day: 4th attempt.
            ("5", "1", "$0.00", "2000-01-04T23:59:59Z", false),
        ],
    );
}

/// "week: the calendar week starting Monday 00:00:00 UTC (... default Monday)."
#[test]
fn week_runs_from_monday_midnight_utc() {
    check(
        BASELINE,
        &[
            // Sunday 2000-01-02 belongs to the week before.
            ("1", "1", "$5000.00", "2000-01-02T23:59:59Z", true),
            ("2", "1", "$5000.00", "2000-01-03T00:00:00Z", true),
            ("3", "1", "$5000.00", TUE, true),
            ("4", "1", "$5000.00", WED, true),
            ("5", "1", "$5000.00", THU, true),
            // The week of Jan 3 is full up to its last second ...
            ("6", "1", "$0.01", "2000-01-09T23:59:59Z", false),
            // ... and the next Monday starts a new one.
            ("7", "1", "$5000.00", "2000-01-10T00:00:00Z", true),
            // Monday 00:30 at +01:00 is Sunday 23:30 UTC: the full week.
            ("8", "1", "$0.01", "2000-01-10T00:30:00+01:00", false),
        ],
    );
}

/// A week of loads where the Saturday/Sunday split decides.
fn week_start_rows(sunday_start: bool) -> Vec<Row<'static>> {
    vec![
        ("1", "1", "$5000.00", SUN, true),
        ("2", "1", "$5000.00", MON, true),
        ("3", "1", "$5000.00", TUE, true),
        ("4", "1", "$5000.00", WED, true),
        // Monday start: the week of Jan 3 is at 15,000.01. Sunday start: the week of Jan 2 is at 20,000.01.
        ("5", "1", "$0.01", SAT, !sunday_start),
        // Monday start: 20,000.01 in the week of Jan 3. Sunday start: a new week starts on Jan 9.
        ("6", "1", "$5000.00", SUN2, sunday_start),
    ]
}

/// "configurable week start, default Monday"
#[test]
fn week_start_sunday_moves_the_week_boundary() {
    check(BASELINE, &week_start_rows(false));
    check(&edit(BASELINE, "week_start: monday", "week_start: sunday"), &week_start_rows(true));
    // exp_mp too: the week of Sunday Jan 2 is full on Saturday; Monday Jan 10 (doubled) is in the next week.
    let rows = |sunday_start: bool| {
        vec![
            ("20", "1", "$5000.00", SUN, true),
            ("22", "1", "$5000.00", TUE, true),
            ("24", "1", "$5000.00", WED, true),
            ("26", "1", "$5000.00", THU, true),
            ("28", "1", "$0.01", SAT, !sunday_start),
            ("30", "1", "$2500.00", MON2, true),
        ]
    };
    check(EXP_MP, &rows(false));
    check(&edit(EXP_MP, "week_start: monday", "week_start: sunday"), &rows(true));
}

/// "configurable week start": any weekday; a Wednesday start puts Tuesday and Wednesday in different weeks.
#[test]
fn week_start_can_be_any_weekday() {
    let config = edit(BASELINE, "week_start: monday", "week_start: wednesday");
    check(
        &config,
        &[
            ("1", "1", "$5000.00", "2000-01-05T00:00:00Z", true),
            ("2", "1", "$5000.00", THU, true),
            ("3", "1", "$5000.00", FRI, true),
            ("4", "1", "$5000.00", SAT, true),
            // Sunday to Tuesday (Jan 9-11) are in the full week that started on Wednesday Jan 5.
            ("5", "1", "$0.01", "2000-01-11T23:59:59Z", false),
            ("6", "1", "$5000.00", "2000-01-12T00:00:00Z", true),
            // Tuesday Jan 4 is in the week before.
            ("7", "1", "$5000.00", TUE, true),
        ],
    );
}

/// "default Monday": a `time_keys` node without params has weeks starting on Monday.
#[test]
fn week_start_defaults_to_monday() {
    let config =
        edit(BASELINE, "  - kind: time_keys\n    params:\n      week_start: monday\n", "  - kind: time_keys\n");
    check(&config, &week_start_rows(false));
}

// ---------------------------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------------------------

/// "The first occurrence of an `id` in the stream is canonical."
#[test]
fn first_occurrence_of_an_id_is_canonical() {
    check(
        BASELINE,
        &[
            // The first line with id 1 is decided on its own merits, whatever comes later.
            ("1", "1", "$100.00", TUE, true),
            ("1", "1", "$100.00", TUE, false),
        ],
    );
    check(
        BASELINE,
        &[
            // Declined first occurrence: still canonical, so the small retry is a duplicate.
            ("1", "1", "$6000.00", TUE, false),
            ("1", "1", "$1.00", TUE, false),
            ("2", "1", "$1.00", TUE, true),
        ],
    );
}

/// "Any later line with the same `id` is declined, whether it is an exact replay ..."
#[test]
fn exact_replay_is_declined() {
    let first = line("15887", "528", "$3318.47", TUE);
    let other = line("30081", "154", "$1413.18", TUE);
    let input = format!("{first}\n{first}\n{other}\n{first}\n{other}\n");
    let run = run_full(BASELINE, input.as_bytes());
    let expected = out("15887", "528", true)
        + &out("15887", "528", false)
        + &out("30081", "154", true)
        + &out("15887", "528", false)
        + &out("30081", "154", false);
    assert_eq!(run.out, expected);
    let duplicates = &run.report("idempotency").incidents;
    assert_eq!((duplicates[0].count, duplicates[0].first_seqs.as_slice()), (3, &[2u64, 4, 5][..]));
}

/// "... or carries a different customer, amount or time." Idempotency is "global, by `id` across all customers".
#[test]
fn reused_id_is_declined_whatever_its_customer_amount_or_time() {
    check(
        BASELINE,
        &[
            ("1", "1", "$1.00", TUE, true),
            ("1", "2", "$1.00", TUE, false),
            ("1", "1", "$2.00", TUE, false),
            ("1", "1", "$1.00", WED, false),
            ("1", "1", "$1.00", "2000-01-04T12:00:00+00:00", false),
            ("1", "3", "$9.99", "2001-06-01T00:00:00Z", false),
            ("1", "1", "USD1.00", TUE, false),
            // Another customer is untouched by the duplicates.
            ("2", "2", "$5000.00", TUE, true),
        ],
    );
}

/// "A declined duplicate ... does not count as an attempt."
#[test]
fn declined_duplicate_does_not_count_as_an_attempt() {
    check(
        BASELINE,
        &[
            ("1", "1", "$1.00", TUE, true),
            ("1", "1", "$1.00", TUE, false),
            ("1", "1", "$1.00", TUE, false),
            ("1", "1", "$1.00", TUE, false),
            ("2", "1", "$1.00", TUE, true),
            ("3", "1", "$1.00", TUE, true),
            // The 4th canonical attempt.
            ("4", "1", "$1.00", TUE, false),
        ],
    );
}

/// "A declined duplicate touches no window"
#[test]
fn declined_duplicate_touches_no_window() {
    check(
        BASELINE,
        &[
            ("1", "1", "$1000.00", TUE, true),
            ("1", "1", "$4000.00", TUE, false),
            ("2", "1", "$4000.00", TUE, true),
            ("10", "2", "$5000.00", MON, true),
            ("11", "2", "$5000.00", TUE, true),
            ("12", "2", "$5000.00", WED, true),
            ("12", "2", "$5000.00", THU, false),
            ("13", "2", "$5000.00", THU, true),
        ],
    );
    // Nor the prime slot of the day.
    check(EXP_MP, &[("2", "1", "$1.00", MON, true), ("2", "1", "$1.00", TUE, false), ("3", "2", "$1.00", TUE, true)]);
}

// ---------------------------------------------------------------------------------------------------------------
// baseline scenario
// ---------------------------------------------------------------------------------------------------------------

/// "attempts: this would be the customer's 4th or later canonical attempt on this UTC day"
#[test]
fn fourth_canonical_attempt_of_a_day_is_declined() {
    check(
        BASELINE,
        &[
            ("1", "1", "$1.00", TUE, true),
            ("2", "1", "$1.00", TUE, true),
            ("3", "1", "$1.00", TUE, true),
            ("4", "1", "$1.00", TUE, false),
            ("5", "1", "$1.00", TUE, false),
            // Per customer ...
            ("6", "2", "$1.00", TUE, true),
            // ... and per day.
            ("7", "1", "$1.00", WED, true),
        ],
    );
}

/// "(every canonical attempt counts, accepted or declined)"
#[test]
fn declined_attempts_count_toward_the_attempt_limit() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$6000.00", TUE, false),
            ("2", "1", "$6000.00", TUE, false),
            ("3", "1", "$100.00", TUE, true),
            ("4", "1", "$100.00", TUE, false),
            // Declined by the 4th-attempt check, it still counts: the 5th is declined too.
            ("5", "1", "$100.00", TUE, false),
        ],
    );
    assert_eq!(run.count("policies", "declined by daily attempts"), 2);
}

/// "daily amount: the customer's accepted total for the day plus this amount exceeds 5,000.00"
#[test]
fn daily_amount_over_5000_is_declined() {
    check(
        BASELINE,
        &[
            ("1", "1", "$5000.01", TUE, false),
            ("2", "2", "$3000.00", TUE, true),
            ("3", "2", "$2000.01", TUE, false),
            // Per customer ...
            ("4", "3", "$2000.01", TUE, true),
            // ... and per day.
            ("5", "2", "$5000.00", WED, true),
        ],
    );
}

/// "(a total of exactly 5,000.00 is allowed)"
#[test]
fn exactly_5000_in_a_day_is_allowed() {
    check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", TUE, true),
            ("2", "2", "$2500.00", TUE, true),
            ("3", "2", "$2499.99", TUE, true),
            ("4", "2", "$0.01", TUE, true),
            ("5", "1", "$0.01", TUE, false),
        ],
    );
}

/// "weekly amount: the customer's accepted total for the week plus this amount exceeds 20,000.00"
#[test]
fn weekly_amount_over_20000_is_declined() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", MON, true),
            ("2", "1", "$5000.00", TUE, true),
            ("3", "1", "$5000.00", WED, true),
            ("4", "1", "$5000.00", THU, true),
            ("5", "1", "$0.01", FRI, false),
            ("6", "1", "$1.00", SUN2, false),
            ("7", "2", "$5000.00", FRI, true),
            ("8", "1", "$5000.00", MON2, true),
        ],
    );
    assert_eq!(run.count("policies", "declined by weekly amount"), 2);
}

/// "(exactly 20,000.00 is allowed)"
#[test]
fn exactly_20000_in_a_week_is_allowed() {
    check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", MON, true),
            ("2", "1", "$5000.00", TUE, true),
            ("3", "1", "$5000.00", WED, true),
            ("4", "1", "$4999.99", THU, true),
            ("5", "1", "$0.01", SUN2, true),
            ("6", "1", "$0.01", SUN2, false),
        ],
    );
}

/// "the day and week totals only when accepted": a declined amount adds nothing to the day.
#[test]
fn declined_amount_does_not_count_toward_the_daily_total() {
    check(
        BASELINE,
        &[("1", "1", "$4000.00", TUE, true), ("2", "1", "$2000.00", TUE, false), ("3", "1", "$1000.00", TUE, true)],
    );
}

/// "the day and week totals only when accepted": a declined amount adds nothing to the week.
#[test]
fn declined_amount_does_not_count_toward_the_weekly_total() {
    check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", MON, true),
            ("2", "1", "$5000.00", TUE, true),
            ("3", "1", "$5000.00", WED, true),
            ("4", "1", "$4000.00", THU, true),
            // Declined by the week (21,000.00): adds nothing to the day nor the week.
            ("5", "1", "$2000.00", FRI, false),
            // Declined by the day: adds nothing to the week.
            ("6", "1", "$5000.01", FRI, false),
            ("7", "1", "$1000.00", FRI, true),
        ],
    );
}

/// "For each canonical attempt, in this order, the first failing check declines it": attempts first.
#[test]
fn attempts_are_checked_before_amounts() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", MON, true),
            ("2", "1", "$5000.00", TUE, true),
            ("3", "1", "$5000.00", WED, true),
            ("4", "1", "$5000.00", THU, true),
            ("5", "1", "$1.00", THU, false),
            ("6", "1", "$1.00", THU, false),
            // 4th attempt, over the day and over the week: declined by the attempts.
            ("7", "1", "$5000.01", THU, false),
        ],
    );
    assert_eq!(run.count("policies", "declined by daily attempts"), 1);
    assert_eq!(run.count("policies", "declined by daily amount"), 2);
    assert_eq!(run.count("policies", "declined by weekly amount"), 0);
}

/// "in this order ... 2. daily amount ... 3. weekly amount"
#[test]
fn daily_amount_is_checked_before_weekly_amount() {
    let run = check(
        BASELINE,
        &[
            ("1", "1", "$5000.00", MON, true),
            ("2", "1", "$5000.00", TUE, true),
            ("3", "1", "$5000.00", WED, true),
            ("4", "1", "$5000.00", THU, true),
            // Over the day and over the week.
            ("5", "1", "$5000.01", FRI, false),
            // Over the week only.
            ("6", "1", "$5000.00", FRI, false),
        ],
    );
    assert_eq!(run.count("policies", "declined by daily amount"), 1);
    assert_eq!(run.count("policies", "declined by weekly amount"), 1);
    assert_eq!(run.count("policies", "accepted"), 4);
}

/// "Then the windows are updated: the day's attempt count always; the day and week totals only when accepted."
#[test]
fn accepted_attempt_adds_to_both_day_and_week() {
    check(
        BASELINE,
        &[
            ("1", "1", "$4000.00", MON, true),
            ("2", "1", "$1000.01", MON, false),
            ("3", "1", "$1000.00", MON, true),
            ("4", "1", "$5000.00", TUE, true),
            ("5", "1", "$5000.00", WED, true),
            ("6", "1", "$4000.00", THU, true),
            ("7", "1", "$1000.01", FRI, false),
            ("8", "1", "$1000.00", FRI, true),
        ],
    );
}

/// baseline has neither the Monday multiplier nor the prime gate.
#[test]
fn baseline_has_no_monday_multiplier_and_no_prime_gate() {
    check(
        BASELINE,
        &[
            ("2", "1", "$5000.00", MON, true),
            ("3", "2", "$2500.01", MON, true),
            ("5", "3", "$1.00", MON, true),
            ("7", "4", "$1.00", MON, true),
        ],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// exp_mp scenario
// ---------------------------------------------------------------------------------------------------------------

/// "Monday multiplier: on a Monday (UTC), the effective amount is the amount times 2. Every amount check and
/// every total uses the effective amount."
#[test]
fn monday_amount_counts_double_toward_the_daily_limit() {
    check(
        EXP_MP,
        &[
            ("10", "1", "$2500.00", MON, true),
            ("12", "1", "$0.01", MON, false),
            ("14", "2", "$2500.01", MON, false),
            ("16", "2", "$2500.00", MON, true),
            // Not on other days.
            ("18", "3", "$5000.00", TUE, true),
            ("20", "4", "$5000.00", SUN, true),
            ("22", "1", "$5000.00", TUE, true),
        ],
    );
}

/// "Every amount check and every total uses the effective amount": the week too.
#[test]
fn monday_effective_amount_counts_in_the_weekly_total() {
    let rows = |friday_ok| {
        vec![
            ("10", "1", "$2500.00", MON, true),
            ("12", "1", "$5000.00", TUE, true),
            ("14", "1", "$5000.00", WED, true),
            ("16", "1", "$5000.00", THU, true),
            // exp_mp: 5,000 + 15,000 = 20,000.00, full. baseline: 17,500.00.
            ("18", "1", "$2500.00", FRI, friday_ok),
        ]
    };
    check(EXP_MP, &rows(false));
    check(BASELINE, &rows(true));
}

/// "on a Monday (UTC)"
#[test]
fn monday_is_the_utc_weekday() {
    check(
        EXP_MP,
        &[
            // Local Monday at +02:00, Sunday 23:00 UTC: not doubled.
            ("10", "1", "$5000.00", "2000-01-03T01:00:00+02:00", true),
            // Local Sunday at -02:00, Monday 01:00 UTC: doubled.
            ("12", "2", "$2500.01", "2000-01-02T23:00:00-02:00", false),
            ("14", "2", "$2500.00", "2000-01-02T23:00:00-02:00", true),
            // Tuesday 00:00 UTC is no longer Monday.
            ("16", "3", "$5000.00", "2000-01-04T00:00:00Z", true),
        ],
    );
}

/// "an effective amount above 9,999.00 is declined" (the prime cap). With the default limits the cap never
/// changes a decision: test it with a config that raises the daily limit.
#[test]
fn prime_cap_declines_with_raised_daily_limit() {
    let run = check(
        &exp_mp_raised(),
        &[
            ("7", "1", "$9999.01", TUE, false),
            // Not prime: the raised daily limit allows it.
            ("8", "2", "$9999.01", TUE, true),
            ("9", "3", "$20000.00", TUE, true),
            // Exactly the cap is allowed.
            ("11", "4", "$9999.00", TUE, true),
        ],
    );
    assert_eq!(run.count("policies", "declined by prime amount cap"), 1);
    // With the default limits the same prime attempt is declined anyway.
    check(EXP_MP, &[("7", "1", "$9999.01", TUE, false), ("8", "2", "$9999.01", TUE, false)]);
}

/// "Every amount check ... uses the effective amount": the prime cap on a Monday.
#[test]
fn prime_cap_applies_to_the_effective_amount() {
    check(
        &exp_mp_raised(),
        &[
            // 5,000.00 doubled is 10,000.00: over the cap.
            ("13", "1", "$5000.00", MON, false),
            // 4,999.50 doubled is exactly 9,999.00.
            ("17", "2", "$4999.50", MON, true),
            // Tuesday: not doubled.
            ("19", "3", "$5000.00", TUE, true),
        ],
    );
}

/// "if the `id`, read as an integer, is prime (1 and 0 are not)"
#[test]
fn one_and_zero_are_not_prime() {
    check(
        EXP_MP,
        &[
            // 2 is prime: it takes Tuesday's slot.
            ("2", "1", "$1.00", TUE, true),
            ("1", "2", "$1.00", TUE, true),
            ("0", "3", "$1.00", TUE, true),
            ("00", "4", "$1.00", TUE, true),
            ("001", "5", "$1.00", TUE, true),
            ("4", "6", "$1.00", TUE, true),
            ("561", "7", "$1.00", TUE, true),
            // 00002 is 2 again: the slot is taken.
            ("00002", "8", "$1.00", TUE, false),
            ("97", "8", "$1.00", TUE, false),
        ],
    );
}

/// "only one prime-id attempt may be accepted per UTC day across all customers: once one has been accepted that
/// day, later prime-id attempts that day are declined."
#[test]
fn only_one_prime_id_attempt_is_accepted_per_utc_day_across_customers() {
    let run = check(
        EXP_MP,
        &[
            ("2", "1", "$1.00", TUE, true),
            ("3", "1", "$1.00", TUE, false),
            ("5", "2", "$1.00", TUE, false),
            ("4", "2", "$1.00", TUE, true),
            ("99991", "3", "$0.00", TUE, false),
            // Each UTC day has its own slot.
            ("7", "2", "$1.00", "2000-01-04T23:59:59Z", false),
            ("11", "3", "$1.00", "2000-01-05T00:00:00Z", true),
            // 00:30 at +01:00 is Tuesday 23:30 UTC.
            ("13", "4", "$1.00", "2000-01-05T00:30:00+01:00", false),
            // 23:00 at -02:00 on Wednesday is Thursday 01:00 UTC.
            ("17", "5", "$1.00", "2000-01-05T23:00:00-02:00", true),
            // Lines out of time order: Monday's slot is still free.
            ("19", "6", "$1.00", MON, true),
        ],
    );
    assert_eq!(run.count("policies", "declined by prime daily accepts"), 5);
}

/// "A declined prime attempt does not use up the day's slot."
#[test]
fn declined_prime_attempt_does_not_use_the_days_slot() {
    check(
        EXP_MP,
        &[
            ("10", "1", "$5000.00", TUE, true),
            // Declined by the daily amount.
            ("7", "1", "$0.01", TUE, false),
            // Declined by the cap.
            ("11", "2", "$9999.01", TUE, false),
            // Declined by the weekly amount.
            ("20", "3", "$5000.00", WED, true),
            ("22", "3", "$5000.00", THU, true),
            ("24", "3", "$5000.00", FRI, true),
            ("26", "3", "$5000.00", SAT, true),
            ("13", "3", "$5000.00", TUE, false),
            // Declined by the attempts.
            ("28", "4", "$1.00", TUE, true),
            ("30", "4", "$1.00", TUE, true),
            ("32", "4", "$1.00", TUE, true),
            ("17", "4", "$1.00", TUE, false),
            // Declined as a duplicate (of the prime id 7, itself declined).
            ("7", "5", "$1.00", TUE, false),
            // The slot is still free.
            ("19", "5", "$1.00", TUE, true),
            ("23", "6", "$1.00", TUE, false),
        ],
    );
    // Declined as malformed.
    let input = format!("{}\n{}\n", line("3", "1", "$1.0", TUE), line("5", "2", "$1.00", TUE));
    assert_eq!(output_of(EXP_MP, &input), out("3", "1", false) + &out("5", "2", true));
}

/// "Order of checks: attempts, prime gate (cap, then global daily slot), daily amount, weekly amount."
#[test]
fn exp_mp_checks_run_in_order() {
    let run = check(
        &exp_mp_raised(),
        &[
            // Attempts before the prime gate: a 4th attempt with a prime id over the cap.
            ("10", "1", "$1.00", TUE, true),
            ("12", "1", "$1.00", TUE, true),
            ("14", "1", "$1.00", TUE, true),
            ("3", "1", "$10000.00", TUE, false),
            // Cap before slot: the slot is free, yet a prime id over the cap is declined.
            ("5", "2", "$9999.01", TUE, false),
            ("7", "2", "$1.00", TUE, true),
            // Cap before slot: slot taken and over the cap.
            ("11", "3", "$9999.01", TUE, false),
            // Slot before the daily amount: slot taken and over the day.
            ("16", "4", "$49999.00", TUE, true),
            ("13", "4", "$1.01", TUE, false),
            ("18", "4", "$1.01", TUE, false),
        ],
    );
    assert_eq!(run.count("policies", "declined by daily attempts"), 1);
    assert_eq!(run.count("policies", "declined by prime amount cap"), 2);
    assert_eq!(run.count("policies", "declined by prime daily accepts"), 1);
    assert_eq!(run.count("policies", "declined by daily amount"), 1);
    // Daily before weekly under exp_mp.
    let run = check(
        EXP_MP,
        &[
            ("20", "5", "$2500.00", MON, true),
            ("22", "5", "$5000.00", TUE, true),
            ("24", "5", "$5000.00", WED, true),
            ("26", "5", "$5000.00", THU, true),
            ("28", "5", "$5000.01", FRI, false),
            ("30", "5", "$0.01", FRI, false),
        ],
    );
    assert_eq!(run.count("policies", "declined by daily amount"), 1);
    assert_eq!(run.count("policies", "declined by weekly amount"), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Limits, multipliers and switches are configuration
// ---------------------------------------------------------------------------------------------------------------

/// "Daily attempts ... are parameters of the scenario's config file"
#[test]
fn daily_attempts_is_a_param() {
    let config = edit(BASELINE, "daily_attempts: 3", "daily_attempts: 5");
    let rows: Vec<Row<'_>> =
        ["1", "2", "3", "4", "5", "6"].iter().map(|&id| (id, "1", "$1.00", TUE, id != "6")).collect();
    check(&config, &rows);
    let config = edit(BASELINE, "daily_attempts: 3", "daily_attempts: 1");
    check(&config, &[("1", "1", "$1.00", TUE, true), ("2", "1", "$1.00", TUE, false), ("3", "1", "$1.00", WED, true)]);
}

/// "Daily amount ... Config values for money are decimals (`5000.00`)."
#[test]
fn daily_amount_is_a_decimal_param() {
    let config = edit(BASELINE, "daily_amount: 5000.00", "daily_amount: 100.50");
    check(
        &config,
        &[("1", "1", "$100.50", TUE, true), ("2", "1", "$0.01", TUE, false), ("3", "2", "$100.51", TUE, false)],
    );
    let config = edit(BASELINE, "daily_amount: 5000.00", "daily_amount: 50000.00");
    check(&config, &[("1", "1", "$20000.00", TUE, true), ("2", "1", "$0.01", TUE, false)]);
}

/// "weekly amount ... are parameters"
#[test]
fn weekly_amount_is_a_param() {
    let config = edit(BASELINE, "weekly_amount: 20000.00", "weekly_amount: 1000.5");
    check(
        &config,
        &[
            ("1", "1", "$500.00", MON, true),
            ("2", "1", "$500.50", TUE, true),
            ("3", "1", "$0.01", WED, false),
            ("4", "1", "$1000.50", MON2, true),
        ],
    );
}

/// "the Monday multiplier ... are parameters": any multiplier, fractions too, computed exactly.
#[test]
fn monday_multiplier_is_a_param() {
    let config = edit(BASELINE, "monday_multiplier: 1", "monday_multiplier: 1.5");
    check(
        &config,
        &[
            // 3,333.33 x 1.5 = 4,999.995
            ("1", "1", "$3333.33", MON, true),
            // + 0.015 = 5,000.010
            ("2", "1", "$0.01", MON, false),
            // 3,333.34 x 1.5 = 5,000.01
            ("3", "2", "$3333.34", MON, false),
            ("4", "3", "$3333.34", TUE, true),
        ],
    );
    let config = edit(EXP_MP, "monday_multiplier: 2", "monday_multiplier: 1");
    check(&config, &[("10", "1", "$5000.00", MON, true)]);
    let config = edit(EXP_MP, "monday_multiplier: 2", "monday_multiplier: 3");
    check(&config, &[("10", "1", "$1666.66", MON, true), ("12", "2", "$1666.67", MON, false)]);
}

/// "the prime gate (on/off ...)"
#[test]
fn prime_gate_switch_is_a_param() {
    let on = edit(BASELINE, "enabled: false", "enabled: true");
    check(&on, &[("2", "1", "$1.00", TUE, true), ("3", "2", "$1.00", TUE, false)]);
    let off = edit(EXP_MP, "enabled: true", "enabled: false");
    check(&off, &[("2", "1", "$1.00", TUE, true), ("3", "2", "$1.00", TUE, true)]);
    // Without a prime_gate block the gate is off.
    let absent = edit(
        EXP_MP,
        "      prime_gate:\n        enabled: true\n        amount_cap: 9999.00\n        daily_accepts: 1\n",
        "",
    );
    check(&absent, &[("2", "1", "$1.00", TUE, true), ("3", "2", "$1.00", TUE, true)]);
}

/// "the prime gate (... cap ...)"
#[test]
fn prime_cap_is_a_param() {
    let config = edit(EXP_MP, "amount_cap: 9999.00", "amount_cap: 100.00");
    check(
        &config,
        &[("2", "1", "$100.01", TUE, false), ("3", "2", "$100.00", TUE, true), ("4", "3", "$100.01", TUE, true)],
    );
}

/// "the prime gate (... per-day count)"
#[test]
fn prime_daily_accepts_is_a_param() {
    let config = edit(EXP_MP, "daily_accepts: 1", "daily_accepts: 2");
    check(
        &config,
        &[
            ("2", "1", "$1.00", TUE, true),
            ("3", "2", "$1.00", TUE, true),
            ("5", "3", "$1.00", TUE, false),
            ("7", "3", "$1.00", WED, true),
        ],
    );
    let config = edit(EXP_MP, "daily_accepts: 1", "daily_accepts: 0");
    check(&config, &[("2", "1", "$1.00", TUE, false), ("4", "1", "$1.00", TUE, true)]);
}

/// A misspelt key is refused with its key path and line, not ignored.
#[test]
fn typo_in_a_param_key_fails_with_its_path_and_line() {
    let config = edit(BASELINE, "daily_amount: 5000.00", "daily_amout: 5000.00");
    let e = config_error(&config);
    assert_eq!(e.origin, "test.yml");
    assert_eq!(e.path, "nodes[4].params.daily_amout");
    assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "daily_amout")), "{e}");
    assert!(e.message.contains("daily_amout"), "{e}");
    let config = edit(EXP_MP, "week_start: monday", "week_strat: monday");
    let e = config_error(&config);
    assert_eq!(e.path, "nodes[1].params.week_strat");
    assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "week_strat")), "{e}");
    let config = edit(EXP_MP, "amount_cap: 9999.00", "amount_cap: 9999.00\n        amount_kap: 1.00");
    let e = config_error(&config);
    assert_eq!(e.path, "nodes[4].params.prime_gate.amount_kap");
    assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "amount_kap")), "{e}");
}

/// "Config values for money are decimals": a negative limit is refused.
#[test]
fn negative_limit_fails() {
    let config = edit(BASELINE, "daily_amount: 5000.00", "daily_amount: -5000.00");
    let e = config_error(&config);
    assert_eq!(e.path, "nodes[4].params.daily_amount");
    assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "daily_amount")), "{e}");
    let config = edit(EXP_MP, "weekly_amount: 20000.00", "weekly_amount: -1");
    assert_eq!(config_error(&config).path, "nodes[4].params.weekly_amount");
    let config = edit(EXP_MP, "daily_attempts: 3", "daily_attempts: -3");
    assert_eq!(config_error(&config).path, "nodes[4].params.daily_attempts");
}

/// Money in a config has at most two decimals and is a number.
#[test]
fn limit_that_is_not_a_money_decimal_fails() {
    for bad in ["5000.001", "5,000.00", "$5000.00", "five", "5000.", ""] {
        let config = edit(BASELINE, "daily_amount: 5000.00", &format!("daily_amount: {bad}"));
        let e = config_error(&config);
        assert_eq!(e.path, "nodes[4].params.daily_amount", "{bad}: {e}");
    }
}

/// The Monday multiplier is at least 1.
#[test]
fn multiplier_below_one_fails() {
    for bad in ["0.5", "0", "0.9999", "-2"] {
        let config = edit(EXP_MP, "monday_multiplier: 2", &format!("monday_multiplier: {bad}"));
        let e = config_error(&config);
        assert_eq!(e.path, "nodes[3].params.monday_multiplier", "{bad}: {e}");
        assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "monday_multiplier")), "{bad}: {e}");
    }
}

/// The week start is a weekday name.
#[test]
fn unknown_week_start_fails() {
    for bad in ["funday", "Monday", "1", "mon"] {
        let config = edit(BASELINE, "week_start: monday", &format!("week_start: {bad}"));
        let e = config_error(&config);
        assert_eq!(e.path, "nodes[1].params.week_start", "{bad}: {e}");
        assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "week_start")), "{bad}: {e}");
    }
}

#[test]
fn unknown_node_kind_fails() {
    let config = edit(BASELINE, "  - kind: format", "  - kind: formatter");
    let e = config_error(&config);
    assert_eq!(e.path, "nodes[5].kind");
    assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "kind: formatter")), "{e}");
    assert!(e.message.contains("formatter"), "{e}");
}

#[test]
fn policies_before_time_keys_fails() {
    let policies = concat!(
        "  - kind: policies\n",
        "    params:\n",
        "      daily_attempts: 3\n",
        "      daily_amount: 5000.00\n",
        "      weekly_amount: 20000.00\n",
        "      prime_gate:\n",
        "        enabled: true\n",
        "        amount_cap: 9999.00\n",
        "        daily_accepts: 1\n",
    );
    let without = edit(EXP_MP, policies, "");
    let config = edit(&without, "  - kind: time_keys\n", &format!("{policies}  - kind: time_keys\n"));
    assert_eq!(config.matches("kind: policies").count(), 1);
    let e = config_error(&config);
    assert_eq!(e.path, "nodes[1].kind", "{e}");
    assert_eq!(e.pos.map(|p| p.line), Some(line_of(&config, "kind: policies")), "{e}");
    assert!(e.message.contains("time_keys"), "{e}");
}

/// The shipped configs build as they are.
#[test]
fn shipped_configs_build() {
    for config in [BASELINE, EXP_MP] {
        let config = PipelineConfig::from_yaml("test.yml", config).unwrap();
        let pipeline = registry().build(&config, &["line"], &["record"]).unwrap();
        let kinds: Vec<&str> = pipeline.stages.iter().map(|s| s.info.kind).collect();
        assert_eq!(kinds, ["parse", "time_keys", "idempotency", "features", "policies", "format"]);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------------------------

/// "A line is malformed when it is not valid UTF-8"
#[test]
fn invalid_utf8_line_is_malformed() {
    assert_malformed(
        b"{\"id\":\"77\xff\",\"customer_id\":\"9\xfe\",\"load_amount\":\"$1.00\",\"time\":\"2000-01-04T00:00:00Z\"}",
        ("", ""),
        "UTF-8",
    );
    assert_malformed(b"\xc3\x28", ("", ""), "UTF-8");
    // An overlong encoding and a lone surrogate (CESU) are not UTF-8 either.
    assert_malformed(b"{\"id\":\"\xc0\xb7\"}", ("", ""), "UTF-8");
    assert_malformed(b"{\"id\":\"\xed\xa0\x80\"}", ("", ""), "UTF-8");
}

/// "not a JSON object": text that is not JSON at all.
#[test]
fn line_that_is_not_json_is_malformed() {
    for bad in [
        "oops",
        "{",
        r#"{"id":"77","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z""#,
        r#"{"id":"77","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}}"#,
        r#"{"id":"77","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"} {}"#,
        r#"{"id":"77","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z",}"#,
        r#"{'id':'77','customer_id':'9','load_amount':'$1.00','time':'2000-01-04T00:00:00Z'}"#,
        r#"{id:"77",customer_id:"9",load_amount:"$1.00",time:"2000-01-04T00:00:00Z"}"#,
    ] {
        assert_malformed(bad.as_bytes(), ("", ""), "JSON");
    }
}

/// "not a JSON object": JSON values of another type.
#[test]
fn json_that_is_not_an_object_is_malformed() {
    for bad in [
        "[]",
        r#"[{"id":"77","customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}]"#,
        "\"77\"",
        "77",
        "null",
        "true",
    ] {
        assert_malformed(bad.as_bytes(), ("", ""), "object");
    }
}

/// "lacks one of the four fields"
#[test]
fn line_lacking_a_field_is_malformed() {
    assert_malformed(br#"{"customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#, ("", "9"), "id");
    assert_malformed(br#"{"id":"77","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#, ("77", ""), "customer_id");
    assert_malformed(br#"{"id":"77","customer_id":"9","time":"2000-01-04T00:00:00Z"}"#, ("77", "9"), "load_amount");
    assert_malformed(br#"{"id":"77","customer_id":"9","load_amount":"$1.00"}"#, ("77", "9"), "time");
    assert_malformed(
        br#"{"id":"77","customer_id":"9","amount":"$1.00","timestamp":"2000-01-04T00:00:00Z"}"#,
        ("77", "9"),
        "missing",
    );
    assert_malformed(b"{}", ("", ""), "missing");
}

/// "has a field that is not a string"
#[test]
fn field_that_is_not_a_string_is_malformed() {
    for value in ["77", "null", "true", "[\"77\"]", "{\"id\":\"77\"}", "7.7e1"] {
        let id = format!(r#"{{"id":{value},"customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}}"#);
        assert_malformed(id.as_bytes(), ("", "9"), "id");
        let customer =
            format!(r#"{{"id":"77","customer_id":{value},"load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}}"#);
        assert_malformed(customer.as_bytes(), ("77", ""), "customer_id");
        let amount = format!(r#"{{"id":"77","customer_id":"9","load_amount":{value},"time":"2000-01-04T00:00:00Z"}}"#);
        assert_malformed(amount.as_bytes(), ("77", "9"), "load_amount");
        let time = format!(r#"{{"id":"77","customer_id":"9","load_amount":"$1.00","time":{value}}}"#);
        assert_malformed(time.as_bytes(), ("77", "9"), "time");
    }
    assert_malformed(
        br#"{"id":"77","customer_id":"9","load_amount":1.00,"time":"2000-01-04T00:00:00Z"}"#,
        ("77", "9"),
        "load_amount",
    );
}

/// "an `id` ... that is empty"
#[test]
fn empty_id_is_malformed() {
    for id in ["", " ", "\\t\\n"] {
        assert_malformed(line(id, "9", "$1.00", TUE).as_bytes(), ("", "9"), "id");
    }
}

/// "a ... `customer_id` that is empty"
#[test]
fn empty_customer_id_is_malformed() {
    for customer in ["", "  ", "\\r"] {
        assert_malformed(line("77", customer, "$1.00", TUE).as_bytes(), ("77", ""), "customer_id");
    }
}

/// "an `id` ... that is ... not all digits"
#[test]
fn id_that_is_not_all_digits_is_malformed() {
    for id in ["A77", "77a", "7 7", "-77", "+77", "77.0", "7e1", "0x4D", "٧٧", "７７"] {
        assert_malformed(line(id, "9", "$1.00", TUE).as_bytes(), (id, "9"), "id");
    }
}

/// "a ... `customer_id` that is ... not all digits"
#[test]
fn customer_id_that_is_not_all_digits_is_malformed() {
    for customer in ["C9", "9a", "9 9", "-9", "+9", "9.0", "null", "٩"] {
        assert_malformed(line("77", customer, "$1.00", TUE).as_bytes(), ("77", customer), "customer_id");
    }
}

/// "an amount that does not match the grammar": see also the amount tests above.
#[test]
fn bad_amount_is_malformed() {
    let run = run_full(
        BASELINE,
        format!("{}\n{}\n{}\n", line("1", "1", "12.3", TUE), line("2", "1", "$1.00", TUE), line("3", "1", "1.", TUE))
            .as_bytes(),
    );
    assert_eq!(run.out, out("1", "1", false) + &out("2", "1", true) + &out("3", "1", false));
    let incidents = &run.report("parse").incidents;
    assert_eq!(incidents.len(), 1);
    assert_eq!((incidents[0].count, incidents[0].first_seqs.as_slice()), (2, &[1u64, 3][..]));
}

/// "or a bad timestamp"
#[test]
fn bad_timestamp_is_malformed() {
    let run = run_full(
        BASELINE,
        format!(
            "{}\n{}\n{}\n",
            line("1", "1", "$1.00", "2000-01-04T00:00:00"),
            line("2", "1", "$1.00", "2000-01-04T00:00:60Z"),
            line("3", "1", "$1.00", "2000-02-30T00:00:00Z")
        )
        .as_bytes(),
    );
    assert_eq!(run.out, out("1", "1", false) + &out("2", "1", false) + &out("3", "1", false));
    let incidents = &run.report("parse").incidents;
    assert_eq!(incidents.len(), 1);
    assert_eq!((incidents[0].count, incidents[0].first_seqs.as_slice()), (3, &[1u64, 2, 3][..]));
}

/// "blank lines ... are malformed too."
#[test]
fn blank_line_is_malformed() {
    for bad in ["", " ", "\t", "  \t  "] {
        assert_malformed(bad.as_bytes(), ("", ""), "blank");
    }
    let input = format!("{}\n\n\n{}\n", line("1", "1", "$1.00", TUE), line("2", "1", "$1.00", TUE));
    let run = run_full(BASELINE, input.as_bytes());
    assert_eq!(run.out, out("1", "1", true) + &out("", "", false) + &out("", "", false) + &out("2", "1", true));
    assert_eq!(run.report("parse").incidents[0].first_seqs, vec![2, 3]);
}

/// "objects with a repeated key are malformed too."
#[test]
fn repeated_key_is_malformed() {
    let ok = r#""customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z""#;
    assert_malformed(format!(r#"{{"id":"77","id":"77",{ok}}}"#).as_bytes(), ("77", "9"), "repeated");
    assert_malformed(format!(r#"{{"id":"77",{ok},"id":"78"}}"#).as_bytes(), ("77", "9"), "repeated");
    assert_malformed(
        format!(r#"{{"id":"77",{ok},"time":"2000-01-04T00:00:00Z"}}"#).as_bytes(),
        ("77", "9"),
        "repeated",
    );
    assert_malformed(format!(r#"{{"id":"77",{ok},"load_amount":"$2.00"}}"#).as_bytes(), ("77", "9"), "repeated");
    // Any key: an unknown field repeated too.
    assert_malformed(format!(r#"{{"id":"77",{ok},"note":1,"note":2}}"#).as_bytes(), ("77", "9"), "repeated");
    // Keys are compared after unescaping.
    assert_malformed(format!(r#"{{"id":"77",{ok},"\u0069d":"77"}}"#).as_bytes(), ("77", "9"), "repeated");
}

/// "A line ending in CRLF is read without its CR"
#[test]
fn crlf_line_is_read_without_its_cr() {
    let a = line("1", "1", "$4000.00", TUE);
    let b = line("2", "1", "$1000.00", TUE);
    let c = line("3", "1", "$0.01", TUE);
    let input = format!("{a}\r\n{b}\r\n\r\n{c}\r\n");
    let result = run_full(BASELINE, input.as_bytes());
    // Four lines: the third is blank once its CR is removed.
    assert_eq!(result.out, out("1", "1", true) + &out("2", "1", true) + &out("", "", false) + &out("3", "1", false));
    assert_eq!(result.report("parse").incidents[0].first_seqs, vec![3]);
    assert!(result.report("parse").incidents[0].reason.contains("blank"));
    // Mixed endings, and a CRLF on the last line, read as LF.
    let mixed = format!("{a}\r\n{b}\n{c}\r\n");
    assert_eq!(run_full(BASELINE, mixed.as_bytes()).out, output_of(BASELINE, &format!("{a}\n{b}\n{c}\n")));
    assert_eq!(run_full(BASELINE, format!("{a}\r").as_bytes()).out, out("1", "1", true));
}

/// "the last line needs no newline."
#[test]
fn last_line_needs_no_newline() {
    let a = line("1", "1", "$4000.00", TUE);
    let b = line("2", "1", "$1000.00", TUE);
    let expected = out("1", "1", true) + &out("2", "1", true);
    assert_eq!(output_of(BASELINE, &format!("{a}\n{b}")), expected);
    assert_eq!(output_of(BASELINE, &format!("{a}\n{b}\n")), expected);
    assert_eq!(output_of(BASELINE, &a), out("1", "1", true));
    // A final newline does not make an empty line after it; a blank line before the end does count.
    assert_eq!(output_of(BASELINE, &format!("{a}\n{b}\n\n")), expected + &out("", "", false));
}

/// "its output line is `accepted:false` with the trimmed `id` and `customer_id` if they are JSON strings"
#[test]
fn malformed_line_echoes_its_trimmed_string_ids() {
    assert_malformed(line(" 77 ", " C9 ", "$1.00", TUE).as_bytes(), ("77", "C9"), "customer_id");
    assert_malformed(line("\\t77\\n", "9", "12", TUE).as_bytes(), ("77", "9"), "load_amount");
    assert_malformed(line("077", "009", "$1.00", "2000-01-04").as_bytes(), ("077", "009"), "time");
    // Echoed as JSON strings, escaped where needed.
    let bad = r#"{"id":"7\"7","customer_id":"a\\b\u0001","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#;
    let run = run_full(BASELINE, format!("{bad}\n").as_bytes());
    assert_eq!(run.out, "{\"id\":\"7\\\"7\",\"customer_id\":\"a\\\\b\\u0001\",\"accepted\":false}\n");
}

/// "(empty strings otherwise)"
#[test]
fn malformed_line_echoes_empty_ids_when_they_are_not_strings() {
    assert_malformed(
        br#"{"id":77,"customer_id":9,"load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#,
        ("", ""),
        "string",
    );
    assert_malformed(
        br#"{"id":null,"customer_id":"9","load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#,
        ("", "9"),
        "id",
    );
    assert_malformed(
        br#"{"customer_id":["9"],"load_amount":"$1.00","time":"2000-01-04T00:00:00Z"}"#,
        ("", ""),
        "missing",
    );
    assert_malformed(b"not json", ("", ""), "JSON");
}

/// "It touches no window"
#[test]
fn malformed_line_touches_no_window() {
    let input = [
        line("1", "1", "$5000.00", "2000-01-04T12:00:00"),
        format!(r#"{{"id":"2","customer_id":"1","load_amount":"$5000.00","time":"{TUE}","id":"2"}}"#),
        line("3", "1", "$5000.00", TUE),
        // Nor the week.
        line("4", "2", "$5000.00", MON),
        line("5", "2", "$5000.00", TUE),
        line("6", "2", "$5000.00", WED),
        line("7", "2", "$5000.00", "2000-01-06T25:00:00Z"),
        line("8", "2", "$5000.00", THU),
    ]
    .map(|l| l + "\n")
    .concat();
    let expected = [
        out("1", "1", false),
        out("2", "1", false),
        out("3", "1", true),
        out("4", "2", true),
        out("5", "2", true),
        out("6", "2", true),
        out("7", "2", false),
        out("8", "2", true),
    ]
    .concat();
    assert_eq!(output_of(BASELINE, &input), expected);
    // Nor the day's prime slot.
    let input =
        [line("3", "1", "$1.00", "2000-01-04T00:00:00"), line("5", "2", "$1.00", TUE)].map(|l| l + "\n").concat();
    assert_eq!(output_of(EXP_MP, &input), out("3", "1", false) + &out("5", "2", true));
}

/// "does not count as an attempt"
#[test]
fn malformed_line_does_not_count_as_an_attempt() {
    let input = [
        line("1", "1", "$1.0", TUE),
        line("2", "1", "$1.00", "2000-01-04T12:00:00"),
        line("3", "1", "usd1.00", TUE),
        line("4", "1", "$1.00", TUE),
        line("5", "1", "$1.00", TUE),
        line("6", "1", "$1.00", TUE),
        line("7", "1", "$1.00", TUE),
    ]
    .map(|l| l + "\n")
    .concat();
    let expected = [
        out("1", "1", false),
        out("2", "1", false),
        out("3", "1", false),
        out("4", "1", true),
        out("5", "1", true),
        out("6", "1", true),
        out("7", "1", false),
    ]
    .concat();
    let run = run_full(BASELINE, input.as_bytes());
    assert_eq!(run.out, expected);
    assert_eq!(run.malformed(), 3);
    assert_eq!(run.count("policies", "declined by daily attempts"), 1);
}

/// "and does not claim its `id`: a later well-formed line with that `id` is canonical."
#[test]
fn malformed_line_does_not_claim_its_id() {
    let input = [
        line("5", "1", "$1.0", TUE),
        line("5", "1", "$1.00", "2000-01-04T12:00:60Z"),
        format!(r#"{{"id":"5","customer_id":"1","load_amount":"$1.00","time":"{TUE}","x":1,"x":2}}"#),
        line("5", "2", "$1.00", WED),
        line("5", "1", "$1.00", TUE),
    ]
    .map(|l| l + "\n")
    .concat();
    let run = run_full(BASELINE, input.as_bytes());
    let expected =
        [out("5", "1", false), out("5", "1", false), out("5", "1", false), out("5", "2", true), out("5", "1", false)]
            .concat();
    assert_eq!(run.out, expected);
    let duplicates = &run.report("idempotency").incidents;
    assert_eq!((duplicates[0].count, duplicates[0].first_seqs.as_slice()), (1, &[5u64][..]));
    assert_eq!(run.count("idempotency", "distinct ids"), 1);
}

/// "The run goes on ... The implementation this project replaces aborted the whole run on such a line and wrote
/// nothing: that is the behaviour to beat."
#[test]
fn run_goes_on_after_malformed_lines() {
    let mut input = Vec::new();
    let mut expected = String::new();
    for i in 0..3_000u32 {
        let id = (i + 1).to_string();
        let customer = (i + 1_000).to_string();
        match i % 7 {
            0 => {
                input.extend_from_slice(b"{\"id\":\xff}\n");
                expected += &out("", "", false);
            }
            3 => {
                input.extend_from_slice(line(&id, &customer, "$1.0", TUE).as_bytes());
                input.push(b'\n');
                expected += &out(&id, &customer, false);
            }
            _ => {
                input.extend_from_slice(line(&id, &customer, "$1.00", TUE).as_bytes());
                input.push(b'\n');
                expected += &out(&id, &customer, true);
            }
        }
    }
    // Batches of 1,024 lines: malformed lines in every batch, and at its edges.
    let run = run_full(BASELINE, &input);
    assert_eq!((run.records_in, run.records_out), (3_000, 3_000));
    assert!(run.out == expected, "output differs");
    assert_eq!(run.malformed(), 858);
}

/// "its summary reports how many lines were malformed, why, and which line numbers."
#[test]
fn summary_reports_malformed_count_reasons_and_line_numbers() {
    let input = [
        line("1", "1", "$1.00", TUE),
        String::new(),
        line("2", "1", "$1.0", TUE),
        line("3", "1", "$1.00", TUE),
        "{".to_string(),
        line("4", "1", "12", TUE),
        line("1", "1", "$1.00", TUE),
        line("5", "", "$1.00", TUE),
        line("6", "1", "$1", TUE),
        line("7", "1", "$1", TUE),
        line("8", "1", "$1", TUE),
        line("9", "1", "$1", TUE),
        line("10", "1", "$1", TUE),
    ]
    .map(|l| l + "\n")
    .concat();
    let run = run_full(BASELINE, input.as_bytes());
    assert_eq!(run.out.lines().count(), 13);
    assert_eq!(run.malformed(), 10);
    let incidents = &run.report("parse").incidents;
    let find = |word: &str| incidents.iter().find(|i| i.reason.contains(word)).unwrap_or_else(|| panic!("{word}"));
    let amount = find("load_amount");
    assert_eq!(amount.count, 7);
    // The first few line numbers are kept, in order.
    assert_eq!(amount.first_seqs[..3], [3, 6, 9]);
    assert!(amount.first_seqs.len() >= 5, "{amount:?}");
    assert_eq!(amount.first_seqs[..5], [3, 6, 9, 10, 11]);
    assert_eq!((find("blank").count, find("blank").first_seqs.as_slice()), (1, &[2u64][..]));
    assert_eq!((find("JSON").count, find("JSON").first_seqs.as_slice()), (1, &[5u64][..]));
    assert_eq!((find("customer_id").count, find("customer_id").first_seqs.as_slice()), (1, &[8u64][..]));
    assert!(incidents.iter().all(|i| i.kind.contains("malformed")), "{incidents:?}");
    assert_eq!((run.count("format", "accepted"), run.count("format", "declined")), (2, 11));
    assert_eq!(run.count("policies", "accepted"), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Generated data, against the straight-line implementation of the same rules (`fundload-straightline`)
// ---------------------------------------------------------------------------------------------------------------

fn generated(
    seed: u64,
    records: u64,
    malformed_per_million: u32,
) -> (Vec<u8>, hopline_fundload::generate::GenerateSummary) {
    let opts = GenerateOptions { seed, records, malformed_per_million, ..GenerateOptions::default() };
    let mut input = Vec::new();
    let summary = generate(&opts, &mut input).unwrap();
    (input, summary)
}

/// Runs `input` under `config` and under the straight line with the same `rules`, and compares them line by line.
fn assert_matches_straight_line(name: &str, config: &str, rules: Rules, input: &[u8]) -> Run {
    let run = run_full(config, input);
    let mut expected = Vec::new();
    fundload_straightline::run(input, &rules, &mut expected).unwrap();
    let expected = String::from_utf8(expected).unwrap();
    let inputs: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    for (n, (g, e)) in run.out.split_inclusive('\n').zip(expected.split_inclusive('\n')).enumerate() {
        assert_eq!(g, e, "{name}: line {} differs: {}", n + 1, String::from_utf8_lossy(inputs[n]));
    }
    assert_eq!(run.out.len(), expected.len(), "{name}: output length");
    run
}

/// "test the rules on generated data as well": the pipeline agrees with the straight line, line for line, under
/// both shipped scenarios and under variants that move the week start and raise the daily limit.
#[test]
fn generated_data_follows_the_rules() {
    let (input, summary) = generated(7, 60_000, 2_000);
    assert_eq!(summary.records, 60_000);
    let sunday = Rules { week_start: 6, ..Rules::baseline() };
    let raised = Rules { daily_amount_cents: 5_000_000, weekly_amount_cents: 20_000_000, ..Rules::exp_mp() };
    let cases: [(&str, String, Rules); 4] = [
        ("baseline", BASELINE.to_string(), Rules::baseline()),
        ("exp_mp", EXP_MP.to_string(), Rules::exp_mp()),
        ("baseline, sunday", edit(BASELINE, "week_start: monday", "week_start: sunday"), sunday),
        ("exp_mp, raised", exp_mp_raised(), raised),
    ];
    for (name, config, rules) in cases {
        let run = assert_matches_straight_line(name, &config, rules, &input);
        assert_eq!(run.malformed(), summary.malformed, "{name}");
    }
}

/// "Larger inputs reach all of these": on generated data each rule the reference file never triggers decides
/// some lines.
#[test]
fn generated_data_reaches_what_the_reference_does_not() {
    let (input, summary) = generated(11, 60_000, 2_000);
    let run = run_full(BASELINE, &input);
    assert!(run.count("policies", "declined by weekly amount") > 0, "{:?}", run.report("policies"));
    assert!(run.count("policies", "declined by daily attempts") > 0, "{:?}", run.report("policies"));
    assert!(summary.replays > 0 && summary.malformed > 0, "{summary:?}");
    // Every replay and id reuse is declined as a duplicate, and only those.
    let duplicates: u64 = run.report("idempotency").incidents.iter().map(|i| i.count).sum();
    assert_eq!(duplicates, summary.replays + summary.id_reuses, "{summary:?}");
    assert_eq!(run.malformed(), summary.malformed);
    // The input itself has what the reference lacks: $USD, spaces inside amounts, offsets, CRLF endings.
    let fields: Vec<(String, String)> = input
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v.get("load_amount")?.as_str()?.to_string(), v.get("time")?.as_str()?.to_string())))
        .collect();
    assert!(fields.iter().any(|(a, _)| a.trim().starts_with("$USD")), "no $USD prefix");
    assert!(fields.iter().any(|(a, _)| a.trim().contains(' ')), "no whitespace inside an amount");
    assert!(fields.iter().any(|(_, t)| !t.ends_with(['Z', 'z'])), "no offset other than Z");
    assert!(input.windows(2).any(|w| w == b"\r\n"), "no CRLF");
    let raised = run_full(&exp_mp_raised(), &input);
    assert!(raised.count("policies", "declined by prime amount cap") > 0, "{:?}", raised.report("policies"));
    assert!(raised.count("policies", "declined by prime daily accepts") > 0, "{:?}", raised.report("policies"));
}

/// The generated input decides the same whatever the batch size.
#[test]
fn generated_data_is_decided_the_same_in_any_batch_size() {
    let (input, _) = generated(3, 20_000, 5_000);
    let config = PipelineConfig::from_yaml("test.yml", EXP_MP).unwrap();
    let outputs: Vec<Vec<u8>> = [1usize, 7, 1024, 100_000]
        .iter()
        .map(|&batch| {
            let mut pipeline = registry().build(&config, &["line"], &["record"]).unwrap();
            run_bytes::<LoadMsg>(&mut pipeline, &input, batch).unwrap().0
        })
        .collect();
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}
