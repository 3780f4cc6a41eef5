//! Integer-keyed tables for per-event state: ids and customers as `u64` keys, in
//! open-addressing tables whose slots a node can prefetch a batch ahead.
//!
//! Ids and customer ids are digit strings kept as written, so `"007"` and `"7"` differ. A
//! string of up to [`MAX_PACKED_DIGITS`] digits packs losslessly into one non-zero `u64`
//! (its length above its value); longer strings stay strings, in ordinary hash tables.
//!
//! The tables are at most half full, so the slot a key hashes to is, nearly always, the slot
//! that holds it or an empty one: one cache line per lookup, and that line can be fetched
//! while earlier events are still being decided ([`prefetch`]).

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

/// Longest digit string [`pack_digits`] packs: 10^17 - 1 fits in 57 bits, the length in 7.
pub const MAX_PACKED_DIGITS: usize = 17;

/// Longest digit string [`pack_short_digits`] packs into 32 bits.
pub const MAX_SHORT_DIGITS: usize = 9;

/// Packs a non-empty string of at most [`MAX_SHORT_DIGITS`] ASCII digits into a non-zero
/// `u32` that keeps its length: its rank among digit strings ordered by length, then value
/// (`"0"` is 1, `"9"` is 10, `"00"` is 11, ...). Half the memory of [`pack_digits`] for the
/// ids most inputs have.
#[inline]
pub fn pack_short_digits(digits: &[u8]) -> Option<u32> {
    if digits.len() > MAX_SHORT_DIGITS {
        return None;
    }
    let value = pack_digits(digits)? & ((1 << 57) - 1);
    // Strings shorter than `len` digits: 10 + 100 + ... = (10^len - 10) / 9, plus 1 for non-zero.
    let shorter = (10u64.pow(digits.len() as u32) - 10) / 9;
    Some((value + shorter + 1) as u32)
}

/// Packs a non-empty string of ASCII digits into a non-zero key that keeps its length.
/// `None` for longer strings (or non-digits).
#[inline]
pub fn pack_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_PACKED_DIGITS {
        return None;
    }
    let mut value = 0u64;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some((digits.len() as u64) << 57 | value)
}

/// Asks the CPU to bring `value`'s cache line in. A hint only: nothing observable changes.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a cache hint; it does not fault, read into the program or write
    // anything, and the address comes from a live reference. SSE is baseline on x86_64.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// A key of a [`KeyMap`]: an unsigned integer; 0 marks an empty slot.
pub trait SlotKey: Copy + Eq + Default + std::hash::Hash {}
impl SlotKey for u32 {}
impl SlotKey for u64 {}

/// An open-addressing map from non-zero integer keys to small `Copy` values.
pub struct KeyMap<V, K = u64> {
    slots: Vec<(K, V)>,
    len: usize,
    mask: usize,
    hasher: RandomState,
}

impl<V: Copy + Default, K: SlotKey> Default for KeyMap<V, K> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V: Copy + Default, K: SlotKey> KeyMap<V, K> {
    pub fn with_capacity(expected: usize) -> Self {
        let slots = (expected * 2).next_power_of_two().max(64);
        KeyMap {
            slots: vec![(K::default(), V::default()); slots],
            len: 0,
            mask: slots - 1,
            hasher: RandomState::default(),
        }
    }

    #[inline(always)]
    fn home(&self, key: K) -> usize {
        self.hasher.hash_one(key) as usize & self.mask
    }

    /// Prefetches the slot `key` hashes to.
    #[inline(always)]
    pub fn prefetch(&self, key: K) {
        prefetch(&self.slots[self.home(key)]);
    }

    #[inline]
    pub fn get(&self, key: K) -> Option<V> {
        let mut i = self.home(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == K::default() {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts `key` with `value` unless present. Returns the value now held, and whether it
    /// was inserted.
    #[inline]
    pub fn get_or_insert(&mut self, key: K, value: V) -> (V, bool) {
        debug_assert!(key != K::default(), "0 marks an empty slot");
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.home(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return (v, false);
            }
            if k == K::default() {
                self.slots[i] = (key, value);
                self.len += 1;
                return (value, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Quadruples the table: fewer rehashes (each moves every key to a cold new table) for at
    /// most four times the memory of a doubling table.
    #[cold]
    fn grow(&mut self) {
        let mut bigger = KeyMap::with_capacity(self.slots.len() * 2);
        for &(k, v) in self.slots.iter().filter(|(k, _)| *k != K::default()) {
            bigger.get_or_insert(k, v);
        }
        *self = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_leading_zeros_apart() {
        assert_ne!(pack_digits(b"7"), pack_digits(b"007"));
        assert_eq!(pack_digits(b"7"), pack_digits(b"7"));
        assert!(pack_digits(b"99999999999999999").is_some());
        assert_eq!(pack_digits(b"999999999999999999"), None);
        assert_eq!(pack_digits(b""), None);
        assert_eq!(pack_digits(b"1a"), None);
        assert!(pack_digits(b"0").unwrap() != 0);
    }

    #[test]
    fn short_packing_is_a_bijection_on_short_digit_strings() {
        assert_eq!(pack_short_digits(b"0"), Some(1));
        assert_eq!(pack_short_digits(b"9"), Some(10));
        assert_eq!(pack_short_digits(b"00"), Some(11));
        assert_eq!(pack_short_digits(b"99"), Some(110));
        assert_eq!(pack_short_digits(b"000"), Some(111));
        assert!(pack_short_digits(b"999999999").is_some());
        assert_eq!(pack_short_digits(b"1234567890"), None);
        let mut seen = std::collections::HashSet::new();
        for len in 1..=4 {
            for value in 0..10u32.pow(len) {
                let text = format!("{value:0len$}", len = len as usize);
                assert!(seen.insert(pack_short_digits(text.as_bytes()).unwrap()), "{text}");
            }
        }
    }

    #[test]
    fn map_grows_and_keeps_every_key() {
        let mut map: KeyMap<u32, u64> = KeyMap::default();
        for i in 1..=10_000u64 {
            assert_eq!(map.get_or_insert(i * 7919, i as u32), (i as u32, true));
        }
        for i in 1..=10_000u64 {
            assert_eq!(map.get(i * 7919), Some(i as u32));
            assert_eq!(map.get_or_insert(i * 7919, 0), (i as u32, false));
        }
        assert_eq!(map.get(3), None);
        assert_eq!(map.len(), 10_000);
    }
}
