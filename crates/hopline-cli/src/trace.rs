//! `hopline trace`: read forensic trace files (OTLP JSON lines) without a server.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use hopline_trace::{MergeOptions, SpanLevel, TracedSpan};

#[derive(Subcommand)]
pub enum TraceCommand {
    /// Merge trace files (from several processes, runs or machines) into one.
    ///
    /// Spans are deduplicated by (trace id, span id): identical repeats collapse, differing
    /// ones are reported. Debug-level spans are left out unless --level debug. Parents that
    /// cannot be found in the merged set are reported.
    Merge {
        /// Trace files: OTLP JSON lines, one TracesData object a line.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the merged trace to PATH.
        #[arg(long, short, value_name = "PATH")]
        output: PathBuf,
        /// Keep debug-level spans.
        #[arg(long, value_enum, default_value_t = Level::Info)]
        level: Level,
    },
    /// Per node and per hop: count, p50, p99 and max latency; errors with their events; the
    /// slowest events with their path.
    Summary {
        /// A trace file (OTLP JSON lines).
        file: PathBuf,
        /// How many of the slowest events to show.
        #[arg(long, default_value_t = 5)]
        slowest: usize,
    },
    /// Convert a trace for a timeline viewer.
    Export {
        /// A trace file (OTLP JSON lines).
        file: PathBuf,
        /// `chrome`: Chrome trace-event JSON, for Perfetto (ui.perfetto.dev) and chrome://tracing;
        /// one row per process, an arrow per hop.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to PATH.
        #[arg(long, short, value_name = "PATH")]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Level {
    Info,
    Debug,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Chrome,
}

pub fn run(command: TraceCommand) -> anyhow::Result<()> {
    match command {
        TraceCommand::Merge { files, output, level } => merge(&files, &output, level),
        TraceCommand::Summary { file, slowest } => {
            let spans = read_spans(&file)?;
            print!("{}", hopline_trace::summary(&spans, slowest));
            Ok(())
        }
        TraceCommand::Export { file, format: ExportFormat::Chrome, output } => {
            let spans = read_spans(&file)?;
            let json = hopline_trace::export_chrome(&spans);
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&output).with_context(|| format!("cannot create {}", output.display()))?,
            );
            serde_json::to_writer(&mut out, &json).with_context(|| format!("cannot write {}", output.display()))?;
            out.flush().with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("{}: {} spans as Chrome trace events", output.display(), spans.len());
            Ok(())
        }
    }
}

/// The spans of one file, merged (so a file with repeats reads as it should).
fn read_spans(file: &Path) -> anyhow::Result<Vec<TracedSpan>> {
    let data = hopline_trace::read_file(file)?;
    let report = hopline_trace::merge(data, &MergeOptions { level: SpanLevel::Debug });
    if let Some(first) = report.malformed_spans.first() {
        anyhow::bail!("{}: {} malformed spans, the first: {first}", file.display(), report.malformed_spans.len());
    }
    Ok(report.spans)
}

fn merge(files: &[PathBuf], output: &Path, level: Level) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    for file in files {
        inputs.extend(hopline_trace::read_file(file)?);
    }
    let level = match level {
        Level::Info => SpanLevel::Info,
        Level::Debug => SpanLevel::Debug,
    };
    let report = hopline_trace::merge(inputs, &MergeOptions { level });
    hopline_trace::write_file(output, &report.spans)?;
    eprintln!(
        "{}: {} spans from {} files; {} repeats dropped, {} debug spans left out",
        output.display(),
        report.spans.len(),
        files.len(),
        report.duplicates_dropped,
        report.debug_spans_dropped
    );
    if !report.conflicting_duplicates.is_empty() {
        eprintln!(
            "  {} spans appear with different contents; the first read was kept",
            report.conflicting_duplicates.len()
        );
    }
    if !report.malformed_spans.is_empty() {
        eprintln!(
            "  {} malformed spans left out, the first: {}",
            report.malformed_spans.len(),
            report.malformed_spans[0]
        );
    }
    if !report.unresolved_parents.is_empty() {
        let (trace, span, parent) = &report.unresolved_parents[0];
        eprintln!(
            "  {} spans have a parent not in the trace (the first: span {span} of trace {trace}, parent {parent})",
            report.unresolved_parents.len()
        );
    }
    Ok(())
}
