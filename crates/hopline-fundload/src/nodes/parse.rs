//! `parse`: an input line becomes an attempt, or a declined decision when it is malformed.
//!
//! Most lines have the exact shape of the reference input and are read by a hand-written
//! scanner that validates as it goes and allocates nothing. Anything else (other spacing or key
//! order, escapes, extra fields, and every line that turns out malformed) goes to a full JSON
//! parse, which decides malformed or not exactly as RULES.md says. A malformed line never stops the run: it is
//! declined, counted by reason, and its first line numbers are kept for the summary.

use std::collections::HashSet;
use std::fmt;

use compact_str::CompactString;
use hopline_model::{Context, Incident, NodeError, NodeKind, NodeReport, Transform};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::message::{ATTEMPT, Attempt, DECISION, Decision, LINE, LoadMsg, Outcome};
use crate::money::{AmountError, parse_load_amount, trim_json_whitespace};
use crate::time::{DateCache, parse_utc_day, parse_utc_day_cached};

pub const KIND: NodeKind<LoadMsg> = NodeKind {
    name: "parse",
    summary: "reads an NDJSON line into a load attempt; declines malformed lines",
    consumes: &[LINE],
    emits: &[ATTEMPT, DECISION],
    requires: &[],
    build: |params| {
        params.read::<NoParams>()?;
        Ok(Box::new(Parse::default()))
    },
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Why a line is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    NotUtf8,
    Blank,
    NotJson,
    NotObject,
    RepeatedKey,
    Missing(Field),
    NotString(Field),
    BadId,
    BadCustomerId,
    BadAmount,
    AmountTooLarge,
    BadTime,
}

/// The four fields of an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    CustomerId,
    LoadAmount,
    Time,
}

impl Field {
    const ALL: [Field; 4] = [Field::Id, Field::CustomerId, Field::LoadAmount, Field::Time];

    fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::CustomerId => "customer_id",
            Field::LoadAmount => "load_amount",
            Field::Time => "time",
        }
    }

    fn from_key(key: &[u8]) -> Option<Field> {
        match key {
            b"id" => Some(Field::Id),
            b"customer_id" => Some(Field::CustomerId),
            b"load_amount" => Some(Field::LoadAmount),
            b"time" => Some(Field::Time),
            _ => None,
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::NotUtf8 => f.write_str("not valid UTF-8"),
            Malformed::Blank => f.write_str("blank line"),
            Malformed::NotJson => f.write_str("not valid JSON"),
            Malformed::NotObject => f.write_str("not a JSON object"),
            Malformed::RepeatedKey => f.write_str("repeated key"),
            Malformed::Missing(field) => write!(f, "missing {}", field.name()),
            Malformed::NotString(field) => write!(f, "{} is not a string", field.name()),
            Malformed::BadId => f.write_str("id is not all digits"),
            Malformed::BadCustomerId => f.write_str("customer_id is not all digits"),
            Malformed::BadAmount => f.write_str("load_amount does not match the amount grammar"),
            Malformed::AmountTooLarge => f.write_str("load_amount has more than 18 integer digits"),
            Malformed::BadTime => f.write_str("time is not an RFC 3339 date-time with a zone"),
        }
    }
}

/// A malformed line: why, and the ids to echo (empty when they are not JSON strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: Malformed,
    pub id: CompactString,
    pub customer_id: CompactString,
}

/// Reads one line into an attempt (with `day` set), or says why it is malformed.
pub fn parse_line(line: &[u8]) -> Result<Attempt, Rejected> {
    parse_line_cached(line, &mut DateCache::default())
}

fn parse_line_cached(line: &[u8], dates: &mut DateCache) -> Result<Attempt, Rejected> {
    match parse_template(line, dates) {
        Some(attempt) => Ok(attempt),
        None => parse_general(line),
    }
}

/// The four raw string values of a line, before validation.
struct RawFields<'a> {
    id: &'a [u8],
    customer_id: &'a [u8],
    load_amount: &'a [u8],
    time: &'a [u8],
}

/// The fast path: a line of exactly the reference shape,
/// `{"id":"…","customer_id":"…","load_amount":"…","time":"…"}`, whose values are valid as
/// they stand (digits, a compact amount, a timestamp). Every byte it accepts is checked
/// against those grammars, none of which admits a quote, a backslash, a control character or
/// a non-ASCII byte, so what it accepts is a valid JSON object with exactly these values.
/// `None` sends the line to the general path, which gives the verdict on anything odd.
#[inline]
fn parse_template(line: &[u8], dates: &mut DateCache) -> Option<Attempt> {
    let rest = after(line, b"{\"id\":\"")?;
    let (id, rest) = digit_run(rest)?;
    let rest = after(rest, b"\",\"customer_id\":\"")?;
    let (customer_id, rest) = digit_run(rest)?;
    let rest = after(rest, b"\",\"load_amount\":\"")?;
    let quote = rest.iter().position(|&b| b == b'"')?;
    let (load_amount, rest) = rest.split_at(quote);
    let time = after(rest, b"\",\"time\":\"")?.strip_suffix(b"\"}")?;
    if load_amount.iter().any(|&b| b < 0x21) {
        return None; // whitespace or control characters: the general path reads them exactly
    }
    let amount_cents = parse_load_amount(load_amount).ok()?;
    let day = parse_utc_day_cached(time, dates)?;
    Some(Attempt { id: ascii(id), customer_id: ascii(customer_id), amount_cents, day, ..Attempt::default() })
}

/// What follows `literal` at the start of `s`: a fixed-size compare, no call.
#[inline(always)]
fn after<'a, const N: usize>(s: &'a [u8], literal: &[u8; N]) -> Option<&'a [u8]> {
    match s.split_first_chunk::<N>() {
        Some((head, rest)) if head == literal => Some(rest),
        _ => None,
    }
}

/// A non-empty run of ASCII digits at the start of `s`, and what follows it.
#[inline(always)]
fn digit_run(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = s.iter().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    (end > 0).then(|| s.split_at(end))
}

/// Text known to be ASCII digits.
#[inline(always)]
fn ascii(digits: &[u8]) -> CompactString {
    // SAFETY: the caller has checked every byte is an ASCII digit, so the bytes are UTF-8.
    unsafe { CompactString::from_utf8_unchecked(digits) }
}

#[inline]
fn digits_id(raw: &[u8]) -> Option<CompactString> {
    let trimmed = match raw {
        [first, .., last] if first.is_ascii_digit() && last.is_ascii_digit() => raw,
        _ => trim_json_whitespace(raw),
    };
    if trimmed.is_empty() || !trimmed.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(ascii(trimmed))
}

fn echo(raw: &[u8]) -> CompactString {
    CompactString::from_utf8_lossy(trim_json_whitespace(raw))
}

fn validate(fields: RawFields<'_>) -> Result<Attempt, Rejected> {
    let reject = |reason| Rejected { reason, id: echo(fields.id), customer_id: echo(fields.customer_id) };
    let id = digits_id(fields.id).ok_or_else(|| reject(Malformed::BadId))?;
    let customer_id = digits_id(fields.customer_id).ok_or_else(|| reject(Malformed::BadCustomerId))?;
    let amount_cents = parse_load_amount(fields.load_amount).map_err(|e| {
        reject(match e {
            AmountError::Grammar => Malformed::BadAmount,
            AmountError::TooLarge => Malformed::AmountTooLarge,
        })
    })?;
    let day = parse_utc_day(fields.time).ok_or_else(|| reject(Malformed::BadTime))?;
    Ok(Attempt { id, customer_id, amount_cents, day, ..Attempt::default() })
}

/// The general path: a full JSON parse that notices repeated keys and non-string fields.
fn parse_general(line: &[u8]) -> Result<Attempt, Rejected> {
    let blank = |reason| Rejected { reason, id: CompactString::default(), customer_id: CompactString::default() };
    if std::str::from_utf8(line).is_err() {
        return Err(blank(Malformed::NotUtf8));
    }
    if trim_json_whitespace(line).is_empty() {
        return Err(blank(Malformed::Blank));
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let object = match ObjectSeed.deserialize(&mut de).and_then(|o| de.end().map(|()| o)) {
        Ok(Some(object)) => object,
        Ok(None) => return Err(blank(Malformed::NotObject)),
        Err(_) => return Err(blank(Malformed::NotJson)),
    };
    let echo_of = |field: Field| match &object.values[field as usize] {
        Some(Value::Str(s)) => echo(s.as_bytes()),
        _ => CompactString::default(),
    };
    let reject = |reason| Rejected { reason, id: echo_of(Field::Id), customer_id: echo_of(Field::CustomerId) };
    if object.repeated_key {
        return Err(reject(Malformed::RepeatedKey));
    }
    let mut strings: [&[u8]; 4] = [b""; 4];
    for field in Field::ALL {
        match &object.values[field as usize] {
            None => return Err(reject(Malformed::Missing(field))),
            Some(Value::Other) => return Err(reject(Malformed::NotString(field))),
            Some(Value::Str(s)) => strings[field as usize] = s.as_bytes(),
        }
    }
    validate(RawFields { id: strings[0], customer_id: strings[1], load_amount: strings[2], time: strings[3] })
}

enum Value {
    Str(String),
    Other,
}

/// The first value of each of the four fields, and whether any key appeared twice.
struct Object {
    values: [Option<Value>; 4],
    repeated_key: bool,
}

/// Deserializes a JSON document into `Some(Object)`, or `None` if it is not an object.
struct ObjectSeed;

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Option<Object>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ObjectVisitor)
    }
}

struct ObjectVisitor;

macro_rules! not_an_object {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> { Ok(None) })*
    };
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Option<Object>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    not_an_object!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Object { values: [None, None, None, None], repeated_key: false };
        let mut keys: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let field = Field::from_key(key.as_bytes());
            if !keys.insert(key) {
                object.repeated_key = true;
            }
            match field {
                Some(field) if object.values[field as usize].is_none() => {
                    let value = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(s) => Value::Str(s),
                        _ => Value::Other,
                    };
                    object.values[field as usize] = Some(value);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(object))
    }
}

/// The `parse` node.
#[derive(Default)]
pub struct Parse {
    malformed: Vec<(Malformed, Incident)>,
    dates: DateCache,
}

impl Parse {
    fn record(&mut self, reason: Malformed, seq: u64) {
        match self.malformed.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, incident)) => incident.record(seq),
            None => {
                let mut incident = Incident::new("malformed lines", reason.to_string());
                incident.record(seq);
                self.malformed.push((reason, incident));
            }
        }
    }
}

impl Transform<LoadMsg> for Parse {
    fn transform(&mut self, ctx: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        let LoadMsg::Line(line) = message else { return Err(super::unexpected(message)) };
        let parsed = parse_line_cached(line, &mut self.dates);
        *message = match parsed {
            Ok(attempt) => LoadMsg::Attempt(attempt),
            Err(rejected) => {
                self.record(rejected.reason, ctx.seq());
                LoadMsg::Decision(Decision {
                    id: rejected.id,
                    customer_id: rejected.customer_id,
                    outcome: Outcome::Malformed,
                })
            }
        };
        Ok(())
    }

    fn report(&self) -> NodeReport {
        let mut incidents: Vec<Incident> = self.malformed.iter().map(|(_, i)| i.clone()).collect();
        incidents.sort_by_key(|i| std::cmp::Reverse(i.count));
        NodeReport { counts: Vec::new(), incidents }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Attempt {
        parse_line(line.as_bytes()).unwrap_or_else(|r| panic!("{line}: {r:?}"))
    }

    fn bad(line: &[u8]) -> Rejected {
        parse_line(line).expect_err("should be malformed")
    }

    const GOOD: &str = r#"{"id":"15887","customer_id":"528","load_amount":"$3318.47","time":"2000-01-01T00:00:00Z"}"#;

    #[test]
    fn common_line_is_read_on_the_fast_path() {
        assert!(parse_template(GOOD.as_bytes(), &mut DateCache::default()).is_some());
        let spaced = GOOD.replace(",", ", ");
        assert!(parse_template(spaced.as_bytes(), &mut DateCache::default()).is_none());
        let a = ok(GOOD);
        assert_eq!((a.id.as_str(), a.customer_id.as_str(), a.amount_cents, a.day), ("15887", "528", 331_847, 10_957));
    }

    #[test]
    fn spacing_key_order_unknown_fields_and_escapes_are_read_too() {
        let spaced =
            r#" { "time" : "2000-01-01T00:00:00Z" , "id": " 007 ", "customer_id":"528", "load_amount": "USD$ 1.00" } "#;
        let a = ok(spaced);
        assert_eq!((a.id.as_str(), a.amount_cents), ("007", 100));
        let extra =
            r#"{"id":"1","customer_id":"2","load_amount":"1.00","time":"2000-01-01T00:00:00Z","note":{"x":[1,2]}}"#;
        assert_eq!(ok(extra).id, "1");
        let escaped = r#"{"\u0069d":"1","customer_id":"2","load_amount":"1.00","time":"2000-01-01T00:00:00Z"}"#;
        assert_eq!(ok(escaped).id, "1");
    }

    #[test]
    fn each_kind_of_malformed_line_has_its_reason() {
        let cases: &[(&[u8], Malformed)] = &[
            (b"", Malformed::Blank),
            (b"  \t", Malformed::Blank),
            (b"{\"id\":\"1\xff\"}", Malformed::NotUtf8),
            (b"{\"id\":", Malformed::NotJson),
            (b"[1,2]", Malformed::NotObject),
            (b"\"id\"", Malformed::NotObject),
            (
                br#"{"id":"1","id":"2","customer_id":"2","load_amount":"1.00","time":"2000-01-01T00:00:00Z"}"#,
                Malformed::RepeatedKey,
            ),
            (br#"{"id":"1","customer_id":"2","load_amount":"1.00"}"#, Malformed::Missing(Field::Time)),
            (
                br#"{"id":"1","customer_id":"2","load_amount":1.00,"time":"2000-01-01T00:00:00Z"}"#,
                Malformed::NotString(Field::LoadAmount),
            ),
            (br#"{"id":"","customer_id":"2","load_amount":"1.00","time":"2000-01-01T00:00:00Z"}"#, Malformed::BadId),
            (br#"{"id":"1a","customer_id":"2","load_amount":"1.00","time":"2000-01-01T00:00:00Z"}"#, Malformed::BadId),
            (
                br#"{"id":"1","customer_id":"-2","load_amount":"1.00","time":"2000-01-01T00:00:00Z"}"#,
                Malformed::BadCustomerId,
            ),
            (
                br#"{"id":"1","customer_id":"2","load_amount":"12.3","time":"2000-01-01T00:00:00Z"}"#,
                Malformed::BadAmount,
            ),
            (
                br#"{"id":"1","customer_id":"2","load_amount":"1000000000000000000.00","time":"2000-01-01T00:00:00Z"}"#,
                Malformed::AmountTooLarge,
            ),
            (br#"{"id":"1","customer_id":"2","load_amount":"1.00","time":"2000-01-01T00:00:60Z"}"#, Malformed::BadTime),
        ];
        for (line, reason) in cases {
            assert_eq!(bad(line).reason, *reason, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn malformed_line_echoes_its_trimmed_string_ids_or_empty() {
        let r = bad(br#"{"id":" 12 ","customer_id":"x","load_amount":"1.00","time":"2000-01-01T00:00:00Z"}"#);
        assert_eq!((r.id.as_str(), r.customer_id.as_str()), ("12", "x"));
        let r = bad(br#"{"id":5,"customer_id":"9","time":"2000-01-01T00:00:00Z"}"#);
        assert_eq!((r.id.as_str(), r.customer_id.as_str()), ("", "9"));
        let r = bad(br#"{"id":"a\"b","id":"c","customer_id":"9"}"#);
        assert_eq!((r.reason, r.id.as_str()), (Malformed::RepeatedKey, "a\"b"));
        let r = bad(b"not json");
        assert_eq!((r.id.as_str(), r.customer_id.as_str()), ("", ""));
    }
}
