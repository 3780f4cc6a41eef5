//! The messages of fund_load, one variant per kind.
//!
//! `line` (from the source) → `attempt` (parsed, then enriched by `time_keys` and `features`)
//! → `decision` → `record` (to the sink, which encodes it as one output line). A line that is malformed, or an attempt that is a
//! duplicate, becomes a `decision` early and passes untouched through the nodes that only
//! handle attempts.

use bytes::Bytes;
use compact_str::CompactString;
use hopline_model::{LineMessage, Message};

/// One fund_load message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadMsg {
    /// One input line, without its line terminator.
    Line(Bytes),
    /// A well-formed load attempt.
    Attempt(Attempt),
    /// The decision on one input line.
    Decision(Decision),
    /// One output line, typed until the sink encodes it.
    Record(Record),
}

/// One output line: `{"id":"…","customer_id":"…","accepted":true|false}`, compact JSON, keys
/// in that order, the ids echoed as read (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: CompactString,
    pub customer_id: CompactString,
    pub accepted: bool,
    /// Whether the ids may need JSON escaping (they are not known to be digits).
    pub escape: bool,
}

impl Record {
    /// Appends the line's compact JSON (without the newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        if self.escape {
            out.extend_from_slice(b"{\"id\":");
            json_string(out, &self.id);
            out.extend_from_slice(b",\"customer_id\":");
            json_string(out, &self.customer_id);
        } else {
            out.extend_from_slice(b"{\"id\":\"");
            out.extend_from_slice(self.id.as_bytes());
            out.extend_from_slice(b"\",\"customer_id\":\"");
            out.extend_from_slice(self.customer_id.as_bytes());
            out.push(b'"');
        }
        let tail: &[u8] = if self.accepted { b",\"accepted\":true}" } else { b",\"accepted\":false}" };
        out.extend_from_slice(tail);
    }
}

/// Writes `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("writing to memory cannot fail");
    }
}

pub const LINE: &str = "line";
pub const ATTEMPT: &str = "attempt";
pub const DECISION: &str = "decision";
pub const RECORD: &str = "record";

impl Message for LoadMsg {
    fn kind(&self) -> &'static str {
        match self {
            LoadMsg::Line(_) => LINE,
            LoadMsg::Attempt(_) => ATTEMPT,
            LoadMsg::Decision(_) => DECISION,
            LoadMsg::Record(_) => RECORD,
        }
    }
}

impl LineMessage for LoadMsg {
    fn from_line(line: Bytes) -> Self {
        LoadMsg::Line(line)
    }

    fn write_record(&self, out: &mut Vec<u8>) -> bool {
        match self {
            LoadMsg::Record(record) => {
                record.write_json(out);
                true
            }
            _ => false,
        }
    }
}

/// A well-formed attempt to load money, as it moves through the nodes.
///
/// `parse` fills the fields it reads; `time_keys` fills `weekday` and `week`; `features`
/// fills `effective`. The registry makes sure those nodes come first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attempt {
    /// Load id as written, trimmed (leading zeros kept).
    pub id: CompactString,
    /// Customer id as written, trimmed (leading zeros kept).
    pub customer_id: CompactString,
    pub amount_cents: u128,
    /// UTC day of the attempt: days since 1970-01-01.
    pub day: i64,
    /// Weekday of `day`, Monday 0 (set by `time_keys`).
    pub weekday: u8,
    /// First day of the week holding `day` (set by `time_keys`).
    pub week: i64,
    /// Amount after multipliers, in ten-thousandths of a cent (set by `features`).
    pub effective: u128,
}

/// The decision on one input line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: CompactString,
    pub customer_id: CompactString,
    pub outcome: Outcome,
}

impl Decision {
    pub fn accepted(&self) -> bool {
        self.outcome == Outcome::Accepted
    }
}

/// Accepted, or the first rule that declined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    /// The line could not be read as an attempt.
    Malformed,
    /// The id was seen before in the stream.
    Duplicate,
    /// The customer already made the allowed number of attempts that day.
    DailyAttempts,
    /// A prime id above the prime amount cap.
    PrimeAmountCap,
    /// The day's prime-id slots are taken.
    PrimeDailyAccepts,
    DailyAmount,
    WeeklyAmount,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Accepted,
        Outcome::Malformed,
        Outcome::Duplicate,
        Outcome::DailyAttempts,
        Outcome::PrimeAmountCap,
        Outcome::PrimeDailyAccepts,
        Outcome::DailyAmount,
        Outcome::WeeklyAmount,
    ];

    /// How the summary names it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Malformed => "declined as malformed",
            Outcome::Duplicate => "declined as duplicate id",
            Outcome::DailyAttempts => "declined by daily attempts",
            Outcome::PrimeAmountCap => "declined by prime amount cap",
            Outcome::PrimeDailyAccepts => "declined by prime daily accepts",
            Outcome::DailyAmount => "declined by daily amount",
            Outcome::WeeklyAmount => "declined by weekly amount",
        }
    }
}
