//! Everything a run remembers, laid out so that a time-ordered stream touches little memory.
//!
//! - Claimed ids: open-addressing tables of integer keys (ids of up to 19 digits, encoded without
//!   losing leading zeros; 32-bit slots for ids of up to 9 digits), one probe sequence per line,
//!   prefetched while the line's batch is parsed; longer ids in a separate hash set.
//! - Customers: interned to dense indices through an open-addressing index (its slot, then the
//!   customer's state, are prefetched a batch ahead). Each customer keeps its *current* day
//!   window and week window inline. Moving to another day or week spills the current window to
//!   an append-only log; a window is looked up again only when a line goes back to an earlier
//!   period than the customer's latest, through a hash index over the log that is brought up to
//!   date lazily at that moment. A time-ordered stream therefore never hashes a window key,
//!   while any order still finds every earlier window exactly (random order costs a few more
//!   cache misses per line than plain per-window hash maps would).

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

/// The numeric value of the digit string of length `len` that [`encode_digits`] mapped to `key`.
#[inline(always)]
pub(crate) fn decode_value(key: u64, len: usize) -> u64 {
    key - DIGIT_STRING_OFFSET[len]
}

/// Asks the CPU to bring `value` into cache, so that a later access does not wait for memory.
/// Purely a hint: it changes nothing the program can observe.
#[inline(always)]
fn prefetch<V>(value: &V) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a cache hint: it never faults (the address is a live reference
    // anyway), reads nothing into the program and changes no state the program can observe. SSE
    // is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Multiply-shift hash of a non-zero key onto `0..len`.
#[inline(always)]
fn slot_of(key: u64, len: usize) -> usize {
    let hash = fold_mul(key ^ 0x9e37_79b9_7f4a_7c15, 0xf135_7aea_2e62_a9c5);
    ((u128::from(hash) * len as u128) >> 64) as usize
}

/// A key of an [`OpenSet`]: an unsigned integer where 0 marks an empty slot.
trait SlotKey: Copy + Eq {
    const EMPTY: Self;
    fn widen(self) -> u64;
}

impl SlotKey for u32 {
    const EMPTY: Self = 0;
    #[inline(always)]
    fn widen(self) -> u64 {
        u64::from(self)
    }
}

impl SlotKey for u64 {
    const EMPTY: Self = 0;
    #[inline(always)]
    fn widen(self) -> u64 {
        self
    }
}

/// Open addressing with linear probing over a flat array of non-zero keys, at most 3/4 full.
/// The capacity is not a power of two: the hash is mapped onto it with a multiply-shift, so the
/// table can be sized close to need (fewer pages means fewer TLB misses, which dominate random
/// access here).
struct OpenSet<K> {
    slots: Vec<K>,
    len: usize,
}

impl<K: SlotKey> OpenSet<K> {
    fn with_capacity(expected: usize) -> Self {
        OpenSet { slots: vec![K::EMPTY; (expected + expected / 3).max(64)], len: 0 }
    }

    #[inline(always)]
    fn home(&self, key: K) -> usize {
        slot_of(key.widen(), self.slots.len())
    }

    /// Prefetches the home slot of `key`, so that a later insert does not wait for memory.
    #[inline(always)]
    fn prefetch(&self, key: K) {
        prefetch(&self.slots[self.home(key)]);
    }

    /// Inserts a non-zero `key`; true when it was absent.
    #[inline]
    fn insert(&mut self, key: K) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i];
            if slot == K::EMPTY {
                self.slots[i] = key;
                self.len += 1;
                return true;
            }
            if slot == key {
                return false;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let doubled = vec![K::EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.len = 0;
        for key in old.into_iter().filter(|&k| k != K::EMPTY) {
            self.insert(key);
        }
    }
}

/// The set of claimed ids.
struct IdSet {
    /// Ids whose [`encode_digits`] key fits 32 bits (every id of up to 9 digits).
    narrow: OpenSet<u32>,
    /// Other ids of up to 19 digits.
    wide: OpenSet<u64>,
    /// Ids of 20 digits or more.
    long: FastSet<Box<[u8]>>,
}

impl IdSet {
    fn with_capacity(expected: usize) -> Self {
        IdSet { narrow: OpenSet::with_capacity(expected), wide: OpenSet::with_capacity(0), long: FastSet::default() }
    }

    /// Claims `id` (trimmed digits, `key` its [`encode_digits`] or 0 when longer than 19 digits);
    /// true when it was not claimed before.
    #[inline]
    fn claim(&mut self, id: &[u8], key: u64) -> bool {
        if key == 0 {
            if self.long.contains(id) { false } else { self.long.insert(id.into()) }
        } else if let Ok(narrow) = u32::try_from(key) {
            self.narrow.insert(narrow)
        } else {
            self.wide.insert(key)
        }
    }

    /// Prefetches the slot a later [`IdSet::claim`] of `key` starts at.
    #[inline(always)]
    fn prefetch(&self, key: u64) {
        if let Ok(narrow) = u32::try_from(key) {
            self.narrow.prefetch(narrow);
        } else {
            self.wide.prefetch(key);
        }
    }
}

/// Customer ids of up to 19 digits ([`encode_digits`] keys) to dense customer numbers: open
/// addressing with linear probing, at most 3/4 full, so that a batch can prefetch its slots.
struct CustomerIndex {
    /// `(key, number)`; key 0 marks an empty slot.
    slots: Vec<(u64, u32)>,
    len: usize,
}

impl CustomerIndex {
    fn new() -> Self {
        CustomerIndex { slots: vec![(0, 0); 64], len: 0 }
    }

    #[inline(always)]
    fn prefetch(&self, key: u64) {
        prefetch(&self.slots[slot_of(key, self.slots.len())]);
    }

    /// The number of the customer with `key`, if known.
    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        let mut i = slot_of(key, self.slots.len());
        loop {
            let (slot_key, number) = self.slots[i];
            if slot_key == key {
                return Some(number);
            }
            if slot_key == 0 {
                return None;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    /// The number of the customer with `key`, giving it `next` if it is new.
    #[inline]
    fn get_or_insert(&mut self, key: u64, next: u32) -> u32 {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mut i = slot_of(key, self.slots.len());
        loop {
            let (slot_key, number) = self.slots[i];
            if slot_key == key {
                return number;
            }
            if slot_key == 0 {
                self.slots[i] = (key, next);
                self.len += 1;
                return next;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let doubled = vec![(0, 0); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.len = 0;
        for (key, number) in old.into_iter().filter(|&(k, _)| k != 0) {
            self.get_or_insert(key, number);
        }
    }
}

/// No log slot yet.
const NO_SLOT: usize = usize::MAX;

/// A customer with its current day and week windows.
struct Customer<T> {
    /// UTC day of the inline day window.
    day: i32,
    /// Latest day this customer has had a window for (no window exists for any later day).
    max_day: i32,
    /// Canonical attempts in the inline day window.
    attempts: u32,
    /// Accepted effective total of the inline day window (1/10,000 cent).
    day_total: T,
    /// Where the inline day window lives in the day log, if it has been spilled before.
    day_slot: usize,
    /// Week of the inline week window.
    week: i32,
    /// Latest week this customer has had a window for.
    max_week: i32,
    /// Accepted effective total of the inline week window (1/10,000 cent).
    week_total: T,
    /// Where the inline week window lives in the week log, if it has been spilled before.
    week_slot: usize,
}

/// A spilled day window.
#[derive(Clone, Copy)]
struct DayEntry<T> {
    key: u64,
    attempts: u32,
    total: T,
}

/// A spilled week window.
#[derive(Clone, Copy)]
struct WeekEntry<T> {
    key: u64,
    total: T,
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
    fn with_capacity(capacity: usize) -> Self {
        Log { entries: Vec::with_capacity(capacity), index: FastMap::default(), indexed: 0 }
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

/// An accepted-total type: `u64` when every limit fits (the common case: smaller state, cheaper
/// arithmetic), `u128` otherwise. Effective amounts above the type's range saturate, which is
/// exact because every limit is strictly below the saturated value.
pub(crate) trait Total: Copy + Default + Ord {
    /// Whether every scaled limit is strictly below this type's maximum.
    fn holds(limits: &[u128]) -> bool;
    /// `x`, saturated to this type's maximum.
    fn saturate(x: u128) -> Self;
    fn saturating_add(self, other: Self) -> Self;
}

impl Total for u64 {
    fn holds(limits: &[u128]) -> bool {
        limits.iter().all(|&l| l < u128::from(u64::MAX))
    }

    #[inline(always)]
    fn saturate(x: u128) -> Self {
        u64::try_from(x).unwrap_or(u64::MAX)
    }

    #[inline(always)]
    fn saturating_add(self, other: Self) -> Self {
        u64::saturating_add(self, other)
    }
}

impl Total for u128 {
    fn holds(limits: &[u128]) -> bool {
        limits.iter().all(|&l| l < u128::MAX)
    }

    #[inline(always)]
    fn saturate(x: u128) -> Self {
        x
    }

    #[inline(always)]
    fn saturating_add(self, other: Self) -> Self {
        u128::saturating_add(self, other)
    }
}

/// The three limits of `rules` in 1/10,000 cent: daily, weekly, prime cap.
pub(crate) fn scaled_limits(rules: &Rules) -> [u128; 3] {
    [rules.daily_amount_cents, rules.weekly_amount_cents, rules.prime_amount_cap_cents].map(|c| u128::from(c) * 10_000)
}

/// Limits, switches and the remembered state of a run.
pub(crate) struct State<T> {
    daily_attempts: u32,
    /// Limits pre-scaled to 1/10,000 cent.
    daily_limit: T,
    weekly_limit: T,
    week_start: i64,
    monday_multiplier_e4: u128,
    prime_gate: bool,
    prime_cap: T,
    prime_daily_accepts: u32,
    ids: IdSet,
    /// Encoded customer ids of at most 19 digits to their index in `customers`.
    short_customers: CustomerIndex,
    /// Longer customer ids to their index in `customers`.
    long_customers: FastMap<Box<[u8]>, u32>,
    customers: Vec<Customer<T>>,
    days: Log<DayEntry<T>>,
    weeks: Log<WeekEntry<T>>,
    /// UTC day to accepted prime-id attempts that day (all customers).
    prime_accepts: FastMap<i32, u32>,
}

impl<T: Total> State<T> {
    /// Fresh state; `T` must hold the scaled limits ([`Total::holds`]).
    pub(crate) fn new(rules: &Rules, input_len: usize) -> Self {
        // Lines are typically ~90 bytes; size the id table and logs for a little more lines than
        // that (the logs only reserve address space, pages are touched as they fill).
        let expected_lines = (input_len / 80).min(1 << 26);
        let [daily_limit, weekly_limit, prime_cap] = scaled_limits(rules).map(T::saturate);
        State {
            daily_attempts: rules.daily_attempts,
            daily_limit,
            weekly_limit,
            week_start: i64::from(rules.week_start % 7),
            monday_multiplier_e4: u128::from(rules.monday_multiplier_e4),
            prime_gate: rules.prime_gate,
            prime_cap,
            prime_daily_accepts: rules.prime_daily_accepts,
            ids: IdSet::with_capacity(expected_lines),
            short_customers: CustomerIndex::new(),
            long_customers: FastMap::default(),
            customers: Vec::new(),
            days: Log::with_capacity(expected_lines),
            weeks: Log::with_capacity(expected_lines / 2),
            prime_accepts: FastMap::default(),
        }
    }

    /// Index of a customer (`key` its [`encode_digits`], 0 when longer than 19 digits), creating
    /// it (with empty windows for `day` and `week`) on first sight.
    #[inline]
    fn customer_index(&mut self, customer: &[u8], key: u64, day: i32, week: i32) -> usize {
        let next = self.customers.len() as u32;
        let index = if key != 0 {
            self.short_customers.get_or_insert(key, next)
        } else {
            match self.long_customers.get(customer) {
                Some(&index) => index,
                None => {
                    self.long_customers.insert(customer.into(), next);
                    next
                }
            }
        };
        if index == next {
            self.customers.push(Customer {
                day,
                max_day: day,
                attempts: 0,
                day_total: T::default(),
                day_slot: NO_SLOT,
                week,
                max_week: week,
                week_total: T::default(),
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
                c.day_total = T::default();
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
                c.week_total = T::default();
                c.week_slot = NO_SLOT;
            }
        }
    }

    /// Prefetches the id-table slot of an id about to be claimed (`key` from [`encode_digits`],
    /// 0 for long ids); purely a speed hint.
    #[inline(always)]
    pub(crate) fn prefetch_id(&self, key: u64) {
        if key != 0 {
            self.ids.prefetch(key);
        }
    }

    /// Whether there are enough customers for their index and state to miss the caches (below
    /// that, prefetching them costs more than it saves).
    #[inline]
    pub(crate) fn many_customers(&self) -> bool {
        self.customers.len() >= 1 << 14
    }

    /// Prefetches the customer-index slot of a customer about to be looked up (`key` from
    /// [`encode_digits`], 0 for long ids); purely a speed hint.
    #[inline(always)]
    pub(crate) fn prefetch_customer_slot(&self, key: u64) {
        if key != 0 {
            self.short_customers.prefetch(key);
        }
    }

    /// Prefetches the state of a known customer (once its index slot is in cache); purely a
    /// speed hint.
    #[inline(always)]
    pub(crate) fn prefetch_customer(&self, key: u64) {
        if key != 0 {
            if let Some(number) = self.short_customers.get(key) {
                prefetch(&self.customers[number as usize]);
            }
        }
    }

    /// Decides a well-formed line and updates the state.
    #[inline]
    pub(crate) fn decide(&mut self, valid: &Valid<'_>) -> bool {
        if !self.ids.claim(valid.id, valid.id_key) {
            return false;
        }
        let day = valid.day;
        let day64 = i64::from(day);
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        let week = (day64 + 3 - self.week_start).div_euclid(7) as i32;
        let ci = self.customer_index(valid.customer, valid.customer_key, day, week);
        if self.customers[ci].day != day {
            self.switch_day(ci, day);
        }
        if self.customers[ci].week != week {
            self.switch_week(ci, week);
        }
        let multiplier = if (day64 + 3).rem_euclid(7) == 0 { self.monday_multiplier_e4 } else { 10_000 };
        let effective = T::saturate(valid.cents.saturating_mul(multiplier));

        let c = &mut self.customers[ci];
        let attempts_before = c.attempts;
        c.attempts = c.attempts.saturating_add(1);
        if attempts_before >= self.daily_attempts {
            return false;
        }
        // Every check is a predicate on the state before this line and the line is accepted
        // only if all pass, so they may be evaluated in any order: the cheap window checks run
        // before the primality test, which is then often unnecessary.
        let day_total = c.day_total.saturating_add(effective);
        let week_total = c.week_total.saturating_add(effective);
        if day_total > self.daily_limit || week_total > self.weekly_limit {
            return false;
        }
        let prime = self.prime_gate && prime::is_prime_id(valid.id, valid.id_key);
        if prime {
            if effective > self.prime_cap {
                return false;
            }
            let used = self.prime_accepts.get(&day).copied().unwrap_or(0);
            if used >= self.prime_daily_accepts {
                return false;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_strings_encode_to_distinct_non_zero_keys() {
        let mut seen = std::collections::HashSet::new();
        for s in ["0", "00", "000", "7", "07", "007", "9", "10", "99", "100"] {
            let key = encode_digits(s.as_bytes()).unwrap();
            assert!(key != 0 && seen.insert(key), "{s}");
            assert_eq!(decode_value(key, s.len()), s.parse::<u64>().unwrap());
        }
        let max = "9999999999999999999";
        assert_eq!(decode_value(encode_digits(max.as_bytes()).unwrap(), 19), 9_999_999_999_999_999_999);
        assert!(encode_digits(b"12345678901234567890").is_none());
        // Every id of up to 9 digits fits the narrow table.
        assert!(encode_digits(b"999999999").unwrap() <= u64::from(u32::MAX));
    }

    #[test]
    fn open_set_grows_and_finds_every_key() {
        let mut set: OpenSet<u32> = OpenSet::with_capacity(0);
        for round in 0..2 {
            for k in 1..=50_000u32 {
                let key = k.wrapping_mul(2_654_435_761) | 1;
                assert_eq!(set.insert(key), round == 0, "{key}");
            }
        }
        assert!(set.slots.len() * 3 >= set.len * 4);
    }

    #[test]
    fn customer_index_grows_and_keeps_numbers() {
        let mut index = CustomerIndex::new();
        for k in 1..=20_000u64 {
            assert_eq!(index.get(k * 7_919), None);
            assert_eq!(index.get_or_insert(k * 7_919, k as u32), k as u32);
        }
        for k in 1..=20_000u64 {
            assert_eq!(index.get(k * 7_919), Some(k as u32));
            assert_eq!(index.get_or_insert(k * 7_919, 0), k as u32);
        }
        assert_eq!(index.len, 20_000);
        assert!(index.slots.len() * 3 >= index.len * 4);
    }

    #[test]
    fn id_set_claims_narrow_wide_and_long_ids_once() {
        let mut ids = IdSet::with_capacity(4);
        for id in ["1", "01", "123456789", "1234567890123", "9999999999999999999", "123456789012345678901234567890"] {
            let key = encode_digits(id.as_bytes()).unwrap_or(0);
            assert!(ids.claim(id.as_bytes(), key), "{id}");
            assert!(!ids.claim(id.as_bytes(), key), "{id}");
        }
        assert_eq!(ids.narrow.len, 3);
        assert_eq!(ids.wide.len, 2);
        assert_eq!(ids.long.len(), 1);
    }
}
