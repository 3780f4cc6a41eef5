//! The transport key: the shared secret that signs every frame between process groups.
//!
//! A run's supervisor generates one key ([`TransportKey::generate`]) and hands it to its workers out of
//! band (a file readable only by the run's user, or an environment variable; never argv). Every frame
//! is signed with HMAC-SHA256 under that key, or under a per-link key derived from it
//! ([`TransportKey::for_link`]).
//!
//! Guarantees:
//! - The key bytes never appear in `Debug` output (it prints `TransportKey(<redacted>)`) and there is no
//!   `Display`. Errors name the file or the environment variable and what was expected, never the content.
//! - The key bytes, and the keyed HMAC state precomputed from them, are zeroized when the key is dropped.
//!   Buffers that held the key while it was read (file content, the environment variable's value) are
//!   zeroized too.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// HMAC-SHA256, the frame signature.
pub(crate) type FrameMac = Hmac<Sha256>;

/// Length of a transport key in bytes.
pub const KEY_BYTES: usize = 32;

/// The longest key file read: 64 hex digits and a `\r\n`. A longer file is rejected without reading it whole.
const MAX_KEY_FILE_BYTES: u64 = 2 * KEY_BYTES as u64 + 2;

/// Bytes of a run nonce ([`TransportKey::for_run`]).
pub const RUN_NONCE_BYTES: usize = 16;

/// Label mixed into per-run key derivation.
const RUN_LABEL: &[u8] = b"hopline transport run v1";

/// Label mixed into per-link key derivation, so derived keys never equal the run key or each other.
const LINK_LABEL: &[u8] = b"hopline transport link v1";

/// The 32-byte secret that signs frames.
///
/// Cloning copies the secret; each copy is zeroized on drop.
#[derive(Clone)]
pub struct TransportKey {
    bytes: [u8; KEY_BYTES],
    /// The HMAC state after absorbing the key (inner and outer pads), so signing a frame costs no key
    /// setup. It is key-equivalent and is zeroized on drop by `sha2`'s `zeroize` feature.
    mac: FrameMac,
}

/// Why a transport key could not be obtained. No variant carries any part of the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error("cannot generate a transport key: the OS random number generator failed: {0}")]
    Rng(getrandom::Error),
    /// The key file could not be opened or read.
    #[error("cannot read the transport key file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a key in either accepted form.
    #[error(
        "the transport key file {} does not hold a transport key: expected exactly 32 raw bytes, \
         or 64 hex digits optionally followed by a newline",
        path.display()
    )]
    FileFormat { path: PathBuf },
    /// The environment variable is not set.
    #[error("the environment variable {var} holding the transport key is not set")]
    EnvMissing { var: String },
    /// The environment variable does not hold 64 hex digits.
    #[error("the environment variable {var} does not hold a transport key: expected 64 hex digits")]
    EnvFormat { var: String },
}

impl TransportKey {
    /// A fresh random key from the operating system's random number generator.
    pub fn generate() -> Result<TransportKey, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(KeyError::Rng)?;
        Ok(TransportKey::from_bytes(*bytes))
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> TransportKey {
        let mac = FrameMac::new_from_slice(&bytes).expect("HMAC accepts keys of any length");
        TransportKey { bytes, mac }
    }

    /// Reads a key file: exactly 32 raw bytes, or 64 hex digits (either case) optionally followed by
    /// `\n` or `\r\n`. At most 66 bytes are read, whatever the file's size.
    pub fn from_file(path: impl AsRef<Path>) -> Result<TransportKey, KeyError> {
        let path = path.as_ref();
        let read_error = |source| KeyError::ReadFile { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut content = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES as usize + 1));
        file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut content).map_err(read_error)?;
        let format_error = || KeyError::FileFormat { path: path.to_path_buf() };
        if let Ok(raw) = <[u8; KEY_BYTES]>::try_from(content.as_slice()) {
            let raw = Zeroizing::new(raw);
            return Ok(TransportKey::from_bytes(*raw));
        }
        let hex = content.strip_suffix(b"\r\n").or_else(|| content.strip_suffix(b"\n")).unwrap_or(content.as_slice());
        decode_hex_key(hex).map(TransportKey::from_bytes).ok_or_else(format_error)
    }

    /// Reads a key from an environment variable holding 64 hex digits (either case).
    pub fn from_env(var: &str) -> Result<TransportKey, KeyError> {
        TransportKey::from_env_value(var, std::env::var_os(var))
    }

    /// [`TransportKey::from_env`] once the variable has been looked up.
    fn from_env_value(var: &str, value: Option<std::ffi::OsString>) -> Result<TransportKey, KeyError> {
        let value = value.ok_or_else(|| KeyError::EnvMissing { var: var.to_owned() })?;
        let value = Zeroizing::new(value.into_encoded_bytes());
        decode_hex_key(&value).map(TransportKey::from_bytes).ok_or_else(|| KeyError::EnvFormat { var: var.to_owned() })
    }

    /// This key bound to one run: `HMAC-SHA256(key, "hopline transport run v1" || nonce)`.
    ///
    /// A key read from a file or a variable outlives runs; frames signed under it in one run
    /// would verify in the next. Deriving every run's keys from a fresh random `nonce`
    /// ([`TransportKey::run_nonce`]) makes frames of one run worthless in any other.
    pub fn for_run(&self, nonce: &[u8; RUN_NONCE_BYTES]) -> TransportKey {
        let mut mac = self.mac.clone();
        mac.update(RUN_LABEL);
        mac.update(nonce);
        let mut derived = Zeroizing::new([0u8; KEY_BYTES]);
        derived.copy_from_slice(&mac.finalize().into_bytes());
        TransportKey::from_bytes(*derived)
    }

    /// A fresh random run nonce for [`TransportKey::for_run`].
    pub fn run_nonce() -> Result<[u8; RUN_NONCE_BYTES], KeyError> {
        let mut nonce = [0u8; RUN_NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(KeyError::Rng)?;
        Ok(nonce)
    }

    /// A key from 64 hex digits (either case), as key files and variables hold it.
    pub fn from_hex(text: &str) -> Option<TransportKey> {
        decode_hex_key(text.as_bytes()).map(TransportKey::from_bytes)
    }

    /// The key as 64 lowercase hex digits, in a buffer that is zeroized on drop: for handing
    /// it to another process of the run (a worker's bootstrap), never for display.
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(2 * KEY_BYTES));
        for byte in &self.bytes {
            out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
        }
        out
    }

    /// The key for frames sent from process group `sender` to process group `receiver`.
    ///
    /// `HMAC-SHA256(run key, "hopline transport link v1" || sender || receiver)`, both as big-endian u16.
    /// Signing each link with its own key stops a frame captured on one link from being injected into
    /// another (each receiver keeps its own replay window, so it would otherwise be accepted once there).
    pub fn for_link(&self, sender: u16, receiver: u16) -> TransportKey {
        let mut mac = self.mac.clone();
        mac.update(LINK_LABEL);
        mac.update(&sender.to_be_bytes());
        mac.update(&receiver.to_be_bytes());
        let mut derived = Zeroizing::new([0u8; KEY_BYTES]);
        derived.copy_from_slice(&mac.finalize().into_bytes());
        TransportKey::from_bytes(*derived)
    }

    /// A fresh HMAC-SHA256 instance keyed with this key (a copy of the precomputed state).
    pub(crate) fn mac(&self) -> FrameMac {
        self.mac.clone()
    }

    /// The raw key bytes, for handing the key to a worker (write them to a file only the run's user can
    /// read). Treat the result as secret.
    pub fn expose_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }
}

impl Drop for TransportKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportKey(<redacted>)")
    }
}

/// Decodes exactly 64 hex digits into a key; `None` for anything else.
fn decode_hex_key(text: &[u8]) -> Option<[u8; KEY_BYTES]> {
    if text.len() != 2 * KEY_BYTES {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; KEY_BYTES];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => {
                out.zeroize();
                return None;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const KEY: [u8; 32] = [
        0x3a, 0x91, 0x5c, 0xe2, 0x07, 0xb4, 0x68, 0xdf, 0x12, 0xa5, 0x7e, 0xc9, 0x40, 0x8b, 0xf3, 0x26, 0x5d, 0x99,
        0x01, 0xee, 0x74, 0x3c, 0xb8, 0x6a, 0x0f, 0xd1, 0x82, 0x47, 0xac, 0x15, 0xf9, 0x63,
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn key_file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        file.flush().unwrap();
        file
    }

    /// Asserts that no rendering of the key (hex in either case, decimal bytes, raw bytes) appears in `text`.
    fn assert_no_key_material(text: &str) {
        let lower = hex(&KEY);
        assert!(!text.to_lowercase().contains(&lower), "hex key in {text:?}");
        assert!(!text.contains(&format!("{:?}", KEY)), "byte array in {text:?}");
        assert!(!text.contains(&format!("{:?}", &KEY[..8])), "byte prefix in {text:?}");
        assert!(!text.contains(&lower[..16]), "hex prefix in {text:?}");
        assert!(!text.as_bytes().windows(8).any(|w| w == &KEY[..8]), "raw bytes in {text:?}");
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = TransportKey::from_bytes(KEY);
        assert_eq!(format!("{key:?}"), "TransportKey(<redacted>)");
        assert_no_key_material(&format!("{key:?}"));
        assert_no_key_material(&format!("{key:#?}"));
        assert_no_key_material(&format!("{:?}", Some(key.clone())));
    }

    #[test]
    fn generated_keys_differ() {
        let a = TransportKey::generate().unwrap();
        let b = TransportKey::generate().unwrap();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_ne!(a.expose_bytes(), &[0u8; 32]);
    }

    #[test]
    fn key_file_accepts_raw_bytes_and_hex_with_or_without_newline() {
        for content in [
            KEY.to_vec(),
            hex(&KEY).into_bytes(),
            format!("{}\n", hex(&KEY)).into_bytes(),
            format!("{}\r\n", hex(&KEY)).into_bytes(),
            format!("{}\n", hex(&KEY).to_uppercase()).into_bytes(),
        ] {
            let file = key_file(&content);
            let key = TransportKey::from_file(file.path()).unwrap();
            assert_eq!(key.expose_bytes(), &KEY, "content {:?}", String::from_utf8_lossy(&content));
        }
    }

    #[test]
    fn key_file_errors_name_the_path_and_never_the_content() {
        let hex_key = hex(&KEY);
        let bad_contents = [
            format!("{hex_key}\n\n").into_bytes(),
            format!(" {hex_key}").into_bytes(),
            hex_key.as_bytes()[..63].to_vec(),
            format!("{}zz", &hex_key[..62]).into_bytes(),
            [KEY.as_slice(), b"\n"].concat(),
            KEY[..31].to_vec(),
            format!("{hex_key}{hex_key}").into_bytes(),
            Vec::new(),
        ];
        for content in bad_contents {
            let file = key_file(&content);
            let error = TransportKey::from_file(file.path()).unwrap_err();
            assert!(matches!(error, KeyError::FileFormat { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains(&file.path().display().to_string()), "{message}");
            assert!(message.contains("32 raw bytes") && message.contains("64 hex digits"), "{message}");
            assert_no_key_material(&message);
            assert_no_key_material(&format!("{error:?}"));
        }
    }

    #[test]
    fn missing_key_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-key");
        let error = TransportKey::from_file(&path).unwrap_err();
        assert!(matches!(error, KeyError::ReadFile { .. }));
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn env_key_reads_hex_and_errors_name_the_variable_never_the_value() {
        let var = "HOPLINE_TRANSPORT_KEY";
        let key = TransportKey::from_env_value(var, Some(hex(&KEY).into())).unwrap();
        assert_eq!(key.expose_bytes(), &KEY);

        for bad in [format!("{}\n", hex(&KEY)), hex(&KEY)[1..].to_owned(), format!("{}g", &hex(&KEY)[1..])] {
            let error = TransportKey::from_env_value(var, Some(bad.into())).unwrap_err();
            assert!(matches!(error, KeyError::EnvFormat { .. }));
            let message = error.to_string();
            assert!(message.contains(var) && message.contains("64 hex digits"), "{message}");
            assert_no_key_material(&message);
            assert_no_key_material(&format!("{error:?}"));
        }
    }

    #[test]
    fn env_key_errors_come_from_the_real_environment_without_its_value() {
        let unset = "HOPLINE_TRANSPORT_TEST_KEY_THAT_IS_NEVER_SET";
        let error = TransportKey::from_env(unset).unwrap_err();
        assert!(matches!(error, KeyError::EnvMissing { .. }));
        assert!(error.to_string().contains(unset), "{error}");

        // PATH is set and is not a key: the error names the variable and leaves its value out.
        let path = std::env::var("PATH").unwrap();
        let error = TransportKey::from_env("PATH").unwrap_err();
        assert!(matches!(error, KeyError::EnvFormat { .. }));
        assert!(!path.is_empty() && !error.to_string().contains(&path), "{error}");
        assert!(!format!("{error:?}").contains(&path), "{error:?}");
    }

    #[test]
    fn link_keys_differ_per_direction_and_from_the_run_key() {
        let key = TransportKey::from_bytes(KEY);
        let a_to_b = key.for_link(1, 2);
        let b_to_a = key.for_link(2, 1);
        assert_ne!(a_to_b.expose_bytes(), b_to_a.expose_bytes());
        assert_ne!(a_to_b.expose_bytes(), key.expose_bytes());
        assert_eq!(a_to_b.expose_bytes(), key.for_link(1, 2).expose_bytes());
    }

    #[test]
    fn precomputed_mac_matches_a_freshly_keyed_one() {
        let key = TransportKey::from_bytes(KEY);
        let mut precomputed = key.mac();
        precomputed.update(b"frame bytes");
        let mut fresh = FrameMac::new_from_slice(&KEY).unwrap();
        fresh.update(b"frame bytes");
        assert_eq!(precomputed.finalize().into_bytes(), fresh.finalize().into_bytes());
    }

    #[test]
    fn run_keys_differ_by_nonce_and_from_the_key() {
        let key = TransportKey::from_bytes([8; 32]);
        let a = key.for_run(&[1; RUN_NONCE_BYTES]);
        let b = key.for_run(&[2; RUN_NONCE_BYTES]);
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_ne!(a.expose_bytes(), key.expose_bytes());
        assert_eq!(a.expose_bytes(), key.for_run(&[1; RUN_NONCE_BYTES]).expose_bytes());
        assert_ne!(TransportKey::run_nonce().unwrap(), TransportKey::run_nonce().unwrap());
    }

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        let key = TransportKey::from_bytes([0xa7; KEY_BYTES]);
        let hex = key.to_hex();
        assert_eq!(hex.as_str(), "a7".repeat(KEY_BYTES));
        assert_eq!(TransportKey::from_hex(&hex).unwrap().expose_bytes(), key.expose_bytes());
        assert_eq!(TransportKey::from_hex(&"A7".repeat(KEY_BYTES)).unwrap().expose_bytes(), key.expose_bytes());
        assert!(TransportKey::from_hex(&"a7".repeat(KEY_BYTES - 1)).is_none());
        assert!(TransportKey::from_hex(&"zz".repeat(KEY_BYTES)).is_none());
    }
}
