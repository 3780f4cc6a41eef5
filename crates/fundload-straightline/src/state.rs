//! Everything a run remembers, laid out so that a time-ordered stream touches little memory.
//!
//! - Claimed ids: an open-addressing table of `u64` keys (ids of up to 19 digits, encoded without
//!   losing leading zeros), one probe sequence per line; longer ids in a separate hash set.
//! - Customers: interned to dense indices. Each customer keeps its *current* day window and
//!   week window inline. Moving to another day or week spills the current window to an
//!   append-only log; a window is looked up again only when a line goes back to an earlier
//!   period than the customer's latest, through a hash index over the log that is brought up to
//!   date lazily at that moment. A time-ordered stream therefore never hashes a window key,
//!   while any order still finds every earlier window exactly.

use crate::hash::{FastMap, FastSet, fold_mul};
use crate::prime;
use crate::{Rules, Valid};

/// `(10^len - 1) / 9` for `len` in 0..=19: the number of digit strings shorter than `len`.
const DIGIT_STRING_OFFSET: [u64; 20] = {
    let mut table = [0u64; 20];
    let mut len = 1;
    while len < 20 {
        table[len] = table[len - 1] * 10 + 1;
        len += 1;
    }
    table
};

/// Encodes a non-empty ASCII digit string of at most 19 digits as a distinct non-zero `u64`
/// (`"7"`, `"07"` and `"007"` all differ): its rank among digit strings ordered by length, then
/// value, plus one. `None` for longer strings.
#[inline]
pub(crate) fn encode_digits(digits: &[u8]) -> Option<u64> {
    if digits.len() > 19 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        value = value * 10 + u64::from(b - b'0');
    }
    // Largest: 10^19 - 1 + 1_111_111_111_111_111_111 < 2^64.
    Some(value + DIGIT_STRING_OFFSET[digits.len()])
}

/// The set of claimed ids.
struct IdSet {
    /// Open addressing with linear probing; 0 marks an empty slot (encoded keys are >= 1).
    slots: Vec<u64>,
    /// Occupied slots.
    len: usize,
    /// Ids of 20 digits or more.
    long: FastSet<Box<[u8]>>,
}

impl IdSet {
    fn with_capacity(expected: usize) -> Self {
        let slots = (expected.saturating_mul(2)).next_power_of_two().max(64);
        IdSet { slots: vec![0; slots], len: 0, long: FastSet::default() }
    }

    #[inline(always)]
    fn home(key: u64, mask: usize) -> usize {
        fold_mul(key ^ 0x9e37_79b9_7f4a_7c15, 0xf135_7aea_2e62_a9c5) as usize & mask
    }

    /// Claims `id` (trimmed digits); true when it was not claimed before.
    #[inline]
    fn claim(&mut self, id: &[u8]) -> bool {
        match encode_digits(id) {
            Some(key) => self.insert(key),
            None if self.long.contains(id) => false,
            None => self.long.insert(id.into()),
        }
    }

    /// Loads the home slot of `id` so a later [`IdSet::claim`] finds it in cache.
    #[inline(always)]
    fn touch(&self, id: &[u8]) -> u64 {
        match encode_digits(id) {
            Some(key) => self.slots[Self::home(key, self.slots.len() - 1)],
            None => 0,
        }
    }

    #[inline]
    fn insert(&mut self, key: u64) -> bool {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = Self::home(key, mask);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                self.slots[i] = key;
                self.len += 1;
                return true;
            }
            if slot == key {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for key in old.into_iter().filter(|&k| k != 0) {
            let mut i = Self::home(key, mask);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = key;
        }
    }
}

/// No log slot yet.
const NO_SLOT: usize = usize::MAX;

/// A customer with its current day and week windows.
struct Customer {
    /// UTC day of the inline day window.
    day: i32,
    /// Latest day this customer has had a window for (no window exists for any later day).
    max_day: i32,
    /// Canonical attempts in the inline day window.
    attempts: u32,
    /// Accepted effective total of the inline day window (1/10,000 cent).
    day_total: u128,
    /// Where the inline day window lives in the day log, if it has been spilled before.
    day_slot: usize,
    /// Week of the inline week window.
    week: i32,
    /// Latest week this customer has had a window for.
    max_week: i32,
    /// Accepted effective total of the inline week window (1/10,000 cent).
    week_total: u128,
    /// Where the inline week window lives in the week log, if it has been spilled before.
    week_slot: usize,
}

/// A spilled day window.
#[derive(Clone, Copy)]
struct DayEntry {
    key: u64,
    attempts: u32,
    total: u128,
}

/// A spilled week window.
#[derive(Clone, Copy)]
struct WeekEntry {
    key: u64,
    total: u128,
}

/// Packs a customer index and a signed day or week number into one key.
#[inline(always)]
fn window_key(customer: usize, period: i32) -> u64 {
    (customer as u64) << 32 | u64::from(period as u32)
}

/// An append-only log of spilled windows with a lazily built index by key.
struct Log<E> {
    entries: Vec<E>,
    index: FastMap<u64, usize>,
    /// `entries[..indexed]` are in `index`.
    indexed: usize,
}

impl<E: Copy> Log<E> {
    fn new() -> Self {
        Log { entries: Vec::new(), index: FastMap::default(), indexed: 0 }
    }

    /// Writes `entry` back to `*slot`, or appends it and records the slot.
    #[inline]
    fn spill(&mut self, entry: E, slot: &mut usize) {
        if *slot == NO_SLOT {
            *slot = self.entries.len();
            self.entries.push(entry);
        } else {
            self.entries[*slot] = entry;
        }
    }

    /// The slot of the entry with `key`, if one was ever spilled.
    #[cold]
    fn find(&mut self, key: u64, key_of: impl Fn(&E) -> u64) -> Option<usize> {
        for (pos, entry) in self.entries.iter().enumerate().skip(self.indexed) {
            self.index.insert(key_of(entry), pos);
        }
        self.indexed = self.entries.len();
        self.index.get(&key).copied()
    }
}

/// Limits, switches and the remembered state of a run.
pub(crate) struct State {
    daily_attempts: u32,
    /// Limits pre-scaled to 1/10,000 cent.
    daily_limit: u128,
    weekly_limit: u128,
    week_start: i64,
    monday_multiplier_e4: u128,
    prime_gate: bool,
    prime_cap: u128,
    prime_daily_accepts: u32,
    ids: IdSet,
    /// Encoded customer ids of at most 19 digits to their index in `customers`.
    short_customers: FastMap<u64, u32>,
    /// Longer customer ids to their index in `customers`.
    long_customers: FastMap<Box<[u8]>, u32>,
    customers: Vec<Customer>,
    days: Log<DayEntry>,
    weeks: Log<WeekEntry>,
    /// UTC day to accepted prime-id attempts that day (all customers).
    prime_accepts: FastMap<i32, u32>,
}

impl State {
    pub(crate) fn new(rules: &Rules, input_len: usize) -> Self {
        // Lines are typically ~90 bytes; size the id table for that so it rarely grows.
        let expected_lines = (input_len / 96).min(1 << 26);
        State {
            daily_attempts: rules.daily_attempts,
            daily_limit: u128::from(rules.daily_amount_cents) * 10_000,
            weekly_limit: u128::from(rules.weekly_amount_cents) * 10_000,
            week_start: i64::from(rules.week_start % 7),
            monday_multiplier_e4: u128::from(rules.monday_multiplier_e4),
            prime_gate: rules.prime_gate,
            prime_cap: u128::from(rules.prime_amount_cap_cents) * 10_000,
            prime_daily_accepts: rules.prime_daily_accepts,
            ids: IdSet::with_capacity(expected_lines),
            short_customers: FastMap::default(),
            long_customers: FastMap::default(),
            customers: Vec::new(),
            days: Log::new(),
            weeks: Log::new(),
            prime_accepts: FastMap::default(),
        }
    }

    /// Index of a customer, creating it (with empty windows for `day` and `week`) on first
    /// sight.
    #[inline]
    fn customer_index(&mut self, customer: &[u8], day: i32, week: i32) -> usize {
        let next = self.customers.len() as u32;
        let index = match encode_digits(customer) {
            Some(key) => *self.short_customers.entry(key).or_insert(next),
            None => match self.long_customers.get(customer) {
                Some(&index) => index,
                None => {
                    self.long_customers.insert(customer.into(), next);
                    next
                }
            },
        };
        if index == next {
            self.customers.push(Customer {
                day,
                max_day: day,
                attempts: 0,
                day_total: 0,
                day_slot: NO_SLOT,
                week,
                max_week: week,
                week_total: 0,
                week_slot: NO_SLOT,
            });
        }
        index as usize
    }

    /// Makes `day` the inline day window of customer `ci`.
    #[inline(never)]
    fn switch_day(&mut self, ci: usize, day: i32) {
        let c = &mut self.customers[ci];
        let spilled = DayEntry { key: window_key(ci, c.day), attempts: c.attempts, total: c.day_total };
        self.days.spill(spilled, &mut c.day_slot);
        c.day = day;
        let found = if day > c.max_day {
            c.max_day = day;
            None
        } else {
            self.days.find(window_key(ci, day), |e| e.key)
        };
        match found {
            Some(slot) => {
                let entry = self.days.entries[slot];
                c.attempts = entry.attempts;
                c.day_total = entry.total;
                c.day_slot = slot;
            }
            None => {
                c.attempts = 0;
                c.day_total = 0;
                c.day_slot = NO_SLOT;
            }
        }
    }

    /// Makes `week` the inline week window of customer `ci`.
    #[inline(never)]
    fn switch_week(&mut self, ci: usize, week: i32) {
        let c = &mut self.customers[ci];
        let spilled = WeekEntry { key: window_key(ci, c.week), total: c.week_total };
        self.weeks.spill(spilled, &mut c.week_slot);
        c.week = week;
        let found = if week > c.max_week {
            c.max_week = week;
            None
        } else {
            self.weeks.find(window_key(ci, week), |e| e.key)
        };
        match found {
            Some(slot) => {
                c.week_total = self.weeks.entries[slot].total;
                c.week_slot = slot;
            }
            None => {
                c.week_total = 0;
                c.week_slot = NO_SLOT;
            }
        }
    }

    /// Brings the id-table slots of the given ids into cache (the loads are independent, so
    /// their misses overlap); purely a speed hint.
    #[inline]
    pub(crate) fn touch_ids<'a>(&self, ids: impl Iterator<Item = &'a [u8]>) {
        let mut sink = 0u64;
        for id in ids {
            sink ^= self.ids.touch(id);
        }
        std::hint::black_box(sink);
    }

    /// Decides a well-formed line and updates the state.
    #[inline]
    pub(crate) fn decide(&mut self, valid: &Valid<'_>) -> bool {
        if !self.ids.claim(valid.id) {
            return false;
        }
        let day = valid.day;
        let day64 = i64::from(day);
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        let week = (day64 + 3 - self.week_start).div_euclid(7) as i32;
        let ci = self.customer_index(valid.customer, day, week);
        if self.customers[ci].day != day {
            self.switch_day(ci, day);
        }
        if self.customers[ci].week != week {
            self.switch_week(ci, week);
        }
        let multiplier = if (day64 + 3).rem_euclid(7) == 0 { self.monday_multiplier_e4 } else { 10_000 };
        let effective = valid.cents.saturating_mul(multiplier);

        let c = &mut self.customers[ci];
        let attempts_before = c.attempts;
        c.attempts = c.attempts.saturating_add(1);
        if attempts_before >= self.daily_attempts {
            return false;
        }
        let prime = self.prime_gate && prime::is_prime_decimal(valid.id);
        if prime {
            if effective > self.prime_cap {
                return false;
            }
            let used = self.prime_accepts.get(&day).copied().unwrap_or(0);
            if used >= self.prime_daily_accepts {
                return false;
            }
        }
        let day_total = c.day_total.saturating_add(effective);
        if day_total > self.daily_limit {
            return false;
        }
        let week_total = c.week_total.saturating_add(effective);
        if week_total > self.weekly_limit {
            return false;
        }
        c.day_total = day_total;
        c.week_total = week_total;
        if prime {
            let used = self.prime_accepts.entry(day).or_insert(0);
            *used = used.saturating_add(1);
        }
        true
    }
}
