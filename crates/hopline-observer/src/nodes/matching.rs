//! `match`: which observers a change concerns.
//!
//! An observer matches a change of its table, of one of its operations, whose condition holds
//! (or that has none). Every change goes on, as `matched`, with the observers it matched, none
//! included: the checkpoint must see every change. Each condition evaluated on a sampled event
//! gets a span, `condition <observer>`, saying whether it held.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hopline_model::{ConfigError, Context, Emit, Node, NodeError, NodeKind, NodeReport, Params};

use crate::action::Action;
use crate::condition::Condition;
use crate::config::{ActionSpec, MatchParams, Observer, TableName};
use crate::image;
use crate::message::ObserverMsg;

pub const KIND: NodeKind<ObserverMsg> = NodeKind {
    name: "match",
    summary: "which observers a change concerns: table, operations, condition",
    consumes: &[ObserverMsg::CHANGE],
    emits: &[ObserverMsg::MATCHED],
    requires: &[],
    build,
};

fn build(params: &Params) -> Result<Box<dyn Node<ObserverMsg>>, ConfigError> {
    Ok(Box::new(Match::new(observers(params)?)))
}

/// Reads and compiles the observers of a `match` node's params: names unique, tables valid,
/// conditions parsed, actions built. Errors name the observer, the key and the line.
pub fn observers(params: &Params) -> Result<Vec<Arc<Observer>>, ConfigError> {
    let read: MatchParams = params.read()?;
    if read.observers.is_empty() {
        return Err(params.error_at(&["observers"], "expected at least one observer"));
    }
    let mut observers: Vec<Arc<Observer>> = Vec::with_capacity(read.observers.len());
    for (i, spec) in read.observers.iter().enumerate() {
        let at = i.to_string();
        let name = spec.name.0.clone();
        if observers.iter().any(|o| o.name == name) {
            return Err(params.error_at(&["observers", &at, "name"], format!("two observers are named `{name}`")));
        }
        let table = TableName::parse(&spec.table)
            .map_err(|m| params.error_at(&["observers", &at, "table"], format!("observer `{name}`: {m}")))?;
        if spec.ops.is_empty() {
            return Err(params.error_at(
                &["observers", &at, "ops"],
                format!("observer `{name}`: expected at least one of insert, update, delete"),
            ));
        }
        let condition = match &spec.condition {
            Some(text) => Some(Condition::parse(text).map_err(|e| {
                params.error_at(
                    &["observers", &at, "condition"],
                    format!("observer `{name}`: the condition does not parse: {e}"),
                )
            })?),
            None => None,
        };
        if spec.actions.is_empty() {
            return Err(params
                .error_at(&["observers", &at, "actions"], format!("observer `{name}`: expected at least one action")));
        }
        let mut actions: Vec<Arc<Action>> = Vec::with_capacity(spec.actions.len());
        for (j, action) in spec.actions.iter().enumerate() {
            let (given, base) = match action {
                ActionSpec::Webhook(w) => (w.name.as_ref(), "webhook"),
                ActionSpec::Log(l) => (l.name.as_ref(), "log"),
            };
            let action_name = match given {
                Some(n) => n.0.clone(),
                None => {
                    let same = spec.actions[..j]
                        .iter()
                        .filter(|a| {
                            matches!((a, base), (ActionSpec::Webhook(_), "webhook") | (ActionSpec::Log(_), "log"))
                        })
                        .count();
                    if same == 0 { base.to_string() } else { format!("{base}-{}", same + 1) }
                }
            };
            if actions.iter().any(|a| a.name == action_name) {
                return Err(params.error_at(
                    &["observers", &at, "actions", &j.to_string()],
                    format!("observer `{name}`: two actions are named `{action_name}`; give one a `name:`"),
                ));
            }
            let built = Action::build(action, action_name).map_err(|(key, message)| {
                let mut keys = vec!["observers", &at, "actions"];
                let index = j.to_string();
                keys.push(&index);
                let parts: Vec<&str> = key.split('.').collect();
                keys.extend(parts.iter().copied());
                params.error_at(&keys, format!("observer `{name}`: {message}"))
            })?;
            actions.push(Arc::new(built));
        }
        observers.push(Arc::new(Observer { name, table, ops: spec.ops.clone(), condition, actions }));
    }
    Ok(observers)
}

/// The `match` node.
pub struct Match {
    observers: Vec<Arc<Observer>>,
    /// Per table, every column its observers' conditions read.
    columns: HashMap<TableName, BTreeSet<String>>,
    seen: u64,
    matched: u64,
}

impl Match {
    pub fn new(observers: Vec<Arc<Observer>>) -> Match {
        let mut columns: HashMap<TableName, BTreeSet<String>> = HashMap::new();
        for observer in &observers {
            let read = columns.entry(observer.table.clone()).or_default();
            if let Some(condition) = &observer.condition {
                read.extend(condition.columns().into_iter().map(str::to_string));
            }
        }
        Match { observers, columns, seen: 0, matched: 0 }
    }
}

impl Node<ObserverMsg> for Match {
    fn process(
        &mut self,
        ctx: &Context<'_>,
        message: ObserverMsg,
        out: &mut Emit<'_, ObserverMsg>,
    ) -> Result<(), NodeError> {
        let ObserverMsg::Change(mut event) = message else {
            return Err(NodeError::UnexpectedMessage { got: hopline_model::Message::kind(&message) });
        };
        self.seen += 1;
        let change = &event.change;
        // The row images, read (once, and only the columns conditions read) when a condition
        // is met.
        let mut images: Option<(Option<serde_json::Value>, Option<serde_json::Value>)> = None;
        for observer in &self.observers {
            if observer.table != *change.table || !observer.ops.contains(&change.op) {
                continue;
            }
            let mut span = ctx.span(|| format!("condition {}", observer.name));
            let holds = match &observer.condition {
                Some(condition) => {
                    let (before, after) = images.get_or_insert_with(|| {
                        let wanted = &self.columns[&*change.table];
                        (
                            image::columns(change.before.as_deref(), wanted),
                            image::columns(change.after.as_deref(), wanted),
                        )
                    });
                    condition.eval(before.as_ref(), after.as_ref())
                }
                None => true,
            };
            if let Some(span) = &mut span {
                span.set("hopline.observer", observer.name.as_str());
                if let Some(condition) = &observer.condition {
                    span.set("hopline.condition", condition.text());
                }
                span.set("hopline.condition.held", if holds { "true" } else { "false" });
            }
            if holds {
                event.hits.push(Arc::clone(observer));
            }
        }
        if !event.hits.is_empty() {
            self.matched += 1;
        }
        out.emit(ObserverMsg::Matched(event));
        Ok(())
    }

    fn report(&self) -> NodeReport {
        NodeReport {
            counts: vec![
                ("changes".into(), self.seen),
                ("matched".into(), self.matched),
                ("not matched".into(), self.seen - self.matched),
            ],
            incidents: Vec::new(),
        }
    }
}
