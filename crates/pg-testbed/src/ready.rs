//! Telling when a starting server accepts connections, and that it is *our* server.
//!
//! Two checks, both cheap enough to repeat every 20 ms without spawning anything:
//!
//! - the postmaster's lock file `postmaster.pid` in our data directory names our child and
//!   says `ready` (the status line `pg_ctl -w` waits for). A connection alone could reach
//!   another process that got the same port first; the lock file cannot be someone else's.
//! - a connection to the port completes the protocol's startup (what `pg_isready` does):
//!   the listening socket is up and the server is past recovery.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Whether the postmaster `pid`, on `data_dir`, reports itself ready in its lock file.
pub(crate) fn lock_file_says_ready(data_dir: &Path, pid: u32) -> bool {
    let Ok(contents) = fs::read_to_string(data_dir.join("postmaster.pid")) else { return false };
    let lines: Vec<&str> = contents.lines().collect();
    // Line 1 is the postmaster's pid, line 8 its status (PM_STATUS_READY is "ready   ").
    lines.first().is_some_and(|line| line.trim() == pid.to_string())
        && lines.get(7).is_some_and(|line| line.trim() == "ready")
}

/// The answer of the server on `port` to a startup message, as `pg_isready` reads it.
pub(crate) fn accepts_connections(port: u16) -> bool {
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream.write_all(&startup_message("postgres", "postgres")).is_err() {
        return false;
    }
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let ready = match header[0] {
        // An authentication request (with trust auth: AuthenticationOk): the server accepts.
        b'R' => true,
        b'E' => {
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4).min(64 * 1024)];
            if stream.read_exact(&mut body).is_err() {
                return false;
            }
            // 57P03 cannot_connect_now: starting up, in recovery, or shutting down. Any other
            // refusal (too many clients, no such database) comes from a server that is up.
            error_code(&body).is_some_and(|code| code != "57P03")
        }
        _ => false,
    };
    // Terminate, politely; the server would notice the closed socket anyway.
    let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
    ready
}

/// A protocol 3.0 StartupMessage.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // 3 << 16: protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut message = len.to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

/// The SQLSTATE (field `C`) of an ErrorResponse body: NUL-terminated fields, each a type byte.
fn error_code(body: &[u8]) -> Option<&str> {
    body.split(|&byte| byte == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .and_then(|code| std::str::from_utf8(code).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_message_is_length_prefixed() {
        let message = startup_message("postgres", "db");
        assert_eq!(u32::from_be_bytes(message[..4].try_into().unwrap()) as usize, message.len());
        assert_eq!(&message[4..8], &[0, 3, 0, 0]);
        assert!(message.ends_with(b"database\0db\0\0"));
    }

    #[test]
    fn the_error_code_is_the_c_field() {
        let body = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(error_code(body), Some("57P03"));
        assert_eq!(error_code(b"Mno code\0\0"), None);
    }
}
