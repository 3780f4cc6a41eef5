//! The messages of probe: a `line` from the source and a `record` for the sink, both raw
//! bytes. Nothing is parsed: probe cares when an event passes, not what it says.

use bytes::Bytes;
use hopline_model::wire::WireReader;
use hopline_model::{LineMessage, Message, WireError, WireMessage};

pub const LINE: &str = "line";
pub const RECORD: &str = "record";

/// One probe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeMsg {
    /// One input line, without its line terminator.
    Line(Bytes),
    /// One output line, written by the sink as it is.
    Record(Bytes),
}

impl ProbeMsg {
    /// The bytes the message carries, whatever its kind.
    pub fn bytes(&self) -> &Bytes {
        match self {
            ProbeMsg::Line(bytes) | ProbeMsg::Record(bytes) => bytes,
        }
    }
}

impl ProbeMsg {
    /// Makes a line a record of the same bytes, in place; a record stays as it is.
    pub fn make_record(&mut self) {
        if let ProbeMsg::Line(line) = self {
            *self = ProbeMsg::Record(std::mem::take(line));
        }
    }
}

impl Message for ProbeMsg {
    fn kind(&self) -> &'static str {
        match self {
            ProbeMsg::Line(_) => LINE,
            ProbeMsg::Record(_) => RECORD,
        }
    }
}

impl LineMessage for ProbeMsg {
    fn from_line(line: Bytes) -> Self {
        ProbeMsg::Line(line)
    }

    fn write_record(&self, out: &mut Vec<u8>) -> bool {
        match self {
            ProbeMsg::Record(bytes) => {
                out.extend_from_slice(bytes);
                true
            }
            ProbeMsg::Line(_) => false,
        }
    }
}

/// Tag byte of a `line` at a hop.
const TAG_LINE: u8 = 0;
/// Tag byte of a `record` at a hop.
const TAG_RECORD: u8 = 1;

/// The encoding of a message at a hop: one tag byte (`0` line, `1` record), then the
/// message's bytes, which are the rest of the payload (decoded without copying).
impl WireMessage for ProbeMsg {
    fn encode(&self, out: &mut Vec<u8>) {
        let (tag, bytes) = match self {
            ProbeMsg::Line(bytes) => (TAG_LINE, bytes),
            ProbeMsg::Record(bytes) => (TAG_RECORD, bytes),
        };
        out.reserve(1 + bytes.len());
        out.push(tag);
        out.extend_from_slice(bytes);
    }

    fn decode(payload: &Bytes) -> Result<Self, WireError> {
        let tag = WireReader::new(payload).u8()?;
        let rest = payload.slice(1..);
        match tag {
            TAG_LINE => Ok(ProbeMsg::Line(rest)),
            TAG_RECORD => Ok(ProbeMsg::Record(rest)),
            _ => Err(WireError("unknown message kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encoded(message: &ProbeMsg) -> Vec<u8> {
        let mut out = Vec::new();
        message.encode(&mut out);
        out
    }

    #[test]
    fn kinds_are_line_and_record() {
        assert_eq!(ProbeMsg::from_line(Bytes::from_static(b"x")), ProbeMsg::Line(Bytes::from_static(b"x")));
        assert_eq!(ProbeMsg::Line(Bytes::new()).kind(), <ProbeMsg as LineMessage>::LINE);
        assert_eq!(ProbeMsg::Record(Bytes::new()).kind(), <ProbeMsg as LineMessage>::RECORD);
    }

    #[test]
    fn a_record_is_written_as_it_is_and_a_line_not_at_all() {
        let mut out = b"before|".to_vec();
        assert!(ProbeMsg::Record(Bytes::from_static(b"{\"a\":1}\xff")).write_record(&mut out));
        assert_eq!(out, b"before|{\"a\":1}\xff");
        assert!(!ProbeMsg::Line(Bytes::from_static(b"ignored")).write_record(&mut out));
        assert_eq!(out, b"before|{\"a\":1}\xff");
    }

    #[test]
    fn make_record_keeps_the_bytes() {
        let mut line = ProbeMsg::Line(Bytes::from_static(b"x\xff"));
        line.make_record();
        assert_eq!(line, ProbeMsg::Record(Bytes::from_static(b"x\xff")));
        line.make_record();
        assert_eq!(line, ProbeMsg::Record(Bytes::from_static(b"x\xff")));
    }

    #[test]
    fn both_kinds_round_trip_at_a_hop() {
        for message in [
            ProbeMsg::Line(Bytes::new()),
            ProbeMsg::Line(Bytes::from_static(b"{\"id\":\"1\"}")),
            ProbeMsg::Record(Bytes::new()),
            ProbeMsg::Record(Bytes::from_static(b"\x00\x01\xff")),
        ] {
            let bytes = encoded(&message);
            assert_eq!(bytes.len(), 1 + message.bytes().len());
            assert_eq!(ProbeMsg::decode(&Bytes::from(bytes)), Ok(message));
        }
    }

    #[test]
    fn payloads_that_do_not_decode_say_why() {
        let decode = |bytes: &'static [u8]| ProbeMsg::decode(&Bytes::from_static(bytes));
        assert_eq!(decode(b""), Err(WireError("truncated")));
        assert_eq!(decode(b"\x02"), Err(WireError("unknown message kind")));
        assert_eq!(decode(b"\xffline"), Err(WireError("unknown message kind")));
    }

    proptest! {
        /// Any payload decodes or is refused, without a panic; what decodes is exactly what
        /// it encodes back to, so the encoding is canonical.
        #[test]
        fn arbitrary_payloads_decode_totally_and_canonically(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            match ProbeMsg::decode(&Bytes::from(payload.clone())) {
                Ok(message) => {
                    prop_assert!(payload[0] <= TAG_RECORD);
                    prop_assert_eq!(encoded(&message), payload);
                }
                Err(_) => prop_assert!(payload.first().is_none_or(|&tag| tag > TAG_RECORD)),
            }
        }

        #[test]
        fn arbitrary_messages_round_trip(record in any::<bool>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let bytes = Bytes::from(bytes);
            let message = if record { ProbeMsg::Record(bytes) } else { ProbeMsg::Line(bytes) };
            prop_assert_eq!(ProbeMsg::decode(&Bytes::from(encoded(&message))), Ok(message));
        }
    }
}
