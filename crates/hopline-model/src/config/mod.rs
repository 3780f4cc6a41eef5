//! The pipeline config: one YAML file that names the app, the scenario, how it runs, its
//! source and sink, and its nodes in order with their params.
//!
//! Validation is strict and happens before any input is read: unknown keys, wrong types and
//! invalid values are refused with the file, the key path, the line and what was expected.
//! Node params are kept as a positioned tree and read by each node kind when the pipeline is
//! built (see [`crate::registry`]), so their errors carry the same detail.
//!
//! ```yaml
//! app: fund_load
//! scenario: baseline
//! runtime:
//!   profile: memory        # the default
//!   batch_size: 1024       # the default; 1 ..= 65536
//! source: { kind: ndjson, path: input.txt }
//! sink: { kind: ndjson, path: "-" }
//! nodes:
//!   - kind: parse
//!   - kind: policies
//!     params: { daily_amount: 5000.00 }
//! ```
//!
//! A node's name is its `name:`, or its kind when none is given; names are unique, and `source`
//! and `sink` are reserved for the two ends of the pipeline, in every profile.
//!
//! # The multiprocess profile
//!
//! `profile: multiprocess` splits the pipeline into process groups, each run by one worker
//! process under a supervisor, handing its batches to the next group over signed frames. It
//! accepts more keys (read into [`MultiprocessConfig`]); under `profile: memory` each of them,
//! and the adapters' `group:`, is refused as applying only to `profile: multiprocess`.
//!
//! ```yaml
//! runtime:
//!   profile: multiprocess
//!   batch_size: 1024
//!   process_groups:                # required: the groups, top to bottom in pipeline order
//!     - name: ingest               # a name like a node's, unique among the groups
//!       nodes: [parse, time_keys, idempotency]   # node names, in pipeline order
//!     - name: policy
//!       nodes: [features, policies]
//!     - name: egress
//!       nodes: [format]
//!   host: 127.0.0.1                # the default: where workers listen for and reach each other
//!   ready_timeout: 10s             # the default: how long workers may take to start
//!   stop_timeout: 10s              # the default: how long workers may take to stop
//!   heartbeat_interval: 500ms      # the default
//!   heartbeat_timeout: 5s          # the default; must be longer than heartbeat_interval
//!   transport:                     # optional, as is each key in it
//!     key: generate                # the default: a fresh key per run; or { file: path/to/key }
//!                                  # (relative to the config's folder) or { env: VAR_NAME }
//!     max_frame_bytes: 8388608     # the default; 56 ..= 1073741824
//!     max_clock_skew: 30s          # the default
//!     replay_window: 1024          # the default; 1 ..= 65536
//! source: { kind: ndjson, path: in.txt, group: ingest }   # `group:` required
//! sink: { kind: ndjson, path: "-", group: egress }        # `group:` required
//! ```
//!
//! - Durations are a whole number with a unit, `ms`, `s` or `m` (`500ms`, `10s`, `2m`): more
//!   than zero, at most an hour.
//! - There are 1 to 65,534 groups (a group's index is its id on the wire).
//! - The groups take the pipeline in order, each a consecutive stretch: reading them top to
//!   bottom, with the source counted before the first node and the sink after the last, every
//!   group holds one stretch of the chain, and the stretches come in chain order. So the first
//!   group holds the source (`source.group`), the last the sink (`sink.group`), every node is in
//!   exactly one group, a group lists its nodes in pipeline order, and every group holds
//!   something (a group may hold only the source or only the sink).
//!
//! # Observability
//!
//! Under either profile, `runtime.observability.tracing` switches end-to-end tracing on: a span
//! per node and per hop, exported over OTLP/HTTP, to standard output or to OTLP JSON lines files.
//! [`observability`] describes every key, and how the standard `OTEL_*` environment variables
//! and the `hopline run` flags (`--trace-otlp URL`, `--trace-file PATH`, `--forensic PATH`) take
//! precedence over the file: flag, then environment, then file ([`TracingConfig::resolve`]).
//!
//! ```yaml
//! runtime:
//!   observability:
//!     tracing:                     # absent: tracing off
//!       enabled: true              # the default once `tracing:` is written
//!       service_name: fund-load    # optional; `hopline` when given nowhere
//!       sampler: { name: parentbased_traceidratio, ratio: 0.01 }
//!                                  # or a name alone: always_on, always_off, parentbased_always_on
//!                                  # (the default); the two ratio samplers need a ratio, 0.0 ..= 1.0
//!       level: info                # the default; `debug` adds spans inside nodes
//!       forensic: run.trace.jsonl  # optional: the run's one merged OTLP JSON lines file
//!       exporters:                 # optional: `otlp` and `stdout` at most once, `file` once a path
//!         - otlp:                  # or `- otlp` alone, with the defaults
//!             endpoint: "http://localhost:4318"   # the default; http:// or https://, no credentials
//!             protocol: http/protobuf             # the default; or http/json (not grpc)
//!             headers: { x-tenant: acme }         # optional; values are never shown in messages
//!             timeout: 10s                        # the default
//!         - stdout
//!         - file: { path: spans.jsonl }           # one OTLP `TracesData` JSON object a line
//!       batch:                     # optional: the export queue
//!         max_queue_size: 2048     # the default; spans, 1 ..= 1000000
//!         max_export_batch_size: 512   # the default; at most max_queue_size
//!         scheduled_delay: 5s      # the default
//! ```
//!
//! Paths (`file`, `forensic`) are relative to the config's folder, and no two are the same file.

mod de;
mod groups;
pub mod observability;
mod runtime;
pub mod tree;

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

pub use de::DeError;
pub use groups::ProcessGroup;
pub use observability::{
    BatchConfig, EffectiveTracing, Exporter, ObservabilityConfig, OtlpExport, OtlpProtocol, Ratio, RelativeTo, Sampler,
    SpanLevel, TraceFile, TracingConfig, TracingEnvError, TracingFlags,
};
pub use runtime::{KeySource, MultiprocessConfig, TransportConfig, parse_duration};
pub use tree::{Pos, Yaml};

/// A validated pipeline config. Adapter paths are as written (relative to the config file).
///
/// Its `Debug` shows the length of `text`, not the text: a config may hold secrets (OTLP header
/// values), and the parsed fields that hold them redact them.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Where the config came from, as it appears in messages (usually the file path).
    pub origin: String,
    /// The text the config was read from, so that another process (a multiprocess worker) can
    /// read exactly the same config.
    pub text: String,
    pub app: String,
    /// Where `app:` is written, for errors about it.
    pub app_pos: Pos,
    pub scenario: String,
    pub description: Option<String>,
    pub runtime: RuntimeConfig,
    pub source: AdapterConfig,
    pub sink: AdapterConfig,
    pub nodes: Vec<NodeSpec>,
}

impl fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("origin", &self.origin)
            .field("text", &format_args!("<{} bytes, not shown>", self.text.len()))
            .field("app", &self.app)
            .field("app_pos", &self.app_pos)
            .field("scenario", &self.scenario)
            .field("description", &self.description)
            .field("runtime", &self.runtime)
            .field("source", &self.source)
            .field("sink", &self.sink)
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// `runtime:`: how the pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `profile:`; [`Profile::Memory`] unless given.
    pub profile: Profile,
    /// Envelopes read from the source and pushed through the nodes at a time.
    pub batch_size: usize,
    /// The multiprocess keys, validated: process groups, timeouts, transport.
    /// Some exactly when `profile` is [`Profile::Multiprocess`].
    pub multiprocess: Option<MultiprocessConfig>,
    /// `observability:`, under either profile: tracing (off unless written).
    pub observability: ObservabilityConfig,
}

impl RuntimeConfig {
    /// Largest accepted `batch_size`: bounds the memory one batch can hold.
    pub const MAX_BATCH_SIZE: usize = 65_536;

    fn default_batch_size() -> usize {
        1024
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            profile: Profile::default(),
            batch_size: Self::default_batch_size(),
            multiprocess: None,
            observability: ObservabilityConfig::default(),
        }
    }
}

fn batch_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 || n > RuntimeConfig::MAX_BATCH_SIZE as u64 {
        return Err(serde::de::Error::custom(format_args!(
            "expected a batch size from 1 to {}, found {n}",
            RuntimeConfig::MAX_BATCH_SIZE
        )));
    }
    Ok(n as usize)
}

/// How a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Every node in one process, one thread, deterministic.
    #[default]
    Memory,
    /// The nodes split into process groups, one supervised worker process each, handing batches
    /// from group to group over signed frames (see [`MultiprocessConfig`]).
    Multiprocess,
}

impl Profile {
    /// The name as written in a config (`memory`, `multiprocess`).
    pub fn name(self) -> &'static str {
        match self {
            Profile::Memory => "memory",
            Profile::Multiprocess => "multiprocess",
        }
    }
}

/// `source:` and `sink:`.
///
/// `kind: ndjson` is the runtime's own adapter: newline-delimited JSON in a file, standard
/// input or standard output, named by `path:`. Any other kind is one its app provides (the
/// observer's `postgres` source, say), configured by `params:`, which the app reads when it
/// opens the adapter; whether the app knows the kind is checked when the pipeline is built.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// `ndjson`, or a kind the app provides.
    pub kind: String,
    /// Where `kind:` is written, for errors about it.
    pub kind_pos: Pos,
    /// `kind: ndjson`: a file path, relative to the config file's folder, or `-` for
    /// stdin/stdout. Empty for an app's kinds, which take no path.
    pub path: String,
    /// The process group that reads the source or writes the sink: required under
    /// `profile: multiprocess` (and then names one of `runtime.process_groups`), refused otherwise.
    pub group: Option<String>,
    /// An app's adapter settings (`params:`), kept with their positions until the app reads
    /// them; empty for `ndjson`, which refuses them.
    pub params: Params,
}

impl AdapterConfig {
    /// The runtime's own adapter kind.
    pub const NDJSON: &'static str = "ndjson";

    /// Whether this is the runtime's NDJSON adapter (rather than one its app provides).
    pub fn is_ndjson(&self) -> bool {
        self.kind == Self::NDJSON
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    kind: Name,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    params: IgnoredAny,
}

impl RawAdapter {
    /// Checks the keys each kind takes: `path:` for ndjson, `params:` for an app's kinds.
    fn into_config(self, origin: &str, key: &str, doc: &Yaml) -> Result<AdapterConfig, ConfigError> {
        let node = doc.get(key).expect("read from this key");
        let kind_pos = node.get("kind").map_or(node.pos, |k| k.pos);
        let params = node.get("params");
        let (path, params) = if self.kind.0 == AdapterConfig::NDJSON {
            if let Some(params) = params {
                return Err(ConfigError::at(
                    origin,
                    &format!("{key}.params"),
                    node.key_pos("params").unwrap_or(params.pos),
                    "`params` is for the adapter kinds an app provides; `kind: ndjson` takes a `path` only",
                ));
            }
            let Some(path) = self.path else {
                return Err(ConfigError::at(
                    origin,
                    key,
                    node.pos,
                    "missing field `path` (`kind: ndjson` reads or writes a file, or `-` for standard input or output)",
                ));
            };
            (path, Params::empty())
        } else {
            if self.path.is_some() {
                return Err(ConfigError::at(
                    origin,
                    &format!("{key}.path"),
                    node.key_pos("path").unwrap_or(node.pos),
                    format!("`path` is for `kind: ndjson`; a `{}` {key} takes its settings in `params:`", self.kind.0),
                ));
            }
            let params = Params {
                tree: params.cloned().unwrap_or_else(|| Yaml::null(node.pos)),
                path: format!("{key}.params"),
                origin: origin.into(),
            };
            (String::new(), params)
        };
        Ok(AdapterConfig { kind: self.kind.0, kind_pos, path, group: self.group, params })
    }
}

/// One entry of `nodes:`.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The registered node kind.
    pub kind: String,
    /// Unique instance name; the kind unless `name:` is given.
    pub name: String,
    pub params: Params,
    /// Position of the `kind:` value, for errors about the kind.
    pub kind_pos: Pos,
    /// Key path of this entry (`nodes[3]`).
    pub path: String,
}

/// A node's `params:` map, kept with its positions until the node kind reads it.
#[derive(Debug, Clone)]
pub struct Params {
    tree: Yaml,
    path: String,
    origin: String,
}

impl Params {
    /// Params from a YAML snippet, for tests and for nodes built outside a config file.
    pub fn from_yaml(origin: &str, text: &str) -> Result<Params, ConfigError> {
        let tree = tree::parse(text).map_err(|e| ConfigError::at(origin, "params", e.pos, e.message))?;
        Ok(Params { tree, path: "params".into(), origin: origin.into() })
    }

    /// No params (an absent `params:` key).
    pub fn empty() -> Params {
        Params { tree: Yaml::null(Pos::default()), path: "params".into(), origin: String::new() }
    }

    /// Reads the params into a node's typed params struct. An absent `params:` reads as an
    /// empty map, so a struct whose fields all have defaults needs none.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let empty;
        let node = match self.tree.resolve() {
            Some(tree::Resolved::Null) => {
                empty = Yaml { value: tree::YamlValue::Map(Vec::new()), pos: self.tree.pos };
                &empty
            }
            _ => &self.tree,
        };
        de::from_tree(node, &self.path).map_err(|e| ConfigError::from_de(&self.origin, e))
    }

    /// The params as a tree.
    pub fn tree(&self) -> &Yaml {
        &self.tree
    }

    /// An error about the value at `keys` under these params (map keys, and list indices as
    /// numbers: `["observers", "0", "condition"]`), named by its full key path and placed at
    /// its line (or at the deepest part of the path that is written).
    pub fn error_at(&self, keys: &[&str], message: impl Into<String>) -> ConfigError {
        let mut node = &self.tree;
        let mut path = self.path.clone();
        for key in keys {
            let next = match (&node.value, key.parse::<usize>()) {
                (tree::YamlValue::Seq(items), Ok(i)) => {
                    path.push_str(&format!("[{i}]"));
                    items.get(i)
                }
                _ => {
                    path.push_str(&format!(".{key}"));
                    node.get(key)
                }
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        ConfigError { origin: self.origin.clone(), path, pos: Some(node.pos), message: message.into() }
    }
}

/// A config that cannot be used: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or other origin) of the config.
    pub origin: String,
    /// Key path such as `nodes[4].params.daily_amount`; empty for the whole document.
    pub path: String,
    pub pos: Option<Pos>,
    pub message: String,
}

impl ConfigError {
    pub fn at(origin: &str, path: &str, pos: Pos, message: impl Into<String>) -> Self {
        ConfigError { origin: origin.into(), path: path.into(), pos: Some(pos), message: message.into() }
    }

    fn from_de(origin: &str, e: DeError) -> Self {
        ConfigError { origin: origin.into(), path: e.path.unwrap_or_default(), pos: e.pos, message: e.message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(pos) = self.pos {
            write!(f, ":{}:{}", pos.line, pos.col)?;
        }
        let path = if self.path.is_empty() { "(top level)" } else { &self.path };
        write!(f, ": {path}: {}", self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: Name,
    scenario: Name,
    #[serde(default)]
    description: Option<String>,
    /// Read by `runtime::read` once the rest is known: which keys it accepts depends on its profile.
    #[serde(default)]
    #[allow(dead_code)]
    runtime: IgnoredAny,
    source: RawAdapter,
    sink: RawAdapter,
    nodes: Vec<RawNodeSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeSpec {
    kind: Name,
    #[serde(default)]
    name: Option<Name>,
    #[serde(default)]
    #[allow(dead_code)]
    params: IgnoredAny,
}

/// A name for an app, scenario, node kind or node (and for the things apps name in their
/// params): `[a-z0-9_-]`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(serde::de::Error::custom(format_args!(
                "expected a name of lowercase letters, digits, `_` and `-`, starting with a letter; found {s:?}"
            )));
        }
        Ok(Name(s))
    }
}

/// Node names that name the ends of a pipeline (in process groups, reports and errors), refused
/// for nodes in every profile.
const RESERVED_NODE_NAMES: [&str; 2] = ["source", "sink"];

impl PipelineConfig {
    /// Parses and validates a config. `origin` names it in error messages.
    pub fn from_yaml(origin: &str, text: &str) -> Result<PipelineConfig, ConfigError> {
        let tree = tree::parse(text).map_err(|e| ConfigError::at(origin, "", e.pos, e.message))?;
        if !matches!(tree.value, tree::YamlValue::Map(_)) {
            return Err(ConfigError::at(
                origin,
                "",
                tree.pos,
                format!(
                    "expected a map with app, scenario, runtime, source, sink and nodes; found {}",
                    tree.describe()
                ),
            ));
        }
        let raw: RawConfig = de::from_tree(&tree, "").map_err(|e| ConfigError::from_de(origin, e))?;
        let items = match tree.get("nodes").map(|n| &n.value) {
            Some(tree::YamlValue::Seq(items)) => items,
            _ => unreachable!("nodes was read as a list"),
        };
        let mut nodes: Vec<NodeSpec> = Vec::with_capacity(raw.nodes.len());
        let mut first_named: HashMap<String, usize> = HashMap::with_capacity(raw.nodes.len());
        for (i, (spec, item)) in raw.nodes.into_iter().zip(items).enumerate() {
            let path = format!("nodes[{i}]");
            let name = spec.name.map(|n| n.0).unwrap_or_else(|| spec.kind.0.clone());
            let kind_pos = item.get("kind").map(|k| k.pos).unwrap_or(item.pos);
            if let Some(end) = RESERVED_NODE_NAMES.iter().find(|&&r| r == name) {
                return Err(match item.get("name") {
                    Some(given) => ConfigError::at(
                        origin,
                        &format!("{path}.name"),
                        given.pos,
                        format!(
                            "the node name `{name}` is reserved for the pipeline's {end}; give this node another `name:`"
                        ),
                    ),
                    None => ConfigError::at(
                        origin,
                        &format!("{path}.kind"),
                        kind_pos,
                        format!(
                            "the node name `{name}`, taken from its kind, is reserved for the pipeline's {end}; \
                             give this node a `name:`"
                        ),
                    ),
                });
            }
            if let Some(&first) = first_named.get(name.as_str()) {
                let first: &NodeSpec = &nodes[first];
                let at = item.get("name").map(|k| k.pos).unwrap_or(kind_pos);
                return Err(ConfigError::at(
                    origin,
                    &format!("{path}.name"),
                    at,
                    format!("two nodes are named `{name}` ({} and this one); give one a distinct `name:`", first.path),
                ));
            }
            let params = Params {
                tree: item.get("params").cloned().unwrap_or_else(|| Yaml::null(item.pos)),
                path: format!("{path}.params"),
                origin: origin.into(),
            };
            first_named.insert(name.clone(), i);
            nodes.push(NodeSpec { kind: spec.kind.0, name, params, kind_pos, path });
        }
        let source = raw.source.into_config(origin, "source", &tree)?;
        let sink = raw.sink.into_config(origin, "sink", &tree)?;
        let runtime = runtime::read(origin, &tree, &nodes, &source, &sink)?;
        Ok(PipelineConfig {
            origin: origin.into(),
            text: text.into(),
            app: raw.app.0,
            app_pos: tree.get("app").map(|n| n.pos).unwrap_or_default(),
            scenario: raw.scenario.0,
            description: raw.description,
            runtime,
            source,
            sink,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
app: demo
scenario: baseline
runtime:
  profile: memory
source: { kind: ndjson, path: in.txt }
sink:
  kind: ndjson
  path: '-'
nodes:
  - kind: parse
  - kind: limit
    params:
      max: 3
";

    #[test]
    fn good_config_reads_with_node_params_kept_for_later() {
        let config = PipelineConfig::from_yaml("demo.yml", GOOD).unwrap();
        assert_eq!(config.app, "demo");
        assert_eq!(config.runtime.batch_size, 1024);
        assert_eq!(config.sink.path, "-");
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(config.nodes[1].name, "limit");
        assert_eq!(config.nodes[1].kind_pos.line, 11);
        #[derive(Deserialize)]
        struct Limit {
            max: u32,
        }
        assert_eq!(config.nodes[1].params.read::<Limit>().unwrap().max, 3);
    }

    #[test]
    fn typo_in_a_key_names_file_path_and_line() {
        let text = GOOD.replace("  profile: memory", "  profil: memory");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert_eq!(err.path, "runtime.profil");
        assert_eq!(err.pos.unwrap().line, 4);
        let shown = err.to_string();
        assert!(shown.starts_with("demo.yml:4:3: runtime.profil: unknown field `profil`"), "{shown}");
        assert!(shown.contains("expected one of `profile`, `batch_size`, `observability`"), "{shown}");
    }

    #[test]
    fn unknown_profile_lists_what_is_expected() {
        let text = GOOD.replace("profile: memory", "profile: cluster");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert_eq!(err.path, "runtime.profile");
        assert!(err.message.contains("expected variant `memory`") || err.message.contains("`memory`"), "{err}");
    }

    #[test]
    fn missing_section_is_named() {
        let text = GOOD.replace("scenario: baseline\n", "");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert!(err.message.contains("missing field `scenario`"), "{err}");
        assert_eq!(err.pos.unwrap().line, 1);
    }

    #[test]
    fn zero_batch_size_is_refused() {
        let text = GOOD.replace("  profile: memory", "  profile: memory\n  batch_size: 0");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert_eq!(err.path, "runtime.batch_size");
        assert!(err.message.contains("from 1 to 65536"), "{err}");
    }

    #[test]
    fn two_nodes_with_one_name_are_refused() {
        let text = GOOD.replace("  - kind: limit", "  - kind: parse");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert_eq!(err.path, "nodes[1].name");
        assert!(err.message.contains("two nodes are named `parse`"), "{err}");
    }

    #[test]
    fn params_with_wrong_type_point_at_the_value() {
        let text = GOOD.replace("max: 3", "max: lots");
        let config = PipelineConfig::from_yaml("demo.yml", &text).unwrap();
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Limit {
            max: u32,
        }
        let err = config.nodes[1].params.read::<Limit>().unwrap_err();
        assert_eq!(err.path, "nodes[1].params.max");
        assert_eq!(err.pos.unwrap().line, 13);
    }

    #[test]
    fn an_ndjson_adapter_needs_a_path_and_takes_no_params() {
        let err =
            PipelineConfig::from_yaml("demo.yml", &GOOD.replace("{ kind: ndjson, path: in.txt }", "{ kind: ndjson }"))
                .unwrap_err();
        assert_eq!(err.path, "source");
        assert!(err.message.contains("missing field `path`"), "{err}");
        let text = GOOD.replace("{ kind: ndjson, path: in.txt }", "{ kind: ndjson, path: in.txt, params: { x: 1 } }");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert_eq!(err.path, "source.params");
        assert!(err.message.contains("`kind: ndjson` takes a `path` only"), "{err}");
    }

    #[test]
    fn an_apps_adapter_takes_params_and_no_path() {
        let text = GOOD.replace("{ kind: ndjson, path: in.txt }", "{ kind: postgres, params: { database: db } }");
        let config = PipelineConfig::from_yaml("demo.yml", &text).unwrap();
        assert!(!config.source.is_ndjson() && config.sink.is_ndjson());
        assert_eq!(config.source.kind, "postgres");
        assert_eq!(config.source.kind_pos.line, 5);
        assert_eq!(config.source.params.tree().get("database").and_then(|d| d.scalar_text()), Some("db"));
        let text = GOOD.replace("{ kind: ndjson, path: in.txt }", "{ kind: postgres, path: x }");
        let err = PipelineConfig::from_yaml("demo.yml", &text).unwrap_err();
        assert_eq!(err.path, "source.path");
        assert!(err.message.contains("a `postgres` source takes its settings in `params:`"), "{err}");
        let err = config.source.params.error_at(&["database"], "not reachable");
        assert_eq!((err.path.as_str(), err.pos.map(|p| p.line)), ("source.params.database", Some(5)));
    }

    #[test]
    fn a_document_that_is_not_a_map_is_refused() {
        let err = PipelineConfig::from_yaml("demo.yml", "- 1\n- 2\n").unwrap_err();
        assert!(err.message.contains("expected a map"), "{err}");
    }
}
