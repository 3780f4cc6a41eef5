//! A small, fast, non-cryptographic hasher for the integer keys of the run state.
//!
//! Every word is mixed with a folded 64x64->128 multiply (the low and high halves of the product
//! XORed together), so both the low bits (hashbrown's bucket index) and the high bits (its control
//! tag) depend on every input bit. That matters here: the window keys pack a customer index in the
//! high half and a day number in the low half, and a plain FxHash multiply would leave the low
//! bits of the hash depending on the day only.

use std::hash::{BuildHasher, Hasher};

/// Odd 64-bit constant (the one rustc-hash 2 uses).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// Folded multiply: XOR of the two halves of the full 128-bit product.
#[inline(always)]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// `BuildHasher` for [`FoldHasher`]; stateless, so every map hashes the same way (no DoS
/// resistance is needed for a benchmark and test oracle).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FoldBuild;

impl BuildHasher for FoldBuild {
    type Hasher = FoldHasher;

    #[inline(always)]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { hash: 0x243f_6a88_85a3_08d3 }
    }
}

/// The hasher: one folded multiply per 64-bit word.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FoldHasher {
    hash: u64,
}

impl FoldHasher {
    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.hash = fold_mul(self.hash ^ word, K);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length tag keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline(always)]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline(always)]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }

    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline(always)]
    fn write_i32(&mut self, i: i32) {
        self.add(i as u32 as u64);
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with the crate's hasher.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, FoldBuild>;
/// A `HashSet` with the crate's hasher.
pub(crate) type FastSet<K> = std::collections::HashSet<K, FoldBuild>;
