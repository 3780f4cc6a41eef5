//! The messages of fund_load, one variant per kind.
//!
//! `line` (from the source) → `attempt` (parsed, then enriched by `time_keys` and `features`)
//! → `decision` → `record` (to the sink, which encodes it as one output line). A line that is malformed, or an attempt that is a
//! duplicate, becomes a `decision` early and passes untouched through the nodes that only
//! handle attempts.

use bytes::Bytes;
use compact_str::CompactString;
use hopline_model::wire::{WireReader, put_str};
use hopline_model::{LineMessage, Message, WireError, WireMessage};

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

/// The encoding of a message at a hop: a tag byte, then the variant's fields in order
/// (integers little-endian, strings as a u32 length and their bytes; a line is the rest of
/// the payload, taken without copying).
impl WireMessage for LoadMsg {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            LoadMsg::Line(line) => {
                out.push(0);
                out.extend_from_slice(line);
            }
            LoadMsg::Attempt(a) => {
                out.push(1);
                put_str(out, &a.id);
                put_str(out, &a.customer_id);
                out.extend_from_slice(&a.amount_cents.to_le_bytes());
                out.extend_from_slice(&a.day.to_le_bytes());
                out.push(a.weekday);
                out.extend_from_slice(&a.week.to_le_bytes());
                out.extend_from_slice(&a.effective.to_le_bytes());
            }
            LoadMsg::Decision(d) => {
                out.push(2);
                put_str(out, &d.id);
                put_str(out, &d.customer_id);
                out.push(d.outcome as u8);
            }
            LoadMsg::Record(r) => {
                out.push(3);
                put_str(out, &r.id);
                put_str(out, &r.customer_id);
                out.push(u8::from(r.accepted) | u8::from(r.escape) << 1);
            }
        }
    }

    fn decode(payload: &Bytes) -> Result<Self, WireError> {
        let mut r = WireReader::new(payload);
        let message = match r.u8()? {
            0 => return Ok(LoadMsg::Line(payload.slice(1..))),
            1 => LoadMsg::Attempt(Attempt {
                id: r.str()?.into(),
                customer_id: r.str()?.into(),
                amount_cents: r.u128()?,
                day: r.i64()?,
                weekday: r.u8()?,
                week: r.i64()?,
                effective: r.u128()?,
            }),
            2 => LoadMsg::Decision(Decision {
                id: r.str()?.into(),
                customer_id: r.str()?.into(),
                outcome: *Outcome::ALL.get(usize::from(r.u8()?)).ok_or(WireError("unknown outcome"))?,
            }),
            3 => {
                let (id, customer_id, flags) = (r.str()?.into(), r.str()?.into(), r.u8()?);
                if flags > 3 {
                    return Err(WireError("unknown record flags"));
                }
                LoadMsg::Record(Record { id, customer_id, accepted: flags & 1 == 1, escape: flags & 2 == 2 })
            }
            _ => return Err(WireError("unknown message kind")),
        };
        r.finish()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: LoadMsg) {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(LoadMsg::decode(&Bytes::from(out)), Ok(message));
    }

    #[test]
    fn every_kind_round_trips_at_a_hop() {
        round_trip(LoadMsg::Line(Bytes::from_static(b"{\"id\":\"1\"}")));
        round_trip(LoadMsg::Line(Bytes::new()));
        round_trip(LoadMsg::Attempt(Attempt {
            id: "0007".into(),
            customer_id: "99999999999999999999999999".into(),
            amount_cents: 99_999_999_999_999_999_999,
            day: -719_468,
            weekday: 6,
            week: -719_470,
            effective: u128::MAX,
        }));
        for outcome in Outcome::ALL {
            round_trip(LoadMsg::Decision(Decision { id: "a\"b".into(), customer_id: "é".into(), outcome }));
        }
        for (accepted, escape) in [(true, false), (false, true), (false, false)] {
            round_trip(LoadMsg::Record(Record { id: "1".into(), customer_id: "2".into(), accepted, escape }));
        }
    }

    #[test]
    fn payloads_that_do_not_decode_say_why() {
        let decode = |bytes: &[u8]| LoadMsg::decode(&Bytes::copy_from_slice(bytes));
        assert_eq!(decode(b""), Err(WireError("truncated")));
        assert_eq!(decode(b"\x09"), Err(WireError("unknown message kind")));
        assert_eq!(decode(b"\x02\x01\x00\x00\x00"), Err(WireError("truncated")));
        assert_eq!(decode(b"\x02\x00\x00\x00\x00\x00\x00\x00\x00\x09"), Err(WireError("unknown outcome")));
        assert_eq!(decode(b"\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), Err(WireError("trailing bytes")));
        assert_eq!(decode(b"\x03\x01\x00\x00\x00\xff\x00\x00\x00\x00\x00"), Err(WireError("a string is not UTF-8")));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..2_000usize {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 7) as u8
                })
                .collect();
            let _ = LoadMsg::decode(&Bytes::from(bytes));
        }
    }
}
