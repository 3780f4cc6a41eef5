//! fund_load rules as one straight-line function, with no framework underneath.
//!
//! This crate exists for two reasons:
//!
//! 1. **Speed of light.** It is the fastest plain implementation of the contract in
//!    `crates/hopline-fundload/RULES.md` that we know how to write: one pass over the input
//!    bytes, a hand-written parser for the common compact line shape (serde_json only for the
//!    rest), integer money, flat tables and hash maps with a cheap hasher, and one large output
//!    buffer; single-threaded. Benchmarks of the real product report their throughput against it
//!    (`cargo run --release -p fundload-straightline --example throughput`).
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
mod state;

#[cfg(test)]
mod tests;

use parse::{CUSTOMER_ID, ID, LOAD_AMOUNT, TIME};
use state::{State, Total};

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
        Rules { monday_multiplier_e4: 20_000, prime_gate: true, ..Rules::baseline() }
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
/// Well-formed lines: the first line with a given trimmed `id` (as written: `"007"` and `"7"`
/// differ) is canonical; later ones are declined without touching any window. A canonical
/// attempt is declined if any check fails: daily attempts; under the prime gate (id read as an
/// integer is prime), the cap and the global daily prime slot; the daily total; the weekly total.
/// Every check reads the state as it was before the line, so the order RULES.md lists them in
/// does not change the outcome (this implementation tests primality last, when it matters).
/// The customer's attempt count for the UTC day always increments; an accepted attempt adds its
/// effective amount (times the Monday multiplier on a UTC Monday, in 1/10,000 cent) to the day
/// and week totals and, if it was a prime-id attempt under the gate, takes one of the day's
/// prime slots.
///
/// Choices this crate makes where neither RULES.md nor the agreed decisions speak: a line that is not valid UTF-8 echoes `""`
/// for both ids; only repeated keys of the line's own object make it malformed (nested objects
/// in unknown fields are ignored whole); JSON validity is serde_json's, so the value of one of
/// the four fields is parsed as a `serde_json::Value` (a number beyond the `f64` range such as
/// `"id":1e400`, or more than 128 nested levels, makes the line invalid JSON) while unknown
/// fields are skipped unparsed.
pub fn run<W: Write>(input: &[u8], rules: &Rules, out: W) -> io::Result<Counts> {
    if <u64 as Total>::holds(&state::scaled_limits(rules)) {
        run_with(State::<u64>::new(rules, input.len()), input, out)
    } else {
        run_with(State::<u128>::new(rules, input.len()), input, out)
    }
}

/// [`run`] with a given accepted-total type.
fn run_with<T: Total, W: Write>(mut state: State<T>, input: &[u8], mut out: W) -> io::Result<Counts> {
    let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_AT + 4096);
    let mut counts = Counts::default();
    let mut batch: Vec<Pending<'_>> = Vec::with_capacity(BATCH);
    let mut dates = parse::DateCache::default();
    let mut pos = 0;
    while pos < input.len() {
        // Customer prefetches only pay once the customers outgrow the caches.
        let prefetch_customers = state.many_customers();
        // Parse a batch of lines, prefetching the id-table and customer-index slots of each
        // well-formed one, then decide them in order: the cache misses of these random accesses
        // overlap with parsing instead of stalling each decision.
        while batch.len() < BATCH && pos < input.len() {
            let end = memchr(b'\n', &input[pos..]).map_or(input.len(), |i| pos + i);
            let mut line = &input[pos..end];
            pos = end + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let fast = match parse::template_fields(line, &mut dates) {
                Some((id, customer, cents, day)) => Some(Valid::new(id, customer, cents, day)),
                None => parse::fast_fields(line)
                    .and_then(|raw| validate(raw[ID], raw[CUSTOMER_ID], raw[LOAD_AMOUNT], raw[TIME])),
            };
            batch.push(match fast {
                Some(valid) => {
                    state.prefetch_id(valid.id_key);
                    if prefetch_customers {
                        state.prefetch_customer_slot(valid.customer_key);
                    }
                    Pending::Valid(valid)
                }
                None => Pending::Other(line),
            });
        }
        // The customer-index slots are in cache by now: prefetch the customers' state.
        if prefetch_customers {
            for pending in &batch {
                if let Pending::Valid(valid) = pending {
                    state.prefetch_customer(valid.customer_key);
                }
            }
        }
        for pending in batch.drain(..) {
            let decision = match pending {
                Pending::Valid(valid) => decide_valid(&mut state, &valid, &mut buf),
                Pending::Other(line) => decide_line(&mut state, line, &mut buf),
            };
            counts.lines += 1;
            match decision {
                Decision::Accepted => counts.accepted += 1,
                Decision::Declined => counts.declined += 1,
                Decision::Malformed => {
                    counts.declined += 1;
                    counts.malformed += 1;
                }
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

/// Lines parsed ahead of deciding them.
const BATCH: usize = 64;

/// A line parsed ahead.
enum Pending<'a> {
    /// Compact shape, all fields valid.
    Valid(Valid<'a>),
    /// Anything else: decided by [`decide_line`].
    Other(&'a [u8]),
}

/// How one line was decided.
enum Decision {
    Accepted,
    Declined,
    Malformed,
}

/// Decides one line (without its line terminator) and appends its output line to `buf`.
#[inline]
fn decide_line<T: Total>(state: &mut State<T>, line: &[u8], buf: &mut Vec<u8>) -> Decision {
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
        if let [parse::Field::Str(id), parse::Field::Str(cust), parse::Field::Str(amount), parse::Field::Str(time)] =
            &object.fields
        {
            if let Some(valid) = validate(id.as_bytes(), cust.as_bytes(), amount.as_bytes(), time.as_bytes()) {
                return decide_valid(state, &valid, buf);
            }
        }
    }
    write_malformed(buf, object.fields[ID].echo(), object.fields[CUSTOMER_ID].echo());
    Decision::Malformed
}

/// A well-formed line.
pub(crate) struct Valid<'a> {
    /// Trimmed `id` digits.
    id: &'a [u8],
    /// `id` as [`state::encode_digits`], or 0 when it has more than 19 digits.
    id_key: u64,
    /// Trimmed `customer_id` digits.
    customer: &'a [u8],
    /// `customer` as [`state::encode_digits`], or 0 when it has more than 19 digits.
    customer_key: u64,
    /// Amount in cents (< 10^20).
    cents: u128,
    /// UTC day, days since 1970-01-01.
    day: i32,
}

impl<'a> Valid<'a> {
    #[inline(always)]
    fn new(id: &'a [u8], customer: &'a [u8], cents: u128, day: i32) -> Self {
        Valid {
            id,
            id_key: state::encode_digits(id).unwrap_or(0),
            customer,
            customer_key: state::encode_digits(customer).unwrap_or(0),
            cents,
            day,
        }
    }
}

/// Applies the four field grammars.
#[inline]
fn validate<'a>(id: &'a [u8], cust: &'a [u8], amount: &[u8], time: &[u8]) -> Option<Valid<'a>> {
    Some(Valid::new(
        parse::digits_field(id)?,
        parse::digits_field(cust)?,
        parse::amount_cents(amount)?,
        parse::utc_day(time)?,
    ))
}

/// Decides a well-formed line and writes its output line.
#[inline]
fn decide_valid<T: Total>(state: &mut State<T>, valid: &Valid<'_>, buf: &mut Vec<u8>) -> Decision {
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
