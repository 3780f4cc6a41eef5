//! One test per rule and edge case of RULES.md, plus the two 1k reference files.

use super::*;
use crate::parse::{amount_cents, days_from_civil, utc_day};
use crate::prime::{is_prime_big, is_prime_decimal, is_prime_u64};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/{}", concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/fund_load"), name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn run_bytes(input: &[u8], rules: &Rules) -> (String, Counts) {
    let mut out = Vec::new();
    let counts = run(input, rules, &mut out).expect("writing to a Vec cannot fail");
    (String::from_utf8(out).expect("output is UTF-8"), counts)
}

fn run_str(input: &str, rules: &Rules) -> String {
    run_bytes(input.as_bytes(), rules).0
}

/// A compact, well-formed line.
fn l(id: &str, customer: &str, amount: &str, time: &str) -> String {
    format!(r#"{{"id":"{id}","customer_id":"{customer}","load_amount":"{amount}","time":"{time}"}}"#)
}

/// The accepted flags of the output of `lines` joined with `\n`.
fn decisions(lines: &[String], rules: &Rules) -> Vec<bool> {
    let out = run_str(&lines.join("\n"), rules);
    out.lines()
        .map(|line| {
            if line.ends_with(r#","accepted":true}"#) {
                true
            } else {
                assert!(line.ends_with(r#","accepted":false}"#), "odd output {line}");
                false
            }
        })
        .collect()
}

/// Asserts that `line`, alone, is malformed and echoes exactly `id` and `customer` (raw JSON text).
fn assert_malformed(line: &[u8], id_json: &str, customer_json: &str) {
    let (out, counts) = run_bytes(line, &Rules::baseline());
    assert_eq!(
        out,
        format!("{{\"id\":{id_json},\"customer_id\":{customer_json},\"accepted\":false}}\n"),
        "line {:?}",
        String::from_utf8_lossy(line)
    );
    assert_eq!(counts, Counts { lines: 1, accepted: 0, declined: 1, malformed: 1 });
}

fn assert_well_formed(line: &[u8]) {
    let (_, counts) = run_bytes(line, &Rules::baseline());
    assert_eq!(counts.malformed, 0, "line {:?} should be well-formed", String::from_utf8_lossy(line));
}

// 2000-01-03 is a Monday; 2000-01-04 a Tuesday.
const TUE: &str = "2000-01-04T10:00:00Z";

// --- reference files ---------------------------------------------------------------------------

#[test]
fn baseline_fixture_is_byte_equal() {
    let (out, counts) = run_bytes(&fixture("input.txt"), &Rules::baseline());
    assert_eq!(out.as_bytes(), fixture("output.txt").as_slice());
    assert_eq!(counts.lines, 1000);
    assert_eq!(counts.malformed, 0);
    assert_eq!(counts.accepted + counts.declined, 1000);
}

#[test]
fn exp_mp_fixture_is_byte_equal() {
    let (out, _) = run_bytes(&fixture("input.txt"), &Rules::exp_mp());
    assert_eq!(out.as_bytes(), fixture("output_exp_mp.txt").as_slice());
}

#[test]
fn general_path_matches_fast_path_on_fixture() {
    // Whitespace between tokens and escaped key characters push every line onto the serde path.
    let input = String::from_utf8(fixture("input.txt")).unwrap();
    let respaced: String = input
        .lines()
        .map(|line| {
            let spaced = line.replacen('{', "{ ", 1).replace("\"time\"", "\"ti\\u006de\"");
            format!("{spaced}\r\n")
        })
        .collect();
    let (out, _) = run_bytes(respaced.as_bytes(), &Rules::baseline());
    assert_eq!(out.as_bytes(), fixture("output.txt").as_slice());
    let (out, _) = run_bytes(respaced.as_bytes(), &Rules::exp_mp());
    assert_eq!(out.as_bytes(), fixture("output_exp_mp.txt").as_slice());
}

#[test]
fn replayed_fixture_is_all_declined_across_output_chunks() {
    let input = fixture("input.txt");
    let expected_first = String::from_utf8(fixture("output.txt")).unwrap();
    let expected_replay = expected_first.replace("\"accepted\":true", "\"accepted\":false");
    let mut big = Vec::new();
    for _ in 0..20 {
        big.extend_from_slice(&input);
    }
    let (out, counts) = run_bytes(&big, &Rules::baseline());
    assert!(out.len() > FLUSH_AT, "the output spans several flushes");
    let mut expected = expected_first.clone();
    for _ in 1..20 {
        expected.push_str(&expected_replay);
    }
    assert_eq!(out, expected);
    assert_eq!(counts.lines, 20_000);
}

#[test]
fn counts_add_up() {
    let lines = [l("1", "1", "1.00", TUE), l("1", "1", "1.00", TUE), "nope".to_string(), l("2", "1", "6000.00", TUE)];
    let (_, counts) = run_bytes(lines.join("\n").as_bytes(), &Rules::baseline());
    assert_eq!(counts, Counts { lines: 4, accepted: 1, declined: 3, malformed: 1 });
}

// --- amount windows ----------------------------------------------------------------------------

#[test]
fn daily_total_of_exactly_5000_is_accepted() {
    let lines = [
        l("1", "9", "2500.00", "2000-01-04T01:00:00Z"),
        l("2", "9", "2500.00", "2000-01-04T02:00:00Z"),
        l("3", "9", "0.01", "2000-01-04T03:00:00Z"),
        l("4", "8", "5000.01", "2000-01-04T03:00:00Z"),
        l("5", "8", "5000.00", "2000-01-04T04:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, false, false, true]);
}

#[test]
fn weekly_limit_declines_over_20000_and_resets_next_week() {
    let lines = [
        l("1", "9", "5000.00", "2000-01-04T01:00:00Z"),
        l("2", "9", "5000.00", "2000-01-05T01:00:00Z"),
        l("3", "9", "5000.00", "2000-01-06T01:00:00Z"),
        l("4", "9", "4000.00", "2000-01-07T01:00:00Z"),
        l("5", "9", "1000.01", "2000-01-08T01:00:00Z"),
        l("6", "9", "1000.00", "2000-01-09T23:59:59Z"),
        l("7", "9", "0.01", "2000-01-09T23:59:59Z"),
        l("8", "9", "5000.00", "2000-01-10T00:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, true, false, true, false, true]);
}

#[test]
fn weekly_total_of_exactly_20000_is_accepted() {
    let lines: Vec<String> = (0..5)
        .map(|i| l(&format!("{}", 100 + i), "9", "4000.00", &format!("2000-01-{:02}T12:00:00Z", 4 + i)))
        .chain([l("200", "9", "0.01", "2000-01-09T12:00:00Z")])
        .collect();
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, true, true, false]);
}

#[test]
fn huge_amount_is_declined_not_malformed() {
    let lines = [l("1", "1", "999999999999999999.99", TUE)];
    assert_eq!(decisions(&lines, &Rules::baseline()), [false]);
    assert_eq!(decisions(&lines, &Rules::exp_mp()), [false]);
}

// --- attempts ----------------------------------------------------------------------------------

#[test]
fn fourth_attempt_of_the_day_is_declined() {
    let lines = [
        l("1", "9", "1.00", "2000-01-04T01:00:00Z"),
        l("2", "9", "1.00", "2000-01-04T02:00:00Z"),
        l("3", "9", "1.00", "2000-01-04T03:00:00Z"),
        l("4", "9", "1.00", "2000-01-04T04:00:00Z"),
        l("5", "8", "1.00", "2000-01-04T05:00:00Z"),
        l("6", "9", "1.00", "2000-01-05T00:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, false, true, true]);
}

#[test]
fn declined_attempts_count_as_attempts() {
    let lines = [
        l("1", "9", "6000.00", "2000-01-04T01:00:00Z"),
        l("2", "9", "6000.00", "2000-01-04T02:00:00Z"),
        l("3", "9", "6000.00", "2000-01-04T03:00:00Z"),
        l("4", "9", "1.00", "2000-01-04T04:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [false, false, false, false]);
}

#[test]
fn attempt_limit_is_configurable() {
    let lines: Vec<String> = (1..=6).map(|i| l(&i.to_string(), "9", "1.00", TUE)).collect();
    let rules = Rules { daily_attempts: 5, ..Rules::baseline() };
    assert_eq!(decisions(&lines, &rules), [true, true, true, true, true, false]);
}

// --- idempotency -------------------------------------------------------------------------------

#[test]
fn exact_replay_is_declined_and_not_an_attempt() {
    let a = l("1", "9", "1.00", TUE);
    let lines = [a.clone(), a, l("2", "9", "1.00", TUE), l("3", "9", "1.00", TUE), l("4", "9", "1.00", TUE)];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, false, true, true, false]);
}

#[test]
fn duplicate_with_different_content_is_declined_and_touches_no_window() {
    let lines = [
        l("1", "9", "4000.00", TUE),
        // Different customer, amount and day: still a duplicate.
        l("1", "8", "1.00", "2000-01-05T00:00:00Z"),
        l("1", "9", "4000.00", TUE),
        // Customer 9's day total is still 4000.00, customer 8 has no attempt yet.
        l("2", "9", "1000.00", TUE),
        l("3", "8", "1.00", "2000-01-05T00:00:00Z"),
        l("4", "8", "1.00", "2000-01-05T00:00:00Z"),
        l("5", "8", "1.00", "2000-01-05T00:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, false, false, true, true, true, true]);
}

#[test]
fn ids_differing_only_in_leading_zeros_are_distinct() {
    let lines = [l("7", "9", "1.00", TUE), l("007", "9", "1.00", TUE), l(" 7 ", "9", "1.00", TUE)];
    let out = run_str(&lines.join("\n"), &Rules::baseline());
    assert_eq!(
        out,
        concat!(
            "{\"id\":\"7\",\"customer_id\":\"9\",\"accepted\":true}\n",
            "{\"id\":\"007\",\"customer_id\":\"9\",\"accepted\":true}\n",
            "{\"id\":\"7\",\"customer_id\":\"9\",\"accepted\":false}\n",
        )
    );
}

#[test]
fn long_ids_are_claimed_too() {
    let long = "1234567890123456789012345";
    let lines = [l(long, "9", "1.00", TUE), l(long, "8", "1.00", TUE), l(&format!("0{long}"), "8", "1.00", TUE)];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, false, true]);
}

#[test]
fn malformed_line_does_not_claim_its_id_nor_count_as_attempt() {
    let lines = [
        l("1", "9", "12.3", TUE),
        l("1", "9", "1.00", "2000-01-04T25:00:00Z"),
        format!("{{\"id\":\"1\",\"id\":\"1\",\"customer_id\":\"9\",\"load_amount\":\"1.00\",\"time\":\"{TUE}\"}}"),
        l("1", "9", "1.00", TUE),
        l("2", "9", "1.00", TUE),
        l("3", "9", "1.00", TUE),
        l("4", "9", "1.00", TUE),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [false, false, false, true, true, true, false]);
}

// --- malformed kinds and their echo ------------------------------------------------------------

#[test]
fn blank_and_whitespace_only_lines_are_malformed() {
    assert_malformed(b"   ", r#""""#, r#""""#);
    assert_malformed(b" \t ", r#""""#, r#""""#);
    let (out, counts) = run_bytes(b"\n\r\n\n", &Rules::baseline());
    assert_eq!(counts.lines, 3);
    assert_eq!(counts.malformed, 3);
    assert_eq!(out, "{\"id\":\"\",\"customer_id\":\"\",\"accepted\":false}\n".repeat(3));
}

#[test]
fn invalid_utf8_is_malformed_without_echo() {
    let mut line = l("1", "9", "1.00", TUE).into_bytes();
    line.splice(1..1, b"\"x\":\"\xff\",".iter().copied());
    assert_malformed(&line, r#""""#, r#""""#);
    let line = b"{\"id\":\"1\xc3\",\"customer_id\":\"9\",\"load_amount\":\"1.00\",\"time\":\"2000-01-04T10:00:00Z\"}";
    assert_malformed(line, r#""""#, r#""""#);
}

#[test]
fn invalid_json_is_malformed_without_echo() {
    let good = l("1", "9", "1.00", TUE);
    assert_malformed(b"hello", r#""""#, r#""""#);
    assert_malformed(&good.as_bytes()[..good.len() - 1], r#""""#, r#""""#);
    assert_malformed(format!("{good} x").as_bytes(), r#""""#, r#""""#);
    assert_malformed(format!("{good}{good}").as_bytes(), r#""""#, r#""""#);
    assert_malformed(good.replace("}", ",}").as_bytes(), r#""""#, r#""""#);
    assert_malformed(good.replace(":\"9\"", ":'9'").as_bytes(), r#""""#, r#""""#);
    assert_malformed(b"{\"id\":\"1\t\"}", r#""""#, r#""""#);
    assert_malformed(b"{\"id\":\"\\ud800\"}", r#""""#, r#""""#);
    assert_malformed("\u{feff}{}".as_bytes(), r#""""#, r#""""#);
}

#[test]
fn json_values_that_are_not_objects_are_malformed() {
    for line in [
        r#"[{"id":"1","customer_id":"9","load_amount":"1.00","time":"2000-01-04T10:00:00Z"}]"#,
        "[1,[2,3],{}]",
        r#""{}""#,
        "42",
        "-1.5e3",
        "null",
        "true",
    ] {
        assert_malformed(line.as_bytes(), r#""""#, r#""""#);
    }
}

#[test]
fn missing_fields_are_malformed_with_echo() {
    assert_malformed(br#"{"customer_id":"9","load_amount":"1.00","time":"2000-01-04T10:00:00Z"}"#, r#""""#, r#""9""#);
    assert_malformed(br#"{"id":"1","load_amount":"1.00","time":"2000-01-04T10:00:00Z"}"#, r#""1""#, r#""""#);
    assert_malformed(br#"{"id":"1","customer_id":"9","time":"2000-01-04T10:00:00Z"}"#, r#""1""#, r#""9""#);
    assert_malformed(br#"{"id":"1","customer_id":"9","load_amount":"1.00"}"#, r#""1""#, r#""9""#);
    assert_malformed(b"{}", r#""""#, r#""""#);
}

#[test]
fn non_string_fields_are_malformed_with_echo_of_string_ones() {
    assert_malformed(
        br#"{"id":15887,"customer_id":"528","load_amount":"$1.00","time":"2000-01-04T10:00:00Z"}"#,
        r#""""#,
        r#""528""#,
    );
    assert_malformed(
        br#"{"id":"1","customer_id":["528"],"load_amount":"$1.00","time":"2000-01-04T10:00:00Z"}"#,
        r#""1""#,
        r#""""#,
    );
    assert_malformed(
        br#"{"id":"1","customer_id":"9","load_amount":1.00,"time":"2000-01-04T10:00:00Z"}"#,
        r#""1""#,
        r#""9""#,
    );
    assert_malformed(br#"{"id":"1","customer_id":"9","load_amount":"1.00","time":null}"#, r#""1""#, r#""9""#);
    assert_malformed(br#"{"id":{"id":"1"},"customer_id":"9","load_amount":"1.00","time":true}"#, r#""""#, r#""9""#);
}

#[test]
fn empty_or_non_digit_ids_are_malformed_with_echo() {
    assert_malformed(l("", "9", "1.00", TUE).as_bytes(), r#""""#, r#""9""#);
    assert_malformed(l("   ", "9", "1.00", TUE).as_bytes(), r#""""#, r#""9""#);
    assert_malformed(l("1", "", "1.00", TUE).as_bytes(), r#""1""#, r#""""#);
    assert_malformed(l(" 12a ", "9", "1.00", TUE).as_bytes(), r#""12a""#, r#""9""#);
    assert_malformed(l("-5", "9", "1.00", TUE).as_bytes(), r#""-5""#, r#""9""#);
    assert_malformed(l("+5", "9", "1.00", TUE).as_bytes(), r#""+5""#, r#""9""#);
    assert_malformed(l("1.0", "9", "1.00", TUE).as_bytes(), r#""1.0""#, r#""9""#);
    assert_malformed(l("1 2", "9", "1.00", TUE).as_bytes(), r#""1 2""#, r#""9""#);
    assert_malformed(l("1", "x9", "1.00", TUE).as_bytes(), r#""1""#, r#""x9""#);
    assert_malformed(l("١٢", "9", "1.00", TUE).as_bytes(), r#""١٢""#, r#""9""#);
}

#[test]
fn odd_echoed_strings_are_reescaped_as_valid_json() {
    let line = br#"{"id":"a\"b","customer_id":" x\\y\u0001\t","load_amount":"1.00","time":"2000-01-04T10:00:00Z"}"#;
    assert_malformed(line, r#""a\"b""#, r#""x\\y\u0001""#);
    let line = br#"{"id":"\t\u00e9\n","customer_id":"9","load_amount":"x","time":"2000-01-04T10:00:00Z"}"#;
    assert_malformed(line, "\"\u{e9}\"", r#""9""#);
}

#[test]
fn escaped_and_padded_fields_are_well_formed() {
    let line =
        br#"{"id":"\u0031\t","customer_id":" 0009 ","load_amount":"\t$1\n2.30 ","time":"2000-01-04T10:00:00\u005a"}"#;
    let (out, counts) = run_bytes(line, &Rules::baseline());
    assert_eq!(counts.accepted, 1);
    assert_eq!(out, "{\"id\":\"1\",\"customer_id\":\"0009\",\"accepted\":true}\n");
}

#[test]
fn bad_amount_forms_are_malformed() {
    for amount in [
        "12.3",
        "12",
        "usd12.30",
        "Usd12.30",
        "-$10.00",
        "-10.00",
        "+10.00",
        "$$1.00",
        "USDUSD1.00",
        "$USD$1.00",
        "1.000",
        ".50",
        "1.",
        "USD",
        "$",
        "",
        "1,000.00",
        "1e3.00",
        "12.30$",
        "12.30USD",
        "\u{ff11}.00",
        "1234567890123456789.00",
        "0001234567890123456789.00",
    ] {
        assert_malformed(l("1", "9", amount, TUE).as_bytes(), r#""1""#, r#""9""#);
    }
}

#[test]
fn good_amount_forms_parse_exactly() {
    let cases: [(&str, u128); 11] = [
        ("$USD1.00", 100),
        ("USD$7.05", 705),
        ("USD7.05", 705),
        ("$7.05", 705),
        (" $ 1 2.30 ", 1230),
        ("\t1\r\n2.30", 1230),
        ("0.00", 0),
        ("$0.00", 0),
        ("000000000000000000000000000012.34", 1234),
        ("123456789012345678.99", 12_345_678_901_234_567_899),
        ("999999999999999999.99", 99_999_999_999_999_999_999),
    ];
    for (amount, cents) in cases {
        assert_eq!(amount_cents(amount.as_bytes()), Some(cents), "{amount}");
        // Escaped as JSON: raw control characters are invalid inside a JSON string.
        let escaped = serde_json::to_string(amount).unwrap();
        let line = format!(r#"{{"id":"1","customer_id":"9","load_amount":{escaped},"time":"{TUE}"}}"#);
        assert_well_formed(line.as_bytes());
    }
    assert_eq!(decisions(&[l("1", "9", "0.00", TUE)], &Rules::baseline()), [true]);
}

// --- time --------------------------------------------------------------------------------------

#[test]
fn positive_offset_moves_attempt_to_previous_utc_day() {
    assert_eq!(utc_day(b"2000-01-03T00:00:03+02:00"), Some(days_from_civil(2000, 1, 2) as i32));
    assert_eq!(utc_day(b"2000-01-02T23:00:00-01:30"), Some(days_from_civil(2000, 1, 3) as i32));
    // Three attempts on Jan 2 (UTC), then one written as Jan 3 +02:00 that is Jan 2 in UTC.
    let lines = [
        l("1", "9", "1.00", "2000-01-02T10:00:00Z"),
        l("2", "9", "1.00", "2000-01-02T11:00:00Z"),
        l("3", "9", "1.00", "2000-01-02T12:00:00Z"),
        l("4", "9", "1.00", "2000-01-03T00:00:03+02:00"),
        l("5", "9", "1.00", "2000-01-03T02:00:00+02:00"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, false, true]);
}

#[test]
fn leap_second_is_malformed() {
    assert_malformed(l("1", "9", "1.00", "1998-12-31T23:59:60Z").as_bytes(), r#""1""#, r#""9""#);
}

#[test]
fn impossible_dates_are_malformed() {
    for time in [
        "2001-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2000-04-31T00:00:00Z",
        "2000-13-01T00:00:00Z",
        "2000-00-01T00:00:00Z",
        "2000-01-00T00:00:00Z",
        "2000-01-32T00:00:00Z",
        "2000-01-01T24:00:00Z",
        "2000-01-01T00:60:00Z",
    ] {
        assert_malformed(l("1", "9", "1.00", time).as_bytes(), r#""1""#, r#""9""#);
    }
    for time in [
        "2000-02-29T00:00:00Z",
        "2004-02-29T00:00:00Z",
        "0000-02-29T00:00:00Z",
        "0000-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
    ] {
        assert_well_formed(l("1", "9", "1.00", time).as_bytes());
    }
}

#[test]
fn time_without_zone_or_in_another_shape_is_malformed() {
    for time in [
        "2000-01-04T10:00:00",
        "2000-01-04 10:00:00Z",
        "2000-01-04T10:00Z",
        "2000-01-04T10:00:00.Z",
        "2000-01-04T10:00:00+0200",
        "2000-01-04T10:00:00+02",
        "2000-01-04T10:00:00+24:00",
        "2000-01-04T10:00:00+02:60",
        "2000-01-04T10:00:00ZZ",
        "2000-01-04T10:00:00 Z",
        " 2000-01-04T10:00:00Z",
        "2000-01-04T10:00:00Z ",
        "20000-01-04T10:00:00Z",
        "2000-1-04T10:00:00Z",
        "2000/01/04T10:00:00Z",
        "2000-01-04T10:00:00UTC",
        "2000-01-04",
        "",
    ] {
        assert_malformed(l("1", "9", "1.00", time).as_bytes(), r#""1""#, r#""9""#);
    }
    for time in ["2000-01-04T10:00:00.5Z", "2000-01-04T10:00:00.123456789012+05:30", "2000-01-04T10:00:00-00:00"] {
        assert_well_formed(l("1", "9", "1.00", time).as_bytes());
    }
}

#[test]
fn lowercase_t_and_z_are_accepted() {
    let lines = [
        l("1", "9", "1.00", "2000-01-04t10:00:00z"),
        l("2", "9", "1.00", "2000-01-04t10:00:00Z"),
        l("3", "9", "1.00", "2000-01-04T10:00:00z"),
        l("4", "9", "1.00", "2000-01-04T11:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, false]);
}

#[test]
fn out_of_order_timestamps_count_in_their_own_day() {
    let lines = [
        l("1", "9", "4000.00", "2000-01-05T10:00:00Z"),
        l("2", "9", "1.00", "2000-01-05T11:00:00Z"),
        l("3", "9", "1.00", "2000-01-05T12:00:00Z"),
        // Earlier day, written later: its own (empty) day.
        l("4", "9", "4000.00", "2000-01-04T10:00:00Z"),
        l("5", "9", "1.00", "2000-01-04T09:00:00Z"),
        // Back to Jan 5: the 4th attempt there.
        l("6", "9", "1.00", "2000-01-05T01:00:00Z"),
        // Jan 4 total is 4001.00: 999.01 more breaks the daily limit.
        l("7", "9", "999.01", "2000-01-04T23:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, true, true, false, false]);
}

#[test]
fn week_start_sunday_changes_a_decision() {
    let lines = [
        l("1", "9", "5000.00", "2000-01-03T10:00:00Z"),
        l("2", "9", "5000.00", "2000-01-04T10:00:00Z"),
        l("3", "9", "5000.00", "2000-01-05T10:00:00Z"),
        l("4", "9", "5000.00", "2000-01-06T10:00:00Z"),
        // Sunday 2000-01-09.
        l("5", "9", "1.00", "2000-01-09T10:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, true, false]);
    let sunday = Rules { week_start: 6, ..Rules::baseline() };
    assert_eq!(decisions(&lines, &sunday), [true, true, true, true, true]);
}

// --- exp_mp ------------------------------------------------------------------------------------

#[test]
fn monday_multiplier_applies_to_checks_and_totals() {
    // Even ids: no prime gate involvement.
    let monday = "2000-01-03T10:00:00Z";
    let lines = [
        l("10", "9", "2500.01", monday),
        l("12", "8", "2500.00", monday),
        l("14", "7", "2000.00", monday),
        l("16", "7", "600.00", monday),
        l("18", "7", "500.00", monday),
        // Sunday before, in UTC: written as Monday +01:00.
        l("20", "6", "2600.00", "2000-01-03T00:30:00+01:00"),
    ];
    assert_eq!(decisions(&lines, &Rules::exp_mp()), [false, true, true, false, true, true]);
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, true, true, true]);
}

fn raised_limits() -> Rules {
    Rules { daily_amount_cents: 10_000_000, weekly_amount_cents: 100_000_000, ..Rules::exp_mp() }
}

#[test]
fn prime_cap_declines_above_9999_with_raised_daily_limit() {
    let lines = [
        l("7", "1", "9999.01", "2000-01-04T10:00:00Z"),
        l("11", "2", "9999.00", "2000-01-05T10:00:00Z"),
        l("12", "3", "15000.00", "2000-01-04T10:00:00Z"),
        // Monday: 5000.00 doubles to 10000.00 effective.
        l("13", "4", "5000.00", "2000-01-03T10:00:00Z"),
        l("17", "5", "4999.50", "2000-01-03T11:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &raised_limits()), [false, true, true, false, true]);
    let no_gate = Rules { prime_gate: false, ..raised_limits() };
    assert_eq!(decisions(&lines, &no_gate), [true, true, true, true, true]);
}

#[test]
fn prime_daily_slot_is_global_and_not_used_by_declined_prime_attempts() {
    let lines = [
        // Declined by the daily limit: the slot stays free.
        l("7", "1", "6000.00", "2000-01-04T01:00:00Z"),
        // Declined by the cap: the slot stays free.
        l("19", "1", "20000.00", "2000-01-04T01:30:00Z"),
        l("11", "2", "100.00", "2000-01-04T02:00:00Z"),
        // Another customer, same UTC day: slot taken.
        l("13", "3", "100.00", "2000-01-04T03:00:00Z"),
        // Leading zeros: still the prime 17.
        l("0017", "4", "1.00", "2000-01-04T04:00:00Z"),
        // Composite ids are not gated.
        l("15", "3", "100.00", "2000-01-04T05:00:00Z"),
        l("1", "3", "100.00", "2000-01-04T05:00:00Z"),
        // Next day: a new slot.
        l("23", "3", "100.00", "2000-01-05T03:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::exp_mp()), [false, false, true, false, false, true, true, true]);
    let two_slots = Rules { prime_daily_accepts: 2, ..Rules::exp_mp() };
    assert_eq!(decisions(&lines, &two_slots), [false, false, true, true, false, true, true, true]);
}

#[test]
fn fourth_attempt_of_a_prime_id_does_not_use_the_prime_slot() {
    let lines = [
        l("4", "1", "1.00", TUE),
        l("6", "1", "1.00", TUE),
        l("8", "1", "1.00", TUE),
        // 4th attempt: declined, so the prime slot stays free.
        l("7", "1", "1.00", TUE),
        l("11", "2", "1.00", TUE),
    ];
    assert_eq!(decisions(&lines, &Rules::exp_mp()), [true, true, true, false, true]);
}

#[test]
fn primality_is_exact() {
    const N: usize = 200_000;
    let mut composite = vec![false; N];
    composite[0] = true;
    composite[1] = true;
    for i in 2..N {
        if !composite[i] {
            for j in (i * i..N).step_by(i) {
                composite[j] = true;
            }
        }
    }
    for (n, &c) in composite.iter().enumerate() {
        assert_eq!(is_prime_u64(n as u64), !c, "{n}");
    }
    // Pseudoprimes to small base sets, Carmichael numbers, Mersenne and boundary primes.
    for n in [561u64, 1_105, 3_215_031_751, 4_759_123_141, 3_825_123_056_546_413_051] {
        assert!(!is_prime_u64(n), "{n}");
    }
    for n in [2_147_483_647u64, 4_294_967_291, 2_305_843_009_213_693_951, 18_446_744_073_709_551_557] {
        assert!(is_prime_u64(n), "{n}");
        assert!(!is_prime_u64(n - 1));
    }
    assert!(!is_prime_decimal(b"0"));
    assert!(!is_prime_decimal(b"0000"));
    assert!(!is_prime_decimal(b"1"));
    assert!(is_prime_decimal(b"0000000000000000000000000000007"));
    assert!(is_prime_decimal(b"18446744073709551557"));
    // Beyond u64: 2^64 + 13 is prime, 2^89 - 1 is prime, 2^89 + 1 is not; 10^20 + 39 is prime.
    assert!(is_prime_decimal(b"18446744073709551629"));
    assert!(!is_prime_decimal(b"18446744073709551631"));
    assert!(is_prime_decimal(b"618970019642690137449562111"));
    assert!(!is_prime_decimal(b"618970019642690137449562113"));
    assert!(is_prime_decimal(b"100000000000000000039"));
    assert!(!is_prime_decimal(b"100000000000000000041"));
}

#[test]
fn big_integer_primality_agrees_with_u64() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        for n in [x, x >> 20, x | 1] {
            assert_eq!(is_prime_big(&num_bigint::BigUint::from(n)), is_prime_u64(n), "{n}");
        }
    }
    for n in 0u64..2_000 {
        assert_eq!(is_prime_big(&num_bigint::BigUint::from(n)), is_prime_u64(n), "{n}");
    }
}

// --- lines and keys ----------------------------------------------------------------------------

#[test]
fn crlf_line_endings_are_stripped() {
    let lf = [l("1", "9", "1.00", TUE), l("2", "9", "1.00", TUE), "x".into()].join("\n");
    let crlf = lf.replace('\n', "\r\n") + "\r\n";
    assert_eq!(run_str(&crlf, &Rules::baseline()), run_str(&lf, &Rules::baseline()));
    // Only one CR is stripped; a second is JSON whitespace after the object.
    let (_, counts) = run_bytes(format!("{}\r\r\n", l("1", "9", "1.00", TUE)).as_bytes(), &Rules::baseline());
    assert_eq!(counts.accepted, 1);
}

#[test]
fn last_line_needs_no_newline_and_final_newline_adds_no_line() {
    let a = l("1", "9", "1.00", TUE);
    let b = l("2", "9", "1.00", TUE);
    let without = format!("{a}\n{b}");
    let with = format!("{a}\n{b}\n");
    assert_eq!(run_bytes(without.as_bytes(), &Rules::baseline()).1.lines, 2);
    assert_eq!(run_bytes(with.as_bytes(), &Rules::baseline()).1.lines, 2);
    assert_eq!(run_str(&without, &Rules::baseline()), run_str(&with, &Rules::baseline()));
    let (out, counts) = run_bytes(b"", &Rules::baseline());
    assert_eq!((out.as_str(), counts), ("", Counts::default()));
}

#[test]
fn repeated_keys_are_malformed_with_first_echo() {
    let tail = r#""load_amount":"1.00","time":"2000-01-04T10:00:00Z""#;
    assert_malformed(format!(r#"{{"id":"1","id":"2","customer_id":"9",{tail}}}"#).as_bytes(), r#""1""#, r#""9""#);
    assert_malformed(format!(r#"{{"id":"1","\u0069d":"2","customer_id":"9",{tail}}}"#).as_bytes(), r#""1""#, r#""9""#);
    assert_malformed(format!(r#"{{"id":5,"customer_id":"9","id":"6",{tail}}}"#).as_bytes(), r#""""#, r#""9""#);
    assert_malformed(format!(r#"{{"id":"1","customer_id":"9","x":1,"x":1,{tail}}}"#).as_bytes(), r#""1""#, r#""9""#);
    assert_malformed(
        format!(r#"{{"id":"1","customer_id":"9",{tail},"time":"2000-01-04T10:00:00Z"}}"#).as_bytes(),
        r#""1""#,
        r#""9""#,
    );
}

#[test]
fn unknown_fields_with_any_values_are_ignored() {
    let line = r#"{"note":{"a":[1,2,{"b":null}],"a":"dup inside is fine"},"id":"1","n":-1.5e300,"customer_id":"9","load_amount":"1.00","big":123456789012345678901234567890,"time":"2000-01-04T10:00:00Z","t":true,"s":"\u00e9\ud83d\ude00"}"#;
    let (out, counts) = run_bytes(line.as_bytes(), &Rules::baseline());
    assert_eq!(counts.accepted, 1);
    assert_eq!(out, "{\"id\":\"1\",\"customer_id\":\"9\",\"accepted\":true}\n");
}

#[test]
fn whitespace_between_tokens_and_any_key_order_are_well_formed() {
    let line =
        " {\t\"time\" : \"2000-01-04T10:00:00Z\" , \"load_amount\":\"1.00\",\"customer_id\":\"9\",\"id\":\"1\" } ";
    let (out, counts) = run_bytes(line.as_bytes(), &Rules::baseline());
    assert_eq!(counts.accepted, 1);
    assert_eq!(out, "{\"id\":\"1\",\"customer_id\":\"9\",\"accepted\":true}\n");
    let reordered = r#"{"time":"2000-01-04T10:00:00Z","customer_id":"9","id":"1","load_amount":"1.00"}"#;
    assert_eq!(run_str(reordered, &Rules::baseline()), out);
}

// --- differential test against a naive model ---------------------------------------------------

/// A deliberately naive implementation of the rules: serde-only parsing, string-keyed hash maps
/// for every window, big-integer primality. Shares only the field grammars with the crate.
fn naive_model(input: &str, rules: &Rules) -> String {
    use std::collections::{HashMap, HashSet};
    let mut ids: HashSet<String> = HashSet::new();
    let mut days: HashMap<(String, i64), (u32, u128)> = HashMap::new();
    let mut weeks: HashMap<(String, i64), u128> = HashMap::new();
    let mut primes: HashMap<i64, u32> = HashMap::new();
    let mut prime_cache: HashMap<String, bool> = HashMap::new();
    let scale = |c: u64| u128::from(c) * 10_000;
    let mut out = String::new();
    let mut lines: Vec<&str> = input.split('\n').collect();
    if input.ends_with('\n') || input.is_empty() {
        lines.pop();
    }
    for line in lines {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let object = crate::parse::general_object(line.as_bytes());
        let valid = object.as_ref().and_then(|o| match &o.fields {
            [
                crate::parse::Field::Str(id),
                crate::parse::Field::Str(cust),
                crate::parse::Field::Str(amount),
                crate::parse::Field::Str(time),
            ] if !o.repeated_key => {
                validate(id.as_bytes(), cust.as_bytes(), amount.as_bytes(), time.as_bytes()).map(|v| {
                    (
                        String::from_utf8(v.id.to_vec()).unwrap(),
                        String::from_utf8(v.customer.to_vec()).unwrap(),
                        v.cents,
                        i64::from(v.day),
                    )
                })
            }
            _ => None,
        });
        let Some((id, cust, cents, day)) = valid else {
            let (id, cust) = match &object {
                Some(o) => (o.fields[0].echo().to_string(), o.fields[1].echo().to_string()),
                None => (String::new(), String::new()),
            };
            out.push_str(&format!(
                "{{\"id\":{},\"customer_id\":{},\"accepted\":false}}\n",
                serde_json::to_string(&id).unwrap(),
                serde_json::to_string(&cust).unwrap()
            ));
            continue;
        };
        let accepted = (|| {
            if !ids.insert(id.clone()) {
                return false;
            }
            let monday = (day + 3).rem_euclid(7) == 0;
            let multiplier = if monday { rules.monday_multiplier_e4 } else { 10_000 };
            let effective = cents.saturating_mul(u128::from(multiplier));
            let week = (day + 3 - i64::from(rules.week_start % 7)).div_euclid(7);
            let window = days.entry((cust.clone(), day)).or_insert((0, 0));
            window.0 += 1;
            if window.0 > rules.daily_attempts {
                return false;
            }
            let digits = id.trim_start_matches('0');
            let prime = rules.prime_gate
                && *prime_cache.entry(digits.to_string()).or_insert_with(|| match digits.len() {
                    0 => false,
                    // Plain trial division: obviously right, and fast enough below 10^12.
                    1..=12 => {
                        let n: u64 = digits.parse().unwrap();
                        n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
                    }
                    _ => is_prime_big(&num_bigint::BigUint::parse_bytes(digits.as_bytes(), 10).unwrap()),
                });
            if prime
                && (effective > scale(rules.prime_amount_cap_cents)
                    || primes.get(&day).copied().unwrap_or(0) >= rules.prime_daily_accepts)
            {
                return false;
            }
            if window.1.saturating_add(effective) > scale(rules.daily_amount_cents) {
                return false;
            }
            let week_total = weeks.entry((cust.clone(), week)).or_insert(0);
            if week_total.saturating_add(effective) > scale(rules.weekly_amount_cents) {
                return false;
            }
            *week_total += effective;
            window.1 += effective;
            if prime {
                *primes.entry(day).or_insert(0) += 1;
            }
            true
        })();
        out.push_str(&format!("{{\"id\":\"{id}\",\"customer_id\":\"{cust}\",\"accepted\":{accepted}}}\n"));
    }
    out
}

/// Small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random lines: a small id pool (duplicates), few customers, times over ~10 weeks in random
/// order with offsets, amounts around the limits, and some malformed or oddly written lines.
fn random_input(rng: &mut Rng, lines: usize) -> String {
    let mut out = String::new();
    for _ in 0..lines {
        let id = match rng.below(40) {
            0..4 => format!("00{}", rng.below(300)),
            5 => format!("{}", 123_456_789_000 + rng.below(300)),
            4 => format!("{}", 18_446_744_073_709_551_000 + u128::from(rng.below(1_000))),
            _ => format!("{}", rng.below(3_000)),
        };
        let cust = match rng.below(20) {
            0 => format!("{}", 100 + rng.below(400)),
            1 => format!("1234567890123456789012{}", rng.below(3)),
            2 => format!("0{}", rng.below(12)),
            _ => format!("{}", rng.below(12)),
        };
        let amount = match rng.below(8) {
            0 => format!("${}.{:02}", rng.below(20_000), rng.below(100)),
            1 => format!("USD{}.00", rng.below(6_000)),
            2 => format!("{}.{:02}", 4_990 + rng.below(20), rng.below(100)),
            _ => format!("${}.{:02}", rng.below(3_000), rng.below(100)),
        };
        let day = 1 + rng.below(70);
        let (month, dom) = if day <= 31 {
            (1, day)
        } else if day <= 60 {
            (2, day - 31)
        } else {
            (3, day - 60)
        };
        let zone = match rng.below(6) {
            0 => "+02:00".to_string(),
            1 => "-05:30".to_string(),
            2 => "z".to_string(),
            _ => "Z".to_string(),
        };
        let time =
            format!("2000-{month:02}-{dom:02}T{:02}:{:02}:{:02}{zone}", rng.below(24), rng.below(60), rng.below(60));
        let line = match rng.below(40) {
            0 => String::new(),
            1 => format!(r#"{{"id":"{id}","customer_id":"{cust}","load_amount":"{amount}"}}"#),
            2 => format!(r#"{{"id":"{id}","customer_id":{cust},"load_amount":"{amount}","time":"{time}"}}"#),
            3 => format!(
                r#"{{ "time": "{time}", "load_amount": " {amount} ", "customer_id": " {cust}", "id": "{id} " }}"#
            ),
            4 => format!(r#"{{"id":"{id}","customer_id":"{cust}","load_amount":"{amount}","time":"{time}","id":"1"}}"#),
            5 => format!(
                r#"{{"id":"{id}","customer_id":"{cust}","load_amount":"{amount}","time":"{time}","x":[1,{{}}]}}"#
            ),
            6 => format!(r#"{{"id":"{id}","customer_id":"{cust}","load_amount":"{amount}.0","time":"{time}"}}"#),
            // Compact but in another key order, or with a space in the amount: the mask fast path.
            7 => format!(r#"{{"time":"{time}","customer_id":"{cust}","id":"{id}","load_amount":"{amount}"}}"#),
            8 => format!(r#"{{"id":"{id}","customer_id":"{cust}","load_amount":" {amount}","time":"{time}"}}"#),
            9 => format!(r#"{{"id":"{id}","customer_id":"{cust}","load_amount":"{amount}","time":"{time}"}} "#),
            _ => format!(r#"{{"id":"{id}","customer_id":"{cust}","load_amount":"{amount}","time":"{time}"}}"#),
        };
        out.push_str(&line);
        out.push_str(if rng.below(20) == 0 { "\r\n" } else { "\n" });
    }
    out
}

#[test]
fn matches_naive_model_on_random_inputs() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let scenarios = [
        Rules::baseline(),
        Rules::exp_mp(),
        Rules { week_start: 6, daily_attempts: 5, ..Rules::exp_mp() },
        Rules { prime_daily_accepts: 3, ..raised_limits() },
        // Limits too large for 64-bit totals: the wide path.
        Rules { daily_amount_cents: u64::MAX, weekly_amount_cents: 3_000_000, ..Rules::exp_mp() },
    ];
    for round in 0..8 {
        let input = random_input(&mut rng, 2_500);
        for rules in &scenarios {
            let expected = naive_model(&input, rules);
            let (actual, counts) = run_bytes(input.as_bytes(), rules);
            assert_eq!(counts.lines as usize, expected.lines().count());
            if actual != expected {
                let first = actual.lines().zip(expected.lines()).position(|(a, e)| a != e);
                panic!("round {round}, rules {rules:?}: first difference at output line {first:?}");
            }
        }
    }
}

#[test]
fn wide_totals_are_exact() {
    // 10^19 cents a day does not fit 64-bit totals of 1/10,000 cent.
    let rules =
        Rules { daily_amount_cents: 10_000_000_000_000_000_000, weekly_amount_cents: u64::MAX, ..Rules::baseline() };
    let lines =
        [l("1", "9", "50000000000000000.00", TUE), l("2", "9", "50000000000000000.00", TUE), l("3", "9", "0.01", TUE)];
    assert_eq!(decisions(&lines, &rules), [true, true, false]);
    let huge_multiplier = Rules { monday_multiplier_e4: u64::MAX, ..Rules::baseline() };
    assert_eq!(decisions(&[l("1", "9", "999999999999999999.99", "2000-01-03T10:00:00Z")], &huge_multiplier), [false]);
    assert_eq!(decisions(&[l("1", "9", "0.00", "2000-01-03T10:00:00Z")], &huge_multiplier), [true]);
}

#[test]
fn civil_day_numbers_are_right() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 1, 1), 10_957);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(0, 1, 1), -719_528);
    assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    assert_eq!(utc_day(b"0000-01-01T00:00:00+00:01"), Some(-719_529));
    assert_eq!(utc_day(b"9999-12-31T23:59:59-00:01"), Some(2_932_897));
}

#[test]
fn out_of_range_number_is_invalid_json_only_in_a_known_field() {
    // serde_json rejects a number beyond f64 when it parses it (a known field's value) and skips
    // it unparsed elsewhere.
    assert_malformed(
        br#"{"id":"1","customer_id":1e400,"load_amount":"1.00","time":"2000-01-04T10:00:00Z"}"#,
        r#""""#,
        r#""""#,
    );
    let line = br#"{"id":"1","customer_id":"9","x":1e400,"load_amount":"1.00","time":"2000-01-04T10:00:00Z"}"#;
    assert_eq!(run_bytes(line, &Rules::baseline()).1.accepted, 1);
}

#[test]
fn nesting_depth_limit_applies_to_known_fields_only() {
    // serde_json parses at most 128 nested levels when it builds a value (a known field's value),
    // and skips unknown fields' values without a limit.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let known = format!(r#"{{"id":"1","customer_id":{deep},"load_amount":"1.00","time":"2000-01-04T10:00:00Z"}}"#);
    assert_malformed(known.as_bytes(), r#""""#, r#""""#);
    let shallow = format!("{}{}", "[".repeat(20), "]".repeat(20));
    let known = format!(r#"{{"id":"1","customer_id":{shallow},"load_amount":"1.00","time":"2000-01-04T10:00:00Z"}}"#);
    assert_malformed(known.as_bytes(), r#""1""#, r#""""#);
    let unknown =
        format!(r#"{{"id":"1","customer_id":"9","x":{deep},"load_amount":"1.00","time":"2000-01-04T10:00:00Z"}}"#);
    assert_eq!(run_bytes(unknown.as_bytes(), &Rules::baseline()).1.accepted, 1);
}

#[test]
fn date_cache_never_vouches_for_an_unvalidated_date() {
    // A raw NUL date: no cached date may match it (and raw control bytes are invalid JSON).
    let mut line = l("1", "9", "1.00", "2000-01-04T10:00:00Z").into_bytes();
    let at = line.len() - 22;
    line[at..at + 10].fill(0);
    assert_malformed(&line, r#""""#, r#""""#);
    let input = [
        l("1", "9", "1.00", "2000-01-04T10:00:00Z"),
        l("2", "9", "1.00", "2000-01-04T10:00:60Z"),
        l("3", "9", "1.00", "2001-02-29T10:00:00Z"),
        l("4", "9", "1.00", "2000-01-04T10:00:00Z"),
    ]
    .join("\n");
    let (_, counts) = run_bytes(input.as_bytes(), &Rules::baseline());
    assert_eq!((counts.accepted, counts.malformed), (2, 2));
}

#[test]
fn many_customers_and_long_customer_ids_keep_separate_windows() {
    // 17,000 customers (the customer index grows several times and customer prefetching starts),
    // each with four attempts on one day: the fourth is declined for every one of them. A third
    // of the customer ids are longer than 19 digits.
    let mut lines = Vec::new();
    for attempt in 0..4 {
        for c in 0..17_000u64 {
            let customer = if c % 3 == 0 { format!("{c}000000000000000000000") } else { c.to_string() };
            lines.push(l(&format!("{}", attempt * 100_000 + c), &customer, "1.00", TUE));
        }
    }
    let decided = decisions(&lines, &Rules::baseline());
    assert!(decided[..51_000].iter().all(|&d| d));
    assert!(decided[51_000..].iter().all(|&d| !d));
}

#[test]
fn out_of_order_lines_find_their_earlier_week() {
    let lines = [
        l("1", "9", "5000.00", "2000-01-03T10:00:00Z"),
        l("2", "9", "5000.00", "2000-01-04T10:00:00Z"),
        l("3", "9", "5000.00", "2000-01-05T10:00:00Z"),
        l("4", "9", "5000.00", "2000-01-06T10:00:00Z"),
        // Next week.
        l("5", "9", "5000.00", "2000-01-10T10:00:00Z"),
        // Back to the first week (a new day in it): its total is already 20,000.00.
        l("6", "9", "1.00", "2000-01-07T10:00:00Z"),
        // And forward again: the second week holds 5,000.00.
        l("7", "9", "5000.00", "2000-01-11T10:00:00Z"),
        l("8", "9", "5000.00", "2000-01-12T10:00:00Z"),
        l("9", "9", "5000.00", "2000-01-13T10:00:00Z"),
        l("10", "9", "0.01", "2000-01-14T10:00:00Z"),
    ];
    assert_eq!(decisions(&lines, &Rules::baseline()), [true, true, true, true, true, false, true, true, true, false]);
}
