//! `format`: a decision becomes its output line,
//! `{"id":"…","customer_id":"…","accepted":true|false}`: compact JSON, keys in that order,
//! the ids echoed as read (trimmed). The line is built inline, without allocating, for ids of
//! ordinary length.

use hopline_model::{Context, NodeError, NodeKind, NodeReport, Transform};

use crate::message::{DECISION, Decision, LoadMsg, Outcome, RECORD, Record};

pub const KIND: NodeKind<LoadMsg> = NodeKind {
    name: "format",
    summary: "writes each decision as its output line",
    consumes: &[DECISION],
    emits: &[RECORD],
    requires: &[],
    build: |params| {
        params.read::<NoParams>()?;
        Ok(Box::new(Format::default()))
    },
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Default)]
pub struct Format {
    accepted: u64,
    declined: u64,
}

/// Writes `s` as a JSON string.
fn json_string(out: &mut Record, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to memory cannot fail");
    }
}

/// The output line of a decision.
pub fn format_decision(decision: &Decision) -> Record {
    let mut out = Record::new();
    if decision.outcome == Outcome::Malformed {
        out.extend_from_slice(b"{\"id\":");
        json_string(&mut out, &decision.id);
        out.extend_from_slice(b",\"customer_id\":");
        json_string(&mut out, &decision.customer_id);
    } else {
        // Ids of well-formed lines are ASCII digits: nothing to escape.
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(decision.id.as_bytes());
        out.extend_from_slice(b"\",\"customer_id\":\"");
        out.extend_from_slice(decision.customer_id.as_bytes());
        out.push(b'"');
    }
    let tail: &[u8] = if decision.accepted() { b",\"accepted\":true}" } else { b",\"accepted\":false}" };
    out.extend_from_slice(tail);
    out
}

impl Transform<LoadMsg> for Format {
    fn transform(&mut self, _: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        let LoadMsg::Decision(decision) = message else { return Err(super::unexpected(message)) };
        if decision.accepted() {
            self.accepted += 1;
        } else {
            self.declined += 1;
        }
        *message = LoadMsg::Record(format_decision(decision));
        Ok(())
    }

    fn report(&self) -> NodeReport {
        NodeReport {
            counts: vec![("accepted".into(), self.accepted), ("declined".into(), self.declined)],
            incidents: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, customer_id: &str, outcome: Outcome) -> String {
        let record = format_decision(&Decision { id: id.into(), customer_id: customer_id.into(), outcome });
        String::from_utf8(record.to_vec()).unwrap()
    }

    #[test]
    fn output_is_compact_json_with_keys_in_order() {
        assert_eq!(line("15887", "528", Outcome::Accepted), r#"{"id":"15887","customer_id":"528","accepted":true}"#);
        assert_eq!(line("1", "2", Outcome::DailyAmount), r#"{"id":"1","customer_id":"2","accepted":false}"#);
    }

    #[test]
    fn odd_ids_of_malformed_lines_are_escaped() {
        assert_eq!(line("a\"b", "\n", Outcome::Malformed), r#"{"id":"a\"b","customer_id":"\n","accepted":false}"#);
        assert_eq!(line("", "", Outcome::Malformed), r#"{"id":"","customer_id":"","accepted":false}"#);
    }
}
