//! Bearer tokens: read from a file or a variable, compared in constant time, never shown.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

/// A shared secret for the API's state-changing requests. `Debug` shows no byte of it.
#[derive(Clone)]
pub struct Token(Zeroizing<Vec<u8>>);

/// Why a token cannot be had. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}")]
    File { path: String, source: std::io::Error },
    #[error("the variable {0} is not set (or is empty)")]
    Unset(String),
    #[error("{origin}: a token must be at least {min} characters without spaces; this one is {len}")]
    TooShort { origin: String, len: usize, min: usize },
}

impl Token {
    /// The shortest token accepted.
    pub const MIN_LEN: usize = 16;

    /// The first line of a file, trimmed.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| TokenError::File { path: path.display().to_string(), source })?,
        );
        Token::new(text.lines().next().unwrap_or(""), &path.display().to_string())
    }

    /// A variable's value, trimmed.
    pub fn from_env(var: &str) -> Result<Token, TokenError> {
        let value = Zeroizing::new(std::env::var(var).unwrap_or_default());
        if value.trim().is_empty() {
            return Err(TokenError::Unset(var.into()));
        }
        Token::new(&value, var)
    }

    fn new(text: &str, origin: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.len() < Self::MIN_LEN || text.contains(char::is_whitespace) {
            return Err(TokenError::TooShort { origin: origin.into(), len: text.len(), min: Self::MIN_LEN });
        }
        Ok(Token(Zeroizing::new(text.as_bytes().to_vec())))
    }

    /// Whether `Authorization: <header>` presents this token, compared in constant time (the
    /// time depends on the lengths, not on where the bytes differ).
    pub fn admits(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
            return false;
        };
        let (a, b) = (presented.as_bytes(), self.0.as_slice());
        let mut diff = u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
        }
        std::hint::black_box(diff) == 0
    }

    /// The `Authorization` header value presenting this token (for clients).
    pub fn header_value(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bearer {}", String::from_utf8_lossy(&self.0)))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-token-0123456789";

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = Token::new(SECRET, "test").unwrap();
        assert!(token.admits(Some(&format!("Bearer {SECRET}"))));
        for wrong in [
            None,
            Some(SECRET.to_string()),
            Some(format!("Bearer {SECRET}x")),
            Some(format!("Bearer {}", &SECRET[1..])),
            Some("Bearer ".to_string()),
            Some(format!("Basic {SECRET}")),
        ] {
            assert!(!token.admits(wrong.as_deref()), "{wrong:?}");
        }
    }

    #[test]
    fn tokens_are_read_trimmed_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("hopline-token-{}", std::process::id()));
        std::fs::write(&dir, format!("{SECRET}\n")).unwrap();
        let token = Token::from_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(token.admits(Some(&format!("Bearer {SECRET}"))));
        assert_eq!(format!("{token:?}"), "Token(redacted)");
        let short = Token::new("short", "t.txt").unwrap_err();
        assert_eq!(short.to_string(), "t.txt: a token must be at least 16 characters without spaces; this one is 5");
        assert!(matches!(Token::from_env("HOPLINE_SURELY_UNSET_TOKEN_VAR"), Err(TokenError::Unset(_))));
    }
}
