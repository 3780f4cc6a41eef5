//! The observer's settings, as the pipeline config writes them: the source's database, the
//! observers (table, operations, condition, actions) and each action's delivery policy.
//!
//! Strings that say where to connect or what to send may reference environment variables as
//! `${NAME}` ([`EnvString`]); a variable that is not set is a config error naming it, with
//! the key and line. `$$` writes one `$`. A webhook's signing `secret` must be such a
//! reference and nothing else, so that no secret is ever written in a config file or stored in
//! the dead-letter queue (which keeps the references, not their values).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::condition::Condition;

/// A config string with its `${NAME}` references expanded from the environment when read.
///
/// Keeps the text as written too: the dead-letter queue stores that, so that a retry expands
/// the references again in its own environment and no secret reaches the database. `Debug`
/// shows the text as written, never the expanded value.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvString {
    written: String,
    value: String,
}

impl EnvString {
    /// Expands `written` with `lookup`.
    pub fn expand(written: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<EnvString, String> {
        Ok(EnvString { written: written.to_string(), value: expand(written, lookup)? })
    }

    /// The text as written in the config (with its `${NAME}` references).
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The text with every reference replaced by its variable's value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the text as written is exactly one `${NAME}` reference.
    pub fn is_one_reference(&self) -> bool {
        let w = self.written.as_str();
        w.starts_with("${")
            && w.ends_with('}')
            && w[2..w.len() - 1].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
}

impl fmt::Debug for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.written, f)
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let written = String::deserialize(d)?;
        EnvString::expand(&written, &|name| std::env::var(name).ok()).map_err(serde::de::Error::custom)
    }
}

/// Replaces `${NAME}` with the variable's value and `$$` with `$`.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(format!("`${{` without its closing `}}` in {text:?}; write `$${{` for a literal `${{`"));
            };
            let name = &body[..end];
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`${{{name}}}` is not a variable reference: a name is letters, digits and `_`, not starting with \
                     a digit"
                ));
            }
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!("the environment variable `{name}` is not set (referenced as `${{{name}}}`)"));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A duration written as a whole number with a unit: `250ms`, `5s`, `2m` ([`parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Dur).map_err(serde::de::Error::custom)
    }
}

/// Parses `250ms`, `5s`, `2m`: more than zero, at most an hour (the config's one rule).
pub use hopline_model::config::parse_duration;

/// Observer, action and consumer names: the config's own rule for names.
pub use hopline_model::config::Name;

/// The source's `params:` (`kind: postgres`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceParams {
    /// A libpq connection URL or key=value string, usually `${DATABASE_URL}`.
    pub database: EnvString,
    /// The name the checkpoint is saved under (and dead letters filed under); the scenario's
    /// name unless given. Two runs with one consumer name share one checkpoint: run one at a
    /// time.
    #[serde(default)]
    pub consumer: Option<Name>,
    /// How often the change log is read when no notification comes (a lost notification costs
    /// at most this much latency).
    #[serde(default = "SourceParams::default_poll_interval")]
    pub poll_interval: Dur,
}

impl SourceParams {
    fn default_poll_interval() -> Dur {
        Dur(Duration::from_millis(500))
    }
}

/// A row operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Op> {
        match text {
            "insert" => Some(Op::Insert),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// The `match` node's `params:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchParams {
    pub observers: Vec<ObserverSpec>,
}

/// One observer as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverSpec {
    pub name: Name,
    /// `orders` (in schema `public`) or `schema.table`.
    pub table: String,
    /// The operations it cares about; all three unless given.
    #[serde(default = "ObserverSpec::all_ops")]
    pub ops: Vec<Op>,
    /// Its condition ([`crate::condition`]); every change of its operations matches without one.
    #[serde(default)]
    pub condition: Option<String>,
    pub actions: Vec<ActionSpec>,
}

impl ObserverSpec {
    fn all_ops() -> Vec<Op> {
        vec![Op::Insert, Op::Update, Op::Delete]
    }
}

/// One action as written: `- webhook: {...}` or `- log: {...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    Webhook(Box<WebhookSpec>),
    Log(LogSpec),
}

/// `webhook:`: POST the change to a URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// The action's name in spans, the summary and the dead-letter queue; `webhook` (or
    /// `webhook-2`, ... for later ones of the same observer) unless given.
    #[serde(default)]
    pub name: Option<Name>,
    pub url: EnvString,
    /// Extra request headers (values may reference variables).
    #[serde(default)]
    pub headers: Vec<HeaderSpec>,
    /// The HMAC-SHA256 signing secret: a `${NAME}` reference only.
    #[serde(default)]
    pub secret: Option<EnvString>,
    /// How long one attempt may take, connecting included.
    #[serde(default = "WebhookSpec::default_timeout")]
    pub timeout: Dur,
    /// A body template instead of the standard body ([`crate::template`]).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub retry: RetrySpec,
}

impl WebhookSpec {
    fn default_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
}

/// One extra header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    pub name: String,
    pub value: EnvString,
}

/// `log:`: a line on the run's log (standard error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    #[serde(default)]
    pub name: Option<Name>,
    /// A template ([`crate::template`]): `order {key.id} is now {after.status}`.
    pub message: String,
}

/// When and how often a failed delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included: 1 ..= 100.
    #[serde(default = "RetrySpec::default_attempts")]
    pub attempts: u32,
    /// The wait before the second attempt; each later wait is `multiplier` times longer.
    #[serde(default = "RetrySpec::default_backoff")]
    pub backoff: Dur,
    #[serde(default = "RetrySpec::default_max_backoff")]
    pub max_backoff: Dur,
    #[serde(default = "RetrySpec::default_multiplier")]
    pub multiplier: f64,
    /// Each wait is shortened by a random part of at most this fraction (0 ..= 1), so that
    /// many failing deliveries do not retry in step.
    #[serde(default = "RetrySpec::default_jitter")]
    pub jitter: f64,
    /// No attempt starts later than this after the first one began.
    #[serde(default)]
    pub give_up_after: Option<Dur>,
}

impl RetrySpec {
    fn default_attempts() -> u32 {
        5
    }
    fn default_backoff() -> Dur {
        Dur(Duration::from_millis(200))
    }
    fn default_max_backoff() -> Dur {
        Dur(Duration::from_secs(10))
    }
    fn default_multiplier() -> f64 {
        2.0
    }
    fn default_jitter() -> f64 {
        0.2
    }

    /// Checks the ranges; the message names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=100).contains(&self.attempts) {
            return Err(("attempts", format!("expected 1 to 100 attempts; found {}", self.attempts)));
        }
        if !(1.0..=10.0).contains(&self.multiplier) {
            return Err(("multiplier", format!("expected a multiplier from 1 to 10; found {}", self.multiplier)));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(("jitter", format!("expected a jitter from 0 to 1; found {}", self.jitter)));
        }
        if self.max_backoff < self.backoff {
            return Err(("max_backoff", "expected max_backoff to be at least backoff".into()));
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (1-based), before jitter.
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.saturating_sub(1).min(60) as i32);
        let wait = self.backoff.0.as_secs_f64() * factor;
        Duration::from_secs_f64(wait.min(self.max_backoff.0.as_secs_f64()))
    }
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts: Self::default_attempts(),
            backoff: Self::default_backoff(),
            max_backoff: Self::default_max_backoff(),
            multiplier: Self::default_multiplier(),
            jitter: Self::default_jitter(),
            give_up_after: None,
        }
    }
}

/// The `act` node's `params:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActParams {
    /// Webhook requests in flight at once, over every observer: 1 ..= 1024.
    #[serde(default = "ActParams::default_concurrency")]
    pub concurrency: usize,
}

impl ActParams {
    fn default_concurrency() -> usize {
        64
    }
}

/// A table name, schema-qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    /// `orders` is `public.orders`; `sales.orders` names its schema. Names are taken as
    /// written (PostgreSQL folds unquoted names to lowercase: write them in lowercase).
    pub fn parse(text: &str) -> Result<TableName, String> {
        let valid = |part: &str| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        let (schema, table) = match text.split_once('.') {
            Some((schema, table)) => (schema, table),
            None => ("public", text),
        };
        if !valid(schema) || !valid(table) {
            return Err(format!(
                "expected a table name such as `orders` or `sales.orders` (letters, digits and `_`); found {text:?}"
            ));
        }
        Ok(TableName { schema: schema.into(), table: table.into() })
    }

    /// `schema.table`, as the change log and spans name it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// An observer, checked and compiled: what the `match` and `act` nodes use.
#[derive(Debug)]
pub struct Observer {
    pub name: String,
    pub table: TableName,
    pub ops: Vec<Op>,
    pub condition: Option<Condition>,
    pub actions: Vec<Arc<crate::action::Action>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DATABASE_URL" => Some("postgres://db/app".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn references_expand_and_dollars_escape() {
        assert_eq!(expand("${DATABASE_URL}", &env).unwrap(), "postgres://db/app");
        assert_eq!(expand("a${EMPTY}b $$5 $x", &env).unwrap(), "ab $5 $x");
        assert_eq!(expand("plain", &env).unwrap(), "plain");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let e = expand("http://${WEBHOOK_HOST}/hook", &env).unwrap_err();
        assert!(e.contains("`WEBHOOK_HOST` is not set"), "{e}");
        let e = expand("${OOPS", &env).unwrap_err();
        assert!(e.contains("without its closing"), "{e}");
        let e = expand("${9x}", &env).unwrap_err();
        assert!(e.contains("not a variable reference"), "{e}");
    }

    #[test]
    fn env_strings_keep_what_was_written_and_debug_shows_only_that() {
        let s = EnvString::expand("${DATABASE_URL}", &env).unwrap();
        assert_eq!(s.written(), "${DATABASE_URL}");
        assert_eq!(s.value(), "postgres://db/app");
        assert!(s.is_one_reference());
        assert_eq!(format!("{s:?}"), "\"${DATABASE_URL}\"");
        assert!(!EnvString::expand("x${EMPTY}", &env).unwrap().is_one_reference());
    }

    #[test]
    fn retry_waits_grow_and_are_capped() {
        let r = RetrySpec {
            backoff: Dur(Duration::from_millis(100)),
            max_backoff: Dur(Duration::from_millis(300)),
            ..RetrySpec::default()
        };
        let waits: Vec<u128> = (1..=4).map(|a| r.wait_after(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 300, 300]);
        assert!(RetrySpec { attempts: 0, ..r }.check().is_err());
        assert!(RetrySpec { jitter: 1.5, ..r }.check().is_err());
    }

    #[test]
    fn table_names_default_to_public() {
        assert_eq!(TableName::parse("orders").unwrap().qualified(), "public.orders");
        assert_eq!(TableName::parse("sales.orders").unwrap().qualified(), "sales.orders");
        assert!(TableName::parse("orders; drop table x").is_err());
        assert!(TableName::parse("").is_err());
    }
}
