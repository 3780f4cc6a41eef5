//! Primality of an `id` read as a decimal integer.
//!
//! Exact for every value that fits in a `u64` (trial division by the primes up to 53, then
//! deterministic Miller-Rabin: bases {2, 7, 61} below 2^32 with `u64` arithmetic, the first 12
//! prime bases with `u128` products above). Longer ids use Miller-Rabin over `num-bigint` with the
//! first 20 prime bases, as the contract asks.

use num_bigint::BigUint;

/// Primes used for trial division before Miller-Rabin.
const SMALL_PRIMES: [u64; 16] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53];

/// First 12 primes: deterministic Miller-Rabin bases for every n < 3.3 * 10^24 (so all of u64).
const BASES_U64: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];

/// Deterministic Miller-Rabin bases for every n < 4,759,123,141 (so all of u32).
const BASES_U32: [u64; 3] = [2, 7, 61];

/// First 20 primes: the Miller-Rabin bases for ids longer than a `u64`.
const BASES_BIG: [u32; 20] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
];

/// Is the decimal number written in `digits` (ASCII digits only, leading zeros allowed, possibly
/// empty, which reads as 0) prime?
pub(crate) fn is_prime_decimal(digits: &[u8]) -> bool {
    let first_significant = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[first_significant..];
    if significant.len() <= 20 {
        let mut value: u64 = 0;
        let mut fits = true;
        for &b in significant {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
            {
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

/// Exact primality for any `u64`.
pub(crate) fn is_prime_u64(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in SMALL_PRIMES {
        if n == p {
            return true;
        }
        if n % p == 0 {
            return false;
        }
    }
    // No prime factor up to 53 and n < 59^2: prime.
    if n < 59 * 59 {
        return true;
    }
    if n <= u64::from(u32::MAX) {
        miller_rabin_u32(n, &BASES_U32)
    } else {
        miller_rabin_u64(n, &BASES_U64)
    }
}

/// Splits n - 1 into d * 2^s with d odd.
#[inline]
fn split_pow2(n: u64) -> (u64, u32) {
    let m = n - 1;
    let s = m.trailing_zeros();
    (m >> s, s)
}

/// Miller-Rabin for odd n < 2^32 (products fit in u64); every base must be < n.
fn miller_rabin_u32(n: u64, bases: &[u64]) -> bool {
    let (d, s) = split_pow2(n);
    let mul = |a: u64, b: u64| a * b % n;
    'bases: for &a in bases {
        let mut x = 1u64;
        let mut base = a % n;
        let mut e = d;
        while e > 0 {
            if e & 1 == 1 {
                x = mul(x, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// Miller-Rabin for odd n >= 2^32 with `u128` products; every base must be < n.
fn miller_rabin_u64(n: u64, bases: &[u64]) -> bool {
    let (d, s) = split_pow2(n);
    let mul = |a: u64, b: u64| (u128::from(a) * u128::from(b) % u128::from(n)) as u64;
    'bases: for &a in bases {
        let mut x = 1u64;
        let mut base = a % n;
        let mut e = d;
        while e > 0 {
            if e & 1 == 1 {
                x = mul(x, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
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
