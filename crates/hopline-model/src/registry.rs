//! Node kinds by name, and the checks that turn a config's node list into a [`Pipeline`].
//!
//! An app registers each of its node kinds once; a config refers to them by name. Building a
//! pipeline checks, before any input is read: every kind exists, every node's params read into
//! its typed params, each node consumes every message kind the step before it emits, and each
//! node comes after the kinds it requires.

use crate::config::{ConfigError, NodeSpec, PipelineConfig};
use crate::node::{Message, Node, NodeInfo};

/// Builds a node from its params. Errors carry the params' path and line.
pub type BuildNode<M> = fn(&crate::config::Params) -> Result<Box<dyn Node<M>>, ConfigError>;

/// A registered node kind: its name, its message contract and how to build it.
pub struct NodeKind<M: Message> {
    pub name: &'static str,
    /// One line for `--help`-style listings.
    pub summary: &'static str,
    /// Message kinds it accepts.
    pub consumes: &'static [&'static str],
    /// Message kinds it may emit.
    pub emits: &'static [&'static str],
    /// Kinds that must come earlier in the pipeline (e.g. `policies` needs `time_keys`).
    pub requires: &'static [&'static str],
    pub build: BuildNode<M>,
}

/// The node kinds of one app.
pub struct Registry<M: Message> {
    app: &'static str,
    kinds: Vec<NodeKind<M>>,
}

/// One built node and what the runtime needs to know about it.
pub struct Stage<M: Message> {
    pub info: NodeInfo,
    pub node: Box<dyn Node<M>>,
}

/// The nodes of a config, built and checked, in order.
pub struct Pipeline<M: Message> {
    pub stages: Vec<Stage<M>>,
}

impl<M: Message> Registry<M> {
    pub fn new(app: &'static str) -> Self {
        Registry { app, kinds: Vec::new() }
    }

    /// Registers a node kind.
    ///
    /// # Panics
    /// If a kind with the same name is already registered: that is a bug in the app.
    pub fn register(&mut self, kind: NodeKind<M>) -> &mut Self {
        assert!(self.get(kind.name).is_none(), "node kind `{}` registered twice in app `{}`", kind.name, self.app);
        self.kinds.push(kind);
        self
    }

    pub fn app(&self) -> &'static str {
        self.app
    }

    pub fn get(&self, name: &str) -> Option<&NodeKind<M>> {
        self.kinds.iter().find(|k| k.name == name)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &NodeKind<M>> {
        self.kinds.iter()
    }

    /// Builds the config's nodes. `source_emits` and `sink_consumes` are the message kinds of
    /// the configured adapters, so the whole chain is checked end to end.
    pub fn build(
        &self,
        config: &PipelineConfig,
        source_emits: &[&str],
        sink_consumes: &[&str],
    ) -> Result<Pipeline<M>, ConfigError> {
        let origin = &config.origin;
        let mut stages: Vec<Stage<M>> = Vec::with_capacity(config.nodes.len());
        let mut upstream: (String, &[&str]) = ("the source".into(), source_emits);
        for (index, spec) in config.nodes.iter().enumerate() {
            let kind = self.get(&spec.kind).ok_or_else(|| {
                let known: Vec<&str> = self.kinds.iter().map(|k| k.name).collect();
                ConfigError::at(
                    origin,
                    &format!("{}.kind", spec.path),
                    spec.kind_pos,
                    format!(
                        "unknown node kind `{}` for app `{}`; expected one of: {}",
                        spec.kind,
                        self.app,
                        known.join(", ")
                    ),
                )
            })?;
            check_link(origin, spec, (&upstream.0, upstream.1), kind.consumes)?;
            for required in kind.requires {
                if !stages.iter().any(|s| s.info.kind == *required) {
                    return Err(ConfigError::at(
                        origin,
                        &format!("{}.kind", spec.path),
                        spec.kind_pos,
                        format!("node kind `{}` needs a `{required}` node before it", kind.name),
                    ));
                }
            }
            let node = (kind.build)(&spec.params)?;
            let info = NodeInfo { name: spec.name.clone(), kind: kind.name, index, params: spec.params.clone() };
            stages.push(Stage { info, node });
            upstream = (format!("`{}`", spec.name), kind.emits);
        }
        if let Some(missing) = upstream.1.iter().find(|k| !sink_consumes.contains(k)) {
            let (path, pos) = match config.nodes.last() {
                Some(last) => (format!("{}.kind", last.path), last.kind_pos),
                None => ("nodes".into(), Default::default()),
            };
            return Err(ConfigError::at(
                origin,
                &path,
                pos,
                format!(
                    "{} emits `{missing}` messages but the sink writes only {}; end the pipeline with a node that emits {}",
                    upstream.0,
                    list(sink_consumes),
                    list(sink_consumes)
                ),
            ));
        }
        Ok(Pipeline { stages })
    }
}

fn check_link(origin: &str, spec: &NodeSpec, upstream: (&str, &[&str]), consumes: &[&str]) -> Result<(), ConfigError> {
    match upstream.1.iter().find(|k| !consumes.contains(k)) {
        None => Ok(()),
        Some(missing) => Err(ConfigError::at(
            origin,
            &format!("{}.kind", spec.path),
            spec.kind_pos,
            format!(
                "node `{}` consumes {} but {} before it emits `{missing}`; check the order of the nodes",
                spec.name,
                list(consumes),
                upstream.0,
            ),
        )),
    }
}

fn list(kinds: &[&str]) -> String {
    let quoted: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
    quoted.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Context, Emit, NodeError};

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Msg {
        Line(String),
        Word(String),
    }

    impl Message for Msg {
        fn kind(&self) -> &'static str {
            match self {
                Msg::Line(_) => "line",
                Msg::Word(_) => "record",
            }
        }
    }

    struct Split;
    impl Node<Msg> for Split {
        fn process(&mut self, _: &Context<'_>, m: Msg, out: &mut Emit<'_, Msg>) -> Result<(), NodeError> {
            match m {
                Msg::Line(l) => l.split(' ').for_each(|w| out.emit(Msg::Word(w.into()))),
                other => return Err(NodeError::UnexpectedMessage { got: other.kind() }),
            }
            Ok(())
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SplitParams {
        #[serde(default)]
        #[allow(dead_code)]
        max: u32,
    }

    fn registry() -> Registry<Msg> {
        let mut r = Registry::new("demo");
        r.register(NodeKind {
            name: "split",
            summary: "splits lines into words",
            consumes: &["line"],
            emits: &["record"],
            requires: &[],
            build: |p| {
                p.read::<SplitParams>()?;
                Ok(Box::new(Split))
            },
        });
        r.register(NodeKind {
            name: "upper",
            summary: "needs split first",
            consumes: &["record"],
            emits: &["record"],
            requires: &["split"],
            build: |_| Ok(Box::new(Split)),
        });
        r
    }

    fn config(nodes: &str) -> PipelineConfig {
        let text = format!(
            "app: demo\nscenario: s\nsource: {{kind: ndjson, path: a}}\nsink: {{kind: ndjson, path: b}}\nnodes:\n{nodes}"
        );
        PipelineConfig::from_yaml("demo.yml", &text).unwrap()
    }

    #[test]
    fn builds_a_chain_whose_kinds_link_up() {
        let pipeline = registry().build(&config("  - kind: split\n  - kind: upper\n"), &["line"], &["record"]).unwrap();
        assert_eq!(pipeline.stages.len(), 2);
        assert_eq!(pipeline.stages[1].info.index, 1);
    }

    #[test]
    fn unknown_node_kind_lists_the_known_ones_with_its_line() {
        let err = registry().build(&config("  - kind: split\n  - kind: uper\n"), &["line"], &["record"]).err().unwrap();
        assert_eq!(err.path, "nodes[1].kind");
        assert_eq!(err.pos.unwrap().line, 7);
        assert!(
            err.message.contains("unknown node kind `uper` for app `demo`; expected one of: split, upper"),
            "{err}"
        );
    }

    #[test]
    fn node_that_cannot_consume_what_comes_before_it_is_refused() {
        let err = registry().build(&config("  - kind: upper\n"), &["line"], &["record"]).err().unwrap();
        assert!(err.message.contains("consumes `record` but the source before it emits `line`"), "{err}");
    }

    #[test]
    fn node_without_its_required_predecessor_is_refused() {
        let err = registry().build(&config("  - kind: upper\n"), &["record"], &["record"]).err().unwrap();
        assert!(err.message.contains("needs a `split` node before it"), "{err}");
    }

    #[test]
    fn pipeline_must_end_in_what_the_sink_writes() {
        let err = registry().build(&config("  - kind: split\n"), &["line"], &["line"]).err().unwrap();
        assert!(err.message.contains("`split` emits `record` messages but the sink writes only `line`"), "{err}");
    }

    #[test]
    fn bad_params_fail_the_build_with_their_path() {
        let err = registry()
            .build(&config("  - kind: split\n    params: {maxx: 1}\n"), &["line"], &["record"])
            .err()
            .unwrap();
        assert_eq!(err.path, "nodes[0].params.maxx");
        assert_eq!(err.pos.unwrap().line, 7);
    }
}
