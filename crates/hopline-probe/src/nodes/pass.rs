//! `pass`: each line becomes a record of the very same bytes, which the sink writes as they
//! are. The simplest pipeline that reads and writes: probe's output equals its input.

use hopline_model::{Context, NodeError, NodeKind, NodeReport, Transform};

use crate::message::{LINE, ProbeMsg, RECORD};

pub const KIND: NodeKind<ProbeMsg> = NodeKind {
    name: "pass",
    summary: "turns each line into a record of the same bytes",
    consumes: &[LINE],
    emits: &[RECORD],
    requires: &[],
    build: |params| {
        params.read::<PassParams>()?;
        Ok(Box::new(Pass::default()))
    },
};

/// `pass` takes no params.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassParams {}

#[derive(Debug, Default)]
pub struct Pass {
    passed: u64,
}

impl Transform<ProbeMsg> for Pass {
    fn transform(&mut self, _: &Context<'_>, message: &mut ProbeMsg) -> Result<(), NodeError> {
        let ProbeMsg::Line(_) = message else { return Err(super::unexpected(message)) };
        message.make_record();
        self.passed += 1;
        Ok(())
    }

    fn report(&self) -> NodeReport {
        NodeReport { counts: vec![("passed".into(), self.passed)], incidents: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hopline_model::{LineMessage, Node};

    use super::*;
    use crate::nodes::testing::{FIRST_NODE_LINE, build_error, count, counts, envelope, lines, pipeline, run};

    #[test]
    fn each_line_becomes_a_record_of_the_same_bytes() {
        let mut pipeline = pipeline("  - kind: pass\n").unwrap();
        let mut input = lines(3);
        input.push(envelope(4, ProbeMsg::Line(Bytes::from_static(b""))));
        input.push(envelope(5, ProbeMsg::Line(Bytes::from_static(b"not json \xff"))));
        let expected: Vec<_> = input.iter().map(|e| (e.header, ProbeMsg::Record(e.payload.bytes().clone()))).collect();
        let output = run(&mut pipeline, input, 2).unwrap();
        let got: Vec<_> = output.into_iter().map(|e| (e.header, e.payload)).collect();
        assert_eq!(got, expected);
        assert_eq!(counts(&pipeline, 0), [count("passed", 5)]);
        let mut written = Vec::new();
        assert!(got[4].1.write_record(&mut written));
        assert_eq!(written, b"not json \xff");
    }

    #[test]
    fn a_record_is_refused() {
        let mut pass = Pass::default();
        let mut input = vec![envelope(7, ProbeMsg::Record(Bytes::new()))];
        let info = pipeline("  - kind: pass\n").unwrap().stages.remove(0).info;
        let err = pass.process_batch(&info, &mut input, &mut Vec::new(), &mut |_| {}).unwrap_err();
        assert_eq!(err, (7, NodeError::UnexpectedMessage { got: "record" }));
    }

    #[test]
    fn takes_no_params() {
        pipeline("  - kind: pass\n    params: {}\n").unwrap();
        let err = build_error("  - kind: pass\n    params: {at: 1}\n");
        assert_eq!(err.path, "nodes[0].params.at");
        assert_eq!(err.pos.unwrap().line, FIRST_NODE_LINE + 1);
        assert!(err.message.contains("unknown field `at`"), "{err}");
    }
}
