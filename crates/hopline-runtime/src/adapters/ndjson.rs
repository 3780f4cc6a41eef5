//! NDJSON: one record a line, from a file or stdin, to a file or stdout.
//!
//! Lines are split on `\n`; a trailing `\r` is removed; the last line needs no newline; a
//! file that ends with `\n` has no empty line after it. Each line's 1-based number is its
//! envelope's sequence number. Lines reach nodes as shared slices of a read chunk, so reading
//! allocates once per chunk, not once per line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use hopline_model::{
    ConfigError, CorrelationId, EndKinds, Ends, Envelope, EnvelopeHeader, LineMessage, PipelineConfig,
};

use super::{Sink, SinkError, Source, SourceError};

/// The NDJSON ends: every app whose messages are lines and records reads and writes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineEnds;

impl<M: LineMessage> Ends<M> for LineEnds {
    fn check(&self, config: &PipelineConfig) -> Result<EndKinds, ConfigError> {
        for (key, adapter) in [("source", &config.source), ("sink", &config.sink)] {
            if !adapter.is_ndjson() {
                return Err(ConfigError::at(
                    &config.origin,
                    &format!("{key}.kind"),
                    adapter.kind_pos,
                    format!("unknown {key} kind `{}` for app `{}`; expected ndjson", adapter.kind, config.app),
                ));
            }
        }
        Ok(EndKinds { source_emits: &[M::LINE], sink_consumes: &[M::RECORD] })
    }

    fn open_source(
        &self,
        _: &PipelineConfig,
        _: &std::path::Path,
        input: &str,
        correlation_id: CorrelationId,
    ) -> Result<Box<dyn Source<M>>, SourceError> {
        Ok(Box::new(NdjsonSource::open(input, correlation_id)?))
    }

    fn create_sink(
        &self,
        _: &PipelineConfig,
        _: &std::path::Path,
        output: &str,
    ) -> Result<Box<dyn Sink<M>>, SinkError> {
        Ok(Box::new(NdjsonSink::create(output)?))
    }
}

/// Bytes asked of the reader at a time.
const CHUNK_BYTES: usize = 256 * 1024;
/// The longest line a source accepts; a longer one stops the run with its line number.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Read chunks kept for reuse once every line cut from them has been dropped.
const RETIRED_CHUNKS: usize = 4;
/// Output buffer of a sink.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Reads NDJSON lines and emits them as line messages.
pub struct NdjsonSource<R = Box<dyn Read + Send>> {
    reader: R,
    path: String,
    correlation_id: CorrelationId,
    chunk: Bytes,
    /// Earlier chunks, oldest first, whose memory is reused when no line holds them any more
    /// (so that reading does not fault fresh pages in for every chunk).
    retired: VecDeque<Bytes>,
    /// Start of the unconsumed part of `chunk`.
    at: usize,
    next_seq: u64,
    eof: bool,
    bytes_read: u64,
    total: Option<u64>,
}

impl NdjsonSource {
    /// Opens `path`, or stdin for `-`. A missing file fails here, naming the path.
    pub fn open(path: &str, correlation_id: CorrelationId) -> Result<Self, SourceError> {
        if path == "-" {
            return Ok(Self::from_reader(Box::new(io::stdin()), "stdin", None, correlation_id));
        }
        let file = File::open(path).map_err(|source| SourceError::Read { path: path.into(), source })?;
        let total = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        Ok(Self::from_reader(Box::new(file), path, total, correlation_id))
    }
}

impl<R: Read> NdjsonSource<R> {
    /// A source over any reader; `path` names it in errors.
    pub fn from_reader(reader: R, path: &str, total: Option<u64>, correlation_id: CorrelationId) -> Self {
        NdjsonSource {
            reader,
            path: path.into(),
            correlation_id,
            chunk: Bytes::new(),
            retired: VecDeque::with_capacity(RETIRED_CHUNKS),
            at: 0,
            next_seq: 1,
            eof: false,
            bytes_read: 0,
            total,
        }
    }

    /// Reads the next chunk, carrying over the unfinished line. Returns false at end of input.
    fn refill(&mut self) -> Result<bool, SourceError> {
        let carry = self.chunk.len() - self.at;
        let mut size = CHUNK_BYTES.max(carry * 2);
        if carry >= MAX_LINE_BYTES {
            return Err(SourceError::LineTooLong { path: self.path.clone(), line: self.next_seq, max: MAX_LINE_BYTES });
        }
        size = size.min(MAX_LINE_BYTES + CHUNK_BYTES);
        let mut buf = self.reclaim(size);
        buf.extend_from_slice(&self.chunk[self.at..]);
        let old_len = buf.len();
        buf.resize(size, 0);
        let mut filled = old_len;
        while filled < size {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    filled += n;
                    // One read per refill is enough when it brought a whole line.
                    if memchr::memchr(b'\n', &buf[old_len..filled]).is_some() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(SourceError::Read { path: self.path.clone(), source }),
            }
        }
        buf.truncate(filled);
        self.bytes_read += (filled - old_len) as u64;
        let progressed = filled > old_len;
        let old = std::mem::replace(&mut self.chunk, buf.freeze());
        if self.retired.len() == RETIRED_CHUNKS {
            self.retired.pop_front();
        }
        self.retired.push_back(old);
        self.at = 0;
        Ok(progressed)
    }

    /// An empty buffer of at least `size` bytes: the oldest retired chunk if nothing holds it
    /// any more, else a new one.
    fn reclaim(&mut self, size: usize) -> BytesMut {
        if let Some(oldest) = self.retired.pop_front() {
            match oldest.try_into_mut() {
                Ok(mut buf) if buf.capacity() >= size => {
                    buf.clear();
                    return buf;
                }
                Ok(_) => {}
                Err(still_held) => self.retired.push_front(still_held),
            }
        }
        BytesMut::with_capacity(size)
    }
}

impl<M: LineMessage, R: Read> Source<M> for NdjsonSource<R> {
    fn next_batch(&mut self, out: &mut Vec<Envelope<M>>, max: usize) -> Result<bool, SourceError> {
        let mut produced = 0;
        while produced < max {
            let rest = &self.chunk[self.at..];
            let end = match memchr::memchr(b'\n', rest) {
                Some(i) => i,
                // Hand over what is here rather than wait for input to fill the batch.
                None if !self.eof && produced > 0 => return Ok(true),
                None if !self.eof => {
                    self.refill()?;
                    continue;
                }
                None if rest.is_empty() => return Ok(false),
                None => rest.len(),
            };
            let mut line_end = self.at + end;
            let next = (line_end + 1).min(self.chunk.len());
            if line_end > self.at && self.chunk[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let line = self.chunk.slice(self.at..line_end);
            self.at = next;
            let header =
                EnvelopeHeader { seq: self.next_seq, correlation_id: self.correlation_id, ..Default::default() };
            self.next_seq += 1;
            out.push(Envelope::new(header, M::from_line(line)));
            produced += 1;
        }
        Ok(true)
    }

    fn position(&self) -> (u64, Option<u64>) {
        (self.bytes_read, self.total)
    }

    fn idle(&mut self) -> bool {
        !self.eof && memchr::memchr(b'\n', &self.chunk[self.at..]).is_none()
    }
}

/// Writes each record followed by `\n`, encoding records straight into one output buffer
/// that goes to the writer in large writes.
pub struct NdjsonSink<W: Write = Box<dyn Write + Send>> {
    writer: W,
    buffer: Vec<u8>,
    path: String,
}

impl NdjsonSink {
    /// Creates (or truncates) `path`, or writes to stdout for `-`.
    pub fn create(path: &str) -> Result<Self, SinkError> {
        if path == "-" {
            return Ok(Self::from_writer(Box::new(io::stdout()), "stdout"));
        }
        let file = File::create(path).map_err(|source| SinkError::Write { path: path.into(), source })?;
        Ok(Self::from_writer(Box::new(file), path))
    }
}

impl<W: Write> NdjsonSink<W> {
    /// A sink over any writer; `path` names it in errors.
    pub fn from_writer(writer: W, path: &str) -> Self {
        NdjsonSink { writer, buffer: Vec::with_capacity(WRITE_BUFFER_BYTES + 4096), path: path.into() }
    }

    fn write_out(&mut self) -> Result<(), SinkError> {
        let written = self.writer.write_all(&self.buffer);
        self.buffer.clear();
        written.map_err(|e| self.io_error(e))
    }

    fn io_error(&self, source: io::Error) -> SinkError {
        SinkError::Write { path: self.path.clone(), source }
    }
}

impl<M: LineMessage, W: Write> Sink<M> for NdjsonSink<W> {
    fn write_batch(&mut self, batch: &mut Vec<Envelope<M>>) -> Result<(), SinkError> {
        for envelope in batch.drain(..) {
            if !envelope.payload.write_record(&mut self.buffer) {
                return Err(SinkError::NotARecord { seq: envelope.header.seq, kind: envelope.payload.kind() });
            }
            self.buffer.push(b'\n');
            if self.buffer.len() >= WRITE_BUFFER_BYTES {
                self.write_out()?;
            }
        }
        Ok(())
    }

    fn holds_unflushed(&self) -> bool {
        !self.buffer.is_empty()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.write_out()?;
        self.writer.flush().map_err(|e| self.io_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopline_model::Message;

    #[derive(Debug, PartialEq)]
    struct Line(Bytes);

    impl Message for Line {
        fn kind(&self) -> &'static str {
            "line"
        }
    }

    impl LineMessage for Line {
        fn from_line(line: Bytes) -> Self {
            Line(line)
        }
        fn write_record(&self, out: &mut Vec<u8>) -> bool {
            out.extend_from_slice(&self.0);
            true
        }
    }

    fn read_all(input: &'static [u8], batch: usize) -> Vec<(u64, Vec<u8>)> {
        let mut source = NdjsonSource::from_reader(input, "test", None, CorrelationId(7));
        let mut out: Vec<Envelope<Line>> = Vec::new();
        while source.next_batch(&mut out, batch).unwrap() {}
        out.into_iter()
            .map(|e| {
                assert_eq!(e.header.correlation_id, CorrelationId(7));
                (e.header.seq, e.payload.0.to_vec())
            })
            .collect()
    }

    #[test]
    fn lines_are_numbered_and_stripped_of_crlf() {
        let lines = read_all(b"a\r\nb\n\nc", 2);
        assert_eq!(lines, vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"".to_vec()), (4, b"c".to_vec())]);
    }

    #[test]
    fn trailing_newline_adds_no_line_and_empty_input_has_none() {
        assert_eq!(read_all(b"a\nb\n", 10).len(), 2);
        assert!(read_all(b"", 10).is_empty());
        assert_eq!(read_all(b"\n", 10), vec![(1, b"".to_vec())]);
    }

    #[test]
    fn lines_longer_than_a_chunk_are_read_whole() {
        let long: &'static [u8] =
            Box::leak([vec![b'x'; CHUNK_BYTES * 3 + 5], b"\nshort\n".to_vec()].concat().into_boxed_slice());
        let lines = read_all(long, 1);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1.len(), CHUNK_BYTES * 3 + 5);
        assert_eq!(lines[1].1, b"short");
    }

    #[test]
    fn missing_input_file_names_its_path() {
        let err = NdjsonSource::open("/no/such/dir/input.txt", CorrelationId(0)).err().unwrap();
        assert_eq!(err.to_string(), "cannot read /no/such/dir/input.txt");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn sink_writes_one_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut sink = NdjsonSink::create(path.to_str().unwrap()).unwrap();
        let mut batch = vec![
            Envelope::new(EnvelopeHeader::default(), Line(Bytes::from_static(b"{}"))),
            Envelope::new(EnvelopeHeader::default(), Line(Bytes::from_static(b"[1]"))),
        ];
        Sink::<Line>::write_batch(&mut sink, &mut batch).unwrap();
        Sink::<Line>::flush(&mut sink).unwrap();
        assert!(batch.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n[1]\n");
    }
}
