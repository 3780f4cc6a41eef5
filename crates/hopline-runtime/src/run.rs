//! From a config file to a finished run.
//!
//! The order is fixed: read and validate the config, build every node (params checked), and
//! only then open the input and create the output. A config error therefore never reads input
//! or truncates an output file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hopline_model::config::{EffectiveTracing, Profile, TracingEnvError, TracingFlags};
use hopline_model::{ConfigError, CorrelationId, Ends, Message, NodeError, PipelineConfig, Registry};

use crate::adapters::{SinkError, SourceError, Stoppable};
use crate::memory;
use crate::multiprocess::{MultiprocessFailure, Supervised, WorkerProgram, supervise};
use crate::narration::{Actor, Fields, Level, Narrator};
use crate::report::{RunReport, thousands};
use crate::tracing::{Names, ProcessIdentity, RunTracing, TraceStartError};

/// What the command line may change about a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replaces the source path of the config (relative to the working directory).
    pub input: Option<PathBuf>,
    /// Replaces the sink path of the config (relative to the working directory).
    pub output: Option<PathBuf>,
    /// Correlation id stamped on every envelope; a fresh random one when absent.
    pub correlation_id: Option<CorrelationId>,
    /// How to start workers (multiprocess profile); the running binary's `worker` role when
    /// absent.
    pub worker: Option<WorkerProgram>,
    /// Print the supervisor's lifecycle (multiprocess profile) to stderr.
    pub verbose: bool,
    /// Print nothing to stderr but errors (no stop notices, no status on SIGUSR1).
    pub quiet: bool,
    /// `--trace-otlp`, `--trace-file`, `--forensic`.
    pub tracing: TracingFlags,
    /// Write narration (JSON lines, [`crate::narration`]) to stdout, from every process.
    pub narrate: bool,
}

/// Where a run is, reported after every batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_read: u64,
    pub bytes_total: Option<u64>,
}

/// Why a run could not start or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read config {path}")]
    ConfigRead { path: String, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(SourceError),
    #[error(transparent)]
    Sink(SinkError),
    #[error("node `{node}` failed{}: {error}", seq.map(|s| format!(" on event {s}")).unwrap_or_default())]
    Node { node: String, seq: Option<u64>, error: NodeError },
    /// The transport key named by the config cannot be had.
    #[error(transparent)]
    Key(hopline_transport::KeyError),
    #[error("cannot bind {what} on {host}")]
    Bind { what: &'static str, host: String, source: std::io::Error },
    #[error("cannot find the worker program")]
    WorkerProgram(#[source] std::io::Error),
    /// A multiprocess run failed: the root cause, with its place.
    #[error("{}", .0.root)]
    Multiprocess(Box<MultiprocessFailure>),
    /// An `OTEL_*` variable or a tracing flag cannot be used.
    #[error(transparent)]
    TracingSettings(#[from] TracingEnvError),
    /// Tracing could not start (an endpoint, a file).
    #[error(transparent)]
    Tracing(#[from] TraceStartError),
}

/// The tracing a run does: the config's `runtime.observability.tracing`, the `OTEL_*`
/// variables and the flags combined (see [`hopline_model::config::observability`]), checked
/// against this build and against the run's output: the `stdout` exporter cannot share
/// standard output with a sink writing records there.
pub fn resolve_tracing(
    config: &PipelineConfig,
    flags: &TracingFlags,
    output: &str,
) -> Result<EffectiveTracing, RunError> {
    let tracing = config.runtime.observability.tracing.resolve(&|name| std::env::var(name).ok(), flags)?;
    let refuse = |message: &str| -> RunError {
        ConfigError {
            origin: config.origin.clone(),
            path: "runtime.observability.tracing".into(),
            pos: None,
            message: message.into(),
        }
        .into()
    };
    if tracing.enabled && !hopline_model::trace::COMPILED_IN {
        return Err(refuse(
            "this hopline was built without tracing (the `tracing` feature); rebuild it with the feature, or switch \
             tracing off",
        ));
    }
    if tracing.stdout && output == "-" {
        return Err(refuse(
            "the `stdout` exporter would mix spans into the records the sink writes to standard output; write the \
             records to a file (--output) or the spans to a `file` exporter",
        ));
    }
    Ok(tracing)
}

/// Reads and validates a config file. Errors name the file.
pub fn load_config(path: &Path) -> Result<PipelineConfig, RunError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RunError::ConfigRead { path: origin.clone(), source })?;
    Ok(PipelineConfig::from_yaml(&origin, &text)?)
}

/// Resolves a path written in a config: `-` stays, absolute stays, relative joins `base`.
pub(crate) fn resolve(base: &Path, written: &str) -> String {
    if written == "-" || Path::new(written).is_absolute() {
        written.to_string()
    } else {
        base.join(written).display().to_string()
    }
}

/// Runs a validated config with `registry`'s nodes and `ends`' sources and sinks. Relative
/// adapter paths in the config are taken from `base_dir` (the config file's folder).
pub fn run_pipeline<M: Message>(
    registry: &Registry<M>,
    ends: &dyn Ends<M>,
    config: &PipelineConfig,
    base_dir: &Path,
    options: &RunOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunReport, RunError> {
    if config.app != registry.app() {
        return Err(ConfigError {
            origin: config.origin.clone(),
            path: "app".into(),
            pos: Some(config.app_pos),
            message: format!("this config is for app `{}`, not `{}`", config.app, registry.app()),
        }
        .into());
    }
    let pipeline = build(registry, ends, config)?;

    let (input, output) = adapter_names(config, base_dir, options)?;
    let correlation_id = options.correlation_id.unwrap_or_else(fresh_correlation_id);
    let tracing = resolve_tracing(config, &options.tracing, if config.sink.is_ndjson() { &output } else { "" })?;
    if options.narrate && tracing.stdout {
        return Err(ConfigError {
            origin: config.origin.clone(),
            path: "runtime.observability.tracing.exporters".into(),
            pos: None,
            message: "the `stdout` exporter and narration (--narrate) would share standard output; write the spans \
                      to a `file` exporter instead"
                .into(),
        }
        .into());
    }
    if options.narrate && config.sink.is_ndjson() && output == "-" {
        return Err(ConfigError {
            origin: config.origin.clone(),
            path: "sink.path".into(),
            pos: None,
            message: "narration (--narrate) is written to standard output; give the records a file (--output PATH)"
                .into(),
        }
        .into());
    }
    let multiprocess = config.runtime.profile == Profile::Multiprocess;
    let narrator = options.narrate.then(|| {
        let process = if multiprocess { "supervisor" } else { "run" };
        Narrator::stdout(Actor { process: process.into(), group: None, pid: std::process::id() }, correlation_id)
    });
    if let Some(narrator) = &narrator {
        let groups = config.runtime.multiprocess.as_ref().map_or(0, |mp| mp.groups.len());
        let shape = if multiprocess {
            format!("multiprocess profile, {groups} process groups")
        } else {
            format!("memory profile, {} nodes", config.nodes.len())
        };
        narrator.info(
            "run.start",
            None,
            &format!("{}/{}: {shape}; reading {input}, writing {output}", config.app, config.scenario),
            Fields::new()
                .with("app", config.app.as_str())
                .with("scenario", config.scenario.as_str())
                .with("profile", if multiprocess { "multiprocess" } else { "memory" })
                .with("input", input.as_str())
                .with("output", output.as_str()),
        );
    }
    let started = Instant::now();
    let mut last_said = Instant::now();
    let mut narrated_progress = |p: Progress| {
        progress(p);
        if let Some(narrator) = &narrator {
            if last_said.elapsed() >= PROGRESS_EVERY {
                last_said = Instant::now();
                say_progress(narrator, p, started.elapsed());
            }
        }
    };
    let result = run_profile(
        ends,
        config,
        base_dir,
        options,
        &tracing,
        (&input, &output),
        correlation_id,
        pipeline,
        narrator.as_ref(),
        &mut narrated_progress,
    );
    if let Some(narrator) = &narrator {
        say_outcome(narrator, &result);
    }
    result
}

/// Checks the config's ends and builds its nodes, the chain checked from source to sink.
pub fn build<M: Message>(
    registry: &Registry<M>,
    ends: &dyn Ends<M>,
    config: &PipelineConfig,
) -> Result<hopline_model::Pipeline<M>, RunError> {
    let kinds = ends.check(config)?;
    if config.runtime.profile == Profile::Multiprocess {
        // Workers open the NDJSON ends themselves; an app's own ends run in one process.
        for (key, adapter) in [("source", &config.source), ("sink", &config.sink)] {
            if !adapter.is_ndjson() {
                return Err(ConfigError::at(
                    &config.origin,
                    &format!("{key}.kind"),
                    adapter.kind_pos,
                    format!(
                        "a `{}` {key} runs under `profile: memory` only; the multiprocess profile's workers open \
                         ndjson sources and sinks",
                        adapter.kind
                    ),
                )
                .into());
            }
        }
    }
    Ok(registry.build(config, kinds.source_emits, kinds.sink_consumes)?)
}

/// What the run reads and writes: for `kind: ndjson`, the paths (the command line's, else the
/// config's from `base_dir`); for an app's kinds, their kind (they take no path, and refuse
/// `--input` and `--output`).
fn adapter_names(config: &PipelineConfig, base_dir: &Path, options: &RunOptions) -> Result<(String, String), RunError> {
    let name = |key: &str, flag: &str, adapter: &hopline_model::AdapterConfig, given: &Option<PathBuf>| {
        if adapter.is_ndjson() {
            return Ok(match given {
                Some(path) => path.display().to_string(),
                None => resolve(base_dir, &adapter.path),
            });
        }
        if given.is_some() {
            return Err(RunError::Config(ConfigError::at(
                &config.origin,
                &format!("{key}.kind"),
                adapter.kind_pos,
                format!("{flag} replaces the path of an ndjson {key}; this {key} is a `{}`", adapter.kind),
            )));
        }
        Ok(format!("the {} {key}", adapter.kind))
    };
    let input = name("source", "--input", &config.source, &options.input)?;
    // Names of this process's stdin are stdin: a worker's own fd 0 is its bootstrap pipe.
    let input =
        if matches!(input.as_str(), "/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0") { "-".into() } else { input };
    let output = name("sink", "--output", &config.sink, &options.output)?;
    Ok((input, output))
}

/// How often a narrating run says how far it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn say_progress(narrator: &Narrator, p: Progress, elapsed: std::time::Duration) {
    let rate = (p.records_in as f64 / elapsed.as_secs_f64().max(1e-9)).round() as u64;
    let of = p
        .bytes_total
        .map(|t| format!(" ({}% of the input)", (p.bytes_read * 100).checked_div(t).unwrap_or(100)))
        .unwrap_or_default();
    narrator.info(
        "progress",
        None,
        &format!(
            "{} records in, {} out, {} records/s{of}",
            thousands(p.records_in),
            thousands(p.records_out),
            thousands(rate)
        ),
        Fields::new()
            .with("records_in", p.records_in)
            .with("records_out", p.records_out)
            .with("records_per_second", rate)
            .with("bytes_read", p.bytes_read),
    );
}

fn say_outcome(narrator: &Narrator, result: &Result<RunReport, RunError>) {
    match result {
        Ok(report) => {
            let action = if report.stopped_by.is_some() { "run.stopped" } else { "run.succeeded" };
            let mut message = format!(
                "{} records in, {} out in {:.3} s ({} records/s)",
                thousands(report.records_in),
                thousands(report.records_out),
                report.elapsed.as_secs_f64(),
                thousands(report.records_per_second().round() as u64)
            );
            if let Some(signal) = report.stopped_by {
                message.push_str(&format!("; stopped early by {signal}, drained"));
            }
            let mut fields = Fields::new()
                .with("records_in", report.records_in)
                .with("records_out", report.records_out)
                .with("elapsed_ms", report.elapsed.as_millis() as u64);
            for (node, node_report) in &report.nodes {
                for (label, n) in &node_report.counts {
                    fields = fields.with(&format!("{node}.{label}"), *n);
                }
            }
            narrator.info(action, None, &message, fields);
        }
        Err(RunError::Multiprocess(failure)) => {
            let root = &failure.root;
            let mut fields = Fields::new()
                .with("kind", root.kind.label())
                .with("group", root.group.as_str())
                .with("records_out", failure.report.records_out);
            if let Some(node) = &root.node {
                fields = fields.with("node", node.as_str());
            }
            if let Some(seq) = root.seq {
                fields = fields.with("seq", seq);
            }
            let consequences: Vec<String> = failure.consequences.iter().map(ToString::to_string).collect();
            if !consequences.is_empty() {
                fields = fields.with("then", consequences);
            }
            narrator.say(Level::Error, "run.failed", Some(&root.group), &root.to_string(), fields);
        }
        Err(error) => {
            narrator.say(Level::Error, "run.failed", None, &format!("{error:#}"), Fields::new());
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// Runs the validated config under its profile: the second half of [`run_pipeline`].
fn run_profile<M: Message>(
    ends: &dyn Ends<M>,
    config: &PipelineConfig,
    base_dir: &Path,
    options: &RunOptions,
    tracing: &EffectiveTracing,
    (input, output): (&str, &str),
    correlation_id: CorrelationId,
    mut pipeline: hopline_model::Pipeline<M>,
    narrator: Option<&Narrator>,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunReport, RunError> {
    let (input, output) = (input.to_string(), output.to_string());
    match config.runtime.profile {
        Profile::Memory => {}
        Profile::Multiprocess => {
            drop(pipeline);
            let worker = match &options.worker {
                Some(worker) => worker.clone(),
                None => WorkerProgram::current_exe().map_err(RunError::WorkerProgram)?,
            };
            let mut to_stderr = |line: &str| eprintln!("hopline: {line}");
            let mut notices = |text: &str| eprintln!("hopline: {text}");
            let run = Supervised {
                config,
                config_text: &config.text,
                config_dir: base_dir,
                input,
                output,
                correlation_id,
                tracing,
                narrator,
                worker,
                log: if options.verbose { Some(&mut to_stderr) } else { None },
                notices: if options.quiet { None } else { Some(&mut notices) },
            };
            return supervise(run, progress);
        }
    }
    let mut source = ends.open_source(config, base_dir, &input, correlation_id).map_err(RunError::Source)?;
    let stop = DrainOnSignal::install(source.stops_promptly());
    let mut traced = match tracing.enabled {
        true => Some(RunTracing::start(
            tracing,
            base_dir,
            correlation_id,
            ProcessIdentity {
                service_name: tracing.service_name.clone(),
                instance_id: instance_id(correlation_id, "main"),
                pid: std::process::id(),
                group: None,
            },
            Names { nodes: node_names(&pipeline), groups: Vec::new() },
            true,
        )?),
        false => None,
    };
    let started = Instant::now();
    let result = ends.create_sink(config, base_dir, &output).map_err(RunError::Sink).and_then(|mut sink| {
        let tracer = traced.as_mut().map(RunTracing::tracer);
        let mut source = Stoppable { inner: &mut *source, stop: &stop.stopping, records_in: None };
        memory::execute(&mut pipeline, &mut source, &mut *sink, config.runtime.batch_size, progress, tracer)
    });
    let elapsed = started.elapsed();
    let tracing = traced.map(|t| t.finish(result.as_ref().err().map(ToString::to_string), Vec::new(), "main"));
    let counts = result?;
    Ok(RunReport {
        app: config.app.clone(),
        scenario: config.scenario.clone(),
        profile: "memory",
        records_in: counts.records_in,
        records_out: counts.records_out,
        elapsed,
        nodes: pipeline.stages.iter().map(|s| (s.info.name.clone(), s.node.report())).collect(),
        groups: Vec::new(),
        stopped_by: stop.stopped_by(),
        tracing,
    })
}

/// The memory profile's graceful stop, for sources that return promptly while their input is
/// quiet ([`Source::stops_promptly`]): the first SIGINT or SIGTERM ends the input, the batch in
/// flight goes through and the sink is flushed; a second one ends the process at once. Other
/// sources keep the signals' default (the process ends), since a read from a quiet pipe would
/// not see the stop.
struct DrainOnSignal {
    stopping: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl DrainOnSignal {
    fn install(wanted: bool) -> DrainOnSignal {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = DrainOnSignal { stopping: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicUsize::new(0)) };
        if wanted {
            for signal in [SIGINT, SIGTERM] {
                // The first handler acts only once the flag is set: on the second signal.
                let _ = signal_hook::flag::register_conditional_default(signal, Arc::clone(&stop.stopping));
                let _ = signal_hook::flag::register_usize(signal, Arc::clone(&stop.signal), signal as usize);
                let _ = signal_hook::flag::register(signal, Arc::clone(&stop.stopping));
            }
        }
        stop
    }

    fn stopped_by(&self) -> Option<&'static str> {
        match self.signal.load(Ordering::SeqCst) as i32 {
            signal_hook::consts::SIGINT => Some("SIGINT"),
            signal_hook::consts::SIGTERM => Some("SIGTERM"),
            _ => None,
        }
    }
}

/// Node names by their index in the pipeline's node list, as span records refer to them.
pub(crate) fn node_names<M: hopline_model::Message>(pipeline: &hopline_model::Pipeline<M>) -> Vec<String> {
    let mut names = Vec::new();
    for stage in &pipeline.stages {
        if names.len() <= stage.info.index {
            names.resize(stage.info.index + 1, String::new());
        }
        names[stage.info.index] = stage.info.name.clone();
    }
    names
}

/// `service.instance.id` of one process of a run: the run's correlation id, the role and the
/// pid, so two runs of one job never share one.
pub(crate) fn instance_id(correlation_id: CorrelationId, role: &str) -> String {
    format!("{correlation_id}-{role}-{}", std::process::id())
}

/// A random correlation id, from the standard library's per-process random hash keys.
fn fresh_correlation_id() -> CorrelationId {
    use std::hash::{BuildHasher, RandomState};
    let high = RandomState::new().hash_one(std::process::id());
    let low = RandomState::new().hash_one(Instant::now());
    CorrelationId((u128::from(high) << 64) | u128::from(low))
}
