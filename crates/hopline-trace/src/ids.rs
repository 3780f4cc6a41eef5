//! Trace and span ids as fixed-size values.
//!
//! The OTLP messages keep ids as byte vectors of any length; once a span has been checked
//! ([`TracedSpan::new`](crate::TracedSpan::new)) its ids are these types, so code past that
//! point never meets a 3-byte span id. Both print as lowercase hex, the OTLP/JSON and W3C
//! `traceparent` spelling.

use std::fmt;

/// A 16-byte trace id, never all zero. Prints as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, never all zero. Prints as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// The id in `bytes`, if it is exactly 16 bytes and not all zero (the OTLP validity rule).
    pub fn from_bytes(bytes: &[u8]) -> Option<TraceId> {
        let id: [u8; 16] = bytes.try_into().ok()?;
        (id != [0; 16]).then_some(TraceId(id))
    }
}

impl SpanId {
    /// The id in `bytes`, if it is exactly 8 bytes and not all zero (the OTLP validity rule).
    pub fn from_bytes(bytes: &[u8]) -> Option<SpanId> {
        let id: [u8; 8] = bytes.try_into().ok()?;
        (id != [0; 8]).then_some(SpanId(id))
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_lowercase_hex() {
        let trace = TraceId([0xAB; 16]);
        assert_eq!(trace.to_string(), "ab".repeat(16));
        assert_eq!(SpanId([0, 1, 2, 3, 4, 5, 6, 0xFF]).to_string(), "00010203040506ff");
    }

    #[test]
    fn ids_of_the_wrong_length_or_all_zero_are_refused() {
        assert_eq!(TraceId::from_bytes(&[1; 15]), None);
        assert_eq!(TraceId::from_bytes(&[0; 16]), None);
        assert_eq!(SpanId::from_bytes(&[1; 9]), None);
        assert_eq!(SpanId::from_bytes(&[0; 8]), None);
        assert_eq!(SpanId::from_bytes(&[7; 8]), Some(SpanId([7; 8])));
    }
}
