//! How a message crosses a process boundary: the app's own compact binary encoding of its
//! payloads, which the transport carries as opaque bytes inside signed frames.
//!
//! Inside a process payloads stay typed; they are encoded only at a hop, in batches. Decoding
//! must accept anything a peer might send without panicking: a payload that does not decode is
//! an error naming what was wrong, never a crash.

use std::fmt;

/// A message type that can be encoded into a frame's payload and decoded on the far side.
pub trait WireMessage: crate::Message {
    /// Appends this message's encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes a message from exactly the bytes of one payload.
    fn decode(payload: &bytes::Bytes) -> Result<Self, WireError>;
}

/// A payload that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload does not decode: {}", self.0)
    }
}

/// Reads a payload front to back, each read checked against what is left.
pub struct WireReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> WireReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        WireReader { bytes, at: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or(WireError("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn u128(&mut self) -> Result<u128, WireError> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes")))
    }

    /// A string written by [`put_str`].
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| WireError("a string is not UTF-8"))
    }

    /// Where the reader is.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), WireError> {
        if self.at == self.bytes.len() { Ok(()) } else { Err(WireError("trailing bytes")) }
    }
}

/// Writes a string as its length (u32, little-endian) and its bytes.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_and_refuses_to_overrun() {
        let mut out = Vec::new();
        out.push(7);
        put_str(&mut out, "héllo");
        out.extend_from_slice(&(-3i64).to_le_bytes());
        let mut r = WireReader::new(&out);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.str(), Ok("héllo"));
        assert_eq!(r.i64(), Ok(-3));
        r.finish().unwrap();
        let mut r = WireReader::new(&out[..5]);
        r.u8().unwrap();
        assert_eq!(r.str(), Err(WireError("truncated")));
        let huge = u32::MAX.to_le_bytes();
        assert_eq!(WireReader::new(&huge).str(), Err(WireError("truncated")));
    }
}
