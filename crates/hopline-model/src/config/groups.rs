//! `runtime.process_groups`: which worker process runs which part of the pipeline, and the
//! checks that the groups take the pipeline whole and in order.
//!
//! The pipeline is a chain: source, nodes, sink. Reading the groups top to bottom, with the
//! source counted before the first node and the sink after the last, every group holds one
//! consecutive stretch of that chain, and the stretches come in chain order. So the first group
//! holds the source, the last holds the sink, each node is in exactly one group, a group lists
//! its nodes in pipeline order, and every group holds something. Batches then only ever travel
//! from one group to the next.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;

use super::tree::{Pos, Yaml, YamlValue};
use super::{AdapterConfig, ConfigError, MultiprocessConfig, Name, NodeSpec};

/// One process group: a worker process and the stretch of the pipeline it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessGroup {
    /// The group's `name:`, unique among the groups.
    pub name: String,
    /// Its position in `groups` (also its id on the wire).
    pub index: u16,
    /// The nodes it runs: indices into `PipelineConfig::nodes`, a consecutive stretch (may be
    /// empty only if it holds the source or the sink).
    pub nodes: Range<usize>,
    /// Whether it reads the source (then it is the first group).
    pub source: bool,
    /// Whether it writes the sink (then it is the last group).
    pub sink: bool,
    /// Key path, e.g. `runtime.process_groups[1]`, and position of its `name:` value, for errors.
    pub path: String,
    /// Where its `name:` value is written.
    pub pos: Pos,
}

/// One entry of `runtime.process_groups` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    name: Name,
    /// Node instance names; checked against `nodes:` in [`place`].
    nodes: Vec<String>,
}

const IN_ORDER: &str = "process groups take the pipeline in order, each a consecutive stretch";

/// A group as written, with the places of its parts.
struct Group {
    name: String,
    path: String,
    name_pos: Pos,
    nodes_pos: Pos,
    entries: Vec<Entry>,
}

/// One item of a group's `nodes:`.
struct Entry {
    node: String,
    path: String,
    pos: Pos,
}

/// Checks the placement of every node, the source and the sink, and returns the groups in
/// pipeline order. `doc` is the whole document that `raw` was read from (for positions).
pub(super) fn place(
    origin: &str,
    doc: &Yaml,
    raw: Vec<RawGroup>,
    nodes: &[NodeSpec],
    source: &AdapterConfig,
    sink: &AdapterConfig,
) -> Result<Vec<ProcessGroup>, ConfigError> {
    let err = |path: &str, pos: Pos, message: String| ConfigError::at(origin, path, pos, message);
    let runtime = doc.get("runtime").expect("runtime was read");
    let list_path = "runtime.process_groups";
    let list_pos = runtime.key_pos("process_groups").expect("process_groups was read");
    let groups = positioned(raw, runtime.get("process_groups").expect("process_groups was read"));

    if groups.is_empty() {
        return Err(err(list_path, list_pos, "expected at least one process group; found none".into()));
    }
    if groups.len() > MultiprocessConfig::MAX_GROUPS {
        return Err(err(
            list_path,
            list_pos,
            format!("expected at most {} process groups; found {}", MultiprocessConfig::MAX_GROUPS, groups.len()),
        ));
    }

    let mut group_index: HashMap<&str, usize> = HashMap::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        if let Some(&first) = group_index.get(group.name.as_str()) {
            return Err(err(
                &format!("{}.name", group.path),
                group.name_pos,
                format!(
                    "two process groups are named `{}` ({} and this one); give each group its own name",
                    group.name, groups[first].path
                ),
            ));
        }
        group_index.insert(&group.name, i);
    }
    let group_names = || groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", ");

    // Where each node is placed: (group, entry).
    let node_index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let mut placed: Vec<Option<(usize, usize)>> = vec![None; nodes.len()];
    for (g, group) in groups.iter().enumerate() {
        for (e, entry) in group.entries.iter().enumerate() {
            let Some(&n) = node_index.get(entry.node.as_str()) else {
                let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(err(
                    &entry.path,
                    entry.pos,
                    format!("unknown node `{}`; expected one of: {}", entry.node, names.join(", ")),
                ));
            };
            if let Some((first, first_entry)) = placed[n] {
                return Err(err(
                    &entry.path,
                    entry.pos,
                    format!(
                        "node `{}` is already placed in process group `{}` ({}); a node runs in exactly one group",
                        entry.node, groups[first].name, groups[first].entries[first_entry].path
                    ),
                ));
            }
            placed[n] = Some((g, e));
        }
    }

    // The group each end names.
    let adapter_group = |key: &str, adapter: &AdapterConfig, role: &str| -> Result<usize, ConfigError> {
        let node = doc.get(key).expect("adapter was read");
        let Some(name) = &adapter.group else {
            return Err(err(
                key,
                node.pos,
                format!(
                    "`group` is required under `profile: multiprocess`: name the process group that {role}; \
                     expected one of: {}",
                    group_names()
                ),
            ));
        };
        group_index.get(name.as_str()).copied().ok_or_else(|| {
            err(
                &format!("{key}.group"),
                node.get("group").expect("group was read").pos,
                format!("unknown process group `{name}`; expected one of: {}", group_names()),
            )
        })
    };
    let source_group = adapter_group("source", source, "reads the source")?;
    let sink_group = adapter_group("sink", sink, "writes the sink")?;

    if let Some(n) = placed.iter().position(Option::is_none) {
        let node = &nodes[n];
        return Err(err(
            list_path,
            list_pos,
            format!(
                "node `{}` ({}, line {}) is in no process group; every node runs in exactly one: \
                 add it to the `nodes:` of a group",
                node.name, node.path, node.kind_pos.line
            ),
        ));
    }

    for (g, group) in groups.iter().enumerate() {
        if group.entries.is_empty() && g != source_group && g != sink_group {
            return Err(err(
                &format!("{}.nodes", group.path),
                group.nodes_pos,
                format!(
                    "process group `{}` holds nothing: no nodes, and neither the source nor the sink; \
                     give it nodes or remove it",
                    group.name
                ),
            ));
        }
    }

    let last = groups.len() - 1;
    for (key, at, expected, which) in [("source", source_group, 0, "first"), ("sink", sink_group, last, "last")] {
        if at != expected {
            return Err(err(
                &format!("{key}.group"),
                doc.get(key).and_then(|a| a.get("group")).expect("group was read").pos,
                format!(
                    "{IN_ORDER}: the {key} comes {which}, so it belongs to the {which} group, `{}` ({}); found `{}`",
                    groups[expected].name, groups[expected].path, groups[at].name
                ),
            ));
        }
    }

    // Walk the groups top to bottom: their nodes must be 0, 1, 2, ... in that order.
    let mut next = 0;
    let mut result = Vec::with_capacity(groups.len());
    for (g, group) in groups.iter().enumerate() {
        let start = next;
        for entry in &group.entries {
            let n = node_index[entry.node.as_str()];
            if n != next {
                let expected = &nodes[next].name;
                let after = match next {
                    0 => "the source".to_string(),
                    _ => format!("`{}`", nodes[next - 1].name),
                };
                let (h, _) = placed[next].expect("every node is placed");
                let where_ = if h == g {
                    "it is listed later in this group, and a group lists its nodes in pipeline order".to_string()
                } else {
                    format!("it is placed in a later group, `{}` ({})", groups[h].name, groups[h].path)
                };
                return Err(err(
                    &entry.path,
                    entry.pos,
                    format!(
                        "{IN_ORDER}: expected `{expected}` here, the step after {after}, \
                         but found `{}`; {where_}",
                        entry.node
                    ),
                ));
            }
            next += 1;
        }
        result.push(ProcessGroup {
            name: group.name.clone(),
            index: u16::try_from(g).expect("at most MAX_GROUPS groups"),
            nodes: start..next,
            source: g == source_group,
            sink: g == sink_group,
            path: group.path.clone(),
            pos: group.name_pos,
        });
    }
    debug_assert_eq!(next, nodes.len());
    Ok(result)
}

/// The groups as read, with the places of their names and node entries from the tree.
fn positioned(raw: Vec<RawGroup>, list: &Yaml) -> Vec<Group> {
    let YamlValue::Seq(items) = &list.value else { unreachable!("process_groups was read as a list") };
    raw.into_iter()
        .zip(items)
        .enumerate()
        .map(|(i, (group, item))| {
            let path = format!("runtime.process_groups[{i}]");
            let nodes = item.get("nodes").expect("nodes was read");
            let YamlValue::Seq(node_items) = &nodes.value else { unreachable!("nodes was read as a list") };
            let entries = group
                .nodes
                .into_iter()
                .zip(node_items)
                .enumerate()
                .map(|(j, (node, at))| Entry { node, path: format!("{path}.nodes[{j}]"), pos: at.pos })
                .collect();
            Group {
                name: group.name.0,
                name_pos: item.get("name").expect("name was read").pos,
                nodes_pos: nodes.pos,
                path,
                entries,
            }
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::PipelineConfig;
    use super::*;

    /// A multiprocess config with five nodes in three groups. Line numbers matter to the tests.
    pub(crate) const MP: &str = "\
app: demo
scenario: baseline
runtime:
  profile: multiprocess
  process_groups:
    - name: ingest
      nodes: [parse, time_keys]
    - name: policy
      nodes:
        - features
        - policies
    - name: egress
      nodes: [format]
source: { kind: ndjson, path: in.txt, group: ingest }
sink: { kind: ndjson, path: '-', group: egress }
nodes:
  - kind: parse
  - kind: time_keys
  - kind: features
  - kind: policies
  - kind: format
";

    /// The error `text` gives, checked to be at `path` on `line`.
    pub(crate) fn err_at(text: &str, path: &str, line: usize) -> ConfigError {
        let e = PipelineConfig::from_yaml("mp.yml", text).unwrap_err();
        assert_eq!((e.path.as_str(), e.pos.map(|p| p.line)), (path, Some(line)), "{e}");
        e
    }

    fn groups(text: &str) -> Vec<ProcessGroup> {
        PipelineConfig::from_yaml("mp.yml", text).unwrap().runtime.multiprocess.unwrap().groups
    }

    /// `MP` with the `process_groups:` entries replaced.
    fn with_groups(entries: &str) -> String {
        let start = MP.find("    - name: ingest").unwrap();
        let end = MP.find("source:").unwrap();
        format!("{}{entries}{}", &MP[..start], &MP[end..])
    }

    #[test]
    fn groups_read_in_pipeline_order_with_their_stretches() {
        let config = PipelineConfig::from_yaml("mp.yml", MP).unwrap();
        assert_eq!(config.runtime.profile, super::super::Profile::Multiprocess);
        assert_eq!(config.source.group.as_deref(), Some("ingest"));
        assert_eq!(config.sink.group.as_deref(), Some("egress"));
        let mp = config.runtime.multiprocess.unwrap();
        let g = &mp.groups;
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].name.as_str(), g[0].index, g[0].nodes.clone()), ("ingest", 0, 0..2));
        assert_eq!((g[1].name.as_str(), g[1].index, g[1].nodes.clone()), ("policy", 1, 2..4));
        assert_eq!((g[2].name.as_str(), g[2].index, g[2].nodes.clone()), ("egress", 2, 4..5));
        assert_eq!(
            (g[0].source, g[0].sink, g[1].source, g[1].sink, g[2].source, g[2].sink),
            (true, false, false, false, false, true)
        );
        assert_eq!(g[1].path, "runtime.process_groups[1]");
        assert_eq!(g[1].pos, Pos { line: 8, col: 13 });
        let names: Vec<&str> = (0..5).map(|n| mp.group_of_node(n).name.as_str()).collect();
        assert_eq!(names, ["ingest", "ingest", "policy", "policy", "egress"]);
    }

    #[test]
    fn groups_may_hold_only_the_source_or_only_the_sink() {
        let text = with_groups(
            "    - name: reader\n      nodes: []\n    - name: all\n      nodes: [parse, time_keys, features, policies, format]\n    - name: writer\n      nodes: []\n",
        )
        .replace("group: ingest", "group: reader")
        .replace("group: egress", "group: writer");
        let g = groups(&text);
        assert_eq!((g[0].nodes.clone(), g[0].source, g[0].sink), (0..0, true, false));
        assert_eq!((g[1].nodes.clone(), g[1].source, g[1].sink), (0..5, false, false));
        assert_eq!((g[2].nodes.clone(), g[2].source, g[2].sink), (5..5, false, true));
        let text = "app: demo\nscenario: s\nruntime:\n  profile: multiprocess\n  process_groups: [{ name: one, nodes: [] }]\n\
                    source: { kind: ndjson, path: in.txt, group: one }\nsink: { kind: ndjson, path: '-', group: one }\nnodes: []\n";
        let g = groups(text);
        assert_eq!((g.len(), g[0].nodes.clone(), g[0].source, g[0].sink), (1, 0..0, true, true));
    }

    #[test]
    #[should_panic(expected = "node 5 is in no process group")]
    fn group_of_node_panics_past_the_last_node() {
        let config = PipelineConfig::from_yaml("mp.yml", MP).unwrap().runtime.multiprocess.unwrap();
        config.group_of_node(5);
    }

    #[test]
    fn reserved_node_names_are_refused_in_every_profile() {
        let e = err_at(&MP.replace("  - kind: format", "  - kind: format\n    name: sink"), "nodes[4].name", 22);
        assert_eq!(e.pos.unwrap().col, 11);
        assert_eq!(
            e.message,
            "the node name `sink` is reserved for the pipeline's sink; give this node another `name:`"
        );
        let text = "app: demo\nscenario: s\nsource: { kind: ndjson, path: in.txt }\nsink: { kind: ndjson, path: '-' }\n\
                    nodes:\n  - kind: source\n";
        let e = err_at(text, "nodes[0].kind", 6);
        assert_eq!(
            e.message,
            "the node name `source`, taken from its kind, is reserved for the pipeline's source; give this node a `name:`"
        );
        assert!(
            PipelineConfig::from_yaml("mp.yml", &text.replace("kind: source", "kind: source\n    name: reader"))
                .is_ok()
        );
    }

    #[test]
    fn group_names_follow_the_name_rule() {
        let e = err_at(&MP.replace("name: policy", "name: Policy"), "runtime.process_groups[1].name", 8);
        assert!(e.message.starts_with("expected a name of lowercase letters"), "{e}");
    }

    #[test]
    fn two_groups_with_one_name_are_refused() {
        let e = err_at(&MP.replace("name: egress", "name: ingest"), "runtime.process_groups[2].name", 12);
        assert_eq!(e.pos.unwrap().col, 13);
        assert_eq!(
            e.message,
            "two process groups are named `ingest` (runtime.process_groups[0] and this one); give each group its own name"
        );
    }

    #[test]
    fn no_groups_is_refused() {
        let text = with_groups("").replace("  process_groups:\n", "  process_groups: []\n");
        let e = err_at(&text, "runtime.process_groups", 5);
        assert_eq!(e.pos.unwrap().col, 3);
        assert_eq!(e.message, "expected at least one process group; found none");
    }

    #[test]
    fn more_groups_than_the_wire_can_name_are_refused() {
        let mut entries = String::from("    - name: g0\n      nodes: [parse, time_keys, features, policies, format]\n");
        for i in 1..=MultiprocessConfig::MAX_GROUPS {
            entries.push_str(&format!("    - {{ name: g{i}, nodes: [] }}\n"));
        }
        let text =
            with_groups(&entries).replace("group: ingest", "group: g0").replace("group: egress", "group: g65534");
        let e = err_at(&text, "runtime.process_groups", 5);
        assert_eq!(e.message, "expected at most 65534 process groups; found 65535");
    }

    #[test]
    fn the_most_groups_the_wire_can_name_are_accepted() {
        // 65,534 groups need at least 65,532 nodes between the two ends.
        let count = MultiprocessConfig::MAX_GROUPS;
        let mut text = String::from("app: demo\nscenario: s\nruntime:\n  profile: multiprocess\n  process_groups:\n");
        text.push_str("    - { name: g0, nodes: [] }\n");
        for i in 1..count - 1 {
            text.push_str(&format!("    - {{ name: g{i}, nodes: [n{i}] }}\n"));
        }
        text.push_str(&format!("    - {{ name: g{}, nodes: [] }}\n", count - 1));
        text.push_str(&format!(
            "source: {{ kind: ndjson, path: in.txt, group: g0 }}\nsink: {{ kind: ndjson, path: '-', group: g{} }}\nnodes:\n",
            count - 1
        ));
        for i in 1..count - 1 {
            text.push_str(&format!("  - {{ kind: k, name: n{i} }}\n"));
        }
        let config = PipelineConfig::from_yaml("big.yml", &text).unwrap().runtime.multiprocess.unwrap();
        assert_eq!(config.groups.len(), count);
        assert_eq!(config.groups[count - 1].index, 65_533);
        assert_eq!(config.group_of_node(count - 3).name, format!("g{}", count - 2));
    }

    #[test]
    fn unknown_node_in_a_group_lists_the_nodes() {
        let e = err_at(&MP.replace("        - policies", "        - policy"), "runtime.process_groups[1].nodes[1]", 11);
        assert_eq!(e.pos.unwrap().col, 11);
        assert_eq!(e.message, "unknown node `policy`; expected one of: parse, time_keys, features, policies, format");
    }

    #[test]
    fn a_node_placed_twice_names_its_first_group() {
        let e = err_at(
            &MP.replace("nodes: [format]", "nodes: [format, time_keys]"),
            "runtime.process_groups[2].nodes[1]",
            13,
        );
        assert_eq!(e.pos.unwrap().col, 23);
        assert_eq!(
            e.message,
            "node `time_keys` is already placed in process group `ingest` (runtime.process_groups[0].nodes[1]); \
             a node runs in exactly one group"
        );
    }

    #[test]
    fn an_unplaced_node_is_named_with_its_line() {
        let e = err_at(&MP.replace("        - policies\n", ""), "runtime.process_groups", 5);
        assert_eq!(e.pos.unwrap().col, 3);
        assert_eq!(
            e.message,
            "node `policies` (nodes[3], line 19) is in no process group; every node runs in exactly one: \
             add it to the `nodes:` of a group"
        );
    }

    #[test]
    fn adapter_group_is_required_under_multiprocess() {
        let e = err_at(&MP.replace(", group: ingest", ""), "source", 14);
        assert_eq!(e.pos.unwrap().col, 9);
        assert_eq!(
            e.message,
            "`group` is required under `profile: multiprocess`: name the process group that reads the source; \
             expected one of: ingest, policy, egress"
        );
        let e = err_at(&MP.replace(", group: egress", ""), "sink", 15);
        assert!(e.message.contains("name the process group that writes the sink"), "{e}");
    }

    #[test]
    fn adapter_group_naming_no_group_lists_the_groups() {
        let e = err_at(&MP.replace("group: egress", "group: output"), "sink.group", 15);
        assert_eq!(e.pos.unwrap().col, 41);
        assert_eq!(e.message, "unknown process group `output`; expected one of: ingest, policy, egress");
        let e = err_at(&MP.replace("group: ingest", "group: input"), "source.group", 14);
        assert_eq!(e.message, "unknown process group `input`; expected one of: ingest, policy, egress");
    }

    #[test]
    fn a_group_holding_nothing_is_refused() {
        let text = MP.replace("    - name: egress\n", "    - name: spare\n      nodes: []\n    - name: egress\n");
        let e = err_at(&text, "runtime.process_groups[2].nodes", 13);
        assert_eq!(e.pos.unwrap().col, 14);
        assert_eq!(
            e.message,
            "process group `spare` holds nothing: no nodes, and neither the source nor the sink; give it nodes or remove it"
        );
    }

    #[test]
    fn source_must_be_in_the_first_group() {
        let e = err_at(&MP.replace("group: ingest", "group: policy"), "source.group", 14);
        assert_eq!(e.pos.unwrap().col, 46);
        assert_eq!(
            e.message,
            "process groups take the pipeline in order, each a consecutive stretch: the source comes first, \
             so it belongs to the first group, `ingest` (runtime.process_groups[0]); found `policy`"
        );
    }

    #[test]
    fn sink_must_be_in_the_last_group() {
        let e = err_at(&MP.replace("group: egress", "group: policy"), "sink.group", 15);
        assert_eq!(
            e.message,
            "process groups take the pipeline in order, each a consecutive stretch: the sink comes last, \
             so it belongs to the last group, `egress` (runtime.process_groups[2]); found `policy`"
        );
    }

    #[test]
    fn a_group_skipping_a_step_names_where_the_step_is() {
        // time_keys listed after features in the next group: that group starts one step too far.
        let text = MP
            .replace("[parse, time_keys]", "[parse]")
            .replace("        - features\n", "        - features\n        - time_keys\n");
        let e = err_at(&text, "runtime.process_groups[1].nodes[0]", 10);
        assert_eq!(
            e.message,
            "process groups take the pipeline in order, each a consecutive stretch: expected `time_keys` here, \
             the step after `parse`, but found `features`; it is listed later in this group, and a group lists \
             its nodes in pipeline order"
        );
        let text = MP
            .replace("[parse, time_keys]", "[parse, features]")
            .replace("        - features\n", "        - time_keys\n");
        let e = err_at(&text, "runtime.process_groups[0].nodes[1]", 7);
        assert_eq!(e.pos.unwrap().col, 22);
        assert_eq!(
            e.message,
            "process groups take the pipeline in order, each a consecutive stretch: expected `time_keys` here, \
             the step after `parse`, but found `features`; it is placed in a later group, `policy` \
             (runtime.process_groups[1])"
        );
    }

    #[test]
    fn groups_in_the_wrong_order_are_refused() {
        // egress above policy: format comes before features.
        let text = with_groups(
            "    - name: ingest\n      nodes: [parse, time_keys]\n    - name: egress\n      nodes: [format]\n    - name: policy\n      nodes: [features, policies]\n",
        )
        .replace("group: egress", "group: policy");
        let e = err_at(&text, "runtime.process_groups[1].nodes[0]", 9);
        assert_eq!(
            e.message,
            "process groups take the pipeline in order, each a consecutive stretch: expected `features` here, \
             the step after `time_keys`, but found `format`; it is placed in a later group, `policy` \
             (runtime.process_groups[2])"
        );
        // The first node in a group after a source-only group.
        let text = with_groups(
            "    - name: ingest\n      nodes: [time_keys]\n    - name: policy\n      nodes: [parse, features, policies]\n    - name: egress\n      nodes: [format]\n",
        );
        let e = err_at(&text, "runtime.process_groups[0].nodes[0]", 7);
        assert!(e.message.contains("expected `parse` here, the step after the source, but found `time_keys`"), "{e}");
    }

    /// Whether two trees hold the same values, wherever they are written.
    fn same_values(a: &Yaml, b: &Yaml) -> bool {
        match (&a.value, &b.value) {
            (YamlValue::Scalar { .. }, YamlValue::Scalar { .. }) => a.value == b.value,
            (YamlValue::Seq(x), YamlValue::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_values(a, b))
            }
            (YamlValue::Map(x), YamlValue::Map(y)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|((ka, va), (kb, vb))| same_values(ka, kb) && same_values(va, vb))
            }
            _ => false,
        }
    }

    #[test]
    fn shipped_multiprocess_configs_are_the_memory_ones_in_three_groups() {
        for (file, text, memory) in [
            (
                "baseline.yml",
                include_str!("../../../../pipelines/fund_load/multiprocess/baseline.yml"),
                include_str!("../../../../pipelines/fund_load/baseline.yml"),
            ),
            (
                "exp_mp.yml",
                include_str!("../../../../pipelines/fund_load/multiprocess/exp_mp.yml"),
                include_str!("../../../../pipelines/fund_load/exp_mp.yml"),
            ),
        ] {
            let config = PipelineConfig::from_yaml(file, text).unwrap();
            let memory = PipelineConfig::from_yaml(file, memory).unwrap();
            assert_eq!(memory.runtime.profile, super::super::Profile::Memory);
            assert_eq!((&config.app, &config.scenario), (&memory.app, &memory.scenario), "{file}");
            assert_eq!(config.description, memory.description, "{file}");
            assert_eq!(config.runtime.batch_size, memory.runtime.batch_size, "{file}");
            assert_eq!(config.source.path, "../../../tests/fixtures/fund_load/input.txt");
            assert_eq!(memory.source.path, "../../tests/fixtures/fund_load/input.txt");
            assert_eq!((config.source.kind, config.sink.kind), (memory.source.kind, memory.sink.kind));
            assert_eq!(config.sink.path, memory.sink.path);
            assert_eq!(config.nodes.len(), memory.nodes.len(), "{file}");
            for (node, twin) in config.nodes.iter().zip(&memory.nodes) {
                assert_eq!((&node.kind, &node.name), (&twin.kind, &twin.name), "{file}");
                assert!(same_values(node.params.tree(), twin.params.tree()), "{file}: {}", node.path);
            }
            let mp = config.runtime.multiprocess.unwrap();
            let groups: Vec<_> =
                mp.groups.iter().map(|g| (g.name.as_str(), g.nodes.clone(), g.source, g.sink)).collect();
            assert_eq!(
                groups,
                [("ingest", 0..3, true, false), ("policy", 3..5, false, false), ("egress", 5..6, false, true)],
                "{file}"
            );
            assert_eq!(mp.transport.key, super::super::KeySource::Generate);
        }
    }
}
