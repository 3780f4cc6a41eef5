//! Money, exactly: integer cents, never floats.
//!
//! Two grammars live here: the `load_amount` of an input line (`$3318.47`, `USD$7.05`, with
//! any JSON whitespace inside removed), and the decimal amounts and multipliers of a config
//! file (`5000.00`, `2`).

use std::fmt;

use serde::Deserialize;

/// Most significant integer digits an input amount may have; longer amounts are malformed.
pub const MAX_AMOUNT_INTEGER_DIGITS: usize = 18;

/// Why a `load_amount` string is not an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// It does not match `(\$|USD|USD\$|\$USD)?[0-9]+\.[0-9]{2}` once whitespace is removed.
    Grammar,
    /// More than [`MAX_AMOUNT_INTEGER_DIGITS`] integer digits after leading zeros.
    TooLarge,
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims JSON whitespace (space, tab, CR, LF) from both ends.
pub fn trim_json_whitespace(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_json_whitespace(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_json_whitespace(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Parses a `load_amount` string into cents.
pub fn parse_load_amount(raw: &[u8]) -> Result<u128, AmountError> {
    if raw.iter().any(|&b| is_json_whitespace(b)) {
        let compact: Vec<u8> = raw.iter().copied().filter(|&b| !is_json_whitespace(b)).collect();
        return parse_compact_amount(&compact);
    }
    parse_compact_amount(raw)
}

fn parse_compact_amount(s: &[u8]) -> Result<u128, AmountError> {
    if let Some(cents) = parse_common_amount(s) {
        return Ok(cents);
    }
    let body = s
        .strip_prefix(b"USD$")
        .or_else(|| s.strip_prefix(b"USD"))
        .or_else(|| s.strip_prefix(b"$USD"))
        .or_else(|| s.strip_prefix(b"$"))
        .unwrap_or(s);
    let [int @ .., b'.', d1, d2] = body else { return Err(AmountError::Grammar) };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) || !d1.is_ascii_digit() || !d2.is_ascii_digit() {
        return Err(AmountError::Grammar);
    }
    let significant = &int[int.iter().position(|&b| b != b'0').unwrap_or(int.len())..];
    if significant.len() > MAX_AMOUNT_INTEGER_DIGITS {
        return Err(AmountError::TooLarge);
    }
    let whole = significant.iter().fold(0u128, |acc, &b| acc * 10 + u128::from(b - b'0'));
    Ok(whole * 100 + u128::from((d1 - b'0') * 10 + (d2 - b'0')))
}

/// The common shape, `$` then 1 to 15 digits, `.` and two digits, read in one pass; `None`
/// for anything else (which the full grammar then decides).
#[inline]
fn parse_common_amount(s: &[u8]) -> Option<u128> {
    let [b'$', body @ .., b'.', d1, d2] = s else { return None };
    if body.is_empty() || body.len() > 15 || !d1.is_ascii_digit() || !d2.is_ascii_digit() {
        return None;
    }
    let mut whole = 0u64;
    for &b in body {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        whole = whole * 10 + u64::from(digit);
    }
    Some(u128::from(whole * 100 + u64::from((d1 - b'0') * 10 + (d2 - b'0'))))
}

/// A non-negative money amount in a config file, such as `5000.00`; held as cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub u64);

impl Money {
    /// Largest amount a config accepts: 10^16 (cents stay well inside u64).
    pub const MAX_CENTS: u64 = 10_000_000_000_000_000 * 100;

    pub fn cents(self) -> u64 {
        self.0
    }

    /// Parses `5000`, `5000.0` or `5000.00`.
    pub fn parse(text: &str) -> Option<Money> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 2 || (text.contains('.') && frac.is_empty())
        {
            return None;
        }
        let whole: u64 = int.parse().ok()?;
        let frac_cents: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
        let cents = whole.checked_mul(100)?.checked_add(frac_cents)?;
        (cents <= Self::MAX_CENTS).then_some(Money(cents))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Money::parse(text.trim()).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "expected a non-negative amount with at most two decimals, such as 5000.00; found {text:?}"
            ))
        })
    }
}

/// A multiplier of at least 1 with up to four decimals, held as ten-thousandths (`2` is 20000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multiplier(pub u64);

impl Multiplier {
    pub const ONE: Multiplier = Multiplier(SCALE);
    /// Largest accepted multiplier: 1000.
    pub const MAX: Multiplier = Multiplier(1000 * SCALE);

    pub fn parse(text: &str) -> Option<Multiplier> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 4 || (text.contains('.') && frac.is_empty())
        {
            return None;
        }
        let whole: u64 = int.parse().ok()?;
        let frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<4}").parse().ok()? };
        Some(Multiplier(whole.checked_mul(SCALE)?.checked_add(frac)?))
    }
}

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match Multiplier::parse(text.trim()) {
            Some(m) if m.0 >= Multiplier::ONE.0 && m.0 <= Multiplier::MAX.0 => Ok(m),
            _ => Err(serde::de::Error::custom(format_args!(
                "expected a multiplier from 1 to 1000 with at most four decimals, such as 2; found {text:?}"
            ))),
        }
    }
}

/// Scale of effective amounts: an effective amount is cents times a [`Multiplier`], in
/// ten-thousandths of a cent, so that a fractional multiplier stays exact.
pub const SCALE: u64 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_amount_accepts_every_prefix_and_inner_whitespace() {
        assert_eq!(parse_load_amount(b"12.30"), Ok(1230));
        assert_eq!(parse_load_amount(b"$0.00"), Ok(0));
        assert_eq!(parse_load_amount(b"USD$7.05"), Ok(705));
        assert_eq!(parse_load_amount(b"USD7.05"), Ok(705));
        assert_eq!(parse_load_amount(b"$USD1.00"), Ok(100));
        assert_eq!(parse_load_amount(b" $ 1 2.30\t"), Ok(1230));
        assert_eq!(parse_load_amount(b"0007.00"), Ok(700));
    }

    #[test]
    fn load_amount_refuses_what_the_grammar_does_not_allow() {
        for bad in ["12.3", "12", "usd12.30", "-$10.00", "$", ".50", "1.234", "$$1.00", "USD$USD1.00", "1,000.00", ""] {
            assert_eq!(parse_load_amount(bad.as_bytes()), Err(AmountError::Grammar), "{bad}");
        }
    }

    #[test]
    fn load_amount_is_exact_up_to_eighteen_integer_digits() {
        assert_eq!(parse_load_amount(b"999999999999999999.99"), Ok(99_999_999_999_999_999_999));
        assert_eq!(parse_load_amount(b"0000999999999999999999.99"), Ok(99_999_999_999_999_999_999));
        assert_eq!(parse_load_amount(b"1000000000000000000.00"), Err(AmountError::TooLarge));
    }

    #[test]
    fn config_money_is_read_exactly() {
        assert_eq!(Money::parse("5000.00"), Some(Money(500_000)));
        assert_eq!(Money::parse("5000"), Some(Money(500_000)));
        assert_eq!(Money::parse("0.5"), Some(Money(50)));
        assert_eq!(Money::parse("-5"), None);
        assert_eq!(Money::parse("5.001"), None);
        assert_eq!(Money::parse("5."), None);
        assert_eq!(Money(500_000).to_string(), "5000.00");
    }

    #[test]
    fn multiplier_keeps_four_decimals() {
        assert_eq!(Multiplier::parse("2"), Some(Multiplier(20_000)));
        assert_eq!(Multiplier::parse("1.5"), Some(Multiplier(15_000)));
        assert_eq!(Multiplier::parse("0.5"), Some(Multiplier(5_000)));
        assert_eq!(Multiplier::parse("1.00001"), None);
    }
}
