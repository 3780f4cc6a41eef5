//! Templates for log lines and webhook bodies: text with `{field}` placeholders.
//!
//! A field is one of `event_id`, `observer`, `table`, `op`, `seq`, `committed_at`, or a path
//! into the key or a row image: `key.id`, `after.status`, `before.meta.tier`. A missing value
//! renders as `null`. `{{` and `}}` write one brace.
//!
//! In a log line every value is written as text (strings without their quotes). In a body
//! template (a YAML value: map, list or scalar), a string that is exactly one placeholder
//! becomes the field's JSON value, typed (`total: "{after.total}"` gives a number); other
//! strings are interpolated as in log lines.

use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::message::Change;

/// A compiled template string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Field),
}

/// A field a placeholder names.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    EventId,
    Observer,
    Table,
    Op,
    Seq,
    CommittedAt,
    Key(Vec<String>),
    Before(Vec<String>),
    After(Vec<String>),
}

/// What a template is rendered from.
pub struct Scope<'a> {
    pub change: &'a Change,
    pub observer: &'a str,
    pub event_id: &'a str,
}

impl Template {
    /// Compiles `text`; the error says which placeholder is wrong and what fields exist.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "the `{{` at character {} has no closing `}}`; write `{{{{` for a brace",
                            at + 1
                        ));
                    };
                    let field = parse_field(rest[..end].trim())?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(field));
                    while chars.peek().is_some_and(|&(i, _)| i <= at + end + 1) {
                        chars.next();
                    }
                }
                '}' => return Err(format!("a lone `}}` at character {}; write `}}}}` for a brace", at + 1)),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Renders as text.
    pub fn render(&self, scope: &Scope<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(&text(field, scope)),
            }
        }
        out
    }

    /// The one field this template is, if it is exactly one placeholder.
    fn single(&self) -> Option<&Field> {
        match self.parts.as_slice() {
            [Part::Field(field)] => Some(field),
            _ => None,
        }
    }
}

fn parse_field(name: &str) -> Result<Field, String> {
    let path = |rest: &str| -> Result<Vec<String>, String> {
        let segments: Vec<String> = rest.split('.').map(str::to_string).collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(format!("`{{{name}}}` has an empty path segment"));
        }
        Ok(segments)
    };
    Ok(match name {
        "event_id" => Field::EventId,
        "observer" => Field::Observer,
        "table" => Field::Table,
        "op" => Field::Op,
        "seq" => Field::Seq,
        "committed_at" => Field::CommittedAt,
        _ => {
            if let Some(rest) = name.strip_prefix("key.") {
                Field::Key(path(rest)?)
            } else if let Some(rest) = name.strip_prefix("before.") {
                Field::Before(path(rest)?)
            } else if let Some(rest) = name.strip_prefix("after.") {
                Field::After(path(rest)?)
            } else {
                return Err(format!(
                    "unknown field `{{{name}}}`; expected event_id, observer, table, op, seq, committed_at, key.<column>, \
                     before.<column> or after.<column>"
                ));
            }
        }
    })
}

/// The JSON text at `path` in `raw` (a row image or the key, as PostgreSQL wrote it, so
/// numbers keep their digits); `null` when absent.
fn walk(raw: Option<&RawValue>, path: &[String]) -> String {
    // Keys are owned: a key with an escape (`"a\"b"`, `"line\nbreak"`) cannot be borrowed from
    // the text, and a borrowed `&str` key would fail the whole object. Values are borrowed
    // slices of `raw` itself, so no step needs to outlive the one before.
    let mut current: Option<&RawValue> = raw;
    for segment in path {
        let Some(text) = current else { break };
        current = serde_json::from_str::<HashMap<String, &RawValue>>(text.get())
            .ok()
            .and_then(|mut map| map.remove(segment.as_str()));
    }
    current.map_or_else(|| "null".to_string(), |v| v.get().to_string())
}

/// The field's value as JSON text.
fn json_text(field: &Field, scope: &Scope<'_>) -> String {
    let change = scope.change;
    let quoted = |s: &str| serde_json::to_string(s).expect("strings serialise");
    match field {
        Field::EventId => quoted(scope.event_id),
        Field::Observer => quoted(scope.observer),
        Field::Table => quoted(&change.table.qualified()),
        Field::Op => quoted(change.op.name()),
        Field::Seq => change.seq.to_string(),
        Field::CommittedAt => quoted(&change.committed_at),
        Field::Key(path) => walk(Some(&change.key), path),
        Field::Before(path) => walk(change.before.as_deref(), path),
        Field::After(path) => walk(change.after.as_deref(), path),
    }
}

/// The field's value as text: strings without their quotes, anything else as JSON.
fn text(field: &Field, scope: &Scope<'_>) -> String {
    let json = json_text(field, scope);
    if json.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(&json) {
            return s;
        }
    }
    json
}

/// A webhook body template: a JSON value whose strings are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    Literal(Value),
    Text(Template),
    List(Vec<BodyTemplate>),
    Map(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// Compiles a body template from its YAML value (as JSON).
    pub fn parse(value: &Value) -> Result<BodyTemplate, String> {
        Ok(match value {
            Value::String(text) => BodyTemplate::Text(Template::parse(text)?),
            Value::Array(items) => BodyTemplate::List(items.iter().map(BodyTemplate::parse).collect::<Result<_, _>>()?),
            Value::Object(map) => BodyTemplate::Map(
                map.iter().map(|(k, v)| Ok((k.clone(), BodyTemplate::parse(v)?))).collect::<Result<_, String>>()?,
            ),
            other => BodyTemplate::Literal(other.clone()),
        })
    }

    /// The body, as JSON text (row values keep the digits PostgreSQL wrote).
    pub fn render(&self, scope: &Scope<'_>) -> String {
        let mut out = String::new();
        self.write(scope, &mut out);
        out
    }

    fn write(&self, scope: &Scope<'_>, out: &mut String) {
        let quoted = |s: &str| serde_json::to_string(s).expect("strings serialise");
        match self {
            BodyTemplate::Literal(v) => out.push_str(&v.to_string()),
            BodyTemplate::Text(t) => match t.single() {
                Some(field) => out.push_str(&json_text(field, scope)),
                None => out.push_str(&quoted(&t.render(scope))),
            },
            BodyTemplate::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(scope, out);
                }
                out.push(']');
            }
            BodyTemplate::Map(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quoted(key));
                    out.push(':');
                    value.write(scope, out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use serde_json::value::RawValue;

    use super::*;
    use crate::config::{Op, TableName};
    use crate::message::Position;

    pub(crate) fn change() -> Change {
        let raw = |s: &str| RawValue::from_string(s.to_string()).unwrap();
        Change {
            seq: 42,
            position: Position::default(),
            table: Arc::new(TableName::parse("orders").unwrap()),
            op: Op::Update,
            key: raw(r#"{"id": 7}"#),
            before: Some(raw(r#"{"id": 7, "status": "pending", "total": 99.50}"#)),
            after: Some(raw(r#"{"id": 7, "status": "paid", "total": 99.50, "meta": {"tier": "gold"}}"#)),
            committed_at: "2026-11-27T08:00:00.000000Z".into(),
            instance: "abc".into(),
            ahead: None,
        }
    }

    fn scope(change: &Change) -> Scope<'_> {
        Scope { change, observer: "order_paid", event_id: "abc-42-order_paid" }
    }

    #[test]
    fn log_lines_render_fields_as_text() {
        let c = change();
        let t = Template::parse("order {key.id} {before.status}→{after.status} ({after.total}) {{x}} {after.nope}")
            .unwrap();
        assert_eq!(t.render(&scope(&c)), "order 7 pending→paid (99.50) {x} null");
        let t = Template::parse("{observer} {table} {op} {seq} {event_id} {after.meta.tier}").unwrap();
        assert_eq!(t.render(&scope(&c)), "order_paid public.orders update 42 abc-42-order_paid gold");
    }

    #[test]
    fn paths_reach_through_objects_with_escaped_keys() {
        let mut c = change();
        c.after = Some(
            RawValue::from_string(
                r#"{"a\"b": 1, "line\nbreak": "x", "status": "paid", "m": {"tab\tkey": {"deep": 2}, "k": 3}}"#
                    .to_string(),
            )
            .unwrap(),
        );
        let t = Template::parse("{after.status} {after.a\"b} {after.line\nbreak} {after.m.k} {after.m.tab\tkey.deep}")
            .unwrap();
        assert_eq!(t.render(&scope(&c)), "paid 1 x 3 2");
    }

    #[test]
    fn bad_placeholders_are_explained() {
        assert!(Template::parse("{status}").unwrap_err().contains("unknown field `{status}`"));
        assert!(Template::parse("{after.status").unwrap_err().contains("no closing"));
        assert!(Template::parse("a } b").unwrap_err().contains("lone `}`"));
        assert!(Template::parse("{after.}").unwrap_err().contains("empty path segment"));
    }

    #[test]
    fn body_templates_keep_types_for_whole_placeholders() {
        let c = change();
        let t = BodyTemplate::parse(&json!({
            "id": "{key.id}", "total": "{after.total}", "text": "order {key.id}", "fixed": [1, true], "none": "{before.x}"
        }))
        .unwrap();
        let body = t.render(&scope(&c));
        assert!(body.contains("\"total\":99.50"), "digits as written: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({"id": 7, "total": 99.5, "text": "order 7", "fixed": [1, true], "none": null}));
    }
}
