//! fund_load rules as one straight-line function, with no framework underneath.
//!
//! This crate exists for two reasons:
//!
//! 1. **Speed of light.** It is the fastest plain implementation of the contract in
//!    `crates/hopline-fundload/RULES.md` that we know how to write: one pass over the input
//!    bytes, a hand-written parser for the common compact line shape, integer money, hash maps
//!    with a cheap hasher, and one large output buffer. Benchmarks of the real product report
//!    their throughput against it.
//! 2. **Oracle.** It shares no code with the product, so tests run both on large generated inputs
//!    and compare the outputs byte for byte. It therefore decides every rule and every bad input
//!    exactly, including the choices RULES.md leaves open (documented on [`run`]).
//!
//! The whole API is [`Rules`] (the scenario parameters), [`run`] and the [`Counts`] it returns.

use std::io::{self, Write};

use memchr::memchr;

mod hash;
mod parse;
mod prime;

#[cfg(test)]
mod tests;

use hash::{FastMap, FastSet};
use parse::{CUSTOMER_ID, ID, LOAD_AMOUNT, TIME};

/// Scenario parameters. Money is in integer cents; the Monday multiplier is scaled by 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Canonical attempts a customer may make per UTC day; the next one is declined
    /// (baseline 3: the 4th and later are declined). Declined attempts count too.
    pub daily_attempts: u32,
    /// Most a customer's accepted effective total may reach in one UTC day, in cents (500,000).
    pub daily_amount_cents: u64,
    /// Most a customer's accepted effective total may reach in one week, in cents (2,000,000).
    pub weekly_amount_cents: u64,
    /// First day of the week window: 0 = Monday ... 6 = Sunday (default 0). Values above 6 are
    /// taken modulo 7.
    pub week_start: u8,
    /// Multiplier applied to amounts on a UTC Monday, times 10,000 (10,000 = x1, 20,000 = x2).
    pub monday_multiplier_e4: u64,
    /// Whether the prime-id gate is on.
    pub prime_gate: bool,
    /// Under the gate, a prime-id attempt whose effective amount exceeds this (cents) is declined.
    pub prime_amount_cap_cents: u64,
    /// Under the gate, prime-id attempts that may be accepted per UTC day, across all customers.
    pub prime_daily_accepts: u32,
}

impl Rules {
    /// The `baseline` scenario: 3 attempts a day, 5,000.00 a day, 20,000.00 a week (from
    /// Monday), no Monday multiplier, no prime gate.
    pub fn baseline() -> Self {
        Rules {
            daily_attempts: 3,
            daily_amount_cents: 500_000,
            weekly_amount_cents: 2_000_000,
            week_start: 0,
            monday_multiplier_e4: 10_000,
            prime_gate: false,
            prime_amount_cap_cents: 999_900,
            prime_daily_accepts: 1,
        }
    }

    /// The `exp_mp` scenario: baseline plus amounts doubled on Mondays and the prime gate
    /// (cap 9,999.00, one accepted prime-id attempt per UTC day).
    pub fn exp_mp() -> Self {
        Rules {
            monday_multiplier_e4: 20_000,
            prime_gate: true,
            ..Rules::baseline()
        }
    }
}

/// What a [`run`] saw and decided.
///
/// `lines == accepted + declined`: `declined` counts every `"accepted":false` output line,
/// malformed lines included; `malformed` is the subset of `declined` that was malformed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Input lines (= output lines).
    pub lines: u64,
    /// Lines written with `"accepted":true`.
    pub accepted: u64,
    /// Lines written with `"accepted":false`, malformed ones included.
    pub declined: u64,
    /// Lines that were malformed (also counted in `declined`).
    pub malformed: u64,
}

/// Output is handed to the writer once the buffer holds this many bytes.
const FLUSH_AT: usize = 1 << 18;

/// Decides every line of `input` under `rules` and writes one output line per input line, in
/// order, to `out` (buffered internally in large chunks; `out` is flushed at the end).
///
/// Input lines are split on `\n`, each stripped of one trailing `\r`; the last line needs no
/// newline, a final `\n` does not start an extra empty line, and empty input has no lines.
///
/// A line is malformed (declined, touching no state) when it is blank, not valid UTF-8, not a
/// JSON object, has a repeated key (compared after unescaping), lacks one of `id`,
/// `customer_id`, `load_amount`, `time`, has one of them not a JSON string, or a field fails its
/// grammar (see RULES.md). A malformed line echoes the first `id` and `customer_id` when the line
/// is a JSON object and they are strings (trimmed, re-escaped by serde_json), else `""`.
///
/// Well-formed lines: the first line with a given trimmed `id` is canonical; later ones are
/// declined without touching any window. A canonical attempt is checked in order: daily
/// attempts; under the prime gate, the cap and then the global daily prime slot; the daily total;
/// the weekly total. Amounts are effective amounts (times the Monday multiplier on a UTC Monday)
/// in units of 1/10,000 cent.
pub fn run<W: Write>(input: &[u8], rules: &Rules, mut out: W) -> io::Result<Counts> {
    let mut state = State::new(rules, input.len());
    let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_AT + 4096);
    let mut counts = Counts::default();
    let mut pos = 0;
    while pos < input.len() {
        let end = memchr(b'\n', &input[pos..]).map_or(input.len(), |i| pos + i);
        let mut line = &input[pos..end];
        pos = end + 1;
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        counts.lines += 1;
        match decide_line(&mut state, line, &mut buf) {
            Decision::Accepted => counts.accepted += 1,
            Decision::Declined => counts.declined += 1,
            Decision::Malformed => {
                counts.declined += 1;
                counts.malformed += 1;
            }
        }
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(counts)
}

/// How one line was decided.
enum Decision {
    Accepted,
    Declined,
    Malformed,
}

/// Decides one line (without its line terminator) and appends its output line to `buf`.
#[inline]
fn decide_line(state: &mut State, line: &[u8], buf: &mut Vec<u8>) -> Decision {
    if let Some(raw) = parse::fast_fields(line) {
        return match validate(raw[ID], raw[CUSTOMER_ID], raw[LOAD_AMOUNT], raw[TIME]) {
            Some(valid) => decide_valid(state, &valid, buf),
            None => {
                // Fast-path values are printable ASCII without quotes or backslashes.
                let id = std::str::from_utf8(parse::trim_json_ws(raw[ID])).unwrap_or("");
                let cust = std::str::from_utf8(parse::trim_json_ws(raw[CUSTOMER_ID])).unwrap_or("");
                write_malformed(buf, id, cust);
                Decision::Malformed
            }
        };
    }
    let Some(object) = parse::general_object(line) else {
        write_malformed(buf, "", "");
        return Decision::Malformed;
    };
    if !object.repeated_key {
        if let [
            parse::Field::Str(id),
            parse::Field::Str(cust),
            parse::Field::Str(amount),
            parse::Field::Str(time),
        ] = &object.fields
        {
            if let Some(valid) = validate(
                id.as_bytes(),
                cust.as_bytes(),
                amount.as_bytes(),
                time.as_bytes(),
            ) {
                return decide_valid(state, &valid, buf);
            }
        }
    }
    write_malformed(
        buf,
        object.fields[ID].echo(),
        object.fields[CUSTOMER_ID].echo(),
    );
    Decision::Malformed
}

/// A well-formed line.
struct Valid<'a> {
    /// Trimmed `id` digits.
    id: &'a [u8],
    /// Trimmed `customer_id` digits.
    customer: &'a [u8],
    /// Amount in cents (< 10^20).
    cents: u128,
    /// UTC day, days since 1970-01-01.
    day: i32,
}

/// Applies the four field grammars.
#[inline]
fn validate<'a>(id: &'a [u8], cust: &'a [u8], amount: &[u8], time: &[u8]) -> Option<Valid<'a>> {
    Some(Valid {
        id: parse::digits_field(id)?,
        customer: parse::digits_field(cust)?,
        cents: parse::amount_cents(amount)?,
        day: parse::utc_day(time)?,
    })
}

/// Decides a well-formed line and writes its output line.
#[inline]
fn decide_valid(state: &mut State, valid: &Valid<'_>, buf: &mut Vec<u8>) -> Decision {
    let accepted = state.decide(valid);
    buf.extend_from_slice(b"{\"id\":\"");
    buf.extend_from_slice(valid.id);
    buf.extend_from_slice(b"\",\"customer_id\":\"");
    buf.extend_from_slice(valid.customer);
    if accepted {
        buf.extend_from_slice(b"\",\"accepted\":true}\n");
        Decision::Accepted
    } else {
        buf.extend_from_slice(b"\",\"accepted\":false}\n");
        Decision::Declined
    }
}

/// Writes a malformed line's output, with both strings escaped by serde_json.
#[cold]
fn write_malformed(buf: &mut Vec<u8>, id: &str, cust: &str) {
    buf.extend_from_slice(b"{\"id\":");
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *buf, id);
    buf.extend_from_slice(b",\"customer_id\":");
    let _ = serde_json::to_writer(&mut *buf, cust);
    buf.extend_from_slice(b",\"accepted\":false}\n");
}

/// A customer's window for one UTC day.
#[derive(Clone, Copy, Default)]
struct DayWindow {
    /// Canonical attempts so far (accepted or declined).
    attempts: u32,
    /// Accepted effective total, 1/10,000 cent.
    total: u128,
}

/// Packs a customer index and a signed day or week number into one map key.
#[inline(always)]
fn window_key(customer: u32, period: i32) -> u64 {
    u64::from(customer) << 32 | u64::from(period as u32)
}

/// Everything the run remembers.
struct State {
    /// Limits and switches, limits pre-scaled to 1/10,000 cent.
    daily_attempts: u32,
    daily_limit: u128,
    weekly_limit: u128,
    week_start: i64,
    monday_multiplier_e4: u128,
    prime_gate: bool,
    prime_cap: u128,
    prime_daily_accepts: u32,
    /// Claimed ids of at most 19 digits, packed by [`parse::pack_digits`].
    short_ids: FastSet<u128>,
    /// Claimed ids of 20 digits or more.
    long_ids: FastSet<Box<[u8]>>,
    /// Customer ids of at most 19 digits (packed) to their dense index.
    short_customers: FastMap<u128, u32>,
    /// Longer customer ids to their dense index.
    long_customers: FastMap<Box<[u8]>, u32>,
    /// (customer, UTC day) windows.
    days: FastMap<u64, DayWindow>,
    /// (customer, week) accepted effective totals.
    weeks: FastMap<u64, u128>,
    /// UTC day to accepted prime-id attempts that day (all customers).
    prime_accepts: FastMap<i32, u32>,
}

impl State {
    fn new(rules: &Rules, input_len: usize) -> Self {
        // Rough line count guess (lines are ~90 bytes) so the big sets rarely rehash.
        let guess = (input_len / 128).min(1 << 24);
        State {
            daily_attempts: rules.daily_attempts,
            daily_limit: u128::from(rules.daily_amount_cents) * 10_000,
            weekly_limit: u128::from(rules.weekly_amount_cents) * 10_000,
            week_start: i64::from(rules.week_start % 7),
            monday_multiplier_e4: u128::from(rules.monday_multiplier_e4),
            prime_gate: rules.prime_gate,
            prime_cap: u128::from(rules.prime_amount_cap_cents) * 10_000,
            prime_daily_accepts: rules.prime_daily_accepts,
            short_ids: FastSet::with_capacity_and_hasher(guess, Default::default()),
            long_ids: FastSet::default(),
            short_customers: FastMap::default(),
            long_customers: FastMap::default(),
            days: FastMap::with_capacity_and_hasher(guess, Default::default()),
            weeks: FastMap::with_capacity_and_hasher(guess / 2, Default::default()),
            prime_accepts: FastMap::default(),
        }
    }

    /// Claims `id`; true when this is its first well-formed occurrence.
    #[inline]
    fn claim(&mut self, id: &[u8]) -> bool {
        match parse::pack_digits(id) {
            Some(key) => self.short_ids.insert(key),
            None if self.long_ids.contains(id) => false,
            None => self.long_ids.insert(id.into()),
        }
    }

    /// Dense index of a customer id, interning it on first sight.
    #[inline]
    fn customer_index(&mut self, customer: &[u8]) -> u32 {
        let next = (self.short_customers.len() + self.long_customers.len()) as u32;
        match parse::pack_digits(customer) {
            Some(key) => *self.short_customers.entry(key).or_insert(next),
            None => match self.long_customers.get(customer) {
                Some(&index) => index,
                None => {
                    self.long_customers.insert(customer.into(), next);
                    next
                }
            },
        }
    }

    /// Decides a well-formed line and updates the state.
    #[inline]
    fn decide(&mut self, valid: &Valid<'_>) -> bool {
        if !self.claim(valid.id) {
            return false;
        }
        let customer = self.customer_index(valid.customer);
        let day = i64::from(valid.day);
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        let weekday = (day + 3).rem_euclid(7);
        let multiplier = if weekday == 0 {
            self.monday_multiplier_e4
        } else {
            10_000
        };
        let effective = valid.cents.saturating_mul(multiplier);

        let window = self
            .days
            .entry(window_key(customer, valid.day))
            .or_default();
        let attempts_before = window.attempts;
        window.attempts = window.attempts.saturating_add(1);
        if attempts_before >= self.daily_attempts {
            return false;
        }
        let prime = self.prime_gate && prime::is_prime_decimal(valid.id);
        if prime {
            if effective > self.prime_cap {
                return false;
            }
            let used = self.prime_accepts.get(&valid.day).copied().unwrap_or(0);
            if used >= self.prime_daily_accepts {
                return false;
            }
        }
        let day_total = window.total.saturating_add(effective);
        if day_total > self.daily_limit {
            return false;
        }
        let week = (day + 3 - self.week_start).div_euclid(7) as i32;
        let week_total = self.weeks.entry(window_key(customer, week)).or_insert(0);
        let new_week_total = week_total.saturating_add(effective);
        if new_week_total > self.weekly_limit {
            return false;
        }
        *week_total = new_week_total;
        window.total = day_total;
        if prime {
            let used = self.prime_accepts.entry(valid.day).or_insert(0);
            *used = used.saturating_add(1);
        }
        true
    }
}
