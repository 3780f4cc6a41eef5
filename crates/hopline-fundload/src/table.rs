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

/// An open-addressing map from non-zero `u64` keys to small `Copy` values.
pub struct KeyMap<V> {
    slots: Vec<(u64, V)>,
    len: usize,
    mask: usize,
    hasher: RandomState,
}

impl<V: Copy + Default> Default for KeyMap<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V: Copy + Default> KeyMap<V> {
    pub fn with_capacity(expected: usize) -> Self {
        let slots = (expected * 2).next_power_of_two().max(64);
        KeyMap { slots: vec![(0, V::default()); slots], len: 0, mask: slots - 1, hasher: RandomState::default() }
    }

    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        self.hasher.hash_one(key) as usize & self.mask
    }

    /// Prefetches the slot `key` hashes to.
    #[inline(always)]
    pub fn prefetch(&self, key: u64) {
        prefetch(&self.slots[self.home(key)]);
    }

    #[inline]
    pub fn get(&self, key: u64) -> Option<V> {
        let mut i = self.home(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts `key` with `value` unless present. Returns the value now held, and whether it
    /// was inserted.
    #[inline]
    pub fn get_or_insert(&mut self, key: u64, value: V) -> (V, bool) {
        debug_assert_ne!(key, 0, "0 marks an empty slot");
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.home(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return (v, false);
            }
            if k == 0 {
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

    #[cold]
    fn grow(&mut self) {
        let mut bigger = KeyMap::with_capacity(self.slots.len());
        for &(k, v) in self.slots.iter().filter(|(k, _)| *k != 0) {
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
    fn map_grows_and_keeps_every_key() {
        let mut map: KeyMap<u32> = KeyMap::default();
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
