//! Trace files: OTLP JSON lines, read and written.
//!
//! The format is the OpenTelemetry Collector's: one OTLP/JSON `TracesData` object per line,
//! as its `file` exporter writes and its `otlpjsonfile` receiver reads. Reading goes a line at
//! a time ([`TraceLines`]) and holds one line in memory; a line longer than its bound
//! ([`MAX_LINE_BYTES`] by default) is an error, not an allocation. Every error names the file
//! and the line, and for a bad line what was wrong with it. Empty lines (and lines of only
//! whitespace) are skipped. Writing puts at most a bounded number of spans on a line
//! ([`SPANS_PER_LINE`] by default), spans of one process and scope together.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::trace::v1::TracesData;

use crate::span::{self, MalformedSpan, TracedSpan};

/// The longest line read by default: 64 MiB, the runtime's bound on an input line.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The most spans [`write_file`] puts on one line.
pub const SPANS_PER_LINE: usize = 512;

/// A trace file that cannot be read or written, with the file, the line and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// The file cannot be opened.
    #[error("{}: cannot open the trace file: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    /// Reading failed part way.
    #[error("{}:{line}: cannot read the trace file: {error}", path.display())]
    Read { path: PathBuf, line: u64, error: io::Error },
    /// A line is longer than the reader's bound.
    #[error(
        "{}:{line}: line is longer than {limit} bytes; expected one OTLP JSON TracesData object per line",
        path.display()
    )]
    LineTooLong { path: PathBuf, line: u64, limit: usize },
    /// A line is not an OTLP/JSON `TracesData` object.
    #[error(
        "{}:{line}:{column}: expected an OTLP JSON TracesData object ({{\"resourceSpans\":[...]}}) on each line: {message}",
        path.display()
    )]
    Json { path: PathBuf, line: u64, column: usize, message: String },
    /// A line is a `TracesData` object, but a span in it has an id of the wrong size.
    #[error("{}:{line}: {span}", path.display())]
    MalformedSpan { path: PathBuf, line: u64, span: Box<MalformedSpan> },
    /// The file cannot be created or written.
    #[error("{}: cannot write the trace file: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
}

/// The `TracesData` lines of a trace file, read one at a time.
///
/// After an I/O error or an over-long line the iterator ends; after a line that does not
/// parse it goes on with the next line, so a caller may report bad lines and keep the rest.
#[derive(Debug)]
pub struct TraceLines<R> {
    reader: R,
    path: PathBuf,
    line: u64,
    max_line_bytes: usize,
    buffer: Vec<u8>,
    done: bool,
}

impl TraceLines<BufReader<File>> {
    /// Opens the trace file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceFileError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|error| TraceFileError::Open { path: path.to_path_buf(), error })?;
        Ok(TraceLines::new(BufReader::new(file), path))
    }
}

impl<R: BufRead> TraceLines<R> {
    /// Reads trace lines from `reader`; `path` is the name errors give it.
    pub fn new(reader: R, path: impl Into<PathBuf>) -> Self {
        TraceLines {
            reader,
            path: path.into(),
            line: 0,
            max_line_bytes: MAX_LINE_BYTES,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// Sets the longest line accepted, in bytes (the newline not counted).
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes;
        self
    }

    /// The number of the line read last (1-based; 0 before the first).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next line into the buffer; `false` at the end of the file.
    fn read_line(&mut self) -> Result<bool, TraceFileError> {
        self.buffer.clear();
        self.line += 1;
        let limit = self.max_line_bytes as u64 + 1;
        let read = (&mut self.reader).take(limit).read_until(b'\n', &mut self.buffer);
        let read = read.map_err(|error| TraceFileError::Read { path: self.path.clone(), line: self.line, error })?;
        if read == 0 {
            return Ok(false);
        }
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        } else if self.buffer.len() > self.max_line_bytes {
            return Err(TraceFileError::LineTooLong {
                path: self.path.clone(),
                line: self.line,
                limit: self.max_line_bytes,
            });
        }
        Ok(true)
    }

    fn parse(&self) -> Result<TracesData, TraceFileError> {
        let data: TracesData = serde_json::from_slice(&self.buffer).map_err(|e| TraceFileError::Json {
            path: self.path.clone(),
            line: self.line,
            column: e.column(),
            message: json_message(&e),
        })?;
        span::check(&data).map_err(|span| TraceFileError::MalformedSpan {
            path: self.path.clone(),
            line: self.line,
            span: Box::new(span),
        })?;
        Ok(data)
    }
}

/// serde_json's message without its " at line 1 column N" tail (the error says where).
fn json_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    if let Some(message) = message.strip_suffix(&tail) {
        return message.to_string();
    }
    message
}

impl<R: BufRead> Iterator for TraceLines<R> {
    type Item = Result<TracesData, TraceFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.read_line() {
                Ok(false) => self.done = true,
                Ok(true) if self.buffer.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(true) => return Some(self.parse()),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Every `TracesData` line of the trace file at `path`; the first bad line is the error.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<TracesData>, TraceFileError> {
    TraceLines::open(path)?.collect()
}

/// Writes `data` as one OTLP JSON line (the object and a newline).
pub fn write_line<W: Write>(writer: &mut W, data: &TracesData) -> io::Result<()> {
    serde_json::to_writer(&mut *writer, data)?;
    writer.write_all(b"\n")
}

/// Writes `spans` as OTLP JSON lines, at most `max_spans_per_line` spans a line (see
/// [`to_traces_data`](crate::to_traces_data) for how spans are grouped).
pub fn write_spans<W: Write>(writer: &mut W, spans: &[TracedSpan], max_spans_per_line: usize) -> io::Result<()> {
    span::to_traces_data(spans, max_spans_per_line).iter().try_for_each(|data| write_line(writer, data))
}

/// Creates (or truncates) the trace file at `path` and writes `spans` to it, at most
/// [`SPANS_PER_LINE`] spans a line.
pub fn write_file(path: impl AsRef<Path>, spans: &[TracedSpan]) -> Result<(), TraceFileError> {
    let path = path.as_ref();
    let error = |error| TraceFileError::Write { path: path.to_path_buf(), error };
    let mut writer = BufWriter::new(File::create(path).map_err(error)?);
    write_spans(&mut writer, spans, SPANS_PER_LINE).map_err(error)?;
    writer.flush().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> TraceLines<&[u8]> {
        TraceLines::new(text.as_bytes(), "mem.jsonl")
    }

    #[test]
    fn blank_lines_and_crlf_endings_are_accepted() {
        let text = "\n{\"resourceSpans\":[]}\r\n  \n{\"resourceSpans\":[]}";
        let read: Vec<_> = lines(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn a_line_over_the_bound_is_an_error_naming_it_and_ends_the_reading() {
        let text = "{\"resourceSpans\":[]}\n{\"resourceSpans\":[]}   \n{}\n";
        let mut reader = lines(text).with_max_line_bytes(21);
        assert!(reader.next().unwrap().is_ok());
        let error = reader.next().unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            "mem.jsonl:2: line is longer than 21 bytes; expected one OTLP JSON TracesData object per line"
        );
        assert!(reader.next().is_none());
    }

    #[test]
    fn a_line_exactly_at_the_bound_is_read() {
        let mut reader = lines("{\"resourceSpans\":[]}").with_max_line_bytes(20);
        assert!(reader.next().unwrap().is_ok());
        assert!(reader.next().is_none());
    }

    #[test]
    fn after_a_bad_line_reading_goes_on() {
        let mut reader = lines("{\"resourceSpans\":[]}\nnot json\n{\"resourceSpans\":[]}\n");
        assert!(reader.next().unwrap().is_ok());
        assert!(matches!(reader.next().unwrap(), Err(TraceFileError::Json { line: 2, column: 2, .. })));
        assert!(reader.next().unwrap().is_ok());
        assert_eq!(reader.line(), 3);
        assert!(reader.next().is_none());
    }
}
