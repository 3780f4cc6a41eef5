//! `runtime:` read according to its profile: the multiprocess keys (timeouts, host, transport),
//! their refusal under `profile: memory`, and the duration, size and key forms they accept.
//!
//! The process groups themselves, and the checks that they take the pipeline whole and in
//! order, are in [`super::groups`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use super::groups::{self, ProcessGroup, RawGroup};
use super::observability;
use super::tree::{Yaml, YamlValue};
use super::{AdapterConfig, ConfigError, NodeSpec, Profile, RuntimeConfig, de as tree_de};

/// `runtime:` under `profile: multiprocess`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiprocessConfig {
    /// In pipeline order: group 0 holds the source, the last group holds the sink.
    pub groups: Vec<ProcessGroup>,
    /// The address workers bind their data listeners on and connect to: an IP address or a
    /// host name, without a port. Default `127.0.0.1`.
    pub host: String,
    /// How long the supervisor waits for every worker to report ready. Default 10 s.
    pub ready_timeout: Duration,
    /// How long the supervisor waits for workers to finish after asking them to stop. Default 10 s.
    pub stop_timeout: Duration,
    /// How often a worker reports that it is alive. Default 500 ms.
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before a worker counts as lost. Default 5 s; always more
    /// than `heartbeat_interval`.
    pub heartbeat_timeout: Duration,
    /// `runtime.transport`: the key and the limits of the frames between groups.
    pub transport: TransportConfig,
}

impl MultiprocessConfig {
    /// Most process groups a config may declare: a group's index is a `u16` on the wire, and
    /// `u16::MAX` is reserved there (it marks an envelope that has not crossed a hop).
    pub const MAX_GROUPS: usize = 65_534;
    /// The longest accepted duration (any timeout, interval or clock skew).
    pub const MAX_DURATION: Duration = Duration::from_secs(3600);
    /// `host` when not given.
    pub const DEFAULT_HOST: &'static str = "127.0.0.1";
    /// `ready_timeout` when not given.
    pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
    /// `stop_timeout` when not given.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
    /// `heartbeat_interval` when not given.
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
    /// `heartbeat_timeout` when not given.
    pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The group that runs node `node_index` (an index into `PipelineConfig::nodes`).
    ///
    /// # Panics
    ///
    /// If `node_index` is not the index of a node of the pipeline this config was read with
    /// (every node of a validated config is in exactly one group).
    pub fn group_of_node(&self, node_index: usize) -> &ProcessGroup {
        // The stretches are consecutive and in order, so their ends never decrease.
        let i = self.groups.partition_point(|g| g.nodes.end <= node_index);
        match self.groups.get(i) {
            Some(group) if group.nodes.contains(&node_index) => group,
            _ => panic!("node {node_index} is in no process group"),
        }
    }
}

/// `runtime.transport`: how frames between process groups are signed and bounded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// Where the run's frame-signing key comes from. Default [`KeySource::Generate`].
    #[serde(default)]
    pub key: KeySource,
    /// The largest frame accepted, in bytes after the length prefix. Default 8 MiB.
    #[serde(default = "TransportConfig::default_max_frame_bytes", deserialize_with = "max_frame_bytes")]
    pub max_frame_bytes: u32,
    /// How far a frame's timestamp may be from the receiver's clock, either way. Default 30 s.
    #[serde(default = "TransportConfig::default_max_clock_skew", deserialize_with = "duration")]
    pub max_clock_skew: Duration,
    /// How many sequences per sender the anti-replay window remembers. Default 1024.
    #[serde(default = "TransportConfig::default_replay_window", deserialize_with = "replay_window")]
    pub replay_window: u32,
}

impl TransportConfig {
    /// The smallest accepted `max_frame_bytes`: a frame header (24 bytes) and its tag (32).
    pub const MIN_FRAME_BYTES: u32 = 56;
    /// The largest accepted `max_frame_bytes` (1 GiB).
    pub const MAX_FRAME_BYTES: u32 = 1 << 30;
    /// The largest accepted `replay_window`.
    pub const MAX_REPLAY_WINDOW: u32 = 1 << 16;

    fn default_max_frame_bytes() -> u32 {
        8 << 20
    }

    fn default_max_clock_skew() -> Duration {
        Duration::from_secs(30)
    }

    fn default_replay_window() -> u32 {
        1024
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            key: KeySource::default(),
            max_frame_bytes: Self::default_max_frame_bytes(),
            max_clock_skew: Self::default_max_clock_skew(),
            replay_window: Self::default_replay_window(),
        }
    }
}

/// `runtime.transport.key`: where the run's key comes from. No variant holds key material.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeySource {
    /// `key: generate`: a fresh random key for each run, handed to the workers by the supervisor.
    #[default]
    Generate,
    /// `key: { file: path }`: read from a file; the path as written, relative to the config's folder.
    File(String),
    /// `key: { env: VAR_NAME }`: read from an environment variable, by its name.
    Env(String),
}

const KEY_FORMS: &str = "`generate`, `{ file: path/to/key }` or `{ env: VAR_NAME }`";

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeySource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a key form: {KEY_FORMS}")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeySource, E> {
                match s {
                    "generate" => Ok(KeySource::Generate),
                    _ => Err(E::custom(format_args!("unknown key form {s:?}; expected {KEY_FORMS}"))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeySource, A::Error> {
                let source = match map.next_key::<KeyForm>()? {
                    None => {
                        return Err(de::Error::custom(format_args!(
                            "an empty map is no key form; expected {KEY_FORMS}"
                        )));
                    }
                    Some(KeyForm::File) => KeySource::File(map.next_value::<KeyFile>()?.0),
                    Some(KeyForm::Env) => KeySource::Env(map.next_value::<EnvName>()?.0),
                };
                if let Some(other) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format_args!(
                        "a key comes from one place; found a second form `{other}`; expected {KEY_FORMS}"
                    )));
                }
                Ok(source)
            }
        }

        d.deserialize_any(KeyVisitor)
    }
}

/// The key of a `{ file: ... }` or `{ env: ... }` key form.
enum KeyForm {
    File,
    Env,
}

impl<'de> Deserialize<'de> for KeyForm {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "file" => Ok(KeyForm::File),
            "env" => Ok(KeyForm::Env),
            _ => Err(de::Error::custom(format_args!("unknown key form `{s}`; expected {KEY_FORMS}"))),
        }
    }
}

/// A key file path: any non-empty string.
struct KeyFile(String);

impl<'de> Deserialize<'de> for KeyFile {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(de::Error::custom(
                "expected the path of the key file, relative to the config's folder; found nothing",
            ));
        }
        Ok(KeyFile(s))
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
struct EnvName(String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(de::Error::custom(format_args!(
                "expected an environment variable name: letters, digits and `_`, not starting with a digit; found {s:?}"
            )));
        }
        Ok(EnvName(s))
    }
}

/// Reads `"<integer>ms"`, `"<integer>s"` or `"<integer>m"`: more than zero, at most an hour.
/// Every duration a config holds (apps' params included) reads this way.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found {text:?}"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(expected());
    }
    // More digits than a u64 holds is more than an hour in any unit.
    let n: u64 = digits.parse().unwrap_or(u64::MAX);
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(expected()),
    };
    if d.is_zero() {
        return Err(format!("a duration must be more than zero; found {text:?}"));
    }
    if d > MultiprocessConfig::MAX_DURATION {
        return Err(format!("a duration is at most 1 hour (`60m`); found {text:?}"));
    }
    Ok(d)
}

/// A duration as written in a config: `1500ms`, `10s`, `2m` (whole numbers of the largest exact unit).
fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub(super) fn duration<'de, D: de::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as `500ms`, `10s` or `2m`")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
    }

    d.deserialize_str(DurationVisitor)
}

fn some_duration<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn max_frame_bytes<'de, D: de::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u64::deserialize(d)?;
    let (min, max) = (TransportConfig::MIN_FRAME_BYTES, TransportConfig::MAX_FRAME_BYTES);
    if n < u64::from(min) || n > u64::from(max) {
        return Err(de::Error::custom(format_args!(
            "expected a frame size from {min} (a frame header and its tag) to {max} bytes; found {n}"
        )));
    }
    Ok(n as u32)
}

fn replay_window<'de, D: de::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u64::deserialize(d)?;
    let max = TransportConfig::MAX_REPLAY_WINDOW;
    if n == 0 || n > u64::from(max) {
        return Err(de::Error::custom(format_args!("expected a replay window from 1 to {max} sequences; found {n}")));
    }
    Ok(n as u32)
}

fn host<'de, D: de::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.parse::<IpAddr>().is_err() && !is_host_name(&s) {
        return Err(de::Error::custom(format_args!(
            "expected an IP address or a host name, without a port, such as `127.0.0.1` or `localhost`; found {s:?}"
        )));
    }
    Ok(s)
}

/// A DNS host name: dot-separated labels of letters, digits and `-`, none starting or ending with `-`.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn default_host() -> String {
    MultiprocessConfig::DEFAULT_HOST.to_string()
}

/// `runtime:` under `profile: memory`: only these keys (the multiprocess keys are refused before
/// this is read, with a message saying which profile they belong to).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryRuntime {
    #[serde(default)]
    #[allow(dead_code)]
    profile: Profile,
    #[serde(default = "RuntimeConfig::default_batch_size", deserialize_with = "super::batch_size")]
    batch_size: usize,
    /// Read by [`observability::read`], under either profile.
    #[serde(default)]
    #[allow(dead_code)]
    observability: IgnoredAny,
}

/// `runtime:` under `profile: multiprocess`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiprocessRuntime {
    #[allow(dead_code)]
    profile: Profile,
    #[serde(default = "RuntimeConfig::default_batch_size", deserialize_with = "super::batch_size")]
    batch_size: usize,
    process_groups: Vec<RawGroup>,
    #[serde(default = "default_host", deserialize_with = "host")]
    host: String,
    #[serde(default, deserialize_with = "some_duration")]
    ready_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    stop_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    heartbeat_interval: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    heartbeat_timeout: Option<Duration>,
    #[serde(default)]
    transport: Option<TransportConfig>,
    /// Read by [`observability::read`], under either profile.
    #[serde(default)]
    #[allow(dead_code)]
    observability: IgnoredAny,
}

/// The keys of `runtime:` that only `profile: multiprocess` accepts.
const MULTIPROCESS_KEYS: [&str; 7] =
    ["process_groups", "host", "ready_timeout", "stop_timeout", "heartbeat_interval", "heartbeat_timeout", "transport"];

/// Reads `runtime:` (absent: the defaults) and, under `profile: multiprocess`, checks the
/// placement of the nodes and the adapters in process groups. `doc` is the whole document.
pub(super) fn read(
    origin: &str,
    doc: &Yaml,
    nodes: &[NodeSpec],
    source: &AdapterConfig,
    sink: &AdapterConfig,
) -> Result<RuntimeConfig, ConfigError> {
    let located = |e| ConfigError::from_de(origin, e);
    let Some(node) = doc.get("runtime") else {
        refuse_adapter_groups(origin, doc, source, sink, false)?;
        return Ok(RuntimeConfig::default());
    };
    let profile_node = node.get("profile");
    let profile = match profile_node {
        Some(p) => tree_de::from_tree::<Profile>(p, "runtime.profile").map_err(located)?,
        None => Profile::Memory,
    };
    match profile {
        Profile::Memory => {
            // The first key beyond those of every profile, in the order written: a multiprocess key
            // is refused as such; any other is left to the reader below, which lists the keys (so a
            // misspelt `profil: multiprocess` is reported as the typo it is).
            if let YamlValue::Map(entries) = &node.value {
                let foreign = entries
                    .iter()
                    .map(|(k, _)| k)
                    .find(|k| !matches!(k.scalar_text(), Some("profile" | "batch_size" | "observability")));
                if let Some(key) = foreign.filter(|k| MULTIPROCESS_KEYS.iter().any(|&m| k.scalar_text() == Some(m))) {
                    let name = key.scalar_text().unwrap_or_default();
                    return Err(ConfigError::at(
                        origin,
                        &format!("runtime.{name}"),
                        key.pos,
                        format!(
                            "`{name}` applies only to `profile: multiprocess`{}",
                            memory_note(profile_node.is_some())
                        ),
                    ));
                }
            }
            let raw: MemoryRuntime = tree_de::from_tree(node, "runtime").map_err(located)?;
            let observability = observability::read(origin, node)?;
            refuse_adapter_groups(origin, doc, source, sink, profile_node.is_some())?;
            Ok(RuntimeConfig { profile, batch_size: raw.batch_size, multiprocess: None, observability })
        }
        Profile::Multiprocess => {
            let raw: MultiprocessRuntime = tree_de::from_tree(node, "runtime").map_err(located)?;
            let heartbeat_interval = raw.heartbeat_interval.unwrap_or(MultiprocessConfig::DEFAULT_HEARTBEAT_INTERVAL);
            let heartbeat_timeout = raw.heartbeat_timeout.unwrap_or(MultiprocessConfig::DEFAULT_HEARTBEAT_TIMEOUT);
            if heartbeat_timeout <= heartbeat_interval {
                // Point at the timeout if it is written, else at the interval (then it is).
                let key = if raw.heartbeat_timeout.is_some() { "heartbeat_timeout" } else { "heartbeat_interval" };
                let default = |written: bool| if written { "" } else { " (the default)" };
                return Err(ConfigError::at(
                    origin,
                    &format!("runtime.{key}"),
                    node.get(key).expect("written").pos,
                    format!(
                        "heartbeat_timeout must be longer than heartbeat_interval, or a worker would count as \
                         lost between two heartbeats; found heartbeat_timeout {}{} and heartbeat_interval {}{}",
                        show(heartbeat_timeout),
                        default(raw.heartbeat_timeout.is_some()),
                        show(heartbeat_interval),
                        default(raw.heartbeat_interval.is_some()),
                    ),
                ));
            }
            let groups = groups::place(origin, doc, raw.process_groups, nodes, source, sink)?;
            let observability = observability::read(origin, node)?;
            Ok(RuntimeConfig {
                profile,
                batch_size: raw.batch_size,
                observability,
                multiprocess: Some(MultiprocessConfig {
                    groups,
                    host: raw.host,
                    ready_timeout: raw.ready_timeout.unwrap_or(MultiprocessConfig::DEFAULT_READY_TIMEOUT),
                    stop_timeout: raw.stop_timeout.unwrap_or(MultiprocessConfig::DEFAULT_STOP_TIMEOUT),
                    heartbeat_interval,
                    heartbeat_timeout,
                    transport: raw.transport.unwrap_or_default(),
                }),
            })
        }
    }
}

fn memory_note(profile_written: bool) -> &'static str {
    if profile_written {
        "; this config has `profile: memory`"
    } else {
        "; this config has no `profile:`, so it runs under `profile: memory`, the default"
    }
}

/// Under `profile: memory` the adapters run in the one process: `group:` is refused.
fn refuse_adapter_groups(
    origin: &str,
    doc: &Yaml,
    source: &AdapterConfig,
    sink: &AdapterConfig,
    profile_written: bool,
) -> Result<(), ConfigError> {
    for (key, adapter) in [("source", source), ("sink", sink)] {
        if adapter.group.is_some() {
            let pos = doc.get(key).and_then(|a| a.key_pos("group")).unwrap_or_default();
            return Err(ConfigError::at(
                origin,
                &format!("{key}.group"),
                pos,
                format!("`group` applies only to `profile: multiprocess`{}", memory_note(profile_written)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::PipelineConfig;
    use super::super::groups::tests::{MP, err_at};
    use super::*;

    fn mp(text: &str) -> MultiprocessConfig {
        PipelineConfig::from_yaml("mp.yml", text).unwrap().runtime.multiprocess.unwrap()
    }

    #[test]
    fn defaults_fill_what_is_not_written() {
        let config = mp(MP);
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.ready_timeout, Duration::from_secs(10));
        assert_eq!(config.stop_timeout, Duration::from_secs(10));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(config.heartbeat_timeout, Duration::from_secs(5));
        assert_eq!(config.transport, TransportConfig::default());
        assert_eq!(config.transport.key, KeySource::Generate);
        assert_eq!(config.transport.max_frame_bytes, 8 << 20);
        assert_eq!(config.transport.max_clock_skew, Duration::from_secs(30));
        assert_eq!(config.transport.replay_window, 1024);
    }

    // (Not `"\` and a newline: that would eat the first line's indent.)
    const ALL_KEYS: &str = "  host: '::1'
  ready_timeout: 2m
  stop_timeout: 1500ms
  heartbeat_interval: 1s
  heartbeat_timeout: 60m
  transport:
    key: { env: HOPLINE_KEY_1 }
    max_frame_bytes: 56
    max_clock_skew: 5s
    replay_window: 65536
";

    fn with_keys(keys: &str) -> String {
        MP.replace("  process_groups:\n", &format!("{keys}  process_groups:\n"))
    }

    #[test]
    fn every_multiprocess_key_reads() {
        let config = mp(&with_keys(ALL_KEYS));
        assert_eq!(config.host, "::1");
        assert_eq!(config.ready_timeout, Duration::from_secs(120));
        assert_eq!(config.stop_timeout, Duration::from_millis(1500));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(config.heartbeat_timeout, Duration::from_secs(3600));
        assert_eq!(
            config.transport,
            TransportConfig {
                key: KeySource::Env("HOPLINE_KEY_1".into()),
                max_frame_bytes: 56,
                max_clock_skew: Duration::from_secs(5),
                replay_window: 65536,
            }
        );
        let config = mp(&with_keys("  host: workers.local\n  transport:\n    key: { file: keys/run.key }\n"));
        assert_eq!(config.host, "workers.local");
        assert_eq!(config.transport.key, KeySource::File("keys/run.key".into()));
        assert_eq!(config.transport.max_frame_bytes, 1 << 23);
        let config = mp(&with_keys("  transport:\n    key: generate\n    max_frame_bytes: 1073741824\n"));
        assert_eq!(config.transport.key, KeySource::Generate);
        assert_eq!(config.transport.max_frame_bytes, 1 << 30);
    }

    #[test]
    fn multiprocess_keys_are_refused_under_memory() {
        for key in MULTIPROCESS_KEYS {
            let text = "app: demo\nscenario: s\nruntime:\n  batch_size: 8\n  KEY: x\n\
                        source: { kind: ndjson, path: in.txt }\nsink: { kind: ndjson, path: '-' }\nnodes: []\n"
                .replace("KEY", key);
            let e = err_at(&text, &format!("runtime.{key}"), 5);
            assert_eq!(e.pos.unwrap().col, 3);
            assert_eq!(
                e.message,
                format!(
                    "`{key}` applies only to `profile: multiprocess`; this config has no `profile:`, \
                     so it runs under `profile: memory`, the default"
                )
            );
            let text = text.replace("  batch_size: 8", "  profile: memory");
            let e = err_at(&text, &format!("runtime.{key}"), 5);
            assert!(e.message.ends_with("; this config has `profile: memory`"), "{e}");
        }
    }

    #[test]
    fn misspelt_profile_is_reported_before_the_keys_it_would_allow() {
        let e = err_at(&MP.replace("  profile: multiprocess", "  profil: multiprocess"), "runtime.profil", 4);
        assert!(
            e.message.starts_with("unknown field `profil`, expected one of `profile`, `batch_size`, `observability`"),
            "{e}"
        );
    }

    #[test]
    fn adapter_group_is_refused_under_memory() {
        let text = "app: demo\nscenario: s\nsource: { kind: ndjson, path: in.txt }\n\
                    sink: { kind: ndjson, path: '-', group: egress }\nnodes: []\n";
        let e = err_at(text, "sink.group", 4);
        assert_eq!(e.pos.unwrap().col, 34);
        assert!(e.message.starts_with("`group` applies only to `profile: multiprocess`"), "{e}");
        let text = text.replace("nodes: []", "runtime: { profile: memory }\nnodes: []");
        let e = err_at(&text, "sink.group", 4);
        assert!(e.message.ends_with("this config has `profile: memory`"), "{e}");
    }

    #[test]
    fn unknown_runtime_key_lists_the_keys_of_its_profile() {
        let e = err_at(&with_keys("  hearbeat_timeout: 1s\n"), "runtime.hearbeat_timeout", 5);
        assert!(e.message.contains("unknown field `hearbeat_timeout`"), "{e}");
        assert!(e.message.contains("`heartbeat_timeout`") && e.message.contains("`transport`"), "{e}");
        let e = err_at(&with_keys("  transport: { keys: generate }\n"), "runtime.transport.keys", 5);
        assert!(e.message.contains("expected one of `key`, `max_frame_bytes`"), "{e}");
    }

    #[test]
    fn process_groups_are_required_under_multiprocess() {
        let text = "app: demo\nscenario: s\nruntime:\n  profile: multiprocess\n\
                    source: { kind: ndjson, path: in.txt, group: a }\nsink: { kind: ndjson, path: '-', group: a }\nnodes: []\n";
        let e = err_at(text, "runtime", 4);
        assert_eq!(e.message, "missing field `process_groups`");
    }

    #[test]
    fn durations_take_a_whole_number_and_a_unit() {
        for (value, message) in [
            (
                "10",
                "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found \"10\"",
            ),
            (
                "10h",
                "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found \"10h\"",
            ),
            (
                "1.5s",
                "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found \"1.5s\"",
            ),
            (
                "-1s",
                "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found \"-1s\"",
            ),
            (
                "10 s",
                "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found \"10 s\"",
            ),
            (
                "s",
                "expected a duration: a whole number with unit `ms`, `s` or `m`, such as `500ms`, `10s` or `2m`; found \"s\"",
            ),
        ] {
            let e = err_at(&with_keys(&format!("  ready_timeout: {value}\n")), "runtime.ready_timeout", 5);
            assert_eq!(e.pos.unwrap().col, 18);
            assert_eq!(e.message, message);
        }
        let e = err_at(&with_keys("  ready_timeout: [1s]\n"), "runtime.ready_timeout", 5);
        assert!(e.message.contains("expected a duration such as `500ms`"), "{e}");
    }

    #[test]
    fn zero_duration_is_refused() {
        for value in ["0s", "0ms", "000m"] {
            let e = err_at(&with_keys(&format!("  stop_timeout: {value}\n")), "runtime.stop_timeout", 5);
            assert_eq!(e.message, format!("a duration must be more than zero; found {value:?}"));
        }
    }

    #[test]
    fn duration_over_an_hour_is_refused() {
        assert_eq!(mp(&with_keys("  ready_timeout: 3600000ms\n")).ready_timeout, Duration::from_secs(3600));
        for value in ["61m", "3601s", "3600001ms", "99999999999999999999999s"] {
            let e = err_at(&with_keys(&format!("  ready_timeout: {value}\n")), "runtime.ready_timeout", 5);
            assert_eq!(e.message, format!("a duration is at most 1 hour (`60m`); found {value:?}"));
        }
        let e = err_at(&with_keys("  transport: { max_clock_skew: 2h }\n"), "runtime.transport.max_clock_skew", 5);
        assert!(e.message.starts_with("expected a duration"), "{e}");
    }

    #[test]
    fn heartbeat_timeout_must_exceed_heartbeat_interval() {
        let text = with_keys("  heartbeat_interval: 2s\n  heartbeat_timeout: 2000ms\n");
        let e = err_at(&text, "runtime.heartbeat_timeout", 6);
        assert_eq!(e.pos.unwrap().col, 22);
        assert_eq!(
            e.message,
            "heartbeat_timeout must be longer than heartbeat_interval, or a worker would count as lost \
             between two heartbeats; found heartbeat_timeout 2s and heartbeat_interval 2s"
        );
        let e = err_at(&with_keys("  heartbeat_timeout: 200ms\n"), "runtime.heartbeat_timeout", 5);
        assert!(e.message.ends_with("found heartbeat_timeout 200ms and heartbeat_interval 500ms (the default)"), "{e}");
        let e = err_at(&with_keys("  heartbeat_interval: 1m\n"), "runtime.heartbeat_interval", 5);
        assert!(e.message.ends_with("found heartbeat_timeout 5s (the default) and heartbeat_interval 1m"), "{e}");
        assert_eq!(mp(&with_keys("  heartbeat_interval: 4999ms\n")).heartbeat_interval, Duration::from_millis(4999));
    }

    #[test]
    fn host_is_an_address_or_a_name_without_a_port() {
        for value in ["127.0.0.1:9000", "'-bad'", "''", "a..b", "'[::1]'"] {
            let e = err_at(&with_keys(&format!("  host: {value}\n")), "runtime.host", 5);
            assert!(
                e.message.starts_with("expected an IP address or a host name, without a port, such as `127.0.0.1`"),
                "{e}"
            );
        }
    }

    #[test]
    fn max_frame_bytes_is_bounded() {
        for value in ["55", "1073741825", "0"] {
            let e = err_at(
                &with_keys(&format!("  transport:\n    max_frame_bytes: {value}\n")),
                "runtime.transport.max_frame_bytes",
                6,
            );
            assert_eq!(
                e.message,
                format!(
                    "expected a frame size from 56 (a frame header and its tag) to 1073741824 bytes; found {value}"
                )
            );
        }
        let e = err_at(&with_keys("  transport:\n    max_frame_bytes: -1\n"), "runtime.transport.max_frame_bytes", 6);
        assert!(e.message.contains("invalid value: integer `-1`"), "{e}");
    }

    #[test]
    fn replay_window_is_bounded() {
        for value in ["0", "65537"] {
            let e = err_at(
                &with_keys(&format!("  transport:\n    replay_window: {value}\n")),
                "runtime.transport.replay_window",
                6,
            );
            assert_eq!(e.message, format!("expected a replay window from 1 to 65536 sequences; found {value}"));
        }
        assert_eq!(mp(&with_keys("  transport: { replay_window: 1 }\n")).transport.replay_window, 1);
    }

    #[test]
    fn unknown_key_form_lists_the_three_forms() {
        let forms = "expected `generate`, `{ file: path/to/key }` or `{ env: VAR_NAME }`";
        let e = err_at(&with_keys("  transport:\n    key: random\n"), "runtime.transport.key", 6);
        assert_eq!(e.pos.unwrap().col, 10);
        assert_eq!(e.message, format!("unknown key form \"random\"; {forms}"));
        let e = err_at(&with_keys("  transport:\n    key: { path: k.bin }\n"), "runtime.transport.key.path", 6);
        assert_eq!(e.pos.unwrap().col, 12);
        assert_eq!(e.message, format!("unknown key form `path`; {forms}"));
        let e = err_at(&with_keys("  transport:\n    key: { file: k, env: K }\n"), "runtime.transport.key", 6);
        assert_eq!(e.message, format!("a key comes from one place; found a second form `env`; {forms}"));
        let e = err_at(&with_keys("  transport:\n    key: {}\n"), "runtime.transport.key", 6);
        assert_eq!(e.message, format!("an empty map is no key form; {forms}"));
        let e = err_at(&with_keys("  transport:\n    key: 7\n"), "runtime.transport.key", 6);
        assert!(e.message.contains("expected a key form: `generate`"), "{e}");
        let e = err_at(&with_keys("  transport:\n    key:\n"), "runtime.transport.key", 6);
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn key_file_and_env_name_are_checked() {
        let e = err_at(&with_keys("  transport:\n    key: { file: '' }\n"), "runtime.transport.key.file", 6);
        assert_eq!(e.pos.unwrap().col, 18);
        assert!(e.message.starts_with("expected the path of the key file"), "{e}");
        for value in ["''", "1KEY", "MY-KEY", "'A B'"] {
            let e = err_at(
                &with_keys(&format!("  transport:\n    key: {{ env: {value} }}\n")),
                "runtime.transport.key.env",
                6,
            );
            assert_eq!(e.pos.unwrap().col, 17);
            assert!(e.message.starts_with("expected an environment variable name: letters, digits and `_`"), "{e}");
        }
        assert_eq!(mp(&with_keys("  transport: { key: { env: _k9 } }\n")).transport.key, KeySource::Env("_k9".into()));
    }

    #[test]
    fn durations_show_in_their_largest_exact_unit() {
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
    }
}
