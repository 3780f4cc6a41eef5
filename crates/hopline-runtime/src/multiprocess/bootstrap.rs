//! What a worker is told when it starts, over its stdin pipe, never argv or the environment.
//!
//! The supervisor writes one length-prefixed JSON document to the worker's stdin and then
//! either closes the pipe or, when the run reads stdin, forwards its own stdin after it. The
//! document carries the config text the supervisor validated (so a file edited meanwhile
//! cannot make workers disagree), the worker's group, the run's transport key (hex), the
//! control address and the resolved adapter paths.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use hopline_model::CorrelationId;
use hopline_transport::TransportKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The largest bootstrap accepted: a config of a few MiB is already absurd.
const MAX_BOOTSTRAP_BYTES: u32 = 16 << 20;

/// A worker's bootstrap. `Debug` shows no key (the key's own `Debug` is redacted).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// Where the config came from, for error messages.
    pub config_origin: String,
    /// The config file's text, as the supervisor validated it.
    pub config_text: String,
    /// This worker's process group (its index in `runtime.process_groups`).
    pub group: u16,
    pub key: TransportKey,
    /// Where the supervisor takes control connections.
    pub control_addr: SocketAddr,
    /// The supervisor's pid: a worker whose parent is not this pid exits at once.
    pub supervisor_pid: u32,
    /// The source path, resolved (only the first group reads it).
    pub input: String,
    /// The sink path, resolved (only the last group writes it).
    pub output: String,
    pub correlation_id: CorrelationId,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    config_origin: String,
    config_text: String,
    group: u16,
    key_hex: String,
    control_addr: SocketAddr,
    supervisor_pid: u32,
    input: String,
    output: String,
    correlation_id: String,
}

impl Bootstrap {
    /// Writes the bootstrap to `out` (the worker's stdin).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let key_hex = self.key.to_hex();
        let wire = Wire {
            config_origin: self.config_origin.clone(),
            config_text: self.config_text.clone(),
            group: self.group,
            key_hex: key_hex.to_string(),
            control_addr: self.control_addr,
            supervisor_pid: self.supervisor_pid,
            input: self.input.clone(),
            output: self.output.clone(),
            correlation_id: format!("{:032x}", self.correlation_id.0),
        };
        let body = Zeroizing::new(serde_json::to_vec(&wire).map_err(io::Error::other)?);
        let Wire { key_hex: mut copied, .. } = wire;
        zeroize::Zeroize::zeroize(&mut copied);
        let len = u32::try_from(body.len()).ok().filter(|&n| n <= MAX_BOOTSTRAP_BYTES).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the bootstrap is larger than 16 MiB (is the config that big?)")
        })?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(&body)?;
        out.flush()
    }

    /// Reads the bootstrap from this process's stdin without buffering: the key passes through
    /// no buffer but the zeroized one, and a source reading stdin afterwards gets every byte
    /// that follows the bootstrap.
    pub fn read_from_stdin() -> io::Result<Bootstrap> {
        use std::os::fd::AsFd;
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Bootstrap::read_from(&mut std::fs::File::from(fd))
    }

    /// Reads a bootstrap from `input`, reading exactly its bytes and nothing after them.
    pub fn read_from(input: &mut impl Read) -> io::Result<Bootstrap> {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_BOOTSTRAP_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "bootstrap declares {len} bytes, more than {MAX_BOOTSTRAP_BYTES}; is stdin a hopline supervisor?"
                ),
            ));
        }
        let mut body = Zeroizing::new(vec![0u8; len as usize]);
        input.read_exact(&mut body)?;
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bootstrap: {what}"));
        let mut wire: Wire = serde_json::from_slice(&body).map_err(|e| invalid(&e.to_string()))?;
        let key =
            TransportKey::from_hex(&wire.key_hex).ok_or_else(|| invalid("the transport key is not 64 hex digits"))?;
        zeroize::Zeroize::zeroize(&mut wire.key_hex);
        let correlation_id = CorrelationId::parse(&wire.correlation_id)
            .ok_or_else(|| invalid("the correlation id is not 32 hex digits"))?;
        Ok(Bootstrap {
            config_origin: wire.config_origin,
            config_text: wire.config_text,
            group: wire.group,
            key,
            control_addr: wire.control_addr,
            supervisor_pid: wire.supervisor_pid,
            input: wire.input,
            output: wire.output,
            correlation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bootstrap {
        Bootstrap {
            config_origin: "p.yml".into(),
            config_text: "app: x\n".into(),
            group: 2,
            key: TransportKey::from_bytes([7; 32]),
            control_addr: "127.0.0.1:4000".parse().unwrap(),
            supervisor_pid: 99,
            input: "in.txt".into(),
            output: "-".into(),
            correlation_id: CorrelationId(0xabc),
        }
    }

    #[test]
    fn round_trips_and_reads_no_byte_past_its_end() {
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        bytes.extend_from_slice(b"first input line\n");
        let mut reader = &bytes[..];
        let back = Bootstrap::read_from(&mut reader).unwrap();
        assert_eq!(back.group, 2);
        assert_eq!(back.key.expose_bytes(), &[7; 32]);
        assert_eq!(back.correlation_id, CorrelationId(0xabc));
        assert_eq!(reader, b"first input line\n");
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("0707"), "{shown}");
        assert!(!shown.contains("[7, 7"), "{shown}");
    }

    #[test]
    fn a_huge_declared_length_is_refused_before_reading() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, b'{'];
        let err = Bootstrap::read_from(&mut input).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
