//! Deterministic generator of realistic `fund_load` input.
//!
//! The 1,000-line reference file (`tests/fixtures/fund_load/input.txt`) never reaches several rules of
//! `RULES.md`: the attempt limit, the weekly limit, exact boundaries, non-`Z` offsets, out-of-order times,
//! replays, id reuse and malformed lines. This module writes inputs that do, at any size, so the rules can be
//! tested on generated data and the runtime benchmarked on a 1,000,000-record file.
//!
//! Guarantees:
//! - exactly `records` lines, each ending in `\n` (a few in `\r\n`, which the rules read as `\n`);
//! - byte-identical output for identical options, on every platform and toolchain: the PRNG (SplitMix64
//!   seeding xoshiro256\*\*) is written here, all arithmetic is on integers, nothing is hashed or timed;
//!   different seeds give different output;
//! - a line is malformed under `RULES.md` exactly when it is counted in [`GenerateSummary::malformed`]; every
//!   other line is a JSON object with `id`, `customer_id`, `load_amount` and `time` as strings that pass the
//!   grammar of the rules;
//! - fresh load ids are distinct for the first 99,999,999 canonical lines; repeats come only from the replay
//!   and id-reuse options, and from a later line taking up the id of a malformed one (which claims none);
//! - no dependency but `std` and the crate's own calendar (`crate::time`); no allocation per line once the
//!   first few dozen lines are written.
//!
//! The mix, per line (the first three are options; the rest are fixed shares of the well-formed lines):
//! - malformed (default 0.05%), spread evenly over 17 kinds: blank, truncated or otherwise not JSON, an array,
//!   a scalar, a missing field, a non-string field, an empty id, non-digit customer id or id, a bad amount, a
//!   time without zone, a leap second, an impossible date, another bad time, a repeated key, invalid UTF-8;
//! - exact replays of an earlier line, recent or much earlier (default 0.3%);
//! - an earlier id with different content (default 0.2%);
//! - time: a clock that starts on a seed-chosen date in 2000..=2030 and steps 1 s to 2.5 h (mean about 28 min,
//!   about 52 lines a day, so 1,000 lines cover about three weeks); 1% of lines are stamped up to ten days
//!   earlier than the clock, 1.1% carry an offset other than `Z` (`+00:00` to `+14:00` and `-12:00`, about a
//!   quarter of them on another date than in UTC), 0.65% fractional seconds, 0.4% a lowercase `t` or `z`;
//! - customers: ids `1..=customers`, 45% uniform and 55% log-uniform over a seed-shuffled ranking (the busiest
//!   customer makes about 5% of the loads); 0.3% of lines start a burst of 4 to 6 attempts by one customer
//!   within the day; about half of the weeks have a customer loading 3,000.00..4,999.99 once a day (the weekly
//!   limit fires, the daily one does not), half of those stopping at a week total of exactly 20,000.00; 0.3% of
//!   lines top a customer's day up to exactly 5,000.00; 0.2% write the customer id with leading zeros;
//! - load ids: distinct integers in `1..=99_999_999` from a seeded permutation (about 5% prime), 0.2% written
//!   with leading zeros;
//! - amounts: 30% up to 500.00, 40% 500.00..3,000.00, 30% 3,000.00..6,000.00, 1% round sums, 0.1% `0.00`,
//!   0.02% huge (7 to 18 integer digits, half of them 18); prefix `$` on 96%, none, `USD`, `USD$` on 1% each,
//!   `$USD` on 0.65%; 0.5% with spaces inside the string (` $1 234.56 `);
//! - 1% of well-formed lines are unusual but valid: extra unknown fields, keys in another order, spaces after
//!   `:` and `,`, whitespace around the object or inside the id strings, a `\r\n` ending.

use std::io::{self, Write};

use crate::time::{civil_from_days, days_from_civil, is_leap};

/// Options for [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Seed of the generator: the same options always give the same bytes.
    pub seed: u64,
    /// Exact number of output lines.
    pub records: u64,
    /// Number of distinct customer ids (`1..=customers`); 0 is read as 1.
    pub customers: u32,
    /// Deliberately malformed lines per million lines.
    pub malformed_per_million: u32,
    /// Byte-identical replays of an earlier line per million lines.
    pub replay_per_million: u32,
    /// Lines reusing an earlier line's id with different content, per million lines.
    pub id_reuse_per_million: u32,
    /// Mean lines per day of the clock ([`DEFAULT_LOADS_PER_DAY`] by default); higher packs the
    /// same lines into fewer days, so customers load more often each day. 0 is read as 1.
    pub loads_per_day: u32,
}

/// The clock's mean density by default: about 52 lines a day (a step of about 28 minutes).
pub const DEFAULT_LOADS_PER_DAY: u32 = 52;

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            records: 1_000,
            customers: 2_000,
            malformed_per_million: 500,
            replay_per_million: 3_000,
            id_reuse_per_million: 2_000,
            loads_per_day: DEFAULT_LOADS_PER_DAY,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenerateSummary {
    /// Lines written: always the requested `records`.
    pub records: u64,
    /// Lines that are malformed under the rules.
    pub malformed: u64,
    /// Byte-identical copies of an earlier line.
    pub replays: u64,
    /// Well-formed lines that reuse an earlier line's id with different content.
    pub id_reuses: u64,
}

/// Writes `opts.records` lines of `fund_load` input to `out`, buffering internally, and flushes it.
///
/// The output depends on nothing but `opts`. About 93 bytes a line; memory is a few kilobytes plus 32 bytes per
/// customer. Errors are those of `out`, returned as soon as they happen (what was written stays written).
pub fn generate<W: Write>(opts: &GenerateOptions, out: W) -> io::Result<GenerateSummary> {
    run(opts, out, None)
}

const MILLION: u64 = 1_000_000;
const DAY: i64 = 86_400;
const DAY_LIMIT: u64 = 500_000;
const WEEK_LIMIT: u64 = 2_000_000;
const HISTORY: usize = 64;
const FLUSH_AT: usize = 1 << 16;
/// Fresh load ids are `1..=MAX_ID`.
const MAX_ID: u64 = 99_999_999;
const ID_BITS: u32 = 27;

// Shares per million. Rare events of one kind share a single draw: each range below is a slice of `0..MILLION`.
// Time decoration, one draw: offset, then fraction, then lowercase (each may bring the others along).
const OFFSET_END: u64 = 10_000;
const FRACTION_END: u64 = 15_000;
const LOWERCASE_END: u64 = 18_000;
// Amount format, one draw.
const NO_PREFIX_END: u64 = 10_000;
const USD_END: u64 = 20_000;
const USD_DOLLAR_END: u64 = 30_000;
const DOLLAR_USD_END: u64 = 36_000;
const SPACES_END: u64 = 41_000;
// Amount value, one draw.
const ZERO_AMOUNT_END: u64 = 1_000;
const HUGE_AMOUNT_END: u64 = 1_200;
const ROUND_AMOUNT_END: u64 = 11_200;
// Regular lines, one draw.
const ID_ZEROS_END: u64 = 2_000;
const CUSTOMER_ZEROS_END: u64 = 4_000;
const OUT_OF_ORDER_END: u64 = 14_000;
const BURST_START_END: u64 = 17_000;
const DAY_BOUNDARY_END: u64 = 20_000;
/// Unusual but valid layout.
const UNUSUAL_PPM: u32 = 10_000;
/// Weeks with a customer loading once a day up to or past the weekly limit.
const GRINDER_WEEK_PPM: u32 = 500_000;
/// Malformed lines whose id is handed to the next canonical line.
const RECLAIM_PPM: u32 = 250_000;

/// Offsets in minutes for non-`Z` times.
const OFFSETS: [i32; 14] = [120, -330, 840, -720, 345, -210, 570, -480, 60, 0, -600, 330, 780, -60];
const ROUND_DOLLARS: [u64; 10] = [100, 200, 250, 500, 1_000, 1_500, 2_000, 2_500, 3_000, 5_000];
/// Unknown fields with distinct keys, as raw JSON values.
const EXTRA_FIELDS: [(&[u8], &[u8]); 10] = [
    (b"channel", b"\"mobile\""),
    (b"merchant", b"{\"name\":\"Caf\\u00e9 \\\"Le Coin\\\"\",\"mcc\":5812,\"tags\":[\"food\",\"eu\"]}"),
    (b"note", b"\"line1\\nline2 \\\\ \\/ \\t}{,\""),
    (b"retry", b"0"),
    (b"risk_score", b"-0.137e-1"),
    (b"memo", "\"café ☕ über\"".as_bytes()),
    (b"flags", b"[true,false,null,[],{}]"),
    (b"device", b"null"),
    (b"geo", b"{\"lat\":-33.8688,\"lon\":151.2093,\"acc\":1.2E1}"),
    (b"ts", b"946684800"),
];
const BAD_IDS: [&str; 10] = ["A15887", "15887-1", "1e5", "12.0", "0x1F", "abc", " 12 34 ", "-42", "+7", "١٢٣"];
const BAD_CUSTOMERS: [&str; 10] = ["C528", "12a", "-5", "5.0", "0x1F", "cust-17", "1 2", "+7", "٣", "null"];
const BAD_AMOUNTS: [&str; 20] = [
    "12.3",
    "12",
    "usd12.30",
    "-$10.00",
    "$12.345",
    "$1,234.56",
    "€12.00",
    "",
    "$.50",
    "$$12.30",
    "12.30$",
    "1e3",
    "USD-5.00",
    "$12.3O",
    "Usd12.30",
    "$ 12.30 USD",
    "$12.",
    "$-0.00",
    "EUR12.30",
    "$１２.３０",
];

/// What one line is; the tests compare it with what the rules make of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Fresh,
    Malformed,
    Replay,
    IdReuse,
}

/// [`generate`], optionally logging what each line is.
fn run<W: Write>(
    opts: &GenerateOptions,
    mut out: W,
    mut log: Option<&mut Vec<LineKind>>,
) -> io::Result<GenerateSummary> {
    let mut state = State::new(opts);
    let mut scratch = Scratch::default();
    let mut buf = Vec::with_capacity(FLUSH_AT + 4_096);
    let mut summary = GenerateSummary::default();
    for _ in 0..opts.records {
        let kind = state.line(&mut scratch, &mut buf);
        summary.records += 1;
        match kind {
            LineKind::Fresh => {}
            LineKind::Malformed => summary.malformed += 1,
            LineKind::Replay => summary.replays += 1,
            LineKind::IdReuse => summary.id_reuses += 1,
        }
        if let Some(log) = log.as_deref_mut() {
            log.push(kind);
        }
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(summary)
}

/// xoshiro256** seeded by SplitMix64: small, fast, and fixed here so the output never changes with a crate.
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-32 for the ranges used here). `n` must be > 0.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, per_million: u32) -> bool {
        self.below(MILLION) < u64::from(per_million)
    }

    fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Index of the Monday-based week of a day number (1970-01-01 was a Thursday).
fn week_of(day: i64) -> i64 {
    (day + 3).div_euclid(7)
}

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
                                  5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// Two digits of `n % 100`.
fn pair(n: u64) -> [u8; 2] {
    let i = (n % 100) as usize * 2;
    [DIGIT_PAIRS[i], DIGIT_PAIRS[i + 1]]
}

/// Decimal digits of `n` (1 for 0).
fn digit_count(n: u64) -> usize {
    let mut count = 1;
    let mut bound = 10u64;
    while count < 20 && n >= bound {
        count += 1;
        bound = bound.wrapping_mul(10);
    }
    count
}

/// `n` in decimal. Appends a fixed 20 bytes, writes the digits over them and cuts back: a few stores, no call
/// and no load of freshly stored bytes.
fn push_uint(v: &mut Vec<u8>, mut n: u64) {
    let count = digit_count(n);
    let start = v.len();
    v.extend_from_slice(&[b'0'; 20]);
    let out = &mut v[start..start + count];
    let mut i = count;
    while n >= 100 {
        i -= 2;
        out[i..i + 2].copy_from_slice(&pair(n));
        n /= 100;
    }
    if n >= 10 {
        out[..2].copy_from_slice(&pair(n));
    } else {
        out[0] = b'0' + n as u8;
    }
    v.truncate(start + count);
}

/// A short slice byte by byte: cheaper than a `memcpy` call for the 0 to 4 bytes of a prefix.
fn push_short(v: &mut Vec<u8>, bytes: &[u8]) {
    for &c in bytes {
        v.push(c);
    }
}

/// `n` in exactly `width` digits, zero-padded (`n` must fit).
fn push_padded(v: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    for slot in tmp[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    v.extend_from_slice(&tmp[..width]);
}

/// `n` with a space between groups of three digits: `1 234 567`.
fn push_grouped(v: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 26];
    let mut i = tmp.len();
    let mut digits = 0;
    loop {
        if digits > 0 && digits % 3 == 0 {
            i -= 1;
            tmp[i] = b' ';
        }
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        digits += 1;
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(&tmp[i..]);
}

fn push_zeros(v: &mut Vec<u8>, count: u8) {
    for _ in 0..count {
        v.push(b'0');
    }
}

fn push_date(v: &mut Vec<u8>, y: i64, m: u32, d: u32) {
    push_padded(v, y as u64, 4);
    v.push(b'-');
    push_padded(v, u64::from(m), 2);
    v.push(b'-');
    push_padded(v, u64::from(d), 2);
}

/// An amount as written: integer dollars (up to 18 digits) and cents.
#[derive(Debug, Clone, Copy)]
struct Amount {
    dollars: u64,
    cents: u64,
}

impl Amount {
    fn from_cents(c: u64) -> Self {
        Amount { dollars: c / 100, cents: c % 100 }
    }

    fn total_cents(self) -> u64 {
        self.dollars.saturating_mul(100).saturating_add(self.cents)
    }
}

/// How an instant is written.
#[derive(Debug, Clone, Copy, Default)]
struct TimeFmt {
    /// `Some(minutes)`: written with a numeric offset instead of `Z`.
    offset: Option<i32>,
    frac_digits: u8,
    frac: u64,
    lower_t: bool,
    lower_z: bool,
}

/// One attempt before it is written.
#[derive(Debug, Clone, Copy)]
struct Rec {
    id: u64,
    id_zeros: u8,
    cust: u32,
    cust_zeros: u8,
    amount: Amount,
    prefix: &'static [u8],
    amount_spaces: bool,
    instant: i64,
    time: TimeFmt,
}

/// Layout of a well-formed line; `Style::default()` is the reference shape.
#[derive(Debug, Clone, Copy, Default)]
struct Style {
    spaced: bool,
    shuffled: bool,
    extras: u8,
    crlf: bool,
    pad_values: bool,
    outer_ws: bool,
}

impl Style {
    fn is_plain(&self) -> bool {
        !(self.spaced || self.shuffled || self.crlf || self.pad_values || self.outer_ws) && self.extras == 0
    }
}

/// Rendered field values, reused from line to line.
#[derive(Default)]
struct Scratch {
    id: Vec<u8>,
    cust: Vec<u8>,
    amount: Vec<u8>,
    time: Vec<u8>,
    tmp: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    key: &'a [u8],
    val: &'a [u8],
    quoted: bool,
}

const NO_FIELD: Field<'static> = Field { key: b"", val: b"", quoted: true };

fn standard_fields(s: &Scratch) -> [Field<'_>; 4] {
    [
        Field { key: b"id", val: &s.id, quoted: true },
        Field { key: b"customer_id", val: &s.cust, quoted: true },
        Field { key: b"load_amount", val: &s.amount, quoted: true },
        Field { key: b"time", val: &s.time, quoted: true },
    ]
}

/// Writes `{"k":"v",...}` (or `'k':'v'`, or bare keys when `key_quote` is `None`), without a newline.
fn write_object(buf: &mut Vec<u8>, fields: &[Field<'_>], spaced: bool, key_quote: Option<u8>, val_quote: u8) {
    buf.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
            if spaced {
                buf.push(b' ');
            }
        }
        if let Some(q) = key_quote {
            buf.push(q);
            buf.extend_from_slice(f.key);
            buf.push(q);
        } else {
            buf.extend_from_slice(f.key);
        }
        buf.push(b':');
        if spaced {
            buf.push(b' ');
        }
        if f.quoted {
            buf.push(val_quote);
            buf.extend_from_slice(f.val);
            buf.push(val_quote);
        } else {
            buf.extend_from_slice(f.val);
        }
    }
    buf.push(b'}');
}

fn write_json(buf: &mut Vec<u8>, fields: &[Field<'_>]) {
    write_object(buf, fields, false, Some(b'"'), b'"');
}

/// Inserts `f` at `pos` in the first `n` entries of `fields`.
fn insert_field<'a>(fields: &mut [Field<'a>; 8], n: &mut usize, pos: usize, f: Field<'a>) {
    fields.copy_within(pos..*n, pos + 1);
    fields[pos] = f;
    *n += 1;
}

/// The permutation behind fresh load ids: a keyed bijection on 27 bits, cycle-walked into `0..MAX_ID`.
struct IdPerm {
    mul1: u64,
    mul2: u64,
    add: u64,
    xor: u64,
}

impl IdPerm {
    fn new(rng: &mut Rng) -> Self {
        let mask = (1 << ID_BITS) - 1;
        IdPerm {
            mul1: rng.next_u64() & mask | 1,
            mul2: rng.next_u64() & mask | 1,
            add: rng.next_u64() & mask,
            xor: rng.next_u64() & mask,
        }
    }

    fn apply(&self, x: u64) -> u64 {
        let mask = (1 << ID_BITS) - 1;
        let mut x = x;
        loop {
            x = x.wrapping_mul(self.mul1).wrapping_add(self.add) & mask;
            x ^= x >> 14;
            x = x.wrapping_mul(self.mul2) & mask;
            x ^= x >> 13;
            x ^= self.xor;
            x = x.wrapping_mul(self.mul1) & mask;
            x ^= x >> 11;
            if x < MAX_ID {
                return x;
            }
        }
    }
}

/// Customer choice: part uniform, part log-uniform over a seeded ranking of the ids.
struct Customers {
    n: u64,
    bits: u64,
    /// `by_rank[r]` is the id of the customer of activity rank `r` (0 the busiest).
    by_rank: Vec<u32>,
}

impl Customers {
    fn new(n: u32, rng: &mut Rng) -> Self {
        let n = n.max(1);
        let mut by_rank: Vec<u32> = (1..=n).collect();
        for i in (1..by_rank.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            by_rank.swap(i, j);
        }
        let n = u64::from(n);
        Customers { n, bits: u64::from(64 - n.leading_zeros()), by_rank }
    }

    fn uniform(&self, rng: &mut Rng) -> u32 {
        (1 + rng.below(self.n)) as u32
    }

    fn skewed(&self, rng: &mut Rng) -> u32 {
        if rng.below(100) < 45 {
            return self.uniform(rng);
        }
        let lo = 1u64 << rng.below(self.bits);
        let hi = (lo * 2).min(self.n + 1);
        let rank = lo + rng.below(hi - lo);
        self.by_rank[(rank - 1) as usize]
    }
}

/// What the generator itself emitted for one customer on its latest day and week (canonical lines only).
#[derive(Debug, Clone, Copy)]
struct Track {
    day: i64,
    day_cents: u64,
    week: i64,
    week_cents: u64,
}

impl Track {
    const NONE: Track = Track { day: i64::MIN, day_cents: 0, week: i64::MIN, week_cents: 0 };
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    cust: u32,
    remaining: u32,
    day: i64,
}

/// A customer who loads once a day for a week, to cross (or exactly meet) the weekly limit.
#[derive(Debug, Clone, Copy)]
struct Grinder {
    active: bool,
    cust: u32,
    week: i64,
    exact: bool,
    due_at: i64,
    done_today: bool,
}

struct Hist {
    line: Vec<u8>,
    id: u64,
    id_zeros: u8,
    cust: u32,
}

struct State {
    rng: Rng,
    ids: IdPerm,
    id_counter: u64,
    pending_id: Option<u64>,
    customers: Customers,
    track: Vec<Track>,
    start: i64,
    t: i64,
    day: i64,
    dates: DateCache,
    burst: Option<Burst>,
    grinder: Grinder,
    last_cust: u32,
    recent: Vec<Hist>,
    recent_pos: usize,
    reservoir: Vec<Hist>,
    seen: u64,
    th_malformed: u64,
    th_replay: u64,
    th_reuse: u64,
    loads_per_day: u32,
}

impl State {
    fn new(opts: &GenerateOptions) -> Self {
        let mut rng = Rng::new(opts.seed);
        let ids = IdPerm::new(&mut rng);
        let customers = Customers::new(opts.customers, &mut rng);
        let first = days_from_civil(2000, 1, 1) as u64;
        let last = days_from_civil(2030, 12, 31) as u64;
        let day = rng.between(first, last) as i64;
        let start = day * DAY + if rng.coin() { 0 } else { rng.below(DAY as u64) as i64 };
        let th_malformed = u64::from(opts.malformed_per_million).min(MILLION);
        let th_replay = (th_malformed + u64::from(opts.replay_per_million)).min(MILLION);
        let th_reuse = (th_replay + u64::from(opts.id_reuse_per_million)).min(MILLION);
        State {
            rng,
            ids,
            id_counter: 0,
            pending_id: None,
            track: vec![Track::NONE; customers.n as usize],
            customers,
            start,
            t: start,
            day: i64::MIN,
            dates: DateCache::new(),
            burst: None,
            grinder: Grinder { active: false, cust: 1, week: i64::MIN, exact: false, due_at: 0, done_today: true },
            last_cust: 0,
            recent: Vec::with_capacity(HISTORY),
            recent_pos: 0,
            reservoir: Vec::with_capacity(HISTORY),
            seen: 0,
            th_malformed,
            th_replay,
            th_reuse,
            loads_per_day: opts.loads_per_day.max(1),
        }
    }

    fn line(&mut self, s: &mut Scratch, buf: &mut Vec<u8>) -> LineKind {
        self.roll_calendar();
        let r = self.rng.below(MILLION);
        let mut short_step = false;
        let kind = if r < self.th_malformed {
            self.malformed(s, buf);
            LineKind::Malformed
        } else if r < self.th_replay && !self.recent.is_empty() {
            self.replay(buf);
            LineKind::Replay
        } else if r < self.th_reuse && !self.recent.is_empty() {
            self.id_reuse(s, buf);
            LineKind::IdReuse
        } else {
            short_step = self.fresh(s, buf);
            LineKind::Fresh
        };
        self.advance(short_step);
        kind
    }

    /// On a new day of the clock: schedules the grinder's load, and on a new week maybe picks a new grinder.
    fn roll_calendar(&mut self) {
        let day = self.t.div_euclid(DAY);
        if day == self.day {
            return;
        }
        self.day = day;
        let week = week_of(day);
        if week != self.grinder.week {
            self.grinder.week = week;
            self.grinder.active = self.rng.chance(GRINDER_WEEK_PPM);
            if self.grinder.active {
                self.grinder.cust = self.customers.uniform(&mut self.rng);
                self.grinder.exact = self.rng.coin();
            }
        }
        self.grinder.due_at = day * DAY + self.rng.below(20 * 3_600) as i64;
        self.grinder.done_today = false;
    }

    fn advance(&mut self, short_step: bool) {
        let step = if short_step {
            self.rng.between(1, 600)
        } else {
            match self.rng.below(100) {
                0..55 => self.rng.between(1, 900),
                55..90 => self.rng.between(901, 3_600),
                _ => self.rng.between(3_601, 9_000),
            }
        };
        // Scale to the asked density; the default keeps the step as drawn.
        let step = (step * u64::from(DEFAULT_LOADS_PER_DAY) / u64::from(self.loads_per_day)).max(1);
        self.t += step as i64;
        // Keep four-digit years (after about 150 million lines): start over, forgetting the totals.
        if self.t >= days_from_civil(9_999, 1, 1) * DAY {
            self.t = self.start;
            self.track.fill(Track::NONE);
        }
    }

    /// The next id of the permutation: distinct for the first `MAX_ID` calls.
    fn fresh_id(&mut self) -> u64 {
        let id = self.ids.apply(self.id_counter % MAX_ID) + 1;
        self.id_counter += 1;
        id
    }

    /// The id of a new canonical line: an id a malformed line left unclaimed, or a fresh one.
    fn next_id(&mut self) -> u64 {
        match self.pending_id.take() {
            Some(id) => id,
            None => self.fresh_id(),
        }
    }

    fn random_amount(&mut self) -> Amount {
        let r = self.rng.below(MILLION);
        if r < ROUND_AMOUNT_END {
            if r < ZERO_AMOUNT_END {
                return Amount { dollars: 0, cents: 0 };
            }
            if r < HUGE_AMOUNT_END {
                let digits = if self.rng.coin() { 18 } else { self.rng.between(7, 17) as u32 };
                let dollars = self.rng.between(10u64.pow(digits - 1), 10u64.pow(digits) - 1);
                return Amount { dollars, cents: self.rng.below(100) };
            }
            return Amount { dollars: *self.rng.pick(&ROUND_DOLLARS), cents: 0 };
        }
        // The low bits of `r` are independent of its range; 30% up to 500.00, 40% to 3,000.00, 30% to 6,000.00.
        let cents = match r % 10 {
            0..3 => self.rng.between(1, 50_000),
            3..7 => self.rng.between(50_000, 300_000),
            _ => self.rng.between(300_000, 600_000),
        };
        Amount::from_cents(cents)
    }

    /// The amount's prefix and whether it has spaces inside.
    fn random_amount_format(&mut self) -> (&'static [u8], bool) {
        match self.rng.below(MILLION) {
            0..NO_PREFIX_END => (b"", false),
            NO_PREFIX_END..USD_END => (b"USD", false),
            USD_END..USD_DOLLAR_END => (b"USD$", false),
            USD_DOLLAR_END..DOLLAR_USD_END => (b"$USD", false),
            DOLLAR_USD_END..SPACES_END => {
                (*self.rng.pick(&[&b"$"[..], b"$", b"$", b"", b"USD", b"USD$", b"$USD"]), true)
            }
            _ => (b"$", false),
        }
    }

    fn random_time(&mut self) -> TimeFmt {
        let mut tf = TimeFmt::default();
        let r = self.rng.below(MILLION);
        if r >= LOWERCASE_END {
            return tf;
        }
        let primary = match r {
            0..OFFSET_END => 0,
            OFFSET_END..FRACTION_END => 1,
            _ => 2,
        };
        for k in 0..3 {
            if k != primary && self.rng.below(8) != 0 {
                continue;
            }
            match k {
                0 => tf.offset = Some(*self.rng.pick(&OFFSETS)),
                1 => {
                    tf.frac_digits = self.rng.between(1, 9) as u8;
                    tf.frac = self.rng.below(10u64.pow(u32::from(tf.frac_digits)));
                }
                _ => match self.rng.below(3) {
                    0 => tf.lower_t = true,
                    1 => tf.lower_z = true,
                    _ => (tf.lower_t, tf.lower_z) = (true, true),
                },
            }
        }
        tf
    }

    fn random_style(&mut self) -> Style {
        let mut st = Style::default();
        if !self.rng.chance(UNUSUAL_PPM) {
            return st;
        }
        let primary = self.rng.below(6);
        for k in 0..6 {
            if k != primary && self.rng.below(8) != 0 {
                continue;
            }
            match k {
                0 => st.spaced = true,
                1 => st.shuffled = true,
                2 => st.extras = self.rng.between(1, 3) as u8,
                3 => st.crlf = true,
                4 => st.pad_values = true,
                _ => st.outer_ws = true,
            }
        }
        st
    }

    /// A record for the current clock with the given customer and amount and random decoration.
    fn record(&mut self, cust: u32, amount: Amount) -> Rec {
        let id = self.next_id();
        self.record_with_id(id, 0, cust, amount)
    }

    fn record_with_id(&mut self, id: u64, id_zeros: u8, cust: u32, amount: Amount) -> Rec {
        let (prefix, amount_spaces) = self.random_amount_format();
        Rec {
            id,
            id_zeros,
            cust,
            cust_zeros: 0,
            amount,
            prefix,
            amount_spaces,
            instant: self.t,
            time: self.random_time(),
        }
    }

    /// Writes one line that is not malformed, not a replay and not an id reuse. Returns whether the next
    /// clock step should be short (a burst is under way).
    fn fresh(&mut self, s: &mut Scratch, buf: &mut Vec<u8>) -> bool {
        let today = self.day;
        if self.grinder.active && !self.grinder.done_today && self.t >= self.grinder.due_at {
            self.grinder.done_today = true;
            if let Some(cents) = self.grinder_amount() {
                let rec = self.record(self.grinder.cust, Amount::from_cents(cents));
                self.emit_canonical(&rec, s, buf);
                return false;
            }
        }
        if let Some(b) = self.burst {
            if b.day != today || b.remaining == 0 {
                self.burst = None;
            } else if self.rng.coin() {
                self.burst = Some(Burst { remaining: b.remaining - 1, ..b });
                let amount = self.random_amount();
                let rec = self.record(b.cust, amount);
                self.emit_canonical(&rec, s, buf);
                return true;
            }
        }
        let r = self.rng.below(MILLION);
        if (BURST_START_END..DAY_BOUNDARY_END).contains(&r) && self.last_cust != 0 {
            let c = self.last_cust;
            let tr = self.track[c as usize - 1];
            if tr.day == today && tr.day_cents > 0 && tr.day_cents < DAY_LIMIT {
                let rec = self.record(c, Amount::from_cents(DAY_LIMIT - tr.day_cents));
                self.emit_canonical(&rec, s, buf);
                return false;
            }
        }
        let cust = self.customers.skewed(&mut self.rng);
        let mut short_step = false;
        if (OUT_OF_ORDER_END..BURST_START_END).contains(&r) && self.burst.is_none() {
            self.burst = Some(Burst { cust, remaining: self.rng.between(3, 5) as u32, day: today });
            short_step = true;
        }
        let amount = self.random_amount();
        let mut rec = self.record(cust, amount);
        match r {
            0..ID_ZEROS_END => rec.id_zeros = self.rng.between(1, 4) as u8,
            ID_ZEROS_END..CUSTOMER_ZEROS_END => rec.cust_zeros = self.rng.between(1, 3) as u8,
            CUSTOMER_ZEROS_END..OUT_OF_ORDER_END => {
                rec.instant -= match self.rng.below(100) {
                    0..60 => self.rng.between(1, 3_600),
                    60..90 => self.rng.between(3_601, DAY as u64),
                    _ => self.rng.between(DAY as u64 + 1, 10 * DAY as u64),
                } as i64;
            }
            _ => {}
        }
        self.emit_canonical(&rec, s, buf);
        short_step
    }

    /// The grinder's load for today: a 3,000.00..4,999.99 share that keeps the day within 5,000.00, or exactly
    /// what is left to 20,000.00 for the week when it fits (exact grinders only). `None` when the day is full.
    fn grinder_amount(&mut self) -> Option<u64> {
        let g = self.grinder;
        let tr = self.track[g.cust as usize - 1];
        let day_sum = if tr.day == self.day { tr.day_cents } else { 0 };
        let week_sum = if tr.week == week_of(self.day) { tr.week_cents } else { 0 };
        if day_sum >= DAY_LIMIT {
            return None;
        }
        let room = DAY_LIMIT - day_sum;
        if g.exact {
            if week_sum >= WEEK_LIMIT {
                self.grinder.active = false;
                return None;
            }
            let left = WEEK_LIMIT - week_sum;
            if left <= room {
                self.grinder.active = false;
                return Some(left);
            }
        }
        Some(self.rng.between(room.min(300_000), room.min(499_999)))
    }

    /// Writes a canonical line (a fresh id), tracks its amount and remembers it for replays and id reuse.
    fn emit_canonical(&mut self, rec: &Rec, s: &mut Scratch, buf: &mut Vec<u8>) {
        let style = self.random_style();
        let start = buf.len();
        self.write_record(rec, &style, s, buf);
        if rec.cust_zeros == 0 {
            self.track(rec);
            self.last_cust = rec.cust;
        }
        self.remember(&buf[start..], rec);
    }

    fn track(&mut self, rec: &Rec) {
        let cents = rec.amount.total_cents();
        let day = rec.instant.div_euclid(DAY);
        let week = week_of(day);
        let tr = &mut self.track[rec.cust as usize - 1];
        if day > tr.day {
            (tr.day, tr.day_cents) = (day, cents);
        } else if day == tr.day {
            tr.day_cents = tr.day_cents.saturating_add(cents);
        }
        if week > tr.week {
            (tr.week, tr.week_cents) = (week, cents);
        } else if week == tr.week {
            tr.week_cents = tr.week_cents.saturating_add(cents);
        }
    }

    /// Keeps the last `HISTORY` canonical lines and a uniform sample of `HISTORY` from the whole file.
    fn remember(&mut self, line: &[u8], rec: &Rec) {
        fn store(slots: &mut Vec<Hist>, at: Option<usize>, line: &[u8], rec: &Rec) {
            match at {
                Some(i) => {
                    let h = &mut slots[i];
                    h.line.clear();
                    h.line.extend_from_slice(line);
                    (h.id, h.id_zeros, h.cust) = (rec.id, rec.id_zeros, rec.cust);
                }
                None => slots.push(Hist { line: line.to_vec(), id: rec.id, id_zeros: rec.id_zeros, cust: rec.cust }),
            }
        }
        let at = if self.recent.len() < HISTORY { None } else { Some(self.recent_pos) };
        store(&mut self.recent, at, line, rec);
        self.recent_pos = (self.recent_pos + 1) % HISTORY;
        self.seen += 1;
        if self.reservoir.len() < HISTORY {
            store(&mut self.reservoir, None, line, rec);
        } else {
            let j = self.rng.below(self.seen) as usize;
            if j < HISTORY {
                store(&mut self.reservoir, Some(j), line, rec);
            }
        }
    }

    /// An earlier canonical line: a recent one or one sampled from the whole file so far.
    fn pick_history(&mut self) -> &Hist {
        if self.rng.coin() {
            let i = self.rng.below(self.reservoir.len() as u64) as usize;
            &self.reservoir[i]
        } else {
            let i = self.rng.below(self.recent.len() as u64) as usize;
            &self.recent[i]
        }
    }

    fn replay(&mut self, buf: &mut Vec<u8>) {
        let h = self.pick_history();
        buf.extend_from_slice(&h.line);
    }

    /// An earlier id with new content: the same customer with a new amount and time, or another customer.
    fn id_reuse(&mut self, s: &mut Scratch, buf: &mut Vec<u8>) {
        let (id, id_zeros, old_cust) = {
            let h = self.pick_history();
            (h.id, h.id_zeros, h.cust)
        };
        let mut cust = old_cust;
        if self.rng.coin() {
            cust = self.customers.skewed(&mut self.rng);
            if cust == old_cust {
                cust = (old_cust % self.customers.n as u32) + 1;
            }
        }
        let amount = self.random_amount();
        let rec = self.record_with_id(id, id_zeros, cust, amount);
        let style = self.random_style();
        self.write_record(&rec, &style, s, buf);
    }

    fn render(&mut self, rec: &Rec, pad_values: bool, s: &mut Scratch) {
        let (pad_id, pad_cust) = if pad_values {
            match self.rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            }
        } else {
            (false, false)
        };
        s.id.clear();
        self.pad(pad_id, &mut s.id, |v| {
            push_zeros(v, rec.id_zeros);
            push_uint(v, rec.id);
        });
        s.cust.clear();
        self.pad(pad_cust, &mut s.cust, |v| {
            push_zeros(v, rec.cust_zeros);
            push_uint(v, u64::from(rec.cust));
        });
        s.amount.clear();
        self.push_amount(rec, &mut s.amount);
        s.time.clear();
        push_time(&mut s.time, &mut self.dates, rec.instant, &rec.time);
    }

    /// Writes `body`, with one or two spaces around it when `pad` is set.
    fn pad(&mut self, pad: bool, v: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
        let (lead, trail) = if pad {
            match self.rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            }
        } else {
            (false, false)
        };
        if lead {
            v.push(b' ');
        }
        body(v);
        if trail {
            v.push(b' ');
        }
    }

    fn push_amount(&mut self, rec: &Rec, v: &mut Vec<u8>) {
        let a = rec.amount;
        if !rec.amount_spaces {
            push_short(v, rec.prefix);
            push_uint(v, a.dollars);
            v.push(b'.');
            push_padded(v, a.cents, 2);
            return;
        }
        let lead = self.rng.coin();
        let after_prefix = !rec.prefix.is_empty() && self.rng.coin();
        let grouped = a.dollars >= 1_000;
        let trail = self.rng.coin() || !(lead || after_prefix || grouped);
        if lead {
            v.push(b' ');
        }
        v.extend_from_slice(rec.prefix);
        if after_prefix {
            v.push(b' ');
        }
        push_grouped(v, a.dollars);
        v.push(b'.');
        push_padded(v, a.cents, 2);
        if trail {
            v.push(b' ');
        }
    }

    fn write_record(&mut self, rec: &Rec, style: &Style, s: &mut Scratch, buf: &mut Vec<u8>) {
        if style.is_plain() {
            // The reference shape, written straight into the output.
            buf.extend_from_slice(b"{\"id\":\"");
            push_zeros(buf, rec.id_zeros);
            push_uint(buf, rec.id);
            buf.extend_from_slice(b"\",\"customer_id\":\"");
            push_zeros(buf, rec.cust_zeros);
            push_uint(buf, u64::from(rec.cust));
            buf.extend_from_slice(b"\",\"load_amount\":\"");
            self.push_amount(rec, buf);
            buf.extend_from_slice(b"\",\"time\":\"");
            push_time(buf, &mut self.dates, rec.instant, &rec.time);
            buf.extend_from_slice(b"\"}\n");
            return;
        }
        self.render(rec, style.pad_values, s);
        let mut fields = [NO_FIELD; 8];
        fields[..4].copy_from_slice(&standard_fields(s));
        let mut n = 4;
        let first_extra = self.rng.below(EXTRA_FIELDS.len() as u64) as usize;
        for j in 0..usize::from(style.extras) {
            let (key, val) = EXTRA_FIELDS[(first_extra + j) % EXTRA_FIELDS.len()];
            let pos = self.rng.below(n as u64 + 1) as usize;
            insert_field(&mut fields, &mut n, pos, Field { key, val, quoted: false });
        }
        if style.shuffled {
            for i in (1..n).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                fields.swap(i, j);
            }
        }
        let (ws_before, ws_after): (&[u8], &[u8]) = if style.outer_ws {
            match self.rng.below(3) {
                0 => (b" ", b""),
                1 => (b"", b"\t"),
                _ => (b"  ", b" "),
            }
        } else {
            (b"", b"")
        };
        buf.extend_from_slice(ws_before);
        write_object(buf, &fields[..n], style.spaced, Some(b'"'), b'"');
        buf.extend_from_slice(ws_after);
        buf.extend_from_slice(if style.crlf { b"\r\n" } else { b"\n" });
    }

    /// Writes one malformed line. Where the line still carries a readable digit id, that id may be handed to a
    /// later well-formed line (a malformed line does not claim its id).
    fn malformed(&mut self, s: &mut Scratch, buf: &mut Vec<u8>) {
        let cust = self.customers.skewed(&mut self.rng);
        let amount = self.random_amount();
        let id = self.fresh_id();
        let mut rec = self.record_with_id(id, 0, cust, amount);
        rec.prefix = b"$";
        rec.amount_spaces = false;
        rec.time = TimeFmt::default();
        self.render(&rec, false, s);
        let start = buf.len();
        let mut claim = false;
        match self.rng.below(17) {
            0 => match self.rng.below(4) {
                0 => {}
                1 => buf.extend_from_slice(b"   "),
                2 => buf.extend_from_slice(b" \t "),
                _ => buf.push(b'\r'),
            },
            1 => {
                write_json(buf, &standard_fields(s));
                let len = buf.len() - start;
                let keep = 1 + self.rng.below(len as u64 - 1) as usize;
                buf.truncate(start + keep);
            }
            2 => match self.rng.below(4) {
                0 => {
                    for (i, f) in standard_fields(s).iter().enumerate() {
                        if i > 0 {
                            buf.push(b'&');
                        }
                        buf.extend_from_slice(f.key);
                        buf.push(b'=');
                        buf.extend_from_slice(f.val);
                    }
                }
                1 => write_object(buf, &standard_fields(s), false, Some(b'\''), b'\''),
                2 => write_object(buf, &standard_fields(s), false, None, b'"'),
                _ => {
                    write_json(buf, &standard_fields(s));
                    buf.pop();
                    buf.extend_from_slice(b",}");
                }
            },
            3 => {
                if self.rng.coin() {
                    buf.push(b'[');
                    write_json(buf, &standard_fields(s));
                    buf.push(b']');
                } else {
                    buf.push(b'[');
                    for (i, f) in standard_fields(s).iter().enumerate() {
                        if i > 0 {
                            buf.push(b',');
                        }
                        buf.push(b'"');
                        buf.extend_from_slice(f.val);
                        buf.push(b'"');
                    }
                    buf.push(b']');
                }
            }
            4 => match self.rng.below(3) {
                0 => buf.extend_from_slice(b"null"),
                1 => push_uint(buf, rec.id),
                _ => {
                    buf.extend_from_slice(b"\"{\\\"id\\\":\\\"");
                    buf.extend_from_slice(&s.id);
                    buf.extend_from_slice(b"\\\"}\"");
                }
            },
            5 => {
                let drop = self.rng.below(4) as usize;
                let all = standard_fields(s);
                let mut fields = [NO_FIELD; 3];
                let mut n = 0;
                for (i, f) in all.iter().enumerate() {
                    if i != drop {
                        fields[n] = *f;
                        n += 1;
                    }
                }
                write_json(buf, &fields);
                claim = drop != 0;
            }
            6 => {
                let which = self.rng.below(5) as usize;
                s.tmp.clear();
                match which {
                    0 => {
                        push_uint(&mut s.tmp, rec.amount.dollars);
                        s.tmp.push(b'.');
                        push_padded(&mut s.tmp, rec.amount.cents, 2);
                    }
                    1 => s.tmp.extend_from_slice(&s.id),
                    2 => s.tmp.extend_from_slice(if self.rng.coin() { &b"null"[..] } else { &s.cust[..] }),
                    3 => push_uint(&mut s.tmp, rec.instant as u64),
                    _ => s.tmp.extend_from_slice(if self.rng.coin() { b"true" } else { b"null" }),
                }
                let mut fields = standard_fields(s);
                let slot = if which == 4 { 2 } else { which.min(3) };
                fields[slot] = Field { key: fields[slot].key, val: &s.tmp, quoted: false };
                write_json(buf, &fields);
                claim = slot != 0;
            }
            7 => {
                let mut fields = standard_fields(s);
                match self.rng.below(5) {
                    0 | 1 => fields[0].val = b"",
                    2 => fields[0].val = b"   ",
                    _ => {
                        fields[1].val = b"";
                        claim = true;
                    }
                }
                write_json(buf, &fields);
            }
            8 => {
                let mut fields = standard_fields(s);
                fields[1].val = self.rng.pick(&BAD_CUSTOMERS).as_bytes();
                write_json(buf, &fields);
                claim = true;
            }
            9 => {
                let mut fields = standard_fields(s);
                fields[0].val = self.rng.pick(&BAD_IDS).as_bytes();
                write_json(buf, &fields);
            }
            10 => {
                let mut fields = standard_fields(s);
                fields[2].val = self.rng.pick(&BAD_AMOUNTS).as_bytes();
                write_json(buf, &fields);
                claim = true;
            }
            11 => {
                s.time.pop();
                if self.rng.coin() {
                    s.time.extend_from_slice(b".250");
                }
                write_json(buf, &standard_fields(s));
                claim = true;
            }
            12 => {
                // "YYYY-MM-DDTHH:MM:SSZ": seconds at 17..19.
                s.time[17..19].copy_from_slice(b"60");
                if self.rng.coin() {
                    s.time[11..16].copy_from_slice(b"23:59");
                }
                write_json(buf, &standard_fields(s));
                claim = true;
            }
            13 => {
                let (y, _, _) = civil_from_days(rec.instant.div_euclid(DAY));
                let (y, m, d) = match self.rng.below(7) {
                    0 => (y, 2, 30),
                    1 => (if is_leap(y) { y + 1 } else { y }, 2, 29),
                    2 => (y, *self.rng.pick(&[4, 6, 9, 11]), 31),
                    3 => (y, 13, 1 + self.rng.below(28) as u32),
                    4 => (y, 0, 1 + self.rng.below(28) as u32),
                    5 => (y, 1 + self.rng.below(12) as u32, 0),
                    _ => (y, 1, 32),
                };
                s.tmp.clear();
                push_date(&mut s.tmp, y, m, d);
                s.tmp.extend_from_slice(&s.time[10..]);
                std::mem::swap(&mut s.tmp, &mut s.time);
                write_json(buf, &standard_fields(s));
                claim = true;
            }
            14 => {
                let dup = self.rng.below(4) as usize;
                s.tmp.clear();
                match dup {
                    0 => push_uint(&mut s.tmp, rec.id + 1),
                    1 => push_uint(&mut s.tmp, u64::from(rec.cust) + 1),
                    2 => s.tmp.extend_from_slice(b"$1.00"),
                    _ => s.tmp.extend_from_slice(&s.time),
                }
                let same = self.rng.coin();
                let mut fields = [NO_FIELD; 8];
                fields[..4].copy_from_slice(&standard_fields(s));
                let mut n = 4;
                let copy = Field { val: if same { fields[dup].val } else { &s.tmp }, ..fields[dup] };
                let pos = dup + 1 + self.rng.below((4 - dup) as u64) as usize;
                insert_field(&mut fields, &mut n, pos, copy);
                write_json(buf, &fields[..n]);
                claim = dup != 0;
            }
            15 => {
                let variant = self.rng.below(4);
                s.tmp.clear();
                match variant {
                    0 => {}
                    1 => {
                        s.tmp.push(0xA3);
                        s.tmp.extend_from_slice(&s.amount[1..]);
                    }
                    2 => {
                        s.tmp.extend_from_slice(&s.amount);
                        s.tmp.extend_from_slice(if self.rng.coin() { b"\xE2\x82" } else { b"\xC0\xAF" });
                    }
                    _ => {
                        s.tmp.extend_from_slice(&s.time);
                        s.tmp.push(0xFF);
                    }
                }
                let mut fields = [NO_FIELD; 8];
                fields[..4].copy_from_slice(&standard_fields(s));
                let mut n = 4;
                match variant {
                    0 => {
                        let pos = self.rng.below(5) as usize;
                        insert_field(&mut fields, &mut n, pos, Field { key: b"memo", val: b"caf\xE9", quoted: true });
                    }
                    1 | 2 => fields[2].val = &s.tmp,
                    _ => fields[3].val = &s.tmp,
                }
                write_json(buf, &fields[..n]);
                claim = true;
            }
            _ => {
                let (time, tmp) = (&s.time, &mut s.tmp);
                tmp.clear();
                match self.rng.below(11) {
                    0 => tmp.extend_from_slice(&time[..10]),
                    1 => {
                        tmp.extend_from_slice(&time[..19]);
                        tmp.extend_from_slice(b"+0200");
                    }
                    2 => {
                        tmp.extend_from_slice(&time[..10]);
                        tmp.extend_from_slice(b"T24:00:00Z");
                    }
                    3 => {
                        tmp.extend_from_slice(&time[..10]);
                        tmp.extend_from_slice(b"T12:60:00Z");
                    }
                    4 => {
                        tmp.extend_from_slice(&time[..16]);
                        tmp.push(b'Z');
                    }
                    5 => tmp.extend_from_slice(&time[2..]),
                    6 => {
                        tmp.extend_from_slice(&time[..10]);
                        tmp.extend_from_slice(&time[11..]);
                    }
                    7 => {}
                    8 => push_uint(tmp, rec.instant as u64),
                    9 => {
                        tmp.extend_from_slice(&time[..19]);
                        tmp.extend_from_slice(b" Z");
                    }
                    _ => {
                        tmp.extend_from_slice(&time[..19]);
                        tmp.extend_from_slice(b".Z");
                    }
                }
                let mut fields = standard_fields(s);
                fields[3].val = &s.tmp;
                write_json(buf, &fields);
                claim = true;
            }
        }
        buf.push(b'\n');
        if claim && self.pending_id.is_none() && self.rng.chance(RECLAIM_PPM) {
            self.pending_id = Some(rec.id);
        }
    }
}

/// The last local date written, as `YYYY-MM-DD`: consecutive lines mostly share it.
struct DateCache {
    day: i64,
    text: [u8; 10],
}

impl DateCache {
    fn new() -> Self {
        DateCache { day: i64::MIN, text: [0; 10] }
    }
}

fn push_time(v: &mut Vec<u8>, cache: &mut DateCache, instant: i64, tf: &TimeFmt) {
    let local = instant + i64::from(tf.offset.unwrap_or(0)) * 60;
    let day = local.div_euclid(DAY);
    if day != cache.day {
        let (y, m, d) = civil_from_days(day);
        let ([y0, y1], [y2, y3]) = (pair(y as u64 / 100), pair(y as u64));
        let ([m0, m1], [d0, d1]) = (pair(u64::from(m)), pair(u64::from(d)));
        cache.text = [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1];
        cache.day = day;
    }
    let sod = local.rem_euclid(DAY) as u64;
    let [h0, h1] = pair(sod / 3_600);
    let [m0, m1] = pair(sod / 60 % 60);
    let [s0, s1] = pair(sod % 60);
    let t = if tf.lower_t { b't' } else { b'T' };
    v.extend_from_slice(&cache.text);
    v.extend_from_slice(&[t, h0, h1, b':', m0, m1, b':', s0, s1]);
    if tf.frac_digits > 0 {
        v.push(b'.');
        push_padded(v, tf.frac, usize::from(tf.frac_digits));
    }
    match tf.offset {
        None => v.push(if tf.lower_z { b'z' } else { b'Z' }),
        Some(minutes) => {
            v.push(if minutes < 0 { b'-' } else { b'+' });
            let m = u64::from(minutes.unsigned_abs());
            push_padded(v, m / 60, 2);
            v.push(b':');
            push_padded(v, m % 60, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::sync::OnceLock;

    /// A well-formed line as the rules read it.
    #[derive(Debug, Clone)]
    struct Parsed {
        id: String,
        cust: String,
        amount: String,
        time: String,
        cents: u128,
        utc: i64,
        local_day: i64,
    }

    impl Parsed {
        fn utc_day(&self) -> i64 {
            self.utc.div_euclid(DAY)
        }
    }

    enum Val {
        Str(String),
        Other,
    }

    /// A minimal strict JSON reader, enough to tell a well-formed line from a malformed one.
    /// Deliberately independent of `nodes::parse`: these tests check what the generator meant to
    /// write, so they must not share a bug with the parser the generated data is there to test.
    struct Reader<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Reader<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
                self.i += 1;
            }
        }

        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Result<(), &'static str> {
            if self.peek() == Some(c) {
                self.i += 1;
                Ok(())
            } else {
                Err("not json")
            }
        }

        fn hex4(&mut self) -> Result<u32, &'static str> {
            let s = self.b.get(self.i..self.i + 4).ok_or("not json")?;
            let s = std::str::from_utf8(s).map_err(|_| "not json")?;
            self.i += 4;
            u32::from_str_radix(s, 16).map_err(|_| "not json")
        }

        fn string(&mut self) -> Result<String, &'static str> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                let c = self.peek().ok_or("not json")?;
                self.i += 1;
                match c {
                    b'"' => return Ok(out),
                    0..0x20 => return Err("not json"),
                    b'\\' => {
                        let e = self.peek().ok_or("not json")?;
                        self.i += 1;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let mut code = self.hex4()?;
                                if (0xD800..0xDC00).contains(&code) {
                                    self.eat(b'\\')?;
                                    self.eat(b'u')?;
                                    let low = self.hex4()?;
                                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                }
                                out.push(char::from_u32(code).ok_or("not json")?);
                            }
                            _ => return Err("not json"),
                        }
                    }
                    _ => {
                        // The line is valid UTF-8: copy the whole character.
                        let start = self.i - 1;
                        let mut end = self.i;
                        while end < self.b.len() && (self.b[end] & 0xC0) == 0x80 {
                            end += 1;
                        }
                        out.push_str(std::str::from_utf8(&self.b[start..end]).map_err(|_| "not json")?);
                        self.i = end;
                    }
                }
            }
        }

        fn digits(&mut self) -> usize {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            self.i - start
        }

        fn number(&mut self) -> Result<(), &'static str> {
            if self.peek() == Some(b'-') {
                self.i += 1;
            }
            match self.peek() {
                Some(b'0') => self.i += 1,
                Some(b'1'..=b'9') => {
                    self.digits();
                }
                _ => return Err("not json"),
            }
            if self.peek() == Some(b'.') {
                self.i += 1;
                if self.digits() == 0 {
                    return Err("not json");
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                if self.digits() == 0 {
                    return Err("not json");
                }
            }
            Ok(())
        }

        fn value(&mut self) -> Result<Val, &'static str> {
            self.ws();
            let v = match self.peek().ok_or("not json")? {
                b'"' => Val::Str(self.string()?),
                b'{' => {
                    self.object()?;
                    Val::Other
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        loop {
                            self.value()?;
                            self.ws();
                            match self.peek() {
                                Some(b',') => self.i += 1,
                                Some(b']') => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return Err("not json"),
                            }
                        }
                    }
                    Val::Other
                }
                b't' | b'f' | b'n' => {
                    let rest = &self.b[self.i..];
                    let word: &[u8] = [&b"true"[..], b"false", b"null"]
                        .into_iter()
                        .find(|w| rest.starts_with(w))
                        .ok_or("not json")?;
                    self.i += word.len();
                    Val::Other
                }
                _ => {
                    self.number()?;
                    Val::Other
                }
            };
            self.ws();
            Ok(v)
        }

        fn object(&mut self) -> Result<Vec<(String, Val)>, &'static str> {
            self.eat(b'{')?;
            let mut members = Vec::new();
            self.ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(members);
            }
            loop {
                self.ws();
                let key = self.string()?;
                self.ws();
                self.eat(b':')?;
                let val = self.value()?;
                members.push((key, val));
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        return Ok(members);
                    }
                    _ => return Err("not json"),
                }
            }
        }
    }

    fn two(b: &[u8], at: usize) -> Result<i64, &'static str> {
        match b.get(at..at + 2) {
            Some([x, y]) if x.is_ascii_digit() && y.is_ascii_digit() => Ok(i64::from((x - b'0') * 10 + (y - b'0'))),
            _ => Err("bad time"),
        }
    }

    /// RFC 3339 as `RULES.md` has it; returns (UTC seconds, written local day).
    fn parse_time(t: &str) -> Result<(i64, i64), &'static str> {
        let b = t.as_bytes();
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err("bad time");
        }
        if !b[..4].iter().all(u8::is_ascii_digit) {
            return Err("bad time");
        }
        let y = two(b, 0)? * 100 + two(b, 2)?;
        let (mo, d, h, mi, s) = (two(b, 5)?, two(b, 8)?, two(b, 11)?, two(b, 14)?, two(b, 17)?);
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return Err("bad time");
            }
        }
        let offset = match b.get(i) {
            None => return Err("no zone"),
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (two(b, i + 1)?, two(b, i + 4)?);
                if oh > 23 || om > 59 {
                    return Err("bad time");
                }
                (oh * 60 + om) * if sign == b'-' { -1 } else { 1 }
            }
            _ => return Err("bad time"),
        };
        if h > 23 || mi > 59 {
            return Err("bad time");
        }
        if s == 60 {
            return Err("leap second");
        }
        if s > 59 {
            return Err("bad time");
        }
        let month_days = [31, if is_leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        if !(1..=12).contains(&mo) || d < 1 || d > month_days[mo as usize - 1] {
            return Err("impossible date");
        }
        let local_day = days_from_civil(y, mo as u32, d as u32);
        Ok((local_day * DAY + h * 3_600 + mi * 60 + s - offset * 60, local_day))
    }

    fn parse_amount(a: &str) -> Result<u128, &'static str> {
        let a: String = a.chars().filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')).collect();
        let rest = ["USD$", "$USD", "USD", "$"].iter().find_map(|p| a.strip_prefix(p)).unwrap_or(&a);
        let (int, frac) = rest.split_once('.').ok_or("bad amount")?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(int) || !digits(frac) || frac.len() != 2 || int.len() > 18 {
            return Err("bad amount");
        }
        Ok(int.parse::<u128>().unwrap() * 100 + frac.parse::<u128>().unwrap())
    }

    fn trim_json_ws(s: &str) -> &str {
        s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
    }

    /// What the rules make of one line (without its `\n`): the fields, or why it is malformed.
    fn check_line(line: &[u8]) -> Result<Parsed, &'static str> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        std::str::from_utf8(line).map_err(|_| "invalid utf-8")?;
        let mut r = Reader { b: line, i: 0 };
        r.ws();
        match r.peek() {
            None => return Err("blank"),
            Some(b'{') => {}
            Some(b'[') => return r.value().and(Err("array")),
            Some(_) => {
                r.value()?;
                return if r.i == line.len() { Err("scalar") } else { Err("not json") };
            }
        }
        let members = r.object()?;
        r.ws();
        if r.i != line.len() {
            return Err("not json");
        }
        let mut seen = HashSet::new();
        for (k, _) in &members {
            if !seen.insert(k.as_str()) {
                return Err("repeated key");
            }
        }
        let field = |name: &str| match members.iter().find(|(k, _)| k == name) {
            None => Err("missing field"),
            Some((_, Val::Str(s))) => Ok(s.clone()),
            Some((_, Val::Other)) => Err("not a string"),
        };
        let (id, cust, amount, time) = (field("id")?, field("customer_id")?, field("load_amount")?, field("time")?);
        let digits = |s: &str, empty, bad| match s {
            "" => Err(empty),
            s if s.bytes().all(|c| c.is_ascii_digit()) => Ok(s.to_owned()),
            _ => Err(bad),
        };
        let id = digits(trim_json_ws(&id), "empty id", "id not digits")?;
        let cust = digits(trim_json_ws(&cust), "empty customer_id", "customer_id not digits")?;
        let cents = parse_amount(&amount)?;
        let (utc, local_day) = parse_time(&time)?;
        Ok(Parsed { id, cust, amount, time, cents, utc, local_day })
    }

    struct Sample {
        text: Vec<u8>,
        summary: GenerateSummary,
        kinds: Vec<LineKind>,
        results: Vec<Result<Parsed, &'static str>>,
    }

    impl Sample {
        fn new(opts: &GenerateOptions) -> Sample {
            let mut text = Vec::new();
            let mut kinds = Vec::new();
            let summary = run(opts, &mut text, Some(&mut kinds)).unwrap();
            let results = lines(&text).map(check_line).collect();
            Sample { text, summary, kinds, results }
        }

        fn lines(&self) -> impl Iterator<Item = &[u8]> {
            lines(&self.text)
        }

        fn parsed(&self) -> impl Iterator<Item = &Parsed> {
            self.results.iter().filter_map(|r| r.as_ref().ok())
        }

        /// Canonical lines: the first well-formed occurrence of each id.
        fn canonical(&self) -> Vec<&Parsed> {
            let mut seen = HashSet::new();
            self.parsed().filter(|p| seen.insert(p.id.clone())).collect()
        }
    }

    /// The lines of `text` without their `\n` (every line has one).
    fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
        text.strip_suffix(b"\n").unwrap_or(text).split(|&c| c == b'\n').take(if text.is_empty() {
            0
        } else {
            usize::MAX
        })
    }

    /// 100,000 lines at the default rates.
    fn sample() -> &'static Sample {
        static SAMPLE: OnceLock<Sample> = OnceLock::new();
        SAMPLE.get_or_init(|| Sample::new(&GenerateOptions { seed: 42, records: 100_000, ..Default::default() }))
    }

    /// 40,000 lines, 10% of them malformed.
    fn malformed_sample() -> &'static Sample {
        static SAMPLE: OnceLock<Sample> = OnceLock::new();
        SAMPLE.get_or_init(|| {
            Sample::new(&GenerateOptions {
                seed: 7,
                records: 40_000,
                malformed_per_million: 100_000,
                ..Default::default()
            })
        })
    }

    fn bytes(opts: &GenerateOptions) -> Vec<u8> {
        let mut out = Vec::new();
        generate(opts, &mut out).unwrap();
        out
    }

    fn is_prime(n: u64) -> bool {
        n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
    }

    #[test]
    fn same_options_give_identical_bytes() {
        let opts = GenerateOptions { seed: 99, records: 20_000, ..Default::default() };
        assert_eq!(bytes(&opts), bytes(&opts));
    }

    #[test]
    fn different_seeds_give_different_bytes() {
        let a = bytes(&GenerateOptions { seed: 1, records: 100, ..Default::default() });
        let b = bytes(&GenerateOptions { seed: 2, records: 100, ..Default::default() });
        assert_ne!(a, b);
        assert_ne!(a.split(|&c| c == b'\n').next(), b.split(|&c| c == b'\n').next());
    }

    /// FNV-1a, 64 bits.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
    }

    #[test]
    fn output_is_pinned_for_seed_1() {
        // A change here changes every generated input and benchmark: make it on purpose, then update the pins.
        let out = bytes(&GenerateOptions { records: 10_000, ..Default::default() });
        let second = out.split(|&c| c == b'\n').nth(1).unwrap();
        assert_eq!(String::from_utf8_lossy(second), PINNED_SECOND_LINE);
        assert_eq!(format!("{:016x}", fnv1a(&out)), PINNED_HASH);
    }

    const PINNED_SECOND_LINE: &str =
        r#"{"id":"65867864","customer_id":"976","load_amount":"$564.19","time":"2017-11-16T18:37:58Z"}"#;
    const PINNED_HASH: &str = "3c55cc6cc907c384";

    #[test]
    fn writes_exactly_the_requested_number_of_lines() {
        for records in [0, 1, 2, 17, 1_000, 5_000] {
            let out = bytes(&GenerateOptions { seed: records, records, ..Default::default() });
            let newlines = out.iter().filter(|&&c| c == b'\n').count() as u64;
            assert_eq!(newlines, records, "records = {records}");
            assert!(out.is_empty() || out.ends_with(b"\n"), "records = {records}");
        }
    }

    #[test]
    fn summary_counts_the_lines_by_kind() {
        for s in [sample(), malformed_sample()] {
            let count = |k| s.kinds.iter().filter(|&&x| x == k).count() as u64;
            assert_eq!(s.summary.records, s.kinds.len() as u64);
            assert_eq!(s.summary.records, s.results.len() as u64);
            assert_eq!(s.summary.malformed, count(LineKind::Malformed));
            assert_eq!(s.summary.replays, count(LineKind::Replay));
            assert_eq!(s.summary.id_reuses, count(LineKind::IdReuse));
        }
    }

    #[test]
    fn lines_are_malformed_exactly_when_counted_malformed() {
        for s in [sample(), malformed_sample()] {
            for (n, ((kind, result), line)) in s.kinds.iter().zip(&s.results).zip(s.lines()).enumerate() {
                let line = String::from_utf8_lossy(line);
                match (kind, result) {
                    (LineKind::Malformed, Ok(_)) => panic!("line {} should be malformed: {line}", n + 1),
                    (LineKind::Malformed, Err(_)) | (_, Ok(_)) => {}
                    (_, Err(why)) => panic!("line {} is malformed ({why}): {line}", n + 1),
                }
            }
        }
    }

    #[test]
    fn every_well_formed_line_is_an_object_with_four_string_fields() {
        let s = sample();
        let well_formed = s.results.iter().filter(|r| r.is_ok()).count() as u64;
        assert_eq!(well_formed, s.summary.records - s.summary.malformed);
        for p in s.parsed() {
            assert!(!p.id.is_empty() && !p.cust.is_empty() && !p.amount.is_empty() && !p.time.is_empty());
        }
    }

    #[test]
    fn malformed_rate_is_close_to_the_requested_rate() {
        let count = |per_million| {
            let opts =
                GenerateOptions { seed: 5, records: 100_000, malformed_per_million: per_million, ..Default::default() };
            generate(&opts, io::sink()).unwrap().malformed
        };
        assert!((25..=80).contains(&count(500)), "{}", count(500));
        assert!((1_800..=2_200).contains(&count(20_000)), "{}", count(20_000));
        assert_eq!(count(0), 0);
        assert_eq!(count(1_000_000), 100_000);
    }

    #[test]
    fn replay_and_reuse_rates_are_close_to_the_requested_rates() {
        let s = sample().summary;
        assert!((220..=380).contains(&s.replays), "{s:?}");
        assert!((130..=270).contains(&s.id_reuses), "{s:?}");
        let none =
            GenerateOptions { records: 20_000, replay_per_million: 0, id_reuse_per_million: 0, ..Default::default() };
        let s = generate(&none, io::sink()).unwrap();
        assert_eq!((s.replays, s.id_reuses), (0, 0));
    }

    #[test]
    fn every_malformed_kind_appears() {
        let reasons: HashSet<&str> =
            malformed_sample().results.iter().filter_map(|r| r.as_ref().err().copied()).collect();
        for want in [
            "blank",
            "not json",
            "array",
            "scalar",
            "repeated key",
            "invalid utf-8",
            "missing field",
            "not a string",
            "empty id",
            "empty customer_id",
            "id not digits",
            "customer_id not digits",
            "bad amount",
            "no zone",
            "leap second",
            "impossible date",
            "bad time",
        ] {
            assert!(reasons.contains(want), "no malformed line of kind {want:?}");
        }
    }

    #[test]
    fn replays_are_byte_identical_copies_of_earlier_lines() {
        let s = sample();
        let mut first_at: HashMap<&[u8], usize> = HashMap::new();
        let mut replays = 0;
        let mut far = 0;
        for (n, (line, kind)) in s.lines().zip(&s.kinds).enumerate() {
            if *kind == LineKind::Replay {
                let at = *first_at.get(line).unwrap_or_else(|| panic!("line {} replays nothing", n + 1));
                replays += 1;
                far += usize::from(n - at > 10_000);
            }
            first_at.entry(line).or_insert(n);
        }
        assert!(replays > 100, "{replays}");
        assert!(far > 10, "only {far} replays reach more than 10,000 lines back");
    }

    #[test]
    fn id_reuses_repeat_an_earlier_id_with_different_content() {
        let s = sample();
        let mut seen: HashMap<&str, &Parsed> = HashMap::new();
        let mut reuses = 0;
        for (p, kind) in s.results.iter().zip(&s.kinds) {
            let Ok(p) = p else { continue };
            if *kind == LineKind::IdReuse {
                let first = seen.get(p.id.as_str()).expect("an id reuse repeats an earlier id");
                assert!((&first.cust, &first.amount, &first.time) != (&p.cust, &p.amount, &p.time));
                reuses += 1;
            }
            seen.entry(p.id.as_str()).or_insert(p);
        }
        assert!(reuses > 100, "{reuses}");
    }

    #[test]
    fn fresh_lines_never_repeat_an_earlier_well_formed_id() {
        let s = sample();
        let mut seen = HashSet::new();
        for (p, kind) in s.results.iter().zip(&s.kinds) {
            let Ok(p) = p else { continue };
            if *kind == LineKind::Fresh {
                assert!(!seen.contains(&p.id), "id {} is repeated", p.id);
            }
            seen.insert(p.id.clone());
        }
    }

    #[test]
    fn ids_of_malformed_lines_are_taken_up_by_later_lines() {
        let s = malformed_sample();
        let mut malformed_ids = HashSet::new();
        let mut taken_up = 0;
        for (line, result) in s.lines().zip(&s.results) {
            match result {
                Ok(p) => taken_up += usize::from(malformed_ids.contains(&p.id)),
                Err(_) => {
                    let text = String::from_utf8_lossy(line);
                    if let Some(rest) = text.split("\"id\":\"").nth(1) {
                        malformed_ids.insert(rest.chars().take_while(char::is_ascii_digit).collect::<String>());
                    }
                }
            }
        }
        assert!(taken_up > 50, "{taken_up}");
    }

    #[test]
    fn most_lines_have_the_reference_shape() {
        let s = sample();
        let shaped = s
            .lines()
            .zip(&s.results)
            .filter(|(line, r)| {
                let Ok(p) = r else { return false };
                let compact = format!(
                    "{{\"id\":\"{}\",\"customer_id\":\"{}\",\"load_amount\":\"{}\",\"time\":\"{}\"}}",
                    p.id, p.cust, p.amount, p.time
                );
                *line == compact.as_bytes()
                    && p.amount.starts_with('$')
                    && p.amount[1..].bytes().all(|c| c == b'.' || c.is_ascii_digit())
                    && p.time.len() == 20
                    && p.time.ends_with('Z')
                    && p.time.as_bytes()[10] == b'T'
            })
            .count();
        assert!(shaped * 100 > s.results.len() * 90, "{shaped} of {}", s.results.len());
    }

    #[test]
    fn clock_starts_between_2000_and_2030() {
        let mut starts = HashSet::new();
        for seed in 0..40 {
            let first = bytes(&GenerateOptions { seed, records: 1, ..Default::default() });
            let p = check_line(first.strip_suffix(b"\n").unwrap()).unwrap();
            let (year, _, _) = civil_from_days(p.utc_day());
            assert!((2000..=2030).contains(&year), "seed {seed}: {}", p.time);
            starts.insert(p.utc_day());
        }
        assert!(starts.len() > 30);
    }

    #[test]
    fn default_file_spans_weeks_and_every_weekday() {
        let s = Sample::new(&GenerateOptions::default());
        let days: HashSet<i64> = s.parsed().map(Parsed::utc_day).collect();
        let (min, max) = (days.iter().min().unwrap(), days.iter().max().unwrap());
        assert!(max - min >= 14, "{} days", max - min);
        let weekdays: HashSet<i64> = days.iter().map(|d| (d + 3).rem_euclid(7)).collect();
        assert_eq!(weekdays.len(), 7);
    }

    #[test]
    fn customer_ids_stay_within_range() {
        for customers in [1, 10, 2_000] {
            let s = Sample::new(&GenerateOptions { records: 5_000, customers, ..Default::default() });
            let mut used = HashSet::new();
            for p in s.parsed().filter(|p| !p.cust.starts_with('0')) {
                let c: u32 = p.cust.parse().unwrap();
                assert!((1..=customers).contains(&c), "{c} of {customers}");
                used.insert(c);
            }
            assert!(used.len() as u32 >= customers.min(1_000), "{} of {customers} used", used.len());
        }
        let zero = Sample::new(&GenerateOptions { records: 100, customers: 0, ..Default::default() });
        assert!(zero.parsed().all(|p| p.cust.trim_start_matches('0') == "1"));
    }

    #[test]
    fn busy_customers_make_more_than_three_attempts_a_day() {
        let mut per_day: HashMap<(&str, i64), u32> = HashMap::new();
        for p in sample().canonical() {
            *per_day.entry((&p.cust, p.utc_day())).or_default() += 1;
        }
        let busy = per_day.values().filter(|&&n| n >= 4).count();
        assert!(busy > 300, "{busy} customer-days with 4 or more attempts");
    }

    /// Per customer and week: the total and the largest day total, in cents.
    fn weeks() -> HashMap<(&'static str, i64), (u128, u128)> {
        let mut days: HashMap<(&str, i64), u128> = HashMap::new();
        for p in sample().canonical() {
            *days.entry((&p.cust, p.utc_day())).or_default() += p.cents;
        }
        let mut weeks: HashMap<(&str, i64), (u128, u128)> = HashMap::new();
        for ((cust, day), total) in days {
            let w = weeks.entry((cust, week_of(day))).or_default();
            w.0 += total;
            w.1 = w.1.max(total);
        }
        weeks
    }

    #[test]
    fn some_weeks_exceed_20000_without_any_day_above_5000() {
        let n = weeks().values().filter(|(week, max_day)| *week > 2_000_000 && *max_day <= 500_000).count();
        assert!(n > 25, "{n} such customer-weeks");
    }

    #[test]
    fn some_totals_hit_the_limits_exactly() {
        let mut days: HashMap<(&str, i64), u128> = HashMap::new();
        for p in sample().canonical() {
            *days.entry((&p.cust, p.utc_day())).or_default() += p.cents;
        }
        let exact_days = days.values().filter(|&&c| c == 500_000).count();
        assert!(exact_days > 100, "{exact_days} customer-days of exactly 5,000.00");
        let exact_weeks = weeks().values().filter(|(week, _)| *week == 2_000_000).count();
        assert!(exact_weeks > 20, "{exact_weeks} customer-weeks of exactly 20,000.00");
    }

    #[test]
    fn mondays_are_present() {
        let mondays = sample().parsed().filter(|p| (p.utc_day() + 3).rem_euclid(7) == 0).count();
        assert!(mondays > 8_000, "{mondays}");
        assert_eq!((days_from_civil(2000, 1, 3) + 3).rem_euclid(7), 0, "2000-01-03 was a Monday");
    }

    #[test]
    fn some_offsets_cross_the_utc_date() {
        let parsed: Vec<&Parsed> = sample().parsed().collect();
        let offsets = parsed.iter().filter(|p| !p.time.ends_with(['Z', 'z'])).count();
        let crossing = parsed.iter().filter(|p| p.local_day != p.utc_day()).count();
        assert!(offsets > 700, "{offsets}");
        assert!(crossing > 100, "{crossing}");
        for sign in ["+14:00", "-12:00", "-05:30", "+00:00"] {
            assert!(parsed.iter().any(|p| p.time.ends_with(sign)), "{sign}");
        }
    }

    #[test]
    fn some_times_go_backwards_even_by_days() {
        let parsed: Vec<&Parsed> = sample().parsed().collect();
        let back: Vec<i64> = parsed.windows(2).map(|w| w[0].utc - w[1].utc).filter(|&d| d > 0).collect();
        assert!(back.len() > 500, "{}", back.len());
        assert!(back.iter().filter(|&&d| d > DAY).count() > 100);
        let span = parsed.iter().map(|p| p.utc).max().unwrap() - parsed.iter().map(|p| p.utc).min().unwrap();
        assert!(span > 365 * DAY, "a 100,000-line file covers years");
    }

    #[test]
    fn time_variants_are_present() {
        let parsed: Vec<&Parsed> = sample().parsed().collect();
        let count = |f: &dyn Fn(&str) -> bool| parsed.iter().filter(|p| f(&p.time)).count();
        assert!(count(&|t| t.len() > 19 && t.as_bytes()[19] == b'.') > 200);
        assert!(count(&|t| t.as_bytes()[10] == b't') > 50);
        assert!(count(&|t| t.ends_with('z')) > 50);
    }

    #[test]
    fn amount_variants_are_present() {
        let parsed: Vec<&Parsed> = sample().parsed().collect();
        let count = |f: &dyn Fn(&Parsed) -> bool| parsed.iter().filter(|p| f(p)).count();
        let bare = |p: &Parsed| p.amount.trim().to_owned();
        assert!(count(&|p| bare(p).starts_with(|c: char| c.is_ascii_digit())) > 500);
        assert!(count(&|p| bare(p).starts_with("USD") && !bare(p).starts_with("USD$")) > 500);
        assert!(count(&|p| bare(p).starts_with("USD$")) > 500);
        assert!(count(&|p| bare(p).starts_with("$USD")) > 300);
        assert!(count(&|p| p.amount.contains(' ')) > 250);
        assert!(count(&|p| p.amount.trim().contains(' ')) > 150, "spaces inside, not only around");
        assert!(count(&|p| p.cents == 0) > 40);
        assert!(count(&|p| p.cents >= 10u128.pow(19)) > 0, "an 18-digit amount");
        assert!(count(&|p| p.cents > 1_000_000_000) > 10);
        let under_3000 = count(&|p| p.cents <= 300_000);
        let up_to_6000 = count(&|p| p.cents <= 600_000);
        assert!(under_3000 * 100 > parsed.len() * 60, "most amounts are under 3,000.00");
        assert!(up_to_6000 * 1_000 > parsed.len() * 995, "nearly all amounts are up to 6,000.00");
    }

    #[test]
    fn id_variants_are_present() {
        let parsed: Vec<&Parsed> = sample().parsed().collect();
        assert!(parsed.iter().filter(|p| p.id.starts_with('0')).count() > 80);
        assert!(parsed.iter().filter(|p| p.cust.starts_with('0')).count() > 80);
        let some = &parsed[..5_000];
        let primes = some.iter().filter(|p| is_prime(p.id.parse().unwrap())).count();
        assert!(primes * 100 > some.len() * 3, "{primes} prime ids");
        let text = String::from_utf8_lossy(&sample().text);
        assert!(text.contains("\"id\":\" ") || text.contains("\"id\": \" "), "an id with surrounding spaces");
    }

    #[test]
    fn unusual_but_valid_layouts_are_present() {
        let s = sample();
        let well_formed = || s.lines().zip(&s.results).filter(|(_, r)| r.is_ok()).map(|(l, _)| l);
        let count = |f: &dyn Fn(&[u8]) -> bool| well_formed().filter(|l| f(l)).count();
        let text = |l: &[u8]| String::from_utf8(l.to_vec()).unwrap();
        assert!(count(&|l| l.ends_with(b"\r")) > 100, "CRLF endings");
        assert!(count(&|l| text(l).contains("\": ")) > 100, "spaces after ':'");
        assert!(count(&|l| text(l).contains("\"geo\":") || text(l).contains("\"memo\":")) > 50, "unknown fields");
        assert!(count(&|l| !l.starts_with(b"{\"id\"") && l.trim_ascii_start().starts_with(b"{")) > 150, "reordered");
        assert!(
            count(&|l| l.starts_with(b" ") || l.trim_ascii_end().len() < l.len() - usize::from(l.ends_with(b"\r")))
                > 50
        );
    }

    #[test]
    fn write_errors_are_returned() {
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = generate(&GenerateOptions::default(), Failing).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn calendar_conversion_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for day in (-1_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        let mut text = Vec::new();
        let tf = TimeFmt { offset: Some(120), ..TimeFmt::default() };
        push_time(&mut text, &mut DateCache::new(), days_from_civil(2000, 1, 2) * DAY + 22 * 3_600 + 3, &tf);
        assert_eq!(text, b"2000-01-03T00:00:03+02:00");
    }

    #[test]
    fn fresh_ids_are_distinct_and_in_range() {
        let mut state = State::new(&GenerateOptions::default());
        let mut ids: Vec<u64> = (0..300_000).map(|_| state.fresh_id()).collect();
        assert!(ids.iter().all(|id| (1..=MAX_ID).contains(id)));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 300_000);
    }

    #[test]
    fn digits_are_formatted_like_std() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, 99_999_999, 10u64.pow(18) - 1, u64::MAX] {
            let mut v = Vec::new();
            push_uint(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
            let mut g = Vec::new();
            push_grouped(&mut g, n);
            assert_eq!(g.iter().filter(|&&c| c != b' ').copied().collect::<Vec<_>>(), v);
        }
        let mut g = Vec::new();
        push_grouped(&mut g, 1_234_567);
        assert_eq!(g, b"1 234 567");
    }

    #[test]
    fn loads_per_day_packs_lines_into_fewer_days() {
        let days = |loads_per_day| {
            let out = bytes(&GenerateOptions { records: 20_000, loads_per_day, ..Default::default() });
            let text = String::from_utf8_lossy(&out).into_owned();
            let dates: std::collections::BTreeSet<String> = text
                .lines()
                .filter_map(|l| l.split("\"time\":\"").nth(1).map(|t| t.get(..10).unwrap_or_default().to_string()))
                .collect();
            dates.len()
        };
        let (sparse, dense) = (days(DEFAULT_LOADS_PER_DAY), days(DEFAULT_LOADS_PER_DAY * 10));
        assert!(dense * 5 < sparse, "{dense} days at 10x density, {sparse} at the default");
    }
}
