//! `format`: a decision becomes its output record, which the sink writes as
//! `{"id":"…","customer_id":"…","accepted":true|false}` (see [`Record`]).

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

/// The output record of a decision.
pub fn record_of(decision: Decision) -> Record {
    Record {
        accepted: decision.accepted(),
        // Ids of well-formed lines are ASCII digits: nothing to escape.
        escape: decision.outcome == Outcome::Malformed,
        id: decision.id,
        customer_id: decision.customer_id,
    }
}

impl Transform<LoadMsg> for Format {
    fn transform(&mut self, _: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        let LoadMsg::Decision(decision) = message else { return Err(super::unexpected(message)) };
        if decision.accepted() {
            self.accepted += 1;
        } else {
            self.declined += 1;
        }
        let decision = Decision {
            id: std::mem::take(&mut decision.id),
            customer_id: std::mem::take(&mut decision.customer_id),
            outcome: decision.outcome,
        };
        *message = LoadMsg::Record(record_of(decision));
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
        let mut out = Vec::new();
        record_of(Decision { id: id.into(), customer_id: customer_id.into(), outcome }).write_json(&mut out);
        String::from_utf8(out).unwrap()
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
