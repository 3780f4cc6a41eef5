//! The forensic trace: every process's spans of one run, merged into one OTLP JSON lines file.
//!
//! Spans arrive as OTLP JSON lines (one `TracesData` object each), from this process's own
//! tracer or, in the multiprocess profile, from every worker over its control connection.
//! They are appended to `PATH.partial` as they come, so a run of any length holds none of
//! them in memory; at the end the partial file is merged (deduplicated by trace and span id,
//! debug spans left out unless the level is debug, parents checked) into `PATH`, and removed.
//! The merge holds the run's spans in memory: the forensic trace is meant for sampled runs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use hopline_model::config::SpanLevel;

/// What the forensic trace ended up holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForensicReport {
    pub path: String,
    pub spans: usize,
    /// Spans received more than once (a worker that flushed twice) and written once.
    pub duplicates_dropped: usize,
    /// Spans whose parent is not in the file (a process's queue was full, or it died).
    pub unresolved_parents: usize,
}

/// Collects a run's spans and writes the merged file at the end.
pub struct ForensicWriter {
    path: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
    level: SpanLevel,
}

impl ForensicWriter {
    /// Creates `PATH.partial` (and checks `PATH` can be created), before the run starts.
    pub fn create(path: &Path, level: SpanLevel) -> io::Result<ForensicWriter> {
        File::create(path)?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let out = BufWriter::new(File::create(&partial)?);
        Ok(ForensicWriter { path: path.to_path_buf(), partial, out, level })
    }

    /// Appends one OTLP JSON line.
    pub fn add(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.trim_end().as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Merges what was collected into the file, and removes the partial file.
    pub fn finish(mut self) -> Result<ForensicReport, String> {
        let path = self.path.display().to_string();
        self.out.flush().map_err(|e| format!("cannot write {}: {e}", self.partial.display()))?;
        let data = hopline_trace::read_file(&self.partial).map_err(|e| e.to_string())?;
        let level = match self.level {
            SpanLevel::Info => hopline_trace::SpanLevel::Info,
            SpanLevel::Debug => hopline_trace::SpanLevel::Debug,
        };
        let merged = hopline_trace::merge(data, &hopline_trace::MergeOptions { level });
        hopline_trace::write_file(&self.path, &merged.spans).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&self.partial);
        Ok(ForensicReport {
            path,
            spans: merged.spans.len(),
            duplicates_dropped: merged.duplicates_dropped,
            unresolved_parents: merged.unresolved_parents.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"t"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c803101","spanId":"b7ad6b7169200101","name":"source","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;

    #[test]
    fn a_span_sent_twice_is_written_once_and_the_partial_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.trace.jsonl");
        let mut writer = ForensicWriter::create(&path, SpanLevel::Info).unwrap();
        writer.add(LINE).unwrap();
        writer.add(LINE).unwrap();
        let report = writer.finish().unwrap();
        assert_eq!((report.spans, report.duplicates_dropped, report.unresolved_parents), (1, 1, 0));
        assert_eq!(hopline_trace::read_file(&path).unwrap().len(), 1);
        assert!(!dir.path().join("run.trace.jsonl.partial").exists());
    }
}
