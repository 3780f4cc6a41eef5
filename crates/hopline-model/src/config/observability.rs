//! `runtime.observability`: end-to-end tracing, read strictly like the rest of the config, and
//! [`TracingConfig::resolve`], which combines it with the standard `OTEL_*` environment
//! variables and the `hopline run` flags into the settings a run uses.
//!
//! Both profiles accept it. Absent, tracing is off.
//!
//! ```yaml
//! runtime:
//!   observability:
//!     tracing:
//!       enabled: true              # the default once `tracing:` is written; `false` keeps the
//!                                  # section but switches tracing off
//!       service_name: fund-load    # optional; `hopline` when given nowhere
//!       sampler: { name: parentbased_traceidratio, ratio: 0.01 }
//!                                  # or a name alone: always_on, always_off, parentbased_always_on
//!                                  # (the default); traceidratio and parentbased_traceidratio
//!                                  # need a `ratio` from 0.0 to 1.0, the others take none
//!       level: info                # the default: node and hop spans; `debug` adds node-internal spans
//!       forensic: run.trace.jsonl  # optional: one merged OTLP JSON lines file for the run
//!       exporters:                 # optional, each kind at most once (files: one per path)
//!         - otlp:                  # or `- otlp` alone, every key at its default
//!             endpoint: "http://localhost:4318"   # the default; http:// or https://, no credentials
//!             protocol: http/protobuf             # the default; or http/json (grpc is not supported)
//!             headers: { x-tenant: acme }         # optional: names are HTTP tokens
//!             timeout: 10s                        # the default
//!         - stdout
//!         - file: { path: spans.jsonl }           # OTLP JSON lines: one `TracesData` a line
//!       batch:                     # the export queue (the SDK's batch span processor), optional
//!         max_queue_size: 65536    # the default; spans per destination, 1 ..= 1000000. OTLP drops
//!                                  # what finds it full; files and the forensic trace wait
//!         max_export_batch_size: 512   # the default; at most max_queue_size
//!         scheduled_delay: 5s      # the default: the longest a span waits for its batch
//! ```
//!
//! File paths (`file` exporters and `forensic`) are as written, relative to the config's
//! folder; `-` is refused (the `stdout` exporter prints spans). An endpoint with no path
//! (`http://host:4318` or `http://host:4318/`) is sent to `/v1/traces` on that host; one with a
//! path is used as written. Header values may be secrets: no error message and no `Debug`
//! output shows one. Prefer passing them in `OTEL_EXPORTER_OTLP_HEADERS` to writing them here.
//!
//! # Flag, environment, file
//!
//! [`TracingConfig::resolve`] gives each setting from the first of these that sets it: a
//! `hopline run` flag, then an environment variable, then the config file, then the default.
//!
//! | setting | flag | environment | config file | default |
//! | --- | --- | --- | --- | --- |
//! | on | `--trace-otlp`, `--trace-file` or `--forensic` switch it on | `OTEL_SDK_DISABLED=true` switches it off | `tracing:` written, `enabled` | off |
//! | service name | | `OTEL_SERVICE_NAME` | `service_name` | `hopline` |
//! | sampler | | `OTEL_TRACES_SAMPLER` | `sampler` | `parentbased_always_on` |
//! | ratio | | `OTEL_TRACES_SAMPLER_ARG` | `sampler.ratio` (if the file's sampler has one) | 1.0 |
//! | OTLP endpoint | `--trace-otlp URL` | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT` | `otlp.endpoint` | `http://localhost:4318/v1/traces` |
//! | OTLP protocol | | `OTEL_EXPORTER_OTLP_PROTOCOL` | `otlp.protocol` | `http/protobuf` |
//! | OTLP headers | | `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`, merged by name | `otlp.headers` | none |
//! | files | `--trace-file PATH` adds one | | `file` exporters | none |
//! | forensic file | `--forensic PATH` | | `forensic` | none |
//!
//! The level, the batch settings, the OTLP timeout and the `stdout` exporter come from the file
//! only.
//!
//! - **The environment never switches tracing on.** `OTEL_*` variables are often set for a whole
//!   host or container; a pipeline that has not asked for tracing does not start exporting
//!   because of them. `OTEL_SDK_DISABLED=false` changes nothing. A flag asks for tracing
//!   explicitly, so it switches tracing on even under `OTEL_SDK_DISABLED=true`.
//! - **An OTLP exporter** is used when the file lists one, when `--trace-otlp` or an endpoint
//!   variable names an endpoint (replacing the file's, else adding the exporter), or when
//!   tracing is on with nowhere else to go (no `stdout`, no file, no forensic file): then, as in
//!   the OpenTelemetry SDKs, spans go to `http://localhost:4318/v1/traces`.
//! - **Endpoints.** `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as is;
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is a base, `v1/traces` is appended to its path (so
//!   `http://collector:4318/mypath` sends to `http://collector:4318/mypath/v1/traces`). The
//!   file's endpoint and `--trace-otlp` get `/v1/traces` only when they have no path.
//! - **Headers.** `OTEL_EXPORTER_OTLP_HEADERS` is `name=value,name2=value2` with
//!   percent-encoded values; a header it names replaces the file's header of that name (names
//!   compare without case), the file's other headers stay. So a file can carry `x-tenant` and
//!   the environment the `authorization` token.
//! - **Paths.** The file's paths are relative to the config's folder, the flags' to the working
//!   directory: each [`TraceFile`] says which ([`TraceFile::path_from`]).
//! - **Empty is unset.** An empty variable counts as unset, as the specification says.
//! - **What is not used is not read.** With tracing off only `OTEL_SDK_DISABLED` is read (and
//!   only when the file switches tracing on); the OTLP variables only when an OTLP exporter is
//!   used; the endpoint variables not when `--trace-otlp` is given. So variables meant for other
//!   programs cannot stop a run that does not use them.
//! - **Strict, unlike the specification.** Where the OpenTelemetry specification says to warn
//!   and ignore a malformed value, hopline refuses it, as it refuses a malformed config: a
//!   value that is not `true` or `false` in `OTEL_SDK_DISABLED`, a sampler name other than the
//!   five above (`parentbased_always_off`, `jaeger_remote`, `xray` are not supported), a ratio
//!   outside 0.0 ..= 1.0, `OTEL_TRACES_SAMPLER_ARG` with a sampler that takes no ratio (the
//!   specification ignores it; here it would silently not sample as asked), a protocol other
//!   than `http/protobuf` and `http/json` (`grpc` is not supported). Names in variables compare
//!   without case (`ALWAYS_ON`, `HTTP/JSON`). Each error names the variable or flag and what
//!   was expected, and never shows a header value.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use super::runtime::duration;
use super::tree::{Resolved, Yaml, YamlValue};
use super::{ConfigError, de as tree_de};

/// `runtime.observability`: what a run tells the world about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservabilityConfig {
    /// `tracing:`; when not written, [`TracingConfig::default`]: tracing off.
    pub tracing: TracingConfig,
}

/// `runtime.observability.tracing`, validated. Its `Debug` shows no header value. The default is
/// tracing off, as when `tracing:` is not written.
///
/// These are the file's settings only: [`TracingConfig::resolve`] combines them with the
/// environment and the command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TracingConfig {
    /// Whether the file asks for tracing: `enabled:`, true unless written false once `tracing:` is
    /// written; false when it is not.
    pub enabled: bool,
    /// `service_name:`, the `service.name` of every span's resource.
    pub service_name: Option<String>,
    /// Which traces are kept. Default [`Sampler::ParentBasedAlwaysOn`].
    pub sampler: Sampler,
    /// Which spans are made. Default [`SpanLevel::Info`].
    pub level: SpanLevel,
    /// Where spans go, in the order written: at most one `otlp`, at most one `stdout`, files with
    /// distinct paths.
    pub exporters: Vec<Exporter>,
    /// `forensic:`: the path of the run's merged OTLP JSON lines file, as written (relative to
    /// the config's folder); distinct from every `file` exporter's.
    pub forensic: Option<String>,
    /// `batch:`: the export queue.
    pub batch: BatchConfig,
}

impl TracingConfig {
    /// The service name when neither `OTEL_SERVICE_NAME` nor `service_name:` gives one.
    pub const DEFAULT_SERVICE_NAME: &'static str = "hopline";
}

/// Which traces are recorded and exported: the OpenTelemetry SDK samplers hopline supports,
/// named as in `OTEL_TRACES_SAMPLER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampler {
    /// `always_on`: every trace.
    AlwaysOn,
    /// `always_off`: none.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces, chosen by trace id.
    TraceIdRatio(Ratio),
    /// `parentbased_always_on`: as the parent span decided; every trace that starts here.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_traceidratio`: as the parent span decided; this fraction of the traces that
    /// start here.
    ParentBasedTraceIdRatio(Ratio),
}

impl Sampler {
    /// The name as written in a config or in `OTEL_TRACES_SAMPLER`.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// The ratio of a ratio-based sampler.
    pub fn ratio(self) -> Option<Ratio> {
        match self {
            Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r) => Some(r),
            Sampler::AlwaysOn | Sampler::AlwaysOff | Sampler::ParentBasedAlwaysOn => None,
        }
    }

    fn kind(self) -> SamplerKind {
        match self {
            Sampler::AlwaysOn => SamplerKind::AlwaysOn,
            Sampler::AlwaysOff => SamplerKind::AlwaysOff,
            Sampler::TraceIdRatio(_) => SamplerKind::TraceIdRatio,
            Sampler::ParentBasedAlwaysOn => SamplerKind::ParentBasedAlwaysOn,
            Sampler::ParentBasedTraceIdRatio(_) => SamplerKind::ParentBasedTraceIdRatio,
        }
    }
}

/// A fraction of traces: from 0.0 (none) to 1.0 (all), never NaN.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Ratio(f64);

// A `Ratio` is never NaN, so its equality is reflexive.
impl Eq for Ratio {}

impl Ratio {
    /// Every trace.
    pub const ALL: Ratio = Ratio(1.0);

    /// `ratio` if it is from 0.0 to 1.0.
    pub fn new(ratio: f64) -> Option<Ratio> {
        (0.0..=1.0).contains(&ratio).then_some(Ratio(ratio))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// `level:`: which spans are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanLevel {
    /// A span per node and per hop between process groups.
    #[default]
    Info,
    /// Those, and spans inside nodes.
    Debug,
}

/// One entry of `exporters:`. Its `Debug` shows header names, never their values.
#[derive(Clone, PartialEq, Eq)]
pub enum Exporter {
    /// `otlp:`: OTLP over HTTP to a collector.
    Otlp {
        /// As written: an `http://` or `https://` URL without credentials. See the module docs
        /// for the path spans are sent to.
        endpoint: String,
        protocol: OtlpProtocol,
        /// Sent with every export, in the order written; names are distinct regardless of case.
        headers: Vec<(String, String)>,
        /// How long one export may take.
        timeout: Duration,
    },
    /// `stdout`: spans printed on standard output.
    Stdout,
    /// `file: { path }`: OTLP JSON lines, one `TracesData` object a line; the path as written,
    /// relative to the config's folder.
    File { path: String },
}

impl Exporter {
    /// `otlp.endpoint` when not given: an OpenTelemetry collector's OTLP/HTTP port on this host.
    pub const DEFAULT_OTLP_ENDPOINT: &'static str = "http://localhost:4318";
    /// `otlp.timeout` when not given.
    pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exporter::Otlp { endpoint, protocol, headers, timeout } => f
                .debug_struct("Otlp")
                .field("endpoint", endpoint)
                .field("protocol", protocol)
                .field("headers", &Redacted(headers))
                .field("timeout", timeout)
                .finish(),
            Exporter::Stdout => f.write_str("Stdout"),
            Exporter::File { path } => f.debug_struct("File").field("path", path).finish(),
        }
    }
}

/// How OTLP is encoded over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// `http/protobuf`: binary protobuf.
    #[default]
    HttpProtobuf,
    /// `http/json`: protobuf's JSON mapping.
    HttpJson,
}

impl OtlpProtocol {
    /// The name as written in a config or in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn name(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }

    fn from_name(name: &str) -> Result<OtlpProtocol, String> {
        match name {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            "grpc" => Err("`grpc` is not supported: hopline sends OTLP over HTTP; use `http/protobuf` or `http/json` \
                 (to a collector's OTLP/HTTP port, 4318 by default)"
                .into()),
            _ => Err(format!("expected `http/protobuf` or `http/json`; found {name:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for OtlpProtocol {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OtlpProtocol::from_name(&s).map_err(de::Error::custom)
    }
}

/// `batch:`: the export queues, one per destination, with the OpenTelemetry SDK's batch span
/// processor's settings. Spans that find the OTLP queue full are dropped (and counted), so a
/// collector never holds more than `max_queue_size` spans in memory nor slows the pipeline
/// down; files and the forensic trace are written whole (the pipeline waits for the disk).
/// The default queue is larger than the SDK's 2048: one batch of 1,024 events at full
/// sampling makes about 7,000 spans at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Spans waiting for export, at most. Default 65,536; 1 ..= 1,000,000.
    #[serde(default = "BatchConfig::default_max_queue_size", deserialize_with = "max_queue_size")]
    pub max_queue_size: usize,
    /// Spans in one export, at most. Default 512; at most `max_queue_size`.
    #[serde(default = "BatchConfig::default_max_export_batch_size", deserialize_with = "max_export_batch_size")]
    pub max_export_batch_size: usize,
    /// The longest a span waits for its batch to be exported. Default 5 s.
    #[serde(default = "BatchConfig::default_scheduled_delay", deserialize_with = "duration")]
    pub scheduled_delay: Duration,
}

impl BatchConfig {
    /// The largest accepted `max_queue_size` (and so `max_export_batch_size`).
    pub const MAX_QUEUE_SIZE: usize = 1_000_000;

    fn default_max_queue_size() -> usize {
        65_536
    }

    fn default_max_export_batch_size() -> usize {
        512
    }

    fn default_scheduled_delay() -> Duration {
        Duration::from_secs(5)
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: Self::default_max_queue_size(),
            max_export_batch_size: Self::default_max_export_batch_size(),
            scheduled_delay: Self::default_scheduled_delay(),
        }
    }
}

fn max_queue_size<'de, D: de::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    spans(d, "a queue size")
}

fn max_export_batch_size<'de, D: de::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    spans(d, "an export batch size")
}

fn spans<'de, D: de::Deserializer<'de>>(d: D, what: &str) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    let max = BatchConfig::MAX_QUEUE_SIZE;
    if n == 0 || n > max as u64 {
        return Err(de::Error::custom(format_args!("expected {what} from 1 to {max} spans; found {n}")));
    }
    Ok(n as usize)
}

/// What `hopline run` was told about tracing on its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingFlags {
    /// `--trace-otlp URL`: the OTLP endpoint (replacing any other), switching tracing on.
    pub otlp: Option<String>,
    /// `--trace-file PATH`: one more OTLP JSON lines file (relative to the working directory),
    /// switching tracing on.
    pub file: Option<String>,
    /// `--forensic PATH`: the run's merged file (relative to the working directory), in place of
    /// the config's `forensic:`, switching tracing on.
    pub forensic: Option<String>,
}

/// The tracing a run does: the config file, the environment and the flags combined (see the
/// module docs). Its `Debug` shows no header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveTracing {
    /// Whether to trace at all. When false, nothing is exported: `otlp` is `None`, `stdout` is
    /// false, `files` is empty and `forensic` is `None`; the other fields hold the file's values.
    pub enabled: bool,
    pub service_name: String,
    pub sampler: Sampler,
    pub level: SpanLevel,
    /// The OTLP exporter, its endpoint the full URL to send spans to.
    pub otlp: Option<OtlpExport>,
    /// Whether spans are printed on standard output.
    pub stdout: bool,
    /// OTLP JSON lines files, the config's first, then `--trace-file`'s.
    pub files: Vec<TraceFile>,
    /// The run's merged OTLP JSON lines file.
    pub forensic: Option<TraceFile>,
    pub batch: BatchConfig,
}

impl EffectiveTracing {
    /// One line for a person: the service, the sampler and level, and where spans go. Header
    /// names only, never their values.
    pub fn describe(&self) -> String {
        let mut to = Vec::new();
        if let Some(otlp) = &self.otlp {
            let names: Vec<&str> = otlp.headers.iter().map(|(name, _)| name.as_str()).collect();
            let headers = if names.is_empty() { String::new() } else { format!(", headers {}", names.join(", ")) };
            to.push(format!("OTLP {} ({}{headers})", otlp.endpoint, otlp.protocol.name()));
        }
        to.extend(self.files.iter().map(|f| format!("file {}", f.path)));
        if self.stdout {
            to.push("stdout".into());
        }
        if let Some(forensic) = &self.forensic {
            to.push(format!("forensic trace {}", forensic.path));
        }
        let ratio = self.sampler.ratio().map(|r| format!(" {}", r.get())).unwrap_or_default();
        let level = match self.level {
            SpanLevel::Info => "info",
            SpanLevel::Debug => "debug",
        };
        let to = if to.is_empty() { "nowhere".to_string() } else { to.join(", ") };
        format!("service {}, sampler {}{ratio}, level {level}; spans to {to}", self.service_name, self.sampler.name())
    }
}

/// The effective OTLP exporter. Its `Debug` shows header names, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpExport {
    /// The URL spans are sent to (`.../v1/traces` unless a path was given as is).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Names distinct regardless of case.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl OtlpExport {
    /// An exporter to `endpoint` with the default protocol, timeout and no headers.
    fn to(endpoint: String) -> OtlpExport {
        OtlpExport {
            endpoint,
            protocol: OtlpProtocol::default(),
            headers: Vec::new(),
            timeout: Exporter::DEFAULT_OTLP_TIMEOUT,
        }
    }
}

impl fmt::Debug for OtlpExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExport")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &Redacted(&self.headers))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A file spans are written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFile {
    /// As given: in the config or on the command line.
    pub path: String,
    /// What a relative `path` is relative to.
    pub relative_to: RelativeTo,
}

impl TraceFile {
    /// The path to open, given the config file's folder. An absolute `path` stays as it is.
    pub fn path_from(&self, config_dir: &Path) -> PathBuf {
        match self.relative_to {
            RelativeTo::ConfigFolder => config_dir.join(&self.path),
            RelativeTo::WorkingDirectory => PathBuf::from(&self.path),
        }
    }
}

/// Where a relative path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeTo {
    /// The config file's folder: a path written in the config.
    ConfigFolder,
    /// The working directory: a path given on the command line.
    WorkingDirectory,
}

/// An environment variable or a flag that cannot be used. The message never holds a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct TracingEnvError {
    /// The variable (`OTEL_TRACES_SAMPLER`) or flag (`--trace-otlp`).
    pub name: &'static str,
    /// What is wrong, and what was expected.
    pub message: String,
}

const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const FLAG_OTLP: &str = "--trace-otlp";
const FLAG_FILE: &str = "--trace-file";
const FLAG_FORENSIC: &str = "--forensic";

/// The OTLP/HTTP path for traces.
const TRACES_PATH: &str = "/v1/traces";

fn env_error(name: &'static str, message: impl Into<String>) -> TracingEnvError {
    TracingEnvError { name, message: message.into() }
}

impl TracingConfig {
    /// The tracing a run does: each setting from a flag, else the environment, else this config,
    /// else its default (the module docs give the table and the rules). `env` looks a variable
    /// up (`|name| std::env::var(name).ok()` in a real run); nothing else is read.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &TracingFlags,
    ) -> Result<EffectiveTracing, TracingEnvError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let by_flag = flags.otlp.is_some() || flags.file.is_some() || flags.forensic.is_some();
        let enabled = by_flag
            || match (self.enabled, var(SDK_DISABLED)) {
                (false, _) => false,
                (true, None) => true,
                (true, Some(v)) => !sdk_disabled(&v)?,
            };
        let service_name = || self.service_name.clone().unwrap_or_else(|| Self::DEFAULT_SERVICE_NAME.into());
        if !enabled {
            return Ok(EffectiveTracing {
                enabled: false,
                service_name: service_name(),
                sampler: self.sampler,
                level: self.level,
                otlp: None,
                stdout: false,
                files: Vec::new(),
                forensic: None,
                batch: self.batch,
            });
        }
        let service_name = match var(SERVICE_NAME) {
            Some(name) if name.chars().any(char::is_control) => {
                return Err(env_error(SERVICE_NAME, "expected a service name, without control characters"));
            }
            Some(name) => name,
            None => service_name(),
        };
        let sampler = self.resolve_sampler(&var)?;

        let mut otlp = self.exporters.iter().find_map(|e| match e {
            Exporter::Otlp { endpoint, protocol, headers, timeout } => Some(OtlpExport {
                endpoint: traces_url(endpoint),
                protocol: *protocol,
                headers: headers.clone(),
                timeout: *timeout,
            }),
            Exporter::Stdout | Exporter::File { .. } => None,
        });
        let endpoint = match (&flags.otlp, var(OTLP_TRACES_ENDPOINT), var(OTLP_ENDPOINT)) {
            (Some(url), _, _) => {
                check_endpoint(url).map_err(|m| env_error(FLAG_OTLP, m))?;
                Some(traces_url(url))
            }
            (None, Some(url), _) => {
                check_endpoint(&url).map_err(|m| env_error(OTLP_TRACES_ENDPOINT, m))?;
                Some(url)
            }
            (None, None, Some(base)) => {
                check_endpoint(&base).map_err(|m| env_error(OTLP_ENDPOINT, m))?;
                Some(signal_url(&base))
            }
            (None, None, None) => None,
        };
        if let Some(endpoint) = endpoint {
            match &mut otlp {
                Some(otlp) => otlp.endpoint = endpoint,
                None => otlp = Some(OtlpExport::to(endpoint)),
            }
        }

        let stdout = self.exporters.contains(&Exporter::Stdout);
        let mut files: Vec<TraceFile> = self
            .exporters
            .iter()
            .filter_map(|e| match e {
                Exporter::File { path } => {
                    Some(TraceFile { path: path.clone(), relative_to: RelativeTo::ConfigFolder })
                }
                Exporter::Otlp { .. } | Exporter::Stdout => None,
            })
            .collect();
        if let Some(path) = &flags.file {
            check_flag_path(FLAG_FILE, path)?;
            files.push(TraceFile { path: path.clone(), relative_to: RelativeTo::WorkingDirectory });
        }
        let forensic = match (&flags.forensic, &self.forensic) {
            (Some(path), _) => {
                check_flag_path(FLAG_FORENSIC, path)?;
                if flags.file.as_deref().is_some_and(|file| same_file(file, path)) {
                    return Err(env_error(
                        FLAG_FILE,
                        format!("names the file of --forensic, {path:?}; a file takes one writer"),
                    ));
                }
                Some(TraceFile { path: path.clone(), relative_to: RelativeTo::WorkingDirectory })
            }
            (None, Some(path)) => Some(TraceFile { path: path.clone(), relative_to: RelativeTo::ConfigFolder }),
            (None, None) => None,
        };
        if otlp.is_none() && !stdout && files.is_empty() && forensic.is_none() {
            otlp = Some(OtlpExport::to(format!("{}{TRACES_PATH}", Exporter::DEFAULT_OTLP_ENDPOINT)));
        }

        if let Some(otlp) = &mut otlp {
            if let Some(protocol) = var(OTLP_PROTOCOL) {
                otlp.protocol =
                    OtlpProtocol::from_name(&protocol.to_ascii_lowercase()).map_err(|m| env_error(OTLP_PROTOCOL, m))?;
            }
            // The signal's own variable replaces the general one, as in the OTLP exporter.
            let headers = match var(OTLP_TRACES_HEADERS) {
                Some(text) => Some((OTLP_TRACES_HEADERS, text)),
                None => var(OTLP_HEADERS).map(|text| (OTLP_HEADERS, text)),
            };
            if let Some((variable, text)) = headers {
                for (name, value) in env_headers(&text).map_err(|m| env_error(variable, m))? {
                    match otlp.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                        Some(header) => *header = (name, value),
                        None => otlp.headers.push((name, value)),
                    }
                }
            }
        }

        Ok(EffectiveTracing {
            enabled: true,
            service_name,
            sampler,
            level: self.level,
            otlp,
            stdout,
            files,
            forensic,
            batch: self.batch,
        })
    }

    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` over the file's sampler.
    fn resolve_sampler(&self, var: &dyn Fn(&str) -> Option<String>) -> Result<Sampler, TracingEnvError> {
        let from_env =
            match var(TRACES_SAMPLER) {
                Some(name) => Some(SamplerKind::from_name(&name.to_ascii_lowercase()).ok_or_else(|| {
                    env_error(TRACES_SAMPLER, format!("expected a sampler, {SAMPLERS}; found {name:?}"))
                })?),
                None => None,
            };
        let kind = from_env.unwrap_or_else(|| self.sampler.kind());
        let arg = match var(TRACES_SAMPLER_ARG) {
            Some(text) => Some(Ratio::new(text.trim().parse().unwrap_or(f64::NAN)).ok_or_else(|| {
                env_error(TRACES_SAMPLER_ARG, format!("expected a sampling ratio from 0.0 to 1.0; found {text:?}"))
            })?),
            None => None,
        };
        if !kind.takes_ratio() {
            if arg.is_some() {
                let from = match from_env {
                    Some(_) => "set by OTEL_TRACES_SAMPLER",
                    None => "from the config, or its default",
                };
                return Err(env_error(
                    TRACES_SAMPLER_ARG,
                    format!(
                        "is a ratio, but the sampler `{}` ({from}) takes none; set OTEL_TRACES_SAMPLER to \
                         `traceidratio` or `parentbased_traceidratio`, or unset OTEL_TRACES_SAMPLER_ARG",
                        kind.name()
                    ),
                ));
            }
            return Ok(kind.with(Ratio::ALL));
        }
        Ok(kind.with(arg.or(self.sampler.ratio()).unwrap_or(Ratio::ALL)))
    }
}

/// `OTEL_SDK_DISABLED`: `true` or `false`, any case.
fn sdk_disabled(value: &str) -> Result<bool, TracingEnvError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(env_error(SDK_DISABLED, format!("expected `true` or `false`; found {value:?}"))),
    }
}

/// A path given to `--trace-file` or `--forensic`.
fn check_flag_path(flag: &'static str, path: &str) -> Result<(), TracingEnvError> {
    trace_path(path).map_err(|m| env_error(flag, m))
}

/// A path spans are written to: not empty, not `-`.
fn trace_path(path: &str) -> Result<(), String> {
    match path {
        "" => Err("expected a file path; found nothing".into()),
        "-" => Err("`-` (standard output) is no file here; the `stdout` exporter prints spans".into()),
        _ => Ok(()),
    }
}

/// Whether two paths as written name the same file for certain (`./a` and `a`, `a//b` and `a/b`).
fn same_file(a: &str, b: &str) -> bool {
    fn parts(p: &str) -> impl Iterator<Item = Component<'_>> {
        Path::new(p).components().filter(|c| *c != Component::CurDir)
    }
    parts(a).eq(parts(b))
}

/// Checks an OTLP endpoint: an `http://` or `https://` URL with a host, without credentials or
/// spaces. A URL holding `@` may hold a password: it is refused without being shown.
fn check_endpoint(url: &str) -> Result<(), String> {
    if url.contains('@') {
        return Err("an endpoint with `@` (credentials in the URL) is refused, and not shown; send credentials \
                    as headers (`headers:` or OTEL_EXPORTER_OTLP_HEADERS)"
            .into());
    }
    let expected = || format!("expected an http:// or https:// URL, such as `http://localhost:4318`; found {url:?}");
    let Some((scheme, rest)) = url.split_once("://") else { return Err(expected()) };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(expected());
    }
    if rest.starts_with(['/', '?', '#']) || rest.is_empty() {
        return Err(format!("expected a host after `{scheme}://`, such as `http://localhost:4318`; found {url:?}"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("an endpoint URL holds no spaces or control characters; found {url:?}"));
    }
    Ok(())
}

/// Where spans go for an endpoint written in the config or given to `--trace-otlp`: with no
/// path, the OTLP/HTTP traces path on that host; with one, the URL as is.
fn traces_url(endpoint: &str) -> String {
    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    let path_start = endpoint[after_scheme..].find(['/', '?', '#']).map_or(endpoint.len(), |i| after_scheme + i);
    match &endpoint[path_start..] {
        "" | "/" => format!("{}{TRACES_PATH}", &endpoint[..path_start]),
        _ => endpoint.to_string(),
    }
}

/// Where spans go for `OTEL_EXPORTER_OTLP_ENDPOINT`: `v1/traces` appended to its path.
fn signal_url(base: &str) -> String {
    format!("{}{TRACES_PATH}", base.strip_suffix('/').unwrap_or(base))
}

/// The characters of an HTTP token (RFC 9110, 5.6.2) besides letters and digits.
const TOKEN_MARKS: &[u8] = b"!#$%&'*+-.^_`|~";

/// Whether `name` is an HTTP header name: a non-empty token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || TOKEN_MARKS.contains(&b))
}

const HEADER_NAME: &str = "letters, digits and any of !#$%&'*+-.^_`|~ (an HTTP token)";

/// Checks a header value, which is never shown: not empty, no control characters but tab.
fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("header `{name}` has an empty value"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "the value of header `{name}` holds a control character (such as a line break), which HTTP does \
             not allow; the value is not shown"
        ));
    }
    Ok(())
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by `,`, values percent-encoded,
/// spaces around either ignored. No message shows a value, nor an item that does not parse.
fn env_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (i, item) in text.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let n = i + 1;
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!(
                "expected `name=value` pairs separated by `,`; item {n} has no `=` (not shown, as it may hold a secret)"
            ));
        };
        let name = name.trim();
        if !is_header_name(name) {
            return Err(format!(
                "item {n}: the part before `=` is no header name, which is {HEADER_NAME} (not shown, as it may \
                 hold a secret)"
            ));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| {
            format!(
                "the value of header `{name}` holds a `%` not followed by two hex digits, or does not decode \
                 to UTF-8; the value is not shown"
            )
        })?;
        check_header_value(name, &value)?;
        if let Some((first, _)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("header `{name}` is given twice (first as `{first}`)"));
        }
        headers.push((name.to_string(), value));
    }
    Ok(headers)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Header names with each value shown as `<redacted>`.
struct Redacted<'a>(&'a [(String, String)]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hidden;

        impl fmt::Debug for Hidden {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }

        f.debug_map().entries(self.0.iter().map(|(name, _)| (name, Hidden))).finish()
    }
}

/// A sampler by name, before its ratio is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio,
    ParentBasedAlwaysOn,
    ParentBasedTraceIdRatio,
}

const SAMPLERS: &str =
    "`always_on`, `always_off`, `traceidratio`, `parentbased_always_on` or `parentbased_traceidratio`";

impl SamplerKind {
    fn from_name(name: &str) -> Option<SamplerKind> {
        Some(match name {
            "always_on" => SamplerKind::AlwaysOn,
            "always_off" => SamplerKind::AlwaysOff,
            "traceidratio" => SamplerKind::TraceIdRatio,
            "parentbased_always_on" => SamplerKind::ParentBasedAlwaysOn,
            "parentbased_traceidratio" => SamplerKind::ParentBasedTraceIdRatio,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SamplerKind::AlwaysOn => "always_on",
            SamplerKind::AlwaysOff => "always_off",
            SamplerKind::TraceIdRatio => "traceidratio",
            SamplerKind::ParentBasedAlwaysOn => "parentbased_always_on",
            SamplerKind::ParentBasedTraceIdRatio => "parentbased_traceidratio",
        }
    }

    fn takes_ratio(self) -> bool {
        matches!(self, SamplerKind::TraceIdRatio | SamplerKind::ParentBasedTraceIdRatio)
    }

    /// The sampler, with `ratio` if it takes one.
    fn with(self, ratio: Ratio) -> Sampler {
        match self {
            SamplerKind::AlwaysOn => Sampler::AlwaysOn,
            SamplerKind::AlwaysOff => Sampler::AlwaysOff,
            SamplerKind::TraceIdRatio => Sampler::TraceIdRatio(ratio),
            SamplerKind::ParentBasedAlwaysOn => Sampler::ParentBasedAlwaysOn,
            SamplerKind::ParentBasedTraceIdRatio => Sampler::ParentBasedTraceIdRatio(ratio),
        }
    }
}

impl<'de> Deserialize<'de> for SamplerKind {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SamplerKind::from_name(&s)
            .ok_or_else(|| de::Error::custom(format_args!("unknown sampler {s:?}; expected {SAMPLERS}")))
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = f64::deserialize(d)?;
        Ratio::new(r)
            .ok_or_else(|| de::Error::custom(format_args!("expected a sampling ratio from 0.0 to 1.0; found {r}")))
    }
}

// ---- The file as written ----

const OBSERVABILITY: &str = "runtime.observability";
const TRACING: &str = "runtime.observability.tracing";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObservability {
    #[serde(default)]
    tracing: Option<RawTracing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracing {
    #[serde(default = "enabled_when_written")]
    enabled: bool,
    #[serde(default)]
    service_name: Option<ServiceName>,
    /// Its ratio is checked against its name in [`read`], with the positions at hand.
    #[serde(default)]
    sampler: Option<RawSampler>,
    #[serde(default)]
    level: SpanLevel,
    #[serde(default)]
    exporters: Vec<Exporter>,
    #[serde(default)]
    forensic: Option<TracePath>,
    #[serde(default)]
    batch: BatchConfig,
}

fn enabled_when_written() -> bool {
    true
}

/// `service_name:`: not empty, no control characters.
struct ServiceName(String);

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err(de::Error::custom(format_args!(
                "expected a service name, without control characters; found {s:?}"
            )));
        }
        Ok(ServiceName(s))
    }
}

/// A path spans are written to (`file.path`, `forensic`).
struct TracePath(String);

impl<'de> Deserialize<'de> for TracePath {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        trace_path(&s)
            .map_err(|m| de::Error::custom(format_args!("{m}; a path is relative to the config's folder")))?;
        Ok(TracePath(s))
    }
}

/// `sampler:` as written: a name, or `{ name, ratio }`.
struct RawSampler {
    kind: SamplerKind,
    ratio: Option<Ratio>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplerMap {
    name: SamplerKind,
    #[serde(default)]
    ratio: Option<Ratio>,
}

impl<'de> Deserialize<'de> for RawSampler {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SamplerVisitor;

        impl<'de> Visitor<'de> for SamplerVisitor {
            type Value = RawSampler;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sampler: a name, or `{{ name: parentbased_traceidratio, ratio: 0.01 }}`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawSampler, E> {
                let kind = SamplerKind::from_name(s)
                    .ok_or_else(|| E::custom(format_args!("unknown sampler {s:?}; expected {SAMPLERS}")))?;
                Ok(RawSampler { kind, ratio: None })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSampler, A::Error> {
                let m = SamplerMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawSampler { kind: m.name, ratio: m.ratio })
            }
        }

        d.deserialize_any(SamplerVisitor)
    }
}

const EXPORTERS: &str = "`otlp`, `stdout` or `file`";
const FILE_NEEDS_PATH: &str = "a `file` exporter needs a path, as in `- file: { path: spans.jsonl }`";

/// The key of a map in `exporters:`.
enum ExporterKind {
    Otlp,
    Stdout,
    File,
}

impl<'de> Deserialize<'de> for ExporterKind {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "otlp" => Ok(ExporterKind::Otlp),
            "stdout" => Ok(ExporterKind::Stdout),
            "file" => Ok(ExporterKind::File),
            _ => Err(de::Error::custom(format_args!("unknown exporter `{s}`; expected {EXPORTERS}"))),
        }
    }
}

/// `otlp:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtlpSettings {
    #[serde(default = "default_endpoint", deserialize_with = "endpoint")]
    endpoint: String,
    #[serde(default)]
    protocol: OtlpProtocol,
    #[serde(default)]
    headers: Headers,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    timeout: Duration,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            endpoint: default_endpoint(),
            protocol: OtlpProtocol::default(),
            headers: Headers::default(),
            timeout: default_timeout(),
        }
    }
}

impl From<OtlpSettings> for Exporter {
    fn from(s: OtlpSettings) -> Exporter {
        Exporter::Otlp { endpoint: s.endpoint, protocol: s.protocol, headers: s.headers.0, timeout: s.timeout }
    }
}

fn default_endpoint() -> String {
    Exporter::DEFAULT_OTLP_ENDPOINT.to_string()
}

fn default_timeout() -> Duration {
    Exporter::DEFAULT_OTLP_TIMEOUT
}

fn endpoint<'de, D: de::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_endpoint(&s).map_err(de::Error::custom)?;
    Ok(s)
}

/// `file:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    path: TracePath,
}

/// The value of `stdout:`: nothing.
struct NoSettings;

impl<'de> Deserialize<'de> for NoSettings {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NoSettingsVisitor;

        impl Visitor<'_> for NoSettingsVisitor {
            type Value = NoSettings;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nothing: the `stdout` exporter takes no settings; write `- stdout`")
            }

            fn visit_unit<E: de::Error>(self) -> Result<NoSettings, E> {
                Ok(NoSettings)
            }
        }

        d.deserialize_any(NoSettingsVisitor)
    }
}

impl<'de> Deserialize<'de> for Exporter {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ExporterVisitor;

        impl<'de> Visitor<'de> for ExporterVisitor {
            type Value = Exporter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exporter: `otlp`, `stdout`, `{ otlp: { endpoint: ... } }` or `{ file: { path: ... } }`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Exporter, E> {
                match s {
                    "otlp" => Ok(OtlpSettings::default().into()),
                    "stdout" => Ok(Exporter::Stdout),
                    "file" => Err(E::custom(FILE_NEEDS_PATH)),
                    _ => Err(E::custom(format_args!("unknown exporter {s:?}; expected {EXPORTERS}"))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Exporter, A::Error> {
                let exporter = match map.next_key::<ExporterKind>()? {
                    None => {
                        return Err(de::Error::custom(format_args!(
                            "an empty map is no exporter; expected {EXPORTERS}"
                        )));
                    }
                    Some(ExporterKind::Otlp) => map.next_value::<Option<OtlpSettings>>()?.unwrap_or_default().into(),
                    Some(ExporterKind::Stdout) => {
                        map.next_value::<NoSettings>()?;
                        Exporter::Stdout
                    }
                    Some(ExporterKind::File) => match map.next_value::<Option<FileSettings>>()? {
                        Some(file) => Exporter::File { path: file.path.0 },
                        None => return Err(de::Error::custom(FILE_NEEDS_PATH)),
                    },
                };
                if let Some(other) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format_args!(
                        "one exporter per list item; found a second key `{other}` (start another item with `-`)"
                    )));
                }
                Ok(exporter)
            }
        }

        d.deserialize_any(ExporterVisitor)
    }
}

/// `headers:` as written: names to values. Values may be secrets: no message shows one, nor
/// anything written where the map should be.
#[derive(Default)]
struct Headers(Vec<(String, String)>);

const HEADERS_EXPECTED: &str = "expected a map of header names to values, such as `{ x-tenant: acme }`; \
                                found something else (not shown, as it may hold a secret)";

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values, such as `{ x-tenant: acme }`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::new();
                while let Some(name) = map.next_key_seed(HeaderName(&headers))? {
                    let value = map.next_value_seed(HeaderValue(&name))?;
                    headers.push((name, value));
                }
                Ok(Headers(headers))
            }

            // Whatever else is written is refused without being shown.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Headers, E> {
                Err(E::custom(HEADERS_EXPECTED))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Headers, A::Error> {
                Err(de::Error::custom(HEADERS_EXPECTED))
            }
        }

        d.deserialize_map(HeadersVisitor)
    }
}

/// A header name, checked against the names before it (`headers` so far).
struct HeaderName<'a>(&'a [(String, String)]);

impl<'de> DeserializeSeed<'de> for HeaderName<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let name = String::deserialize(d)?;
        if !is_header_name(&name) {
            return Err(de::Error::custom(format_args!("expected a header name: {HEADER_NAME}; found {name:?}")));
        }
        if let Some((first, _)) = self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            return Err(de::Error::custom(format_args!(
                "header `{name}` is given twice (first as `{first}`; names are compared without case)"
            )));
        }
        Ok(name)
    }
}

/// The value of the header named here; never shown.
struct HeaderValue<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for HeaderValue<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        struct ValueVisitor<'a>(&'a str);

        impl Visitor<'_> for ValueVisitor<'_> {
            type Value = String;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "the value of header `{}`", self.0)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
                check_header_value(self.0, s).map_err(E::custom)?;
                Ok(s.to_string())
            }
        }

        d.deserialize_str(ValueVisitor(self.0))
    }
}

/// Reads `runtime.observability` from the `runtime:` node (absent: tracing off), under either
/// profile, with the checks that span several keys.
pub(super) fn read(origin: &str, runtime: &Yaml) -> Result<ObservabilityConfig, ConfigError> {
    let Some(node) = runtime.get("observability") else { return Ok(ObservabilityConfig::default()) };
    refuse_null(origin, node, OBSERVABILITY, "`{ tracing: { ... } }`")?;
    if let Some(tracing) = node.get("tracing") {
        refuse_null(origin, tracing, TRACING, "`{ enabled: true, exporters: [stdout] }`")?;
    }
    let raw: RawObservability = tree_de::from_tree(node, OBSERVABILITY).map_err(|e| ConfigError::from_de(origin, e))?;
    let Some(raw) = raw.tracing else { return Ok(ObservabilityConfig::default()) };
    let node = node.get("tracing").expect("tracing was read");
    let sampler = match raw.sampler {
        Some(written) => sampler(origin, node.get("sampler").expect("sampler was read"), written)?,
        None => Sampler::default(),
    };
    let forensic = raw.forensic.map(|f| f.0);
    check_exporters(origin, node, &raw.exporters, forensic.as_deref())?;
    check_batch(origin, node, &raw.batch)?;
    Ok(ObservabilityConfig {
        tracing: TracingConfig {
            enabled: raw.enabled,
            service_name: raw.service_name.map(|s| s.0),
            sampler,
            level: raw.level,
            exporters: raw.exporters,
            forensic,
            batch: raw.batch,
        },
    })
}

/// A key written with nothing after it (`tracing:`) is a mistake, not an absent key.
fn refuse_null(origin: &str, node: &Yaml, path: &str, example: &str) -> Result<(), ConfigError> {
    if matches!(node.resolve(), Some(Resolved::Null)) {
        return Err(ConfigError::at(
            origin,
            path,
            node.pos,
            format!("expected a map, such as {example}; found nothing (null); remove the key to leave tracing off"),
        ));
    }
    Ok(())
}

/// A written sampler's ratio against its name. `node` is the `sampler:` value.
fn sampler(origin: &str, node: &Yaml, written: RawSampler) -> Result<Sampler, ConfigError> {
    let path = format!("{TRACING}.sampler");
    let name = written.kind.name();
    match (written.kind.takes_ratio(), written.ratio) {
        (true, Some(ratio)) => Ok(written.kind.with(ratio)),
        (false, None) => Ok(written.kind.with(Ratio::ALL)),
        (true, None) => Err(ConfigError::at(
            origin,
            &path,
            node.pos,
            format!(
                "`{name}` keeps a ratio of the traces: give it one from 0.0 to 1.0, as in \
                 `sampler: {{ name: {name}, ratio: 0.01 }}`"
            ),
        )),
        (false, Some(_)) => Err(ConfigError::at(
            origin,
            &format!("{path}.ratio"),
            node.get("ratio").map_or(node.pos, |r| r.pos),
            format!("`{name}` takes no ratio; only `traceidratio` and `parentbased_traceidratio` do"),
        )),
    }
}

/// At most one `otlp` and one `stdout` exporter; no two files with one path (`forensic` included).
fn check_exporters(
    origin: &str,
    tracing: &Yaml,
    exporters: &[Exporter],
    forensic: Option<&str>,
) -> Result<(), ConfigError> {
    let items: &[Yaml] = match tracing.get("exporters").map(|e| &e.value) {
        Some(YamlValue::Seq(items)) => items,
        _ => &[],
    };
    let (mut otlp, mut stdout, mut files) = (None, None, Vec::<(usize, &str)>::new());
    for (i, (exporter, item)) in exporters.iter().zip(items).enumerate() {
        let path = format!("{TRACING}.exporters[{i}]");
        match exporter {
            Exporter::Otlp { .. } => match otlp {
                Some(first) => {
                    return Err(ConfigError::at(
                        origin,
                        &path,
                        item.pos,
                        format!(
                            "a second `otlp` exporter (the first is exporters[{first}]); spans go to one OTLP \
                             endpoint, and a collector can send them on to more"
                        ),
                    ));
                }
                None => otlp = Some(i),
            },
            Exporter::Stdout => match stdout {
                Some(first) => {
                    return Err(ConfigError::at(
                        origin,
                        &path,
                        item.pos,
                        format!(
                            "a second `stdout` exporter (the first is exporters[{first}]) would print every span twice"
                        ),
                    ));
                }
                None => stdout = Some(i),
            },
            Exporter::File { path: file } => {
                if let Some((first, written)) = files.iter().find(|(_, f)| same_file(f, file)) {
                    let pos = item.get("file").and_then(|f| f.get("path")).map_or(item.pos, |p| p.pos);
                    return Err(ConfigError::at(
                        origin,
                        &format!("{path}.file.path"),
                        pos,
                        format!("exporters[{first}] writes to {written:?} already; a file takes one writer"),
                    ));
                }
                files.push((i, file));
            }
        }
    }
    if let Some(forensic) = forensic {
        if let Some((first, file)) = files.iter().find(|(_, f)| same_file(f, forensic)) {
            return Err(ConfigError::at(
                origin,
                &format!("{TRACING}.forensic"),
                tracing.get("forensic").map_or(tracing.pos, |f| f.pos),
                format!("exporters[{first}] writes to {file:?} already; a file takes one writer"),
            ));
        }
    }
    Ok(())
}

/// An export batch is taken from the queue: it is at most the queue.
fn check_batch(origin: &str, tracing: &Yaml, batch: &BatchConfig) -> Result<(), ConfigError> {
    if batch.max_export_batch_size <= batch.max_queue_size {
        return Ok(());
    }
    // The defaults fit, so at least one of the two is written: point at the batch size if it is.
    let node = tracing.get("batch").expect("batch is written");
    let written = |key| node.get(key).map(|n| n.pos);
    let (key, pos) = match written("max_export_batch_size") {
        Some(pos) => ("max_export_batch_size", pos),
        None => ("max_queue_size", written("max_queue_size").expect("one of the two is written")),
    };
    let default = |key| if node.get(key).is_some() { "" } else { " (the default)" };
    Err(ConfigError::at(
        origin,
        &format!("{TRACING}.batch.{key}"),
        pos,
        format!(
            "max_export_batch_size must be at most max_queue_size, as each export takes its batch from the queue; \
             found max_export_batch_size {}{} and max_queue_size {}{}",
            batch.max_export_batch_size,
            default("max_export_batch_size"),
            batch.max_queue_size,
            default("max_queue_size"),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::groups::tests::{MP, err_at};
    use super::super::{PipelineConfig, Profile};
    use super::*;

    /// A memory-profile config whose `runtime.observability.tracing` holds `keys`, each line
    /// indented six spaces; the first is on line 6.
    fn memory(keys: &str) -> String {
        format!(
            "app: demo\nscenario: s\nruntime:\n  observability:\n    tracing:\n{keys}\
             source: {{ kind: ndjson, path: in.txt }}\nsink: {{ kind: ndjson, path: '-' }}\nnodes: []\n"
        )
    }

    fn tracing(keys: &str) -> TracingConfig {
        PipelineConfig::from_yaml("mp.yml", &memory(keys)).unwrap().runtime.observability.tracing
    }

    /// The error `keys` give, checked to be at `tracing.<path>` on `line`.
    fn err(keys: &str, path: &str, line: usize) -> ConfigError {
        err_at(&memory(keys), &format!("{TRACING}{path}"), line)
    }

    const SECRET: &str = "s3cr3t-t0ken";

    /// The issue's example, with a batch section. Lines 6 to 15.
    const EXAMPLE: &str = "      enabled: true
      service_name: fund-load
      sampler: { name: parentbased_traceidratio, ratio: 0.01 }
      level: info
      forensic: run.trace.jsonl
      exporters:
        - otlp: { endpoint: \"http://localhost:4318\", protocol: http/protobuf, headers: { x-tenant: acme }, timeout: 10s }
        - stdout
        - file: { path: spans.jsonl }
      batch: { max_queue_size: 4096, max_export_batch_size: 1024, scheduled_delay: 2s }
";

    fn otlp(endpoint: &str, headers: &[(&str, &str)]) -> Exporter {
        Exporter::Otlp {
            endpoint: endpoint.into(),
            protocol: OtlpProtocol::HttpProtobuf,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            timeout: Duration::from_secs(10),
        }
    }

    fn ratio(r: f64) -> Ratio {
        Ratio::new(r).unwrap()
    }

    #[test]
    fn the_issue_example_reads() {
        let t = tracing(EXAMPLE);
        assert_eq!(
            t,
            TracingConfig {
                enabled: true,
                service_name: Some("fund-load".into()),
                sampler: Sampler::ParentBasedTraceIdRatio(ratio(0.01)),
                level: SpanLevel::Info,
                exporters: vec![
                    otlp("http://localhost:4318", &[("x-tenant", "acme")]),
                    Exporter::Stdout,
                    Exporter::File { path: "spans.jsonl".into() },
                ],
                forensic: Some("run.trace.jsonl".into()),
                batch: BatchConfig {
                    max_queue_size: 4096,
                    max_export_batch_size: 1024,
                    scheduled_delay: Duration::from_secs(2),
                },
            }
        );
        assert_eq!(t.sampler.name(), "parentbased_traceidratio");
        assert_eq!(t.sampler.ratio().map(Ratio::get), Some(0.01));
    }

    #[test]
    fn tracing_is_off_unless_written() {
        let text = "app: demo\nscenario: s\nsource: { kind: ndjson, path: in.txt }\nsink: { kind: ndjson, path: '-' }\nnodes: []\n";
        let config = PipelineConfig::from_yaml("demo.yml", text).unwrap();
        assert_eq!(config.runtime.observability, ObservabilityConfig::default());
        assert!(!config.runtime.observability.tracing.enabled);
        for runtime in ["runtime: { batch_size: 8 }\n", "runtime: { observability: {} }\n"] {
            let config = PipelineConfig::from_yaml("demo.yml", &format!("{runtime}{text}")).unwrap();
            assert_eq!(config.runtime.observability.tracing, TracingConfig::default());
        }
    }

    #[test]
    fn a_written_tracing_section_is_on_with_the_defaults() {
        let text = memory("").replace("    tracing:\n", "    tracing: {}\n");
        let t = PipelineConfig::from_yaml("demo.yml", &text).unwrap().runtime.observability.tracing;
        assert_eq!(t, TracingConfig { enabled: true, ..TracingConfig::default() });
        assert_eq!(t.sampler, Sampler::ParentBasedAlwaysOn);
        assert_eq!(t.level, SpanLevel::Info);
        assert_eq!(
            t.batch,
            BatchConfig { max_queue_size: 65_536, max_export_batch_size: 512, scheduled_delay: Duration::from_secs(5) }
        );
        assert!(!tracing("      enabled: false\n      exporters: [stdout]\n").enabled);
    }

    #[test]
    fn an_empty_tracing_or_observability_key_is_refused() {
        let e = err_at(&memory(""), TRACING, 5);
        assert!(e.message.starts_with("expected a map, such as `{ enabled: true, exporters: [stdout] }`"), "{e}");
        let text = memory("").replace("    tracing:\n", "");
        let e = err_at(&text, OBSERVABILITY, 4);
        assert!(e.message.starts_with("expected a map, such as `{ tracing: { ... } }`; found nothing"), "{e}");
    }

    #[test]
    fn both_profiles_accept_observability() {
        let t = tracing("      exporters: [stdout]\n");
        assert_eq!(t.exporters, vec![Exporter::Stdout]);
        let text = MP.replace(
            "  process_groups:\n",
            "  observability:\n    tracing:\n      level: debug\n      exporters: [stdout]\n  process_groups:\n",
        );
        let config = PipelineConfig::from_yaml("mp.yml", &text).unwrap();
        assert_eq!(config.runtime.profile, Profile::Multiprocess);
        assert!(config.runtime.multiprocess.is_some());
        let t = config.runtime.observability.tracing;
        assert_eq!((t.enabled, t.level, t.exporters), (true, SpanLevel::Debug, vec![Exporter::Stdout]));
        let text =
            MP.replace("  process_groups:\n", "  observability: { tracing: { levl: info } }\n  process_groups:\n");
        let e = err_at(&text, &format!("{TRACING}.levl"), 5);
        assert!(e.message.starts_with("unknown field `levl`"), "{e}");
    }

    #[test]
    fn multiprocess_keys_after_observability_are_still_refused_under_memory() {
        let text = memory("      exporters: [stdout]\n").replace("source:", "  host: a.b\nsource:");
        let e = err_at(&text, "runtime.host", 7);
        assert!(e.message.starts_with("`host` applies only to `profile: multiprocess`"), "{e}");
    }

    #[test]
    fn unknown_key_in_tracing_lists_the_keys() {
        let e = err("      sample: always_on\n", ".sample", 6);
        assert_eq!(e.pos.unwrap().col, 7);
        assert_eq!(
            e.message,
            "unknown field `sample`, expected one of `enabled`, `service_name`, `sampler`, `level`, `exporters`, \
             `forensic`, `batch`"
        );
        assert!(e.to_string().starts_with("mp.yml:6:7: runtime.observability.tracing.sample: unknown field"), "{e}");
    }

    #[test]
    fn unknown_key_in_observability_is_refused() {
        let text = memory("      enabled: true\n").replace("    tracing:\n", "    metrics: {}\n    tracing:\n");
        let e = err_at(&text, "runtime.observability.metrics", 5);
        assert_eq!(e.message, "unknown field `metrics`, expected `tracing`");
    }

    #[test]
    fn unknown_key_in_an_exporter_or_sampler_or_batch_is_refused() {
        let e = err("      exporters:\n        - otlp: { header: { a: b } }\n", ".exporters[0].otlp.header", 7);
        assert!(e.message.starts_with("unknown field `header`, expected one of `endpoint`, `protocol`, `headers`"));
        let e = err("      exporters:\n        - file: { paths: x }\n", ".exporters[0].file.paths", 7);
        assert_eq!(e.message, "unknown field `paths`, expected `path`");
        let e = err("      sampler: { name: traceidratio, rate: 0.1 }\n", ".sampler.rate", 6);
        assert_eq!(e.message, "unknown field `rate`, expected `name` or `ratio`");
        let e = err("      batch: { queue: 5 }\n", ".batch.queue", 6);
        assert!(e.message.starts_with("unknown field `queue`, expected one of `max_queue_size`"), "{e}");
    }

    const FIVE: &str =
        "expected `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` or `parentbased_traceidratio`";

    #[test]
    fn unknown_sampler_lists_the_five() {
        let e = err("      sampler: always\n", ".sampler", 6);
        assert_eq!(e.pos.unwrap().col, 16);
        assert_eq!(e.message, format!("unknown sampler \"always\"; {FIVE}"));
        let e = err("      sampler: { name: parentbased_always_off }\n", ".sampler.name", 6);
        assert_eq!(e.message, format!("unknown sampler \"parentbased_always_off\"; {FIVE}"));
        let e = err("      sampler: ALWAYS_ON\n", ".sampler", 6);
        assert_eq!(e.message, format!("unknown sampler \"ALWAYS_ON\"; {FIVE}"));
        for name in ["always_on", "always_off", "parentbased_always_on"] {
            assert_eq!(tracing(&format!("      sampler: {name}\n")).sampler.name(), name);
            assert_eq!(tracing(&format!("      sampler: {{ name: {name} }}\n")).sampler.name(), name);
        }
    }

    #[test]
    fn ratio_out_of_range_is_refused() {
        for (value, shown) in [("1.5", "1.5"), ("-0.1", "-0.1"), ("2", "2"), (".nan", "NaN"), (".inf", "inf")] {
            let e = err(&format!("      sampler: {{ name: traceidratio, ratio: {value} }}\n"), ".sampler.ratio", 6);
            assert_eq!(e.message, format!("expected a sampling ratio from 0.0 to 1.0; found {shown}"));
        }
        let e = err("      sampler: { name: traceidratio, ratio: '0.5' }\n", ".sampler.ratio", 6);
        assert!(e.message.starts_with("invalid type: string \"0.5\""), "{e}");
        for (value, r) in [("0", 0.0), ("1", 1.0), ("0.25", 0.25), ("1e-3", 0.001)] {
            let t = tracing(&format!("      sampler: {{ name: traceidratio, ratio: {value} }}\n"));
            assert_eq!(t.sampler, Sampler::TraceIdRatio(ratio(r)));
        }
    }

    #[test]
    fn ratio_given_to_a_sampler_that_takes_none_is_refused() {
        let e = err("      sampler:\n        name: always_on\n        ratio: 0.5\n", ".sampler.ratio", 8);
        assert_eq!(e.pos.unwrap().col, 16);
        assert_eq!(e.message, "`always_on` takes no ratio; only `traceidratio` and `parentbased_traceidratio` do");
        let e = err("      sampler: { ratio: 0.5, name: parentbased_always_on }\n", ".sampler.ratio", 6);
        assert!(e.message.starts_with("`parentbased_always_on` takes no ratio"), "{e}");
    }

    #[test]
    fn ratio_sampler_without_a_ratio_is_refused() {
        let e = err("      sampler: traceidratio\n", ".sampler", 6);
        assert_eq!(
            e.message,
            "`traceidratio` keeps a ratio of the traces: give it one from 0.0 to 1.0, as in \
             `sampler: { name: traceidratio, ratio: 0.01 }`"
        );
        let e = err("      sampler: { name: parentbased_traceidratio }\n", ".sampler", 6);
        assert!(e.message.starts_with("`parentbased_traceidratio` keeps a ratio"), "{e}");
    }

    #[test]
    fn unknown_protocol_lists_both() {
        let e = err("      exporters:\n        - otlp: { protocol: http/proto }\n", ".exporters[0].otlp.protocol", 7);
        assert_eq!(e.message, "expected `http/protobuf` or `http/json`; found \"http/proto\"");
        let t = tracing("      exporters:\n        - otlp: { protocol: http/json }\n");
        assert!(matches!(t.exporters[0], Exporter::Otlp { protocol: OtlpProtocol::HttpJson, .. }));
    }

    #[test]
    fn grpc_is_refused_as_not_supported() {
        let e = err("      exporters:\n        - otlp: { protocol: grpc }\n", ".exporters[0].otlp.protocol", 7);
        assert!(e.message.starts_with("`grpc` is not supported: hopline sends OTLP over HTTP"), "{e}");
        assert!(e.message.contains("`http/protobuf` or `http/json`"), "{e}");
    }

    #[test]
    fn endpoint_must_be_an_http_url() {
        for value in ["ftp://collector:4318", "localhost:4318", "'http:/x'", "'//collector'"] {
            let e = err(
                &format!("      exporters:\n        - otlp: {{ endpoint: {value} }}\n"),
                ".exporters[0].otlp.endpoint",
                7,
            );
            assert!(
                e.message.starts_with("expected an http:// or https:// URL, such as `http://localhost:4318`"),
                "{e}"
            );
        }
        for value in ["'http://'", "'https:///v1/traces'"] {
            let e = err(
                &format!("      exporters:\n        - otlp: {{ endpoint: {value} }}\n"),
                ".exporters[0].otlp.endpoint",
                7,
            );
            assert!(e.message.starts_with("expected a host after"), "{e}");
        }
        let e = err("      exporters:\n        - otlp: { endpoint: 'http://a b' }\n", ".exporters[0].otlp.endpoint", 7);
        assert!(e.message.starts_with("an endpoint URL holds no spaces"), "{e}");
        for value in ["http://collector:4318", "HTTPS://collector/otlp/v1/traces", "http://[::1]:4318"] {
            let t = tracing(&format!("      exporters:\n        - otlp: {{ endpoint: \"{value}\" }}\n"));
            assert!(matches!(&t.exporters[0], Exporter::Otlp { endpoint, .. } if endpoint == value));
        }
    }

    #[test]
    fn endpoint_with_credentials_is_refused_and_not_shown() {
        let keys = format!("      exporters:\n        - otlp: {{ endpoint: 'https://user:{SECRET}@collector' }}\n");
        let e = err(&keys, ".exporters[0].otlp.endpoint", 7);
        assert!(e.message.starts_with("an endpoint with `@` (credentials in the URL) is refused, and not shown"));
        assert!(!e.to_string().contains(SECRET), "{e}");
    }

    #[test]
    fn header_names_must_be_http_tokens() {
        for (name, shown) in [("'x tenant'", "x tenant"), ("'x:y'", "x:y"), ("'ä'", "ä"), ("''", "")] {
            let e = err(
                &format!("      exporters:\n        - otlp: {{ headers: {{ {name}: v }} }}\n"),
                &format!(".exporters[0].otlp.headers.{shown}"),
                7,
            );
            assert_eq!(
                e.message,
                format!(
                    "expected a header name: letters, digits and any of !#$%&'*+-.^_`|~ (an HTTP token); found {shown:?}"
                )
            );
        }
        let t = tracing("      exporters:\n        - otlp: { headers: { \"X-Api_Key.v1!#$%&'*+^`|~\": v } }\n");
        assert!(
            matches!(&t.exporters[0], Exporter::Otlp { headers, .. } if headers[0].0 == "X-Api_Key.v1!#$%&'*+^`|~")
        );
    }

    #[test]
    fn header_names_are_unique_regardless_of_case() {
        let keys = format!(
            "      exporters:\n        - otlp:\n            headers:\n              Authorization: a\n              authorization: {SECRET}\n"
        );
        let e = err(&keys, ".exporters[0].otlp.headers.authorization", 10);
        assert_eq!(
            e.message,
            "header `authorization` is given twice (first as `Authorization`; names are compared without case)"
        );
        assert!(!e.to_string().contains(SECRET), "{e}");
    }

    #[test]
    fn header_values_never_appear_in_errors() {
        let at = ".exporters[0].otlp.headers";
        for (headers, path, starts) in [
            (
                format!("{{ authorization: \"Bearer {SECRET}\\n\" }}"),
                format!("{at}.authorization"),
                "the value of header `authorization` holds a control character",
            ),
            (format!("\"authorization=Bearer {SECRET}\""), at.to_string(), "expected a map of header names to values"),
            (
                format!("[\"authorization: Bearer {SECRET}\"]"),
                at.to_string(),
                "expected a map of header names to values",
            ),
            (
                format!("{{ authorization: [{SECRET}] }}"),
                format!("{at}.authorization"),
                "invalid type: sequence, expected the value of header `authorization`",
            ),
            (
                format!("{{ authorization: {{ {SECRET}: 1 }} }}"),
                format!("{at}.authorization"),
                "invalid type: map, expected the value of header `authorization`",
            ),
            (
                "{ authorization: '' }".to_string(),
                format!("{at}.authorization"),
                "header `authorization` has an empty value",
            ),
            ("12345".to_string(), at.to_string(), "expected a map of header names to values"),
        ] {
            let e = err(&format!("      exporters:\n        - otlp: {{ headers: {headers} }}\n"), &path, 7);
            assert!(e.message.starts_with(starts), "{e}");
            assert!(!e.to_string().contains(SECRET) && !e.to_string().contains("12345"), "{e}");
        }
        let e = err(
            &format!("      exporters:\n        - otlp: {{ headers: {{ a: {SECRET} }}, timeout: 0s }}\n"),
            ".exporters[0].otlp.timeout",
            7,
        );
        assert!(!e.to_string().contains(SECRET), "{e}");
    }

    #[test]
    fn duplicate_file_paths_are_refused() {
        let e = err(
            "      exporters:\n        - file: { path: spans.jsonl }\n        - stdout\n        - file: { path: ./spans.jsonl }\n",
            ".exporters[2].file.path",
            9,
        );
        assert_eq!(e.pos.unwrap().col, 25);
        assert_eq!(e.message, "exporters[0] writes to \"spans.jsonl\" already; a file takes one writer");
        let e = err(
            "      forensic: out//run.jsonl\n      exporters:\n        - file: { path: out/run.jsonl }\n",
            ".forensic",
            6,
        );
        assert_eq!(e.message, "exporters[0] writes to \"out/run.jsonl\" already; a file takes one writer");
        let t = tracing(
            "      forensic: run.jsonl\n      exporters:\n        - file: { path: a.jsonl }\n        - file: { path: out/a.jsonl }\n",
        );
        assert_eq!(t.exporters.len(), 2);
    }

    #[test]
    fn a_second_otlp_or_stdout_exporter_is_refused() {
        let e = err(
            "      exporters:\n        - otlp\n        - stdout\n        - otlp: { endpoint: 'http://b' }\n",
            ".exporters[2]",
            9,
        );
        assert!(e.message.starts_with("a second `otlp` exporter (the first is exporters[0])"), "{e}");
        let e = err("      exporters: [stdout, stdout]\n", ".exporters[1]", 6);
        assert_eq!(e.message, "a second `stdout` exporter (the first is exporters[0]) would print every span twice");
    }

    #[test]
    fn exporters_take_their_forms() {
        let t = tracing(
            "      exporters:\n        - otlp\n        - stdout:\n        - file: { path: /var/spans.jsonl }\n",
        );
        assert_eq!(
            t.exporters,
            vec![
                otlp("http://localhost:4318", &[]),
                Exporter::Stdout,
                Exporter::File { path: "/var/spans.jsonl".into() }
            ]
        );
        assert_eq!(tracing("      exporters:\n        - otlp:\n").exporters, vec![otlp("http://localhost:4318", &[])]);
        let e = err("      exporters: [jaeger]\n", ".exporters[0]", 6);
        assert_eq!(e.message, "unknown exporter \"jaeger\"; expected `otlp`, `stdout` or `file`");
        let e = err("      exporters:\n        - zipkin: {}\n", ".exporters[0].zipkin", 7);
        assert_eq!(e.message, "unknown exporter `zipkin`; expected `otlp`, `stdout` or `file`");
        let e = err("      exporters: [file]\n", ".exporters[0]", 6);
        assert_eq!(e.message, "a `file` exporter needs a path, as in `- file: { path: spans.jsonl }`");
        let e = err("      exporters:\n        - file:\n", ".exporters[0]", 7);
        assert_eq!(e.message, "a `file` exporter needs a path, as in `- file: { path: spans.jsonl }`");
        let e = err("      exporters:\n        - stdout: { pretty: true }\n", ".exporters[0].stdout", 7);
        assert!(e.message.contains("the `stdout` exporter takes no settings; write `- stdout`"), "{e}");
        let e = err("      exporters:\n        - { stdout: , file: { path: a } }\n", ".exporters[0]", 7);
        assert_eq!(e.message, "one exporter per list item; found a second key `file` (start another item with `-`)");
        let e = err("      exporters:\n        - {}\n", ".exporters[0]", 7);
        assert_eq!(e.message, "an empty map is no exporter; expected `otlp`, `stdout` or `file`");
    }

    #[test]
    fn trace_file_paths_are_neither_empty_nor_dash() {
        let e = err("      exporters:\n        - file: { path: '-' }\n", ".exporters[0].file.path", 7);
        assert_eq!(
            e.message,
            "`-` (standard output) is no file here; the `stdout` exporter prints spans; a path is relative to the \
             config's folder"
        );
        let e = err("      exporters:\n        - file: { path: '' }\n", ".exporters[0].file.path", 7);
        assert!(e.message.starts_with("expected a file path; found nothing"), "{e}");
        let e = err("      forensic: '-'\n", ".forensic", 6);
        assert!(e.message.starts_with("`-` (standard output) is no file here"), "{e}");
    }

    #[test]
    fn batch_sizes_are_bounded() {
        for (key, value, what) in [
            ("max_queue_size", "0", "a queue size"),
            ("max_queue_size", "1000001", "a queue size"),
            ("max_export_batch_size", "0", "an export batch size"),
        ] {
            let e = err(&format!("      batch:\n        {key}: {value}\n"), &format!(".batch.{key}"), 7);
            assert_eq!(e.message, format!("expected {what} from 1 to 1000000 spans; found {value}"));
        }
        let t = tracing("      batch: { max_queue_size: 1000000, max_export_batch_size: 1000000 }\n");
        assert_eq!((t.batch.max_queue_size, t.batch.max_export_batch_size), (1_000_000, 1_000_000));
        let t = tracing("      batch: { max_queue_size: 1, max_export_batch_size: 1, scheduled_delay: 100ms }\n");
        assert_eq!(
            t.batch,
            BatchConfig { max_queue_size: 1, max_export_batch_size: 1, scheduled_delay: Duration::from_millis(100) }
        );
    }

    #[test]
    fn export_batch_is_at_most_the_queue() {
        let e = err(
            "      batch:\n        max_queue_size: 100\n        max_export_batch_size: 101\n",
            ".batch.max_export_batch_size",
            8,
        );
        assert_eq!(
            e.message,
            "max_export_batch_size must be at most max_queue_size, as each export takes its batch from the queue; \
             found max_export_batch_size 101 and max_queue_size 100"
        );
        let e = err("      batch:\n        max_queue_size: 100\n", ".batch.max_queue_size", 7);
        assert!(e.message.ends_with("found max_export_batch_size 512 (the default) and max_queue_size 100"), "{e}");
        let e = err("      batch:\n        max_export_batch_size: 70000\n", ".batch.max_export_batch_size", 7);
        assert!(e.message.ends_with("found max_export_batch_size 70000 and max_queue_size 65536 (the default)"), "{e}");
    }

    #[test]
    fn scheduled_delay_and_timeout_are_durations() {
        let e = err("      batch: { scheduled_delay: 5 }\n", ".batch.scheduled_delay", 6);
        assert!(e.message.starts_with("expected a duration: a whole number with unit"), "{e}");
        let e = err("      exporters:\n        - otlp: { timeout: 2h }\n", ".exporters[0].otlp.timeout", 7);
        assert!(e.message.starts_with("expected a duration"), "{e}");
        let t = tracing("      exporters:\n        - otlp: { timeout: 1500ms }\n");
        assert!(matches!(t.exporters[0], Exporter::Otlp { timeout, .. } if timeout == Duration::from_millis(1500)));
    }

    #[test]
    fn level_is_info_or_debug() {
        assert_eq!(tracing("      level: debug\n").level, SpanLevel::Debug);
        let e = err("      level: trace\n", ".level", 6);
        assert_eq!(e.message, "unknown variant `trace`, expected `info` or `debug`");
    }

    #[test]
    fn service_name_is_not_empty() {
        let e = err("      service_name: ''\n", ".service_name", 6);
        assert_eq!(e.message, "expected a service name, without control characters; found \"\"");
        assert_eq!(tracing("      service_name: fund_load.v2\n").service_name.as_deref(), Some("fund_load.v2"));
    }

    #[test]
    fn enabled_is_a_boolean() {
        let e = err("      enabled: yes\n", ".enabled", 6);
        assert!(e.message.contains("expected a boolean"), "{e}");
    }

    #[test]
    fn debug_never_shows_header_values() {
        let keys = format!(
            "      exporters:\n        - otlp: {{ headers: {{ authorization: \"Bearer {SECRET}\", x-tenant: acme }} }}\n"
        );
        let config = PipelineConfig::from_yaml("mp.yml", &memory(&keys)).unwrap();
        let t = &config.runtime.observability.tracing;
        let Exporter::Otlp { headers, .. } = &t.exporters[0] else { panic!() };
        assert_eq!(headers[0], ("authorization".to_string(), format!("Bearer {SECRET}")));
        let shown = format!("{:?}", t.exporters[0]);
        assert_eq!(
            shown,
            "Otlp { endpoint: \"http://localhost:4318\", protocol: HttpProtobuf, headers: \
             {\"authorization\": <redacted>, \"x-tenant\": <redacted>}, timeout: 10s }"
        );
        let effective =
            t.resolve(&env(&[(OTLP_HEADERS, &format!("x-more={SECRET}"))]), &TracingFlags::default()).unwrap();
        for shown in [
            format!("{t:?}"),
            format!("{:#?}", config.runtime),
            format!("{config:?}"),
            format!("{effective:?}"),
            format!("{:?}", effective.otlp.as_ref().unwrap()),
        ] {
            assert!(!shown.contains(SECRET) && !shown.contains("acme"), "{shown}");
            assert!(shown.contains("authorization"), "{shown}");
        }
        assert!(format!("{config:?}").contains("bytes, not shown"));
    }

    // ---- resolve ----

    /// A fake environment: these variables, no others.
    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    fn resolve(config: &TracingConfig, vars: &[(&str, &str)]) -> EffectiveTracing {
        config.resolve(&env(vars), &TracingFlags::default()).unwrap()
    }

    fn resolve_err(config: &TracingConfig, vars: &[(&str, &str)], flags: &TracingFlags) -> TracingEnvError {
        config.resolve(&env(vars), flags).unwrap_err()
    }

    fn export(endpoint: &str) -> OtlpExport {
        OtlpExport::to(endpoint.into())
    }

    fn in_config(path: &str) -> TraceFile {
        TraceFile { path: path.into(), relative_to: RelativeTo::ConfigFolder }
    }

    fn in_cwd(path: &str) -> TraceFile {
        TraceFile { path: path.into(), relative_to: RelativeTo::WorkingDirectory }
    }

    /// Tracing switched on with only an otlp exporter, as written here.
    fn with_otlp(settings: &str) -> TracingConfig {
        tracing(&format!("      exporters:\n        - otlp: {settings}\n"))
    }

    #[test]
    fn the_file_alone_resolves() {
        let effective = resolve(&tracing(EXAMPLE), &[]);
        assert_eq!(
            effective,
            EffectiveTracing {
                enabled: true,
                service_name: "fund-load".into(),
                sampler: Sampler::ParentBasedTraceIdRatio(ratio(0.01)),
                level: SpanLevel::Info,
                otlp: Some(OtlpExport {
                    endpoint: "http://localhost:4318/v1/traces".into(),
                    protocol: OtlpProtocol::HttpProtobuf,
                    headers: vec![("x-tenant".into(), "acme".into())],
                    timeout: Duration::from_secs(10),
                }),
                stdout: true,
                files: vec![in_config("spans.jsonl")],
                forensic: Some(in_config("run.trace.jsonl")),
                batch: BatchConfig {
                    max_queue_size: 4096,
                    max_export_batch_size: 1024,
                    scheduled_delay: Duration::from_secs(2),
                },
            }
        );
    }

    #[test]
    fn the_environment_never_switches_tracing_on() {
        let everything = [
            (SDK_DISABLED, "false"),
            (SERVICE_NAME, "svc"),
            (OTLP_ENDPOINT, "http://collector:4318"),
            (OTLP_TRACES_ENDPOINT, "http://collector:4318/v1/traces"),
            (OTLP_HEADERS, "a=b"),
            (OTLP_PROTOCOL, "http/json"),
            (TRACES_SAMPLER, "always_on"),
        ];
        let off = resolve(&TracingConfig::default(), &everything);
        assert!(!off.enabled);
        assert_eq!((off.otlp, off.stdout, off.files, off.forensic), (None, false, vec![], None));
        assert_eq!(off.service_name, "hopline");
        assert!(!resolve(&tracing("      enabled: false\n      exporters: [stdout]\n"), &everything).enabled);
    }

    #[test]
    fn variables_are_not_read_when_tracing_is_off() {
        let malformed = [
            (SDK_DISABLED, "maybe"),
            (OTLP_ENDPOINT, "collector"),
            (OTLP_PROTOCOL, "grpc"),
            (TRACES_SAMPLER, "xray"),
            (TRACES_SAMPLER_ARG, "lots"),
        ];
        assert!(!resolve(&TracingConfig::default(), &malformed).enabled);
        let off = tracing("      enabled: false\n");
        assert!(!resolve(&off, &malformed).enabled);
    }

    #[test]
    fn otel_sdk_disabled_switches_tracing_off() {
        let on = tracing("      exporters: [stdout]\n");
        for value in ["true", "TRUE", " True "] {
            let off = resolve(&on, &[(SDK_DISABLED, value)]);
            assert!(!off.enabled, "{value}");
            assert!(!off.stdout);
        }
        for value in ["false", "False", ""] {
            assert!(resolve(&on, &[(SDK_DISABLED, value)]).enabled, "{value}");
        }
        let e = resolve_err(&on, &[(SDK_DISABLED, "1")], &TracingFlags::default());
        assert_eq!(e.to_string(), "OTEL_SDK_DISABLED: expected `true` or `false`; found \"1\"");
    }

    #[test]
    fn a_flag_switches_tracing_on_even_under_otel_sdk_disabled() {
        for flags in [
            TracingFlags { otlp: Some("http://c:4318".into()), ..TracingFlags::default() },
            TracingFlags { file: Some("t.jsonl".into()), ..TracingFlags::default() },
            TracingFlags { forensic: Some("f.jsonl".into()), ..TracingFlags::default() },
        ] {
            for config in [TracingConfig::default(), tracing("      enabled: false\n")] {
                let effective = config.resolve(&env(&[(SDK_DISABLED, "true")]), &flags).unwrap();
                assert!(effective.enabled, "{flags:?}");
            }
        }
    }

    #[test]
    fn service_name_comes_from_the_environment_then_the_file_then_the_default() {
        let named = tracing("      service_name: from-file\n");
        assert_eq!(resolve(&named, &[(SERVICE_NAME, "from-env")]).service_name, "from-env");
        assert_eq!(resolve(&named, &[(SERVICE_NAME, "")]).service_name, "from-file");
        assert_eq!(resolve(&named, &[]).service_name, "from-file");
        assert_eq!(resolve(&tracing("      level: info\n"), &[]).service_name, "hopline");
        let e = resolve_err(&named, &[(SERVICE_NAME, "a\nb")], &TracingFlags::default());
        assert_eq!(e.to_string(), "OTEL_SERVICE_NAME: expected a service name, without control characters");
    }

    #[test]
    fn traces_endpoint_variable_is_used_as_is() {
        let config = with_otlp("{ endpoint: 'http://file:4318', protocol: http/json, headers: { a: b }, timeout: 3s }");
        let otlp = resolve(&config, &[(OTLP_TRACES_ENDPOINT, "https://env:4318/custom")]).otlp.unwrap();
        assert_eq!(
            otlp,
            OtlpExport {
                endpoint: "https://env:4318/custom".into(),
                protocol: OtlpProtocol::HttpJson,
                headers: vec![("a".into(), "b".into())],
                timeout: Duration::from_secs(3),
            }
        );
        let both = [(OTLP_TRACES_ENDPOINT, "http://traces:4318"), (OTLP_ENDPOINT, "http://base:4318")];
        assert_eq!(resolve(&config, &both).otlp.unwrap().endpoint, "http://traces:4318");
    }

    #[test]
    fn endpoint_variable_gets_v1_traces_appended() {
        let config = tracing("      exporters: [stdout]\n");
        for (base, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("https://collector/mypath", "https://collector/mypath/v1/traces"),
        ] {
            let effective = resolve(&config, &[(OTLP_ENDPOINT, base)]);
            assert_eq!(effective.otlp, Some(export(url)), "{base}");
            assert!(effective.stdout);
        }
    }

    #[test]
    fn file_endpoint_gets_v1_traces_only_without_a_path() {
        for (written, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
            ("http://collector/otlp/traces", "http://collector/otlp/traces"),
        ] {
            let config = with_otlp(&format!("{{ endpoint: '{written}' }}"));
            assert_eq!(resolve(&config, &[]).otlp.unwrap().endpoint, url, "{written}");
        }
    }

    #[test]
    fn endpoint_variables_are_checked_and_named() {
        let config = with_otlp("{}");
        let e = resolve_err(&config, &[(OTLP_ENDPOINT, "collector:4318")], &TracingFlags::default());
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL, such as `http://localhost:4318`; \
             found \"collector:4318\""
        );
        let e =
            resolve_err(&config, &[(OTLP_TRACES_ENDPOINT, &format!("http://u:{SECRET}@c"))], &TracingFlags::default());
        assert_eq!(e.name, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        assert!(e.message.starts_with("an endpoint with `@`"), "{e}");
        assert!(!e.to_string().contains(SECRET), "{e}");
    }

    #[test]
    fn headers_variable_is_decoded_and_merged_by_name() {
        let config = with_otlp("{ headers: { x-tenant: acme, Authorization: old } }");
        let vars = [(OTLP_HEADERS, " authorization = Bearer%20abc%3D%3D , x-route=a%2Cb%25,,api-key=k+v==")];
        let otlp = resolve(&config, &vars).otlp.unwrap();
        assert_eq!(
            otlp.headers,
            vec![
                ("x-tenant".to_string(), "acme".to_string()),
                ("authorization".to_string(), "Bearer abc==".to_string()),
                ("x-route".to_string(), "a,b%".to_string()),
                ("api-key".to_string(), "k+v==".to_string()),
            ]
        );
    }

    #[test]
    fn headers_variable_errors_never_show_a_value() {
        let config = with_otlp("{}");
        for (value, message) in [
            (format!("a=b,Bearer {SECRET}"), "expected `name=value` pairs separated by `,`; item 2 has no `=`"),
            (format!("Authorization: Bearer {SECRET}=x"), "item 1: the part before `=` is no header name"),
            (
                format!("authorization={SECRET}%2"),
                "the value of header `authorization` holds a `%` not followed by two hex digits",
            ),
            (format!("authorization={SECRET}%zz"), "the value of header `authorization` holds a `%` not followed"),
            (
                format!("authorization={SECRET}%ff"),
                "the value of header `authorization` holds a `%` not followed by two hex digits, or does not decode to UTF-8",
            ),
            (format!("authorization={SECRET}%0A"), "the value of header `authorization` holds a control character"),
            (
                format!("authorization={SECRET},Authorization={SECRET}"),
                "header `Authorization` is given twice (first as `authorization`)",
            ),
            ("authorization=".to_string(), "header `authorization` has an empty value"),
        ] {
            let e = resolve_err(&config, &[(OTLP_HEADERS, &value)], &TracingFlags::default());
            assert_eq!(e.name, "OTEL_EXPORTER_OTLP_HEADERS");
            assert!(e.message.starts_with(message), "{e}");
            assert!(!e.to_string().contains(SECRET), "{e}");
        }
    }

    #[test]
    fn protocol_variable_is_http_protobuf_or_http_json() {
        let config = with_otlp("{ protocol: http/protobuf }");
        for value in ["http/json", "HTTP/JSON"] {
            assert_eq!(resolve(&config, &[(OTLP_PROTOCOL, value)]).otlp.unwrap().protocol, OtlpProtocol::HttpJson);
        }
        let json = with_otlp("{ protocol: http/json }");
        assert_eq!(
            resolve(&json, &[(OTLP_PROTOCOL, "http/protobuf")]).otlp.unwrap().protocol,
            OtlpProtocol::HttpProtobuf
        );
        let e = resolve_err(&config, &[(OTLP_PROTOCOL, "grpc")], &TracingFlags::default());
        assert!(e.to_string().starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: `grpc` is not supported"), "{e}");
        let e = resolve_err(&config, &[(OTLP_PROTOCOL, "http")], &TracingFlags::default());
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_PROTOCOL: expected `http/protobuf` or `http/json`; found \"http\""
        );
    }

    #[test]
    fn otlp_variables_are_not_read_without_an_otlp_exporter() {
        let config = tracing("      exporters: [stdout]\n");
        let effective = resolve(&config, &[(OTLP_PROTOCOL, "grpc"), (OTLP_HEADERS, "no pairs here")]);
        assert_eq!((effective.otlp, effective.stdout), (None, true));
    }

    #[test]
    fn sampler_variable_replaces_the_file_sampler() {
        let config = tracing("      sampler: always_off\n");
        assert_eq!(resolve(&config, &[]).sampler, Sampler::AlwaysOff);
        for (value, sampler) in [
            ("always_on", Sampler::AlwaysOn),
            ("PARENTBASED_ALWAYS_ON", Sampler::ParentBasedAlwaysOn),
            ("traceidratio", Sampler::TraceIdRatio(Ratio::ALL)),
            ("parentbased_traceidratio", Sampler::ParentBasedTraceIdRatio(Ratio::ALL)),
        ] {
            assert_eq!(resolve(&config, &[(TRACES_SAMPLER, value)]).sampler, sampler, "{value}");
        }
        for value in ["parentbased_always_off", "jaeger_remote", "xray"] {
            let e = resolve_err(&config, &[(TRACES_SAMPLER, value)], &TracingFlags::default());
            assert_eq!(
                e.to_string(),
                format!("OTEL_TRACES_SAMPLER: expected a sampler, {}; found {value:?}", &FIVE[9..])
            );
        }
    }

    #[test]
    fn sampler_arg_sets_the_ratio() {
        let file_ratio = tracing("      sampler: { name: traceidratio, ratio: 0.5 }\n");
        assert_eq!(resolve(&file_ratio, &[]).sampler, Sampler::TraceIdRatio(ratio(0.5)));
        assert_eq!(resolve(&file_ratio, &[(TRACES_SAMPLER_ARG, "0.25")]).sampler, Sampler::TraceIdRatio(ratio(0.25)));
        // The file's ratio goes with a ratio sampler named in the environment...
        assert_eq!(
            resolve(&file_ratio, &[(TRACES_SAMPLER, "parentbased_traceidratio")]).sampler,
            Sampler::ParentBasedTraceIdRatio(ratio(0.5))
        );
        // ... unless the environment gives one too.
        assert_eq!(
            resolve(&file_ratio, &[(TRACES_SAMPLER, "parentbased_traceidratio"), (TRACES_SAMPLER_ARG, " 0 ")]).sampler,
            Sampler::ParentBasedTraceIdRatio(ratio(0.0))
        );
        let no_ratio = tracing("      sampler: always_on\n");
        assert_eq!(
            resolve(&no_ratio, &[(TRACES_SAMPLER, "traceidratio"), (TRACES_SAMPLER_ARG, "1e-2")]).sampler,
            Sampler::TraceIdRatio(ratio(0.01))
        );
        for value in ["1.5", "-1", "NaN", "inf", "half"] {
            let e = resolve_err(&file_ratio, &[(TRACES_SAMPLER_ARG, value)], &TracingFlags::default());
            assert_eq!(
                e.to_string(),
                format!("OTEL_TRACES_SAMPLER_ARG: expected a sampling ratio from 0.0 to 1.0; found {value:?}")
            );
        }
    }

    #[test]
    fn sampler_arg_for_a_sampler_without_a_ratio_is_refused() {
        let e = resolve_err(&tracing("      level: info\n"), &[(TRACES_SAMPLER_ARG, "0.1")], &TracingFlags::default());
        assert_eq!(
            e.to_string(),
            "OTEL_TRACES_SAMPLER_ARG: is a ratio, but the sampler `parentbased_always_on` (from the config, or its \
             default) takes none; set OTEL_TRACES_SAMPLER to `traceidratio` or `parentbased_traceidratio`, or unset \
             OTEL_TRACES_SAMPLER_ARG"
        );
        let file_ratio = tracing("      sampler: { name: traceidratio, ratio: 0.5 }\n");
        let e = resolve_err(
            &file_ratio,
            &[(TRACES_SAMPLER, "always_on"), (TRACES_SAMPLER_ARG, "0.1")],
            &TracingFlags::default(),
        );
        assert!(e.message.starts_with("is a ratio, but the sampler `always_on` (set by OTEL_TRACES_SAMPLER)"), "{e}");
    }

    #[test]
    fn trace_otlp_flag_beats_the_environment_and_the_file() {
        let config = with_otlp("{ endpoint: 'http://file:4318', headers: { a: b } }");
        let flags = TracingFlags { otlp: Some("http://flag:4318".into()), ..TracingFlags::default() };
        // The endpoint variables are not read (the malformed one is not refused); the others are.
        let vars =
            [(OTLP_ENDPOINT, "not a url"), (OTLP_TRACES_ENDPOINT, "http://env/v1/traces"), (OTLP_HEADERS, "c=d")];
        let otlp = config.resolve(&env(&vars), &flags).unwrap().otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://flag:4318/v1/traces");
        assert_eq!(otlp.headers, vec![("a".into(), "b".into()), ("c".into(), "d".into())]);
        let flags = TracingFlags { otlp: Some("https://flag/otlp/v1/traces".into()), ..TracingFlags::default() };
        let effective = tracing("      exporters: [stdout]\n").resolve(&env(&[]), &flags).unwrap();
        assert_eq!((effective.otlp, effective.stdout), (Some(export("https://flag/otlp/v1/traces")), true));
        let flags = TracingFlags { otlp: Some("flag:4318".into()), ..TracingFlags::default() };
        let e = resolve_err(&config, &[], &flags);
        assert!(e.to_string().starts_with("--trace-otlp: expected an http:// or https:// URL"), "{e}");
    }

    #[test]
    fn trace_file_and_forensic_flags_are_relative_to_the_working_directory() {
        let config = tracing(EXAMPLE);
        let flags = TracingFlags { file: Some("more.jsonl".into()), forensic: Some("/tmp/f.jsonl".into()), otlp: None };
        let effective = config.resolve(&env(&[]), &flags).unwrap();
        assert_eq!(effective.files, vec![in_config("spans.jsonl"), in_cwd("more.jsonl")]);
        assert_eq!(effective.forensic, Some(in_cwd("/tmp/f.jsonl")));
        let flags = TracingFlags { file: Some("./same.jsonl".into()), forensic: Some("same.jsonl".into()), otlp: None };
        let e = resolve_err(&config, &[], &flags);
        assert_eq!(
            e.to_string(),
            "--trace-file: names the file of --forensic, \"same.jsonl\"; a file takes one writer"
        );
        for (flags, name) in [
            (TracingFlags { file: Some("-".into()), ..TracingFlags::default() }, "--trace-file"),
            (TracingFlags { forensic: Some(String::new()), ..TracingFlags::default() }, "--forensic"),
        ] {
            assert_eq!(resolve_err(&config, &[], &flags).name, name);
        }
    }

    #[test]
    fn otlp_to_localhost_when_spans_have_nowhere_else_to_go() {
        let bare = tracing("      level: debug\n");
        let effective = resolve(&bare, &[(OTLP_PROTOCOL, "http/json")]);
        assert_eq!(
            effective.otlp,
            Some(OtlpExport { protocol: OtlpProtocol::HttpJson, ..export("http://localhost:4318/v1/traces") })
        );
        for keys in [
            "      exporters: [stdout]\n",
            "      exporters:\n        - file: { path: s.jsonl }\n",
            "      forensic: f.jsonl\n",
        ] {
            assert_eq!(resolve(&tracing(keys), &[]).otlp, None, "{keys}");
        }
        let flags = TracingFlags { file: Some("t.jsonl".into()), ..TracingFlags::default() };
        assert_eq!(bare.resolve(&env(&[]), &flags).unwrap().otlp, None);
    }

    #[test]
    fn trace_file_paths_resolve_against_their_base() {
        let dir = Path::new("/etc/pipelines");
        assert_eq!(in_config("out/s.jsonl").path_from(dir), PathBuf::from("/etc/pipelines/out/s.jsonl"));
        assert_eq!(in_config("/var/s.jsonl").path_from(dir), PathBuf::from("/var/s.jsonl"));
        assert_eq!(in_cwd("s.jsonl").path_from(dir), PathBuf::from("s.jsonl"));
    }

    #[test]
    fn the_traces_headers_variable_replaces_the_general_one_and_is_checked_the_same() {
        let config =
            tracing("      exporters:\n        - otlp: { headers: { x-tenant: acme, authorization: file } }\n");
        let effective = resolve(
            &config,
            &[(OTLP_HEADERS, "authorization=general,x-general=1"), (OTLP_TRACES_HEADERS, "authorization=traces")],
        );
        let headers = effective.otlp.unwrap().headers;
        assert_eq!(headers, vec![("x-tenant".into(), "acme".into()), ("authorization".into(), "traces".into())]);
        let e = resolve_err(&config, &[(OTLP_TRACES_HEADERS, "no pairs here")], &TracingFlags::default());
        assert_eq!(e.name, "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    }
}
