//! Trace files: written lines read back the same; every bad line is named by file and line.

use std::fs;
use std::io::Write;

use hopline_trace::{
    MergeOptions, SpanLevel, TraceFileError, TraceLines, merge, read_file, to_traces_data, write_file, write_line,
    write_spans,
};

use crate::fixture;

fn everything() -> MergeOptions {
    MergeOptions { level: SpanLevel::Debug }
}

#[test]
fn written_spans_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.otlp.jsonl");
    let merged = merge(fixture::three_process_run().all(), &everything());
    assert_eq!(merged.spans.len(), fixture::SPANS);
    write_file(&path, &merged.spans).unwrap();

    let lines = read_file(&path).unwrap();
    assert_eq!(lines.len(), 3, "one line per process: every process fits in one line");
    let again = merge(lines, &everything());
    assert_eq!(again.spans, merged.spans);
    assert_eq!(again.duplicates_dropped, 0);
    assert!(again.unresolved_parents.is_empty());
}

#[test]
fn lines_written_per_process_read_back_line_for_line() {
    let run = fixture::three_process_run();
    let mut out = Vec::new();
    for data in run.all() {
        write_line(&mut out, &data).unwrap();
    }
    let read: Vec<_> = TraceLines::new(out.as_slice(), "run.jsonl").collect::<Result<_, _>>().unwrap();
    assert_eq!(read, run.all());
}

#[test]
fn each_line_holds_at_most_the_bound_and_one_process() {
    let merged = merge(fixture::three_process_run().all(), &everything());
    let lines = to_traces_data(&merged.spans, 4);
    // ingest 15 spans, policy 12, egress 4: 4 + 3 + 1 lines.
    assert_eq!(lines.len(), 8);
    for line in &lines {
        assert_eq!(line.resource_spans.len(), 1);
        assert_eq!(line.resource_spans[0].scope_spans.len(), 1);
        assert!((1..=4).contains(&line.resource_spans[0].scope_spans[0].spans.len()));
    }
    let mut out = Vec::new();
    write_spans(&mut out, &merged.spans, 4).unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 8);
}

fn file_with(lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.jsonl");
    let mut file = fs::File::create(&path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    (dir, path)
}

fn good_line() -> String {
    let mut out = Vec::new();
    write_line(&mut out, &fixture::three_process_run().ingest[0]).unwrap();
    String::from_utf8(out).unwrap().trim_end().to_string()
}

#[test]
fn a_line_that_is_not_json_is_named_by_file_line_and_column() {
    let good = good_line();
    let (_dir, path) = file_with(&[&good, "", r#"{"resourceSpans": [}"#, &good]);
    let error = read_file(&path).unwrap_err();
    assert!(matches!(error, TraceFileError::Json { line: 3, column: 20, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "{}:3:20: expected an OTLP JSON TracesData object ({{\"resourceSpans\":[...]}}) on each line: expected value",
            path.display()
        )
    );
}

#[test]
fn a_line_cut_short_by_a_dying_worker_is_named() {
    let good = good_line();
    let (_dir, path) = file_with(&[&good, &good[..good.len() / 2]]);
    let error = read_file(&path).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, TraceFileError::Json { line: 2, .. }), "{error:?}");
    assert!(text.starts_with(&format!("{}:2:", path.display())), "{text}");
    assert!(text.ends_with("EOF while parsing a string") || text.contains("EOF while parsing"), "{text}");
}

#[test]
fn json_of_another_shape_says_what_was_expected() {
    let (_dir, path) = file_with(&[r#"{"resourceLogs":[]}"#]);
    let error = read_file(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:1:19: expected an OTLP JSON TracesData object ({{\"resourceSpans\":[...]}}) on each line: missing field `resourceSpans`",
            path.display()
        )
    );
}

#[test]
fn an_id_of_the_wrong_size_is_named_with_its_span_and_field() {
    let bad = good_line().replace("\"b7ad6b7169200102\"", "\"b7ad6b7169\"");
    let (_dir, path) = file_with(&["", &good_line(), &bad]);
    let error = read_file(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:3: span `parse` at resourceSpans[0].scopeSpans[0].spans[1]: spanId: expected 8 bytes (16 hex digits), not all zero, found 5 bytes",
            path.display()
        )
    );
}

#[test]
fn an_all_zero_trace_id_is_refused() {
    let bad = good_line().replacen("0af7651916cd43dd8448eb211c803101", &"0".repeat(32), 1);
    let (_dir, path) = file_with(&[&bad]);
    let error = read_file(&path).unwrap_err();
    assert!(
        error.to_string().ends_with(
            "span `source` at resourceSpans[0].scopeSpans[0].spans[0]: traceId: expected 16 bytes (32 hex digits), not all zero, found 16 zero bytes"
        ),
        "{error}"
    );
}

#[test]
fn an_id_that_is_not_hex_is_named_by_line() {
    let bad = good_line().replacen("b7ad6b7169200101", "b7ad6b716920010g", 1);
    let (_dir, path) = file_with(&[&bad]);
    let error = read_file(&path).unwrap_err();
    assert!(matches!(error, TraceFileError::Json { line: 1, .. }), "{error:?}");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.jsonl");
    let error = read_file(&path).unwrap_err();
    assert!(matches!(error, TraceFileError::Open { .. }));
    assert!(error.to_string().starts_with(&format!("{}: cannot open the trace file: ", path.display())), "{error}");
}

#[test]
fn an_unwritable_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("run.jsonl");
    let error = write_file(&path, &[]).unwrap_err();
    assert!(error.to_string().starts_with(&format!("{}: cannot write the trace file: ", path.display())), "{error}");
}

/// The committed fixture (`tests/fixtures/trace/three_process_run.jsonl`, used by the CLI's
/// tests) is the fixture run, written as its three processes would have flushed it.
/// `HOPLINE_REGENERATE_FIXTURES=1 cargo test -p hopline-trace` rewrites it.
#[test]
fn the_committed_fixture_file_is_the_fixture_run() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/trace/three_process_run.jsonl");
    let run = super::fixture::three_process_run().all();
    if std::env::var_os("HOPLINE_REGENERATE_FIXTURES").is_some() {
        let mut out = Vec::new();
        for data in &run {
            hopline_trace::write_line(&mut out, data).unwrap();
        }
        std::fs::write(&path, out).unwrap();
    }
    let committed = hopline_trace::read_file(&path).unwrap();
    assert_eq!(committed, run, "regenerate with HOPLINE_REGENERATE_FIXTURES=1");
}
