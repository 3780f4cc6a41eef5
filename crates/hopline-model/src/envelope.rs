//! The envelope: one event in flight.
//!
//! An envelope is a typed payload plus a small, `Copy` header. The header is what crosses
//! every hop unchanged (sequence number, correlation id, trace context) or updated by the
//! runtime (route). Nodes never build headers: a message a node emits inherits the header of
//! the message it was derived from, so sequence numbers and correlation survive every step.

use std::fmt;

/// One event in flight: the header that travels with it and its typed payload.
///
/// Inside a process the payload stays typed; it is encoded only at a process boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<P> {
    pub header: EnvelopeHeader,
    pub payload: P,
}

impl<P> Envelope<P> {
    pub fn new(header: EnvelopeHeader, payload: P) -> Self {
        Envelope { header, payload }
    }
}

/// What travels with every payload. Small and `Copy`, so deriving a message costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnvelopeHeader {
    /// Position of the event in its source, 1-based (for line sources: the line number).
    pub seq: u64,
    /// Correlates everything done for one job or request, across processes.
    pub correlation_id: CorrelationId,
    /// W3C trace context of the span that produced this envelope, when tracing is on.
    pub trace: Option<TraceContext>,
    /// Where the envelope is on its way through process groups.
    pub route: Route,
}

/// Route metadata: which process group holds the envelope and how it got there.
///
/// In the memory profile every envelope stays in group 0 with no hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Route {
    /// Index of the process group currently holding the envelope.
    pub process_group: u16,
    /// Index of the process group that handed the envelope over, if it crossed a hop.
    pub handoff_from: Option<u16>,
    /// How many hops the envelope has crossed.
    pub route_hop: u16,
}

/// A 128-bit correlation id, written as 32 lowercase hex digits.
///
/// It is `Copy` so that stamping it on every envelope is free.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CorrelationId(pub u128);

impl CorrelationId {
    /// Parses 32 hex digits, or a UUID written with dashes.
    pub fn parse(text: &str) -> Option<CorrelationId> {
        let hex: String = text.chars().filter(|&c| c != '-').collect();
        let dashes = text.len() - hex.len();
        if hex.len() != 32 || !(dashes == 0 || dashes == 4) {
            return None;
        }
        u128::from_str_radix(&hex, 16).ok().map(CorrelationId)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({self})")
    }
}

/// W3C trace context (`traceparent`): trace id, parent span id and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceContext {
    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// Parses a version-00 `traceparent` header value.
    pub fn parse_traceparent(value: &str) -> Option<TraceContext> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let mut ctx = TraceContext::default();
        decode_hex(trace, &mut ctx.trace_id)?;
        decode_hex(span, &mut ctx.span_id)?;
        let mut f = [0u8; 1];
        decode_hex(flags, &mut f)?;
        ctx.flags = f[0];
        if ctx.trace_id == [0; 16] || ctx.span_id == [0; 8] {
            return None;
        }
        Some(ctx)
    }
}

impl fmt::Display for TraceContext {
    /// Formats as a `traceparent` header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        self.trace_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("-")?;
        self.span_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-{:02x}", self.flags)
    }
}

fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    let bytes = text.as_bytes();
    if bytes.len() != out.len() * 2 {
        return None;
    }
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_id_reads_hex_and_uuid_forms() {
        let hex = CorrelationId::parse("0af7651916cd43dd8448eb211c80319c").unwrap();
        let uuid = CorrelationId::parse("0af76519-16cd-43dd-8448-eb211c80319c").unwrap();
        assert_eq!(hex, uuid);
        assert_eq!(hex.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert!(CorrelationId::parse("xyz").is_none());
        assert!(CorrelationId::parse("0af7651916cd43dd8448eb211c80319").is_none());
    }

    #[test]
    fn traceparent_round_trips_and_rejects_zero_ids() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let ctx = TraceContext::parse_traceparent(text).unwrap();
        assert!(ctx.sampled());
        assert_eq!(ctx.to_string(), text);
        assert!(TraceContext::parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none());
        assert!(TraceContext::parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_none());
    }
}
