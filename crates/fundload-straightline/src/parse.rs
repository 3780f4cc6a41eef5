//! Reading one line: the hand-written fast path for the compact shape, the serde_json general
//! path for everything else, and the field grammars (ids, amount, time) both paths share.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
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

/// High bit set in each byte of `w` that is not an ASCII digit (exact per byte).
#[inline(always)]
fn non_digit_bytes(w: u64) -> u64 {
    // High nibble must be 3 and low nibble below 10.
    let high = (w & 0xf0f0_f0f0_f0f0_f0f0) ^ (LO * 0x30);
    let high_wrong = ((high & LOW7) + LOW7) | high;
    let low_too_big = ((w & 0x0f0f_0f0f_0f0f_0f0f) + LO * 0x06) << 3;
    (high_wrong | low_too_big) & HI
}

/// Position of the first `"` at or after `pos`.
#[inline(always)]
fn quote_end(line: &[u8], mut pos: usize) -> Option<usize> {
    while let Some(chunk) = line.get(pos..pos + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (LO * u64::from(b'"'));
        let zero = (x.wrapping_sub(LO) & !x) & HI;
        if zero != 0 {
            return Some(pos + (zero.trailing_zeros() / 8) as usize);
        }
        pos += 8;
    }
    line.get(pos..)?.iter().position(|&b| b == b'"').map(|i| pos + i)
}

/// End of the run of ASCII digits starting at `pos`.
#[inline(always)]
fn digit_run_end(line: &[u8], mut pos: usize) -> usize {
    while let Some(chunk) = line.get(pos..pos + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let flags = non_digit_bytes(u64::from_le_bytes(word));
        if flags != 0 {
            return pos + (flags.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while line.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    pos
}

/// The fastest path, for the exact shape the generators write:
/// `{"id":"<digits>","customer_id":"<digits>","load_amount":"<amount>","time":"<time>"}`
/// with no whitespace anywhere. Returns the id and customer digits, the amount in cents and the
/// UTC day when the line has that shape *and* every field is valid; `None` means "not decided
/// here" (never "malformed"): the caller falls back to [`fast_fields`] and the general path.
///
/// A `Some` is exact: each value was delimited by its first `"`, and the amount and time grammars
/// admit no `"`, `\\`, control or non-ASCII byte, so the line is a valid JSON object with exactly
/// these four string members.
#[inline]
pub(crate) fn template_fields<'a>(line: &'a [u8], dates: &mut DateCache) -> Option<(&'a [u8], &'a [u8], u128, i32)> {
    const ID_KEY: &[u8; 7] = b"{\"id\":\"";
    const CUSTOMER_KEY: &[u8; 17] = b"\",\"customer_id\":\"";
    const AMOUNT_KEY: &[u8; 17] = b"\",\"load_amount\":\"";
    const TIME_KEY: &[u8; 10] = b"\",\"time\":\"";
    let n = line.len();
    if n < 2 || !literal_at(line, 0, ID_KEY) || !literal_at(line, n - 2, b"\"}") {
        return None;
    }
    let id_start = ID_KEY.len();
    let id_end = digit_run_end(line, id_start);
    if id_end == id_start || !literal_at(line, id_end, CUSTOMER_KEY) {
        return None;
    }
    let customer_start = id_end + CUSTOMER_KEY.len();
    let customer_end = digit_run_end(line, customer_start);
    if customer_end == customer_start || !literal_at(line, customer_end, AMOUNT_KEY) {
        return None;
    }
    let amount_start = customer_end + AMOUNT_KEY.len();
    let amount_end = quote_end(line, amount_start)?;
    if !literal_at(line, amount_end, TIME_KEY) {
        return None;
    }
    let time_start = amount_end + TIME_KEY.len();
    let time = line.get(time_start..n - 2)?;
    let cents = amount_cents_compact(&line[amount_start..amount_end])?;
    let day = utc_day_cached(time, dates)?;
    Some((&line[id_start..id_end], &line[customer_start..customer_end], cents, day))
}

/// Whether `line[pos..]` starts with `literal` (a fixed-size compare, no `memcmp` call).
#[inline(always)]
fn literal_at<const N: usize>(line: &[u8], pos: usize, literal: &[u8; N]) -> bool {
    line.get(pos..).and_then(|rest| rest.first_chunk::<N>()).is_some_and(|chunk| chunk == literal)
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

/// Deserializes a known field's value as a `serde_json::Value` (so serde_json's own limits, its
/// nesting depth and the `f64` range of numbers, apply to it as to any parsed value), keeping it
/// only when it is a string.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => Field::Str(Cow::Owned(s)),
            _ => Field::NotString,
        })
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

/// [`amount_cents`] for a string without whitespace.
#[inline]
pub(crate) fn amount_cents_compact(s: &[u8]) -> Option<u128> {
    // The next byte after a prefix must be a digit, so trying the longer of two alternatives
    // that share a start (`$USD` before `$`, `USD$` before `USD`) is the regex's choice too.
    let rest = match s {
        [b'$', b'U', b'S', b'D', rest @ ..] => rest,
        [b'$', rest @ ..] => rest,
        [b'U', b'S', b'D', b'$', rest @ ..] => rest,
        [b'U', b'S', b'D', rest @ ..] => rest,
        _ => s,
    };
    let [int @ .., b'.', d1, d2] = rest else {
        return None;
    };
    let (f1, f2) = (d1.wrapping_sub(b'0'), d2.wrapping_sub(b'0'));
    if int.is_empty() || f1 > 9 || f2 > 9 {
        return None;
    }
    let mut units: u64 = 0;
    let mut significant = 0usize;
    for &b in int {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        units = units * 10 + u64::from(d);
        significant += usize::from(units != 0);
        if significant > MAX_AMOUNT_INT_DIGITS {
            return None;
        }
    }
    Some(u128::from(units) * 100 + u128::from(f1 * 10 + f2))
}

/// Two ASCII digits at `s[i..i + 2]` as a number.
#[inline(always)]
fn two_digits(s: &[u8], i: usize) -> Option<u32> {
    let (a, b) = (s[i].wrapping_sub(b'0'), s[i + 1].wrapping_sub(b'0'));
    if a < 10 && b < 10 { Some(u32::from(a) * 10 + u32::from(b)) } else { None }
}

/// Is `year` a Gregorian leap year?
#[inline(always)]
fn is_leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1-12) of `year`.
#[inline(always)]
fn days_in_month(year: u32, month: u32) -> u32 {
    const DAYS: [u8; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days = u32::from(DAYS[month as usize]);
    if month == 2 && is_leap(year) { 29 } else { days }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's `days_from_civil`), for
/// years 0..=9999 (shifted by one 400-year era so that all arithmetic is unsigned).
#[inline(always)]
pub(crate) fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = year + 400 - u32::from(month <= 2);
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i64::from(era) * 146_097 + i64::from(doe) - 719_468 - 146_097
}

/// The last calendar date [`utc_day_cached`] validated: consecutive lines mostly share it.
#[derive(Clone, Copy, Default)]
pub(crate) struct DateCache {
    /// `YYYY-MM-DD` as written, once one has been validated.
    date: Option<[u8; 10]>,
    /// Its day number.
    days: i64,
}

/// Parses `time` and returns its UTC day (days since 1970-01-01). The shape is exactly
/// `YYYY-MM-DD[Tt]HH:MM:SS(\.[0-9]+)?([Zz]|[+-]HH:MM)` with valid calendar and clock ranges
/// (second 00-59, offset hours 00-23 and minutes 00-59).
#[inline]
pub(crate) fn utc_day(t: &[u8]) -> Option<i32> {
    utc_day_cached(t, &mut DateCache::default())
}

/// [`utc_day`], reusing the date part's day number when it equals the last one validated.
#[inline]
pub(crate) fn utc_day_cached(t: &[u8], cache: &mut DateCache) -> Option<i32> {
    let n = t.len();
    let (Some(date), Some(rest)) = (t.first_chunk::<10>(), t.get(10..)) else {
        return None;
    };
    if n < 20 {
        return None;
    }
    let days = if cache.date.as_ref() == Some(date) {
        cache.days
    } else {
        let days = civil_date(date)?;
        *cache = DateCache { date: Some(*date), days };
        days
    };
    let d = |i: usize| u32::from(rest[i].wrapping_sub(b'0'));
    // `THH:MM:SS`: every digit position at once (a non-digit makes some value > 9).
    let digits = [d(1), d(2), d(4), d(5), d(7), d(8)];
    if (rest[0] | 0x20) != b't' || rest[3] != b':' || rest[6] != b':' || digits.iter().any(|&x| x > 9) {
        return None;
    }
    let hour = digits[0] * 10 + digits[1];
    let minute = digits[2] * 10 + digits[3];
    let second = digits[4] * 10 + digits[5];
    if hour > 23 || minute > 59 || second > 59 {
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
    // Seconds into the local day, shifted by the offset: within one day either side. The
    // fraction (< 1 s) never moves the UTC date: the local second is at most 59.
    let utc_seconds = i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    let shift = if utc_seconds < 0 {
        -1
    } else if utc_seconds >= 86_400 {
        1
    } else {
        0
    };
    Some((days + shift) as i32)
}

/// Day number of a valid `YYYY-MM-DD` (Gregorian, year 0000-9999), or `None`.
#[inline]
fn civil_date(date: &[u8; 10]) -> Option<i64> {
    let d = |i: usize| u32::from(date[i].wrapping_sub(b'0'));
    let digits = [d(0), d(1), d(2), d(3), d(5), d(6), d(8), d(9)];
    if date[4] != b'-' || date[7] != b'-' || digits.iter().any(|&x| x > 9) {
        return None;
    }
    let year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3];
    let month = digits[4] * 10 + digits[5];
    let day = digits[6] * 10 + digits[7];
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}
