//! From a config file to a finished run.
//!
//! The order is fixed: read and validate the config, build every node (params checked), and
//! only then open the input and create the output. A config error therefore never reads input
//! or truncates an output file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hopline_model::config::{AdapterKind, Profile};
use hopline_model::{ConfigError, CorrelationId, LineMessage, NodeError, PipelineConfig, Registry};

use crate::adapters::{NdjsonSink, NdjsonSource, SinkError, SourceError};
use crate::memory;
use crate::multiprocess::{MultiprocessFailure, Supervised, WorkerProgram, supervise};
use crate::report::RunReport;

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
}

/// Refuses settings the config format accepts but this build cannot honour yet, rather than
/// ignoring them: `runtime.observability.tracing` is validated (issue 5 is building span
/// export on it) but no spans are emitted, and a run that silently traced nothing would
/// mislead.
pub fn check_supported(config: &PipelineConfig) -> Result<(), RunError> {
    if config.runtime.observability.tracing.enabled {
        return Err(ConfigError {
            origin: config.origin.clone(),
            path: "runtime.observability.tracing".into(),
            pos: None,
            message: "this build validates the tracing settings but does not emit spans yet; remove the section \
                      or set `enabled: false` to run"
                .into(),
        }
        .into());
    }
    Ok(())
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

/// Runs a validated config with `registry`'s nodes. Relative adapter paths in the config are
/// taken from `base_dir` (the config file's folder).
pub fn run_pipeline<M: LineMessage>(
    registry: &Registry<M>,
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
    check_supported(config)?;
    // NDJSON is the only adapter kind so far; a new kind fails to compile here until handled.
    let (AdapterKind::Ndjson, AdapterKind::Ndjson) = (config.source.kind, config.sink.kind);
    let mut pipeline = registry.build(config, &[M::LINE], &[M::RECORD])?;

    let input = match &options.input {
        Some(path) => path.display().to_string(),
        None => resolve(base_dir, &config.source.path),
    };
    // Names of this process's stdin are stdin: a worker's own fd 0 is its bootstrap pipe.
    let input =
        if matches!(input.as_str(), "/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0") { "-".into() } else { input };
    let output = match &options.output {
        Some(path) => path.display().to_string(),
        None => resolve(base_dir, &config.sink.path),
    };
    let correlation_id = options.correlation_id.unwrap_or_else(fresh_correlation_id);
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
                worker,
                log: if options.verbose { Some(&mut to_stderr) } else { None },
                notices: if options.quiet { None } else { Some(&mut notices) },
            };
            return supervise(run, progress);
        }
    }
    let mut source = NdjsonSource::open(&input, correlation_id).map_err(RunError::Source)?;
    let mut sink = NdjsonSink::create(&output).map_err(RunError::Sink)?;

    let started = Instant::now();
    let counts = memory::execute(&mut pipeline, &mut source, &mut sink, config.runtime.batch_size, progress)?;
    let elapsed = started.elapsed();
    Ok(RunReport {
        app: config.app.clone(),
        scenario: config.scenario.clone(),
        profile: "memory",
        records_in: counts.records_in,
        records_out: counts.records_out,
        elapsed,
        nodes: pipeline.stages.iter().map(|s| (s.info.name.clone(), s.node.report())).collect(),
        groups: Vec::new(),
        stopped_by: None,
    })
}

/// A random correlation id, from the standard library's per-process random hash keys.
fn fresh_correlation_id() -> CorrelationId {
    use std::hash::{BuildHasher, RandomState};
    let high = RandomState::new().hash_one(std::process::id());
    let low = RandomState::new().hash_one(Instant::now());
    CorrelationId((u128::from(high) << 64) | u128::from(low))
}
