//! Primality of an `id` read as a decimal integer.
//!
//! Exact for every value that fits in a `u64` (trial division by the odd primes up to 127 with
//! multiplicative inverses, then deterministic Miller-Rabin in Montgomery form: bases {2, 7, 61}
//! below 2^32, Sinclair's 7 bases above). Longer ids use Miller-Rabin over `num-bigint` with the
//! first 20 prime bases, as the contract asks.

use num_bigint::BigUint;

/// Odd primes used for trial division before Miller-Rabin.
const SMALL_ODD_PRIMES: [u64; 30] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109,
    113, 127,
];

/// Smallest prime above the trial-division primes: below its square, surviving trial division
/// means prime.
const NEXT_PRIME: u64 = 131;

/// Inverse of odd `p` modulo 2^64 (Newton's iteration).
const fn inverse_mod_2_64(p: u64) -> u64 {
    let mut inv = p;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(p.wrapping_mul(inv)));
        i += 1;
    }
    inv
}

/// For each odd trial prime p: (p^-1 mod 2^64, u64::MAX / p). `n` is a multiple of p exactly
/// when `n * p^-1 (mod 2^64) <= u64::MAX / p`.
const TRIAL: [(u64, u64); 30] = {
    let mut table = [(0u64, 0u64); 30];
    let mut i = 0;
    while i < 30 {
        let p = SMALL_ODD_PRIMES[i];
        table[i] = (inverse_mod_2_64(p), u64::MAX / p);
        i += 1;
    }
    table
};

/// Jim Sinclair's 7 bases: deterministic Miller-Rabin for every n < 2^64.
const BASES_U64: [u64; 7] = [2, 325, 9_375, 28_178, 450_775, 9_780_504, 1_795_265_022];

/// Deterministic Miller-Rabin bases for every n < 4,759,123,141 (so all of u32).
const BASES_U32: [u64; 3] = [2, 7, 61];

/// First 20 primes: the Miller-Rabin bases for ids longer than a `u64`.
const BASES_BIG: [u32; 20] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71];

/// Is the decimal number written in `digits` (ASCII digits only, leading zeros allowed, possibly
/// empty, which reads as 0) prime?
pub(crate) fn is_prime_decimal(digits: &[u8]) -> bool {
    let first_significant = digits.iter().position(|&b| b != b'0').unwrap_or(digits.len());
    let significant = &digits[first_significant..];
    if significant.len() <= 20 {
        let mut value: u64 = 0;
        let mut fits = true;
        for &b in significant {
            match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))) {
                Some(v) => value = v,
                None => {
                    fits = false;
                    break;
                }
            }
        }
        if fits {
            return is_prime_u64(value);
        }
    }
    is_prime_big_decimal(significant)
}

/// Is the id prime? `digits` are its (trimmed) digits and `key` its
/// [`crate::state::encode_digits`], or 0 when it has more than 19 digits.
#[inline]
pub(crate) fn is_prime_id(digits: &[u8], key: u64) -> bool {
    if key != 0 { is_prime_u64(crate::state::decode_value(key, digits.len())) } else { is_prime_decimal(digits) }
}

/// Exact primality for any `u64`.
pub(crate) fn is_prime_u64(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 {
        return false;
    }
    for (p, (inverse, limit)) in SMALL_ODD_PRIMES.iter().zip(TRIAL) {
        if n.wrapping_mul(inverse) <= limit {
            return n == *p;
        }
    }
    // No prime factor up to 127 and n < 131^2: prime.
    if n < NEXT_PRIME * NEXT_PRIME {
        return true;
    }
    if n <= u64::from(u32::MAX) { miller_rabin(n, &BASES_U32) } else { miller_rabin(n, &BASES_U64) }
}

/// Montgomery arithmetic modulo an odd `n` with R = 2^64: no division on the hot path.
struct Montgomery {
    n: u64,
    /// n * n_inv == 1 (mod 2^64).
    n_inv: u64,
    /// R^2 mod n, to enter Montgomery form.
    r2: u64,
}

impl Montgomery {
    fn new(n: u64) -> Self {
        debug_assert!(n % 2 == 1);
        // Newton's iteration doubles the correct low bits: 3 -> 6 -> 12 -> 24 -> 48 -> 96.
        let mut n_inv = n;
        for _ in 0..5 {
            n_inv = n_inv.wrapping_mul(2u64.wrapping_sub(n.wrapping_mul(n_inv)));
        }
        // R mod n = (2^64 - n) mod n, then R^2 mod n.
        let r = 0u64.wrapping_sub(n) % n;
        let r2 =
            if n <= u64::from(u32::MAX) { r * r % n } else { (u128::from(r) * u128::from(r) % u128::from(n)) as u64 };
        Montgomery { n, n_inv, r2 }
    }

    /// REDC: t * R^-1 mod n, for t < n * R.
    #[inline(always)]
    fn reduce(&self, t: u128) -> u64 {
        let m = (t as u64).wrapping_mul(self.n_inv);
        let mn_hi = ((u128::from(m) * u128::from(self.n)) >> 64) as u64;
        let t_hi = (t >> 64) as u64;
        // t - m * n is divisible by R; its low halves cancel exactly.
        let (r, borrow) = t_hi.overflowing_sub(mn_hi);
        if borrow { r.wrapping_add(self.n) } else { r }
    }

    #[inline(always)]
    fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce(u128::from(a) * u128::from(b))
    }

    /// a (< n) into Montgomery form.
    #[inline(always)]
    fn enter(&self, a: u64) -> u64 {
        self.mul(a, self.r2)
    }
}

/// Deterministic Miller-Rabin for odd n > 53 with the given bases (a base that is a multiple
/// of n proves nothing and is skipped).
fn miller_rabin(n: u64, bases: &[u64]) -> bool {
    let m = Montgomery::new(n);
    let one = m.enter(1);
    let minus_one = m.enter(n - 1);
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'bases: for &a in bases {
        let a = a % n;
        if a == 0 {
            continue;
        }
        let base = m.enter(a);
        let mut x = one;
        let mut power = base;
        let mut e = d;
        while e > 0 {
            if e & 1 == 1 {
                x = m.mul(x, power);
            }
            power = m.mul(power, power);
            e >>= 1;
        }
        if x == one || x == minus_one {
            continue;
        }
        for _ in 1..s {
            x = m.mul(x, x);
            if x == minus_one {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// Miller-Rabin with the first 20 prime bases over big integers, for ids that do not fit a `u64`.
/// `digits` is non-empty, all ASCII digits, without leading zeros.
pub(crate) fn is_prime_big_decimal(digits: &[u8]) -> bool {
    let Some(n) = BigUint::parse_bytes(digits, 10) else {
        return false;
    };
    is_prime_big(&n)
}

/// Miller-Rabin with the first 20 prime bases (exact below 2^64, probabilistic above, as the
/// contract specifies).
pub(crate) fn is_prime_big(n: &BigUint) -> bool {
    let two = BigUint::from(2u32);
    if *n < two {
        return false;
    }
    for p in BASES_BIG {
        let p_big = BigUint::from(p);
        if *n == p_big {
            return true;
        }
        if (n % p) == BigUint::ZERO {
            return false;
        }
    }
    let one = BigUint::from(1u32);
    let n_minus_1 = n - &one;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    'bases: for p in BASES_BIG {
        let mut x = BigUint::from(p).modpow(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = (&x * &x) % n;
            if x == n_minus_1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}
