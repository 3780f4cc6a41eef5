//! probe: a diagnostic app that makes a real pipeline fail in a chosen way, at a chosen event,
//! so that you can see how a deployment reports and handles it.
//!
//! probe reads NDJSON lines and writes them back unchanged; along the way a `fault` node fails
//! at the event you name, in the way you name: a node error, a panic, the process exiting or
//! aborting, or the process hanging. Run it under the profile and the process layout you want
//! to check, and compare what the run reports with what you expected. Our cross-process tests
//! use it the same way.
//!
//! Its node kinds, registered under the app name `probe`:
//!
//! | kind | consumes → emits | does | params |
//! | --- | --- | --- | --- |
//! | `pass` | `line` → `record` | turns each line into a record of the same bytes | none |
//! | `fault` | `line`, `record` → `record` | at event `at`: `error`, `panic`, `exit`, `abort` or `stall` ([`nodes::fault`]) | `at`, `action`, `code` (exit), `stall_ms` (stall) |
//! | `delay` | `line`, `record` → `record` | sleeps `every_ms` after every `every` events, to keep a run alive | `every_ms`, `every` (default 1) |
//!
//! No node changes an event's bytes: the output is the input, line for line, up to the fault.
//! `fault` and `delay` take lines or records and emit records (a line becomes a record of the
//! same bytes), so they fit anywhere after the source or after `pass`, in any number.
//!
//! Events are numbered from 1 by the source (the line number), and the number travels with the
//! event across every hop, so `at: 5` is the fifth input line wherever the `fault` node runs.
//! A pipeline may hold several `fault` and `delay` nodes if each has its own `name:`, e.g. one
//! per process group.
//!
//! A run that fails cleanly at the fifth line:
//!
//! ```yaml
//! app: probe
//! scenario: error-at-5
//! source: { kind: ndjson, path: input.ndjson }
//! sink: { kind: ndjson, path: "-" }
//! nodes:
//!   - kind: pass
//!   - kind: fault
//!     params: { at: 5, action: error }
//! ```
//!
//! Other faults: `{ at: 5, action: panic }`, `{ at: 5, action: exit, code: 7 }`,
//! `{ at: 5, action: abort }`, `{ at: 5, action: stall, stall_ms: 30000 }`. Any input with at
//! least `at` lines will do; the lines need not be JSON.

pub mod message;
pub mod nodes;

use hopline_model::Registry;

pub use message::ProbeMsg;

/// The app name configs use.
pub const APP: &str = "probe";

/// probe's node kinds.
pub fn registry() -> Registry<ProbeMsg> {
    let mut registry = Registry::new(APP);
    registry.register(nodes::pass::KIND).register(nodes::fault::KIND).register(nodes::delay::KIND);
    registry
}

#[cfg(test)]
mod tests {
    use hopline_model::{NodeError, PipelineConfig};

    use super::*;
    use crate::nodes::testing::{lines, run};

    /// The YAML sample in the crate docs above.
    fn sample_config() -> String {
        let source = include_str!("lib.rs");
        let docs: Vec<&str> =
            source.lines().map_while(|l| l.strip_prefix("//!")).map(|l| l.strip_prefix(' ').unwrap_or(l)).collect();
        let start = docs.iter().position(|l| *l == "```yaml").expect("the docs hold a YAML sample") + 1;
        let len = docs[start..].iter().position(|l| *l == "```").expect("the sample ends");
        docs[start..start + len].iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn registers_pass_fault_and_delay() {
        let registry = registry();
        assert_eq!(registry.app(), "probe");
        assert_eq!(registry.kinds().map(|k| k.name).collect::<Vec<_>>(), ["pass", "fault", "delay"]);
    }

    #[test]
    fn the_documented_sample_fails_at_its_fifth_line() {
        let config = PipelineConfig::from_yaml("sample.yml", &sample_config()).unwrap();
        assert_eq!(config.app, APP);
        let mut pipeline = registry().build(&config, &["line"], &["record"]).unwrap();
        let failure = run(&mut pipeline, lines(8), 1024).unwrap_err();
        assert_eq!(failure, ("fault".into(), 5, NodeError::Failed("probe fault at event 5".into())));
    }
}
