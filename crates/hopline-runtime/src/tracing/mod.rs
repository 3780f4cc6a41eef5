//! The tracer of one process: decides which events are sampled, opens their root spans at
//! the source, and ships the span records the pipeline thread noted to the exporters.
//!
//! The pipeline thread only notes compact records ([`hopline_model::trace`]); once per batch
//! [`Tracer::end_batch`] hands them, as one shared slice, to every destination's queue. Each
//! destination (OTLP, a file, stdout, the forensic trace) has its own thread and its own
//! bounded queue ([`export`]): it turns records into OpenTelemetry spans and sends them. A
//! queue that is full drops the batch and counts it, so a collector that is down, slow or
//! failing costs spans, never the run's time, and memory stays bounded.
//!
//! The sampling decision is made once per event, here, at the root; everything downstream
//! follows the sampled flag the event carries.

mod export;
mod forensic;

use std::path::Path;
use std::sync::{Arc, Mutex};

use hopline_model::config::{EffectiveTracing, Sampler, SpanLevel};
use hopline_model::trace::{self, Level, Outcome, SpanKind, SpanRecord};
use hopline_model::{CorrelationId, Envelope, TraceContext};

pub use export::{DestinationStats, Names, ProcessIdentity, TraceStats};
pub use forensic::{ForensicReport, ForensicWriter};

use export::Destination;

/// Why tracing could not start. Names the destination and never holds a header value.
#[derive(Debug, thiserror::Error)]
pub enum TraceStartError {
    #[error("tracing: cannot use the OTLP endpoint {endpoint}: {message}")]
    Otlp { endpoint: String, message: String },
    #[error("tracing: cannot create the span file {path}")]
    File { path: String, source: std::io::Error },
    #[error(
        "tracing: this hopline was built without tracing (the `tracing` feature); rebuild with it or remove the tracing settings"
    )]
    NotCompiledIn,
}

/// Where a process sends span lines it does not write itself (a worker's forensic spans and
/// stdout spans go to the supervisor): a function taking one OTLP JSON line (a `TracesData`
/// object). It returns false when the line could not be delivered.
pub type LineSend = Box<dyn FnMut(String) -> bool + Send>;

/// Where the forensic spans of this process go.
pub type ForensicSend = LineSend;

/// Everything a process needs to trace.
pub struct TracerSetup<'a> {
    pub tracing: &'a EffectiveTracing,
    /// The config file's folder: files written in the config are relative to it.
    pub config_dir: &'a std::path::Path,
    pub process: ProcessIdentity,
    pub names: Names,
    /// Whether events start here (the process that reads the source): only then are roots
    /// opened and sampling decided.
    pub opens_roots: bool,
    /// The run's span: every event's root span links to it.
    pub run_span: Option<TraceContext>,
    /// This process's share of the forensic trace, when the run writes one.
    pub forensic: Option<ForensicSend>,
    /// Where the `stdout` exporter's lines go instead of this process's standard output (a
    /// worker's go to the supervisor, which prints every process's lines whole).
    pub stdout_via: Option<LineSend>,
    /// Open span files to append (a worker: the supervisor has created them) rather than
    /// create them.
    pub append_files: bool,
}

/// An event whose root span is open: it ends when the batch leaves this process.
struct OpenRoot {
    context: TraceContext,
    parent_span_id: [u8; 8],
    seq: u64,
    correlation_id: CorrelationId,
    start_ns: u64,
}

/// One process's tracer. See the module docs.
pub struct Tracer {
    sampler: Sampler,
    opens_roots: bool,
    open_roots: Vec<OpenRoot>,
    records: Vec<SpanRecord>,
    destinations: Vec<Destination>,
    spans: u64,
}

impl Tracer {
    /// Starts the exporters and switches span recording on for the calling thread (the one
    /// that will run the executor).
    pub fn start(mut setup: TracerSetup<'_>) -> Result<Tracer, TraceStartError> {
        if !trace::COMPILED_IN {
            return Err(TraceStartError::NotCompiledIn);
        }
        let destinations = export::start_destinations(&mut setup)?;
        trace::set_level(match setup.tracing.level {
            SpanLevel::Info => Level::Info,
            SpanLevel::Debug => Level::Debug,
        });
        Ok(Tracer {
            sampler: setup.tracing.sampler,
            opens_roots: setup.opens_roots,
            open_roots: Vec::new(),
            records: Vec::new(),
            destinations,
            spans: 0,
        })
    }

    /// Decides, for each event the source just read, whether it is traced; a traced event
    /// gets a new trace and its root span is opened. Does nothing in a process that does not
    /// read the source.
    pub fn open_roots<M>(&mut self, batch: &mut [Envelope<M>]) {
        if !self.opens_roots || batch.is_empty() || self.sampler == Sampler::AlwaysOff {
            return;
        }
        let start_ns = trace::now_ns();
        for envelope in batch {
            let header = &mut envelope.header;
            // An event arriving with a context (an upstream system's) stays in its trace; the
            // parent-based samplers follow the parent's decision.
            let (context, parent_span_id) = match header.trace {
                Some(parent) if parent_based(self.sampler) => {
                    if !parent.sampled() {
                        continue;
                    }
                    (TraceContext { span_id: trace::new_span_id(), ..parent }, parent.span_id)
                }
                _ => {
                    let trace_id = trace::new_trace_id();
                    if !sample_root(self.sampler, &trace_id) {
                        header.trace = None;
                        continue;
                    }
                    (TraceContext { trace_id, span_id: trace::new_span_id(), flags: 1 }, [0; 8])
                }
            };
            self.open_roots.push(OpenRoot {
                context,
                parent_span_id,
                seq: header.seq,
                correlation_id: header.correlation_id,
                start_ns,
            });
            header.trace = Some(context);
        }
    }

    /// The batch has left this process (written to the sink or sent to the next group):
    /// ends the root spans opened for it and ships every record noted since the last call.
    pub fn end_batch(&mut self) {
        if !self.open_roots.is_empty() {
            let end_ns = trace::now_ns();
            for root in self.open_roots.drain(..) {
                self.records.push(SpanRecord {
                    trace_id: root.context.trace_id,
                    span_id: root.context.span_id,
                    parent_span_id: root.parent_span_id,
                    kind: SpanKind::Source,
                    start_ns: root.start_ns,
                    end_ns,
                    seq: root.seq,
                    correlation_id: root.correlation_id,
                    route_hop: 0,
                    handoff_from: None,
                    outcome: Outcome::None,
                    custom: None,
                });
            }
        }
        trace::take_records(&mut self.records);
        if self.records.is_empty() {
            return;
        }
        self.spans += self.records.len() as u64;
        let batch: Arc<[SpanRecord]> = self.records.drain(..).collect();
        for destination in &self.destinations {
            destination.offer(&batch);
        }
    }

    /// Counters so far (heartbeats carry them).
    pub fn stats(&self) -> TraceStats {
        TraceStats { spans: self.spans, destinations: self.destinations.iter().map(Destination::stats).collect() }
    }

    /// Ships what is left and waits for every destination to export it: local destinations
    /// (files, stdout, the forensic trace) to the end, OTLP for at most its timeout. A
    /// destination that fails while flushing gives up on the rest (counted as dropped), so a
    /// collector that is down does not hold the exit up.
    pub fn finish(mut self) -> TraceStats {
        self.end_batch();
        trace::set_level(Level::Off);
        let spans = self.spans;
        let destinations = self.destinations.into_iter().map(Destination::finish).collect();
        TraceStats { spans, destinations }
    }
}

/// Whether `sampler` follows a parent's decision.
fn parent_based(sampler: Sampler) -> bool {
    matches!(sampler, Sampler::ParentBasedAlwaysOn | Sampler::ParentBasedTraceIdRatio(_))
}

/// The decision for a trace that starts here, as the OpenTelemetry SDK's samplers make it:
/// the ratio samplers keep a trace when the low 63 bits of its id's last 8 bytes fall below
/// the ratio's share of 2^63, so every process (and any SDK) agrees on a given trace id.
fn sample_root(sampler: Sampler, trace_id: &[u8; 16]) -> bool {
    match sampler {
        Sampler::AlwaysOn | Sampler::ParentBasedAlwaysOn => true,
        Sampler::AlwaysOff => false,
        Sampler::TraceIdRatio(ratio) | Sampler::ParentBasedTraceIdRatio(ratio) => {
            let low = u64::from_be_bytes(trace_id[8..].try_into().expect("8 bytes")) >> 1;
            let bound = (ratio.get() * (1u64 << 63) as f64) as u64;
            low < bound
        }
    }
}

/// The variable a caller puts its W3C trace context in (as `traceparent` would carry it).
pub const TRACEPARENT_VAR: &str = "TRACEPARENT";

/// A span that covers a whole piece of work rather than one event: a run (the supervisor's,
/// or the memory profile's process), or a job as a service sees it (the coordinator, an
/// agent). A child of `parent` (the caller's trace context) or the root of a new trace;
/// [`OpenSpan::end`] makes its record.
#[derive(Debug, Clone, Copy)]
pub struct OpenSpan {
    kind: SpanKind,
    /// Its context: what the next hop gets as `traceparent`, or event roots link to.
    pub context: TraceContext,
    parent_span_id: [u8; 8],
    start_ns: u64,
}

impl OpenSpan {
    pub fn begin(kind: SpanKind, parent: Option<TraceContext>) -> OpenSpan {
        let (trace_id, parent_span_id) = match parent {
            Some(parent) => (parent.trace_id, parent.span_id),
            None => (trace::new_trace_id(), [0; 8]),
        };
        OpenSpan {
            kind,
            context: TraceContext { trace_id, span_id: trace::new_span_id(), flags: 1 },
            parent_span_id,
            start_ns: trace::now_ns(),
        }
    }

    /// The span's record, ended now; failed with `failure` if given.
    pub fn end(&self, correlation_id: CorrelationId, failure: Option<String>) -> SpanRecord {
        SpanRecord {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent_span_id: self.parent_span_id,
            kind: self.kind,
            start_ns: self.start_ns,
            end_ns: trace::now_ns(),
            seq: 0,
            correlation_id,
            route_hop: 0,
            handoff_from: None,
            outcome: failure.map_or(Outcome::None, Outcome::failed),
            custom: None,
        }
    }
}

/// A run's tracing in one process: its tracer, its run span (the supervisor's or the memory
/// profile's process) and the forensic trace it writes.
pub struct RunTracing {
    tracer: Tracer,
    run_span: Option<OpenSpan>,
    correlation_id: CorrelationId,
    forensic: Option<Arc<Mutex<ForensicWriter>>>,
}

/// What a run's tracing did, for the summary.
#[derive(Debug, Clone, Default)]
pub struct TracingReport {
    /// Per process: `main` in the memory profile; `supervisor` and each group in the
    /// multiprocess profile.
    pub processes: Vec<(String, TraceStats)>,
    /// The forensic trace written, or why it could not be.
    pub forensic: Option<Result<ForensicReport, String>>,
}

impl RunTracing {
    /// Creates the forensic trace's files, opens the run span (under `TRACEPARENT`, when set
    /// and valid) and starts the tracer on the calling thread. `opens_roots`: this process reads the source (the memory profile).
    pub fn start(
        tracing: &EffectiveTracing,
        config_dir: &Path,
        correlation_id: CorrelationId,
        process: ProcessIdentity,
        names: Names,
        opens_roots: bool,
    ) -> Result<RunTracing, TraceStartError> {
        let forensic = match &tracing.forensic {
            Some(file) => {
                let path = file.path_from(config_dir);
                let writer = ForensicWriter::create(&path, tracing.level)
                    .map_err(|source| TraceStartError::File { path: path.display().to_string(), source })?;
                Some(Arc::new(Mutex::new(writer)))
            }
            None => None,
        };
        // The caller's trace, if it gave one (an agent passes its job's `traceparent`).
        let parent = std::env::var(TRACEPARENT_VAR).ok().and_then(|t| TraceContext::parse_traceparent(&t));
        let run_span = (tracing.sampler != Sampler::AlwaysOff).then(|| OpenSpan::begin(SpanKind::Run, parent));
        let send: Option<ForensicSend> = forensic.as_ref().map(|writer| {
            let writer = Arc::clone(writer);
            Box::new(move |line: String| writer.lock().expect("forensic lock").add(&line).is_ok()) as ForensicSend
        });
        let tracer = Tracer::start(TracerSetup {
            tracing,
            config_dir,
            process,
            names,
            opens_roots,
            run_span: run_span.as_ref().map(|s| s.context),
            forensic: send,
            stdout_via: None,
            append_files: false,
        })?;
        Ok(RunTracing { tracer, run_span, correlation_id, forensic })
    }

    pub fn tracer(&mut self) -> &mut Tracer {
        &mut self.tracer
    }

    /// The run span's context: workers' event roots link to it.
    pub fn run_span(&self) -> Option<TraceContext> {
        self.run_span.as_ref().map(|s| s.context)
    }

    /// Adds spans another process sent (a worker's OTLP JSON line) to the forensic trace.
    pub fn add_forensic(&self, line: &str) -> std::io::Result<()> {
        match &self.forensic {
            Some(writer) => writer.lock().expect("forensic lock").add(line),
            None => Ok(()),
        }
    }

    /// Ends the run span (with the run's failure, if any), flushes this process's spans and
    /// writes the forensic trace. `workers` are the other processes' stats, added to the report.
    pub fn finish(self, failure: Option<String>, workers: Vec<(String, TraceStats)>, name: &str) -> TracingReport {
        if let Some(span) = self.run_span {
            // Noted on this thread: the tracer ships it as it finishes.
            trace::record(span.end(self.correlation_id, failure));
        }
        let mut processes = vec![(name.to_string(), self.tracer.finish())];
        processes.extend(workers);
        let forensic = self.forensic.map(|writer| match Arc::try_unwrap(writer) {
            Ok(writer) => writer.into_inner().expect("forensic lock").finish(),
            Err(_) => Err("the forensic trace is still in use".into()),
        });
        TracingReport { processes, forensic }
    }
}

/// Spans of a long-lived service (the coordinator, an agent): records from any thread, shipped
/// by a thread of its own that owns the tracer.
pub struct ServiceTracer {
    records: std::sync::mpsc::Sender<SpanRecord>,
    thread: std::thread::JoinHandle<TraceStats>,
}

impl ServiceTracer {
    /// Starts the tracer thread; `service_name` and `role` make the resource.
    pub fn start(tracing: &EffectiveTracing, role: &str) -> Result<ServiceTracer, TraceStartError> {
        let (records, received) = std::sync::mpsc::channel::<SpanRecord>();
        let (started, start_result) = std::sync::mpsc::channel();
        let tracing = tracing.clone();
        let role = role.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("trace {role}"))
            .spawn(move || {
                let setup = TracerSetup {
                    tracing: &tracing,
                    config_dir: Path::new(""),
                    process: ProcessIdentity {
                        service_name: format!("{}-{role}", tracing.service_name),
                        instance_id: format!("{role}-{}", std::process::id()),
                        pid: std::process::id(),
                        group: None,
                    },
                    names: Names::default(),
                    opens_roots: false,
                    run_span: None,
                    forensic: None,
                    stdout_via: None,
                    append_files: false,
                };
                let mut tracer = match Tracer::start(setup) {
                    Ok(tracer) => {
                        let _ = started.send(Ok(()));
                        tracer
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return TraceStats::default();
                    }
                };
                loop {
                    match received.recv_timeout(std::time::Duration::from_millis(200)) {
                        Ok(record) => trace::record(record),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracer.end_batch(),
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return tracer.finish(),
                    }
                }
            })
            .map_err(|e| TraceStartError::Otlp { endpoint: String::new(), message: e.to_string() })?;
        match start_result.recv() {
            Ok(Ok(())) => Ok(ServiceTracer { records, thread }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TraceStartError::Otlp { endpoint: String::new(), message: "the tracer thread died".into() }),
        }
    }

    /// Ships one span.
    pub fn record(&self, record: SpanRecord) {
        let _ = self.records.send(record);
    }

    /// Flushes and stops.
    pub fn finish(self) -> TraceStats {
        drop(self.records);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopline_model::config::Ratio;

    #[test]
    fn ratio_sampling_follows_the_trace_id_like_the_sdk() {
        let ratio = Sampler::TraceIdRatio(Ratio::new(0.5).unwrap());
        let mut low = [0u8; 16];
        low[8..].copy_from_slice(&((1u64 << 62) << 1).to_be_bytes());
        assert!(!sample_root(ratio, &low), "exactly the bound is out");
        low[8..].copy_from_slice(&(((1u64 << 62) - 1) << 1).to_be_bytes());
        assert!(sample_root(ratio, &low));
        assert!(!sample_root(Sampler::TraceIdRatio(Ratio::new(0.0).unwrap()), &[0; 16]));
        assert!(sample_root(Sampler::TraceIdRatio(Ratio::ALL), &[0xff; 16]));
    }

    #[test]
    fn a_one_percent_sampler_keeps_about_one_percent() {
        let sampler = Sampler::ParentBasedTraceIdRatio(Ratio::new(0.01).unwrap());
        let kept = (0..100_000).filter(|_| sample_root(sampler, &trace::new_trace_id())).count();
        assert!((700..1300).contains(&kept), "kept {kept} of 100000");
    }
}
