//! Reading one line: the hand-written fast path for the compact shape, the serde_json general
//! path for everything else, and the field grammars (ids, amount, time) both paths share.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::hash::FastSet;

/// Index of each of the four fields in a `[_; 4]`.
pub(crate) const ID: usize = 0;
pub(crate) const CUSTOMER_ID: usize = 1;
pub(crate) const LOAD_AMOUNT: usize = 2;
pub(crate) const TIME: usize = 3;

/// JSON whitespace: space, tab, CR, LF.
#[inline(always)]
pub(crate) fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims JSON whitespace from both ends.
#[inline]
pub(crate) fn trim_json_ws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_json_ws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_json_ws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Same as [`trim_json_ws`] on a `str` (JSON whitespace is ASCII, so the result is a `str`).
pub(crate) fn trim_json_ws_str(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_json_ws(c as u8))
}

/// Maps a key to its field index.
#[inline(always)]
fn field_index(key: &[u8]) -> Option<usize> {
    match key {
        b"id" => Some(ID),
        b"customer_id" => Some(CUSTOMER_ID),
        b"load_amount" => Some(LOAD_AMOUNT),
        b"time" => Some(TIME),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Fast path
// ---------------------------------------------------------------------------------------------

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Longest line the fast path looks at (longer lines take the general path).
const FAST_MAX_LEN: usize = 256;

/// One bit per byte of `w` (bit k for byte k, little-endian) that equals `byte`; exact.
#[inline(always)]
fn eq_mask(w: u64, byte: u8) -> u64 {
    let x = w ^ (LO * u64::from(byte));
    // High bit of each byte: set iff that byte of x is zero (no carries between bytes).
    let zero = !(((x & LOW7) + LOW7) | x | LOW7);
    // Gather the eight high bits into the low byte.
    (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Non-zero iff `w` has a byte that cannot appear raw in a plain JSON string or needs decoding:
/// `\\`, a control character (< 0x20), or a byte >= 0x80.
#[inline(always)]
fn odd_bytes(w: u64) -> u64 {
    let backslash = w ^ (LO * u64::from(b'\\'));
    ((backslash.wrapping_sub(LO) & !backslash) | (w.wrapping_sub(LO * 0x20) & !w) | w) & HI
}

/// Parses the common compact shape `{"k":"v","k":"v","k":"v","k":"v"}` with exactly the four
/// known keys, each once, in any order, no whitespace between tokens, and only printable ASCII
/// without `\\` anywhere in the line (so no escapes and no decoding: the raw bytes are the
/// strings). Returns the four raw values, or `None` for anything else (the caller then takes the
/// general path, which decides validity and echo). A `Some` is always a valid JSON object.
///
/// Branch-light: one SWAR pass builds a bit mask of the quote positions and checks for odd
/// bytes, then the 16 quotes are checked against the shape.
#[inline]
pub(crate) fn fast_fields(line: &[u8]) -> Option<[&[u8]; 4]> {
    let n = line.len();
    if !(2..=FAST_MAX_LEN).contains(&n) || line[0] != b'{' || line[n - 1] != b'}' {
        return None;
    }
    let mut quotes = [0u64; FAST_MAX_LEN / 64];
    let mut odd = 0u64;
    let mut chunks = line.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        odd |= odd_bytes(w);
        quotes[at / 64] |= eq_mask(w, b'"') << (at % 64);
        at += 8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Pad with spaces: neither quotes nor odd bytes.
        let mut word = [b' '; 8];
        word[..rest.len()].copy_from_slice(rest);
        let w = u64::from_le_bytes(word);
        odd |= odd_bytes(w);
        quotes[at / 64] |= eq_mask(w, b'"') << (at % 64);
    }
    if odd != 0 {
        return None;
    }
    let mut q = [0usize; 16];
    let mut count = 0;
    for (wi, &mask) in quotes.iter().enumerate() {
        let mut m = mask;
        while m != 0 {
            if count == 16 {
                return None;
            }
            q[count] = wi * 64 + m.trailing_zeros() as usize;
            count += 1;
            m &= m - 1;
        }
    }
    // `{"k":"v","k":"v","k":"v","k":"v"}`: the quotes and the single bytes between them.
    if count != 16 || q[0] != 1 || q[15] != n - 2 {
        return None;
    }
    let mut fields: [&[u8]; 4] = [&[]; 4];
    let mut seen = 0u8;
    for pair in 0..4 {
        let [k0, k1, v0, v1] = [q[4 * pair], q[4 * pair + 1], q[4 * pair + 2], q[4 * pair + 3]];
        if v0 != k1 + 2 || line[k1 + 1] != b':' {
            return None;
        }
        if pair < 3 && (q[4 * pair + 4] != v1 + 2 || line[v1 + 1] != b',') {
            return None;
        }
        let index = field_index(&line[k0 + 1..k1])?;
        seen |= 1 << index;
        fields[index] = &line[v0 + 1..v1];
    }
    if seen == 0b1111 { Some(fields) } else { None }
}

// ---------------------------------------------------------------------------------------------
// General path (serde_json with a custom visitor)
// ---------------------------------------------------------------------------------------------

/// One of the four known fields of an object, at its first occurrence.
#[derive(Debug)]
pub(crate) enum Field<'a> {
    /// The key does not occur.
    Absent,
    /// The first occurrence's value is not a JSON string.
    NotString,
    /// The first occurrence's value, unescaped.
    Str(Cow<'a, str>),
}

impl Field<'_> {
    /// The string value trimmed of JSON whitespace, or `""` when absent or not a string: what a
    /// malformed line echoes.
    pub(crate) fn echo(&self) -> &str {
        match self {
            Field::Str(s) => trim_json_ws_str(s),
            Field::Absent | Field::NotString => "",
        }
    }
}

/// A line that is a valid JSON object (repeated keys allowed at this stage).
#[derive(Debug)]
pub(crate) struct Object<'a> {
    /// First occurrence of `id`, `customer_id`, `load_amount`, `time`.
    pub(crate) fields: [Field<'a>; 4],
    /// Some key (after unescaping) occurs more than once.
    pub(crate) repeated_key: bool,
}

/// Parses a line with serde_json. `None` when the line is not valid UTF-8, not valid JSON, or a
/// JSON value that is not an object.
pub(crate) fn general_object(line: &[u8]) -> Option<Object<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let object = (&mut de).deserialize_any(LineVisitor).ok()??;
    de.end().ok()?;
    Some(object)
}

/// Top-level visitor: an object yields its fields; any other JSON value yields `None`.
struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = Option<Object<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = [Field::Absent, Field::Absent, Field::Absent, Field::Absent];
        let mut keys: FastSet<Cow<'de, str>> = FastSet::default();
        let mut repeated_key = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let index = field_index(key.as_bytes());
            let first = if keys.contains(&*key) {
                repeated_key = true;
                false
            } else {
                keys.insert(key);
                true
            };
            match index {
                Some(i) if first => fields[i] = map.next_value_seed(FieldSeed)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(Object { fields, repeated_key }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Deserializes an object key as an unescaped string, borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Deserializes a known field's value: a string is kept, anything else is consumed and reported
/// as [`Field::NotString`].
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::NotString)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::NotString)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::NotString)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::NotString)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::NotString)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::NotString)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::NotString)
    }
}

// ---------------------------------------------------------------------------------------------
// Field grammars
// ---------------------------------------------------------------------------------------------

/// A trimmed `id` or `customer_id`: non-empty, all ASCII digits. Returns the trimmed digits.
#[inline]
pub(crate) fn digits_field(raw: &[u8]) -> Option<&[u8]> {
    let trimmed = trim_json_ws(raw);
    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit) { Some(trimmed) } else { None }
}

/// Most significant integer digits (after leading zeros) an amount may have.
const MAX_AMOUNT_INT_DIGITS: usize = 18;

/// `load_amount` in cents: remove all JSON whitespace, then
/// `^(\$|USD|USD\$|\$USD)?[0-9]+\.[0-9]{2}$`, at most 18 significant integer digits.
#[inline]
pub(crate) fn amount_cents(raw: &[u8]) -> Option<u128> {
    if raw.iter().any(|&b| is_json_ws(b)) {
        let compact: Vec<u8> = raw.iter().copied().filter(|&b| !is_json_ws(b)).collect();
        amount_cents_compact(&compact)
    } else {
        amount_cents_compact(raw)
    }
}

#[inline]
fn amount_cents_compact(s: &[u8]) -> Option<u128> {
    // The next byte after a prefix must be a digit, so trying the longer of two alternatives
    // that share a start (`$USD` before `$`, `USD$` before `USD`) is the regex's choice too.
    let rest = if let Some(r) = s.strip_prefix(b"$USD") {
        r
    } else if let Some(r) = s.strip_prefix(b"$") {
        r
    } else if let Some(r) = s.strip_prefix(b"USD$") {
        r
    } else if let Some(r) = s.strip_prefix(b"USD") {
        r
    } else {
        s
    };
    let n = rest.len();
    if n < 4 || rest[n - 3] != b'.' {
        return None;
    }
    let (d1, d2) = (rest[n - 2], rest[n - 1]);
    if !d1.is_ascii_digit() || !d2.is_ascii_digit() {
        return None;
    }
    let int = &rest[..n - 3];
    if !int.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first_significant = int.iter().position(|&b| b != b'0').unwrap_or(int.len());
    let significant = &int[first_significant..];
    if significant.len() > MAX_AMOUNT_INT_DIGITS {
        return None;
    }
    let mut units: u64 = 0;
    for &b in significant {
        units = units * 10 + u64::from(b - b'0');
    }
    Some(u128::from(units) * 100 + u128::from((d1 - b'0') * 10 + (d2 - b'0')))
}

/// Two ASCII digits at `s[i..i + 2]` as a number.
#[inline(always)]
fn two_digits(s: &[u8], i: usize) -> Option<u32> {
    let (a, b) = (s[i].wrapping_sub(b'0'), s[i + 1].wrapping_sub(b'0'));
    if a < 10 && b < 10 { Some(u32::from(a) * 10 + u32::from(b)) } else { None }
}

/// Is `year` a Gregorian leap year?
#[inline]
fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1-12) of `year`.
#[inline]
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's `days_from_civil`).
#[inline]
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `time` and returns its UTC day (days since 1970-01-01). The shape is exactly
/// `YYYY-MM-DD[Tt]HH:MM:SS(\.[0-9]+)?([Zz]|[+-]HH:MM)` with valid calendar and clock ranges
/// (second 00-59, offset hours 00-23 and minutes 00-59).
#[inline]
pub(crate) fn utc_day(t: &[u8]) -> Option<i32> {
    let n = t.len();
    if n < 20 {
        return None;
    }
    let year = two_digits(t, 0)? * 100 + two_digits(t, 2)?;
    let month = two_digits(t, 5)?;
    let day = two_digits(t, 8)?;
    let hour = two_digits(t, 11)?;
    let minute = two_digits(t, 14)?;
    let second = two_digits(t, 17)?;
    if t[4] != b'-' || t[7] != b'-' || !matches!(t[10], b'T' | b't') || t[13] != b':' || t[16] != b':' {
        return None;
    }
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut pos = 19;
    if t[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < n && t[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return None;
        }
    }
    let offset_seconds: i64 = match *t.get(pos)? {
        b'Z' | b'z' if pos + 1 == n => 0,
        sign @ (b'+' | b'-') if pos + 6 == n => {
            let oh = two_digits(t, pos + 1)?;
            let om = two_digits(t, pos + 4)?;
            if t[pos + 3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            let magnitude = i64::from(oh * 3600 + om * 60);
            if sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    let local = days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    // The fraction (< 1 s) never moves the UTC date: the local second is at most 59.
    Some((local - offset_seconds).div_euclid(86_400) as i32)
}
