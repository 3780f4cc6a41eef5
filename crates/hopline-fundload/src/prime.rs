//! Primality of load ids, for the prime gate.
//!
//! An id is a string of digits of any length, read as an integer (leading zeros ignored).
//! Ids that fit in 64 bits get a deterministic Miller-Rabin test (exact for every u64);
//! longer ones use Miller-Rabin over big integers with the first 20 prime bases, which is
//! exact below 3.3 × 10^24 and has no known counterexample above.

use num_bigint::BigUint;

const SMALL_PRIMES: [u64; 20] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71];

/// Whether the decimal digits in `digits` denote a prime. Non-digits make it not prime.
pub fn is_prime_digits(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let significant = &digits[digits.iter().position(|&b| b != b'0').unwrap_or(digits.len())..];
    if significant.len() <= 19 {
        let n = significant.iter().fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        return is_prime_u64(n);
    }
    BigUint::parse_bytes(significant, 10).is_some_and(|n| is_prime_big(&n))
}

/// Deterministic for every `u64`.
pub fn is_prime_u64(n: u64) -> bool {
    if let Ok(small) = u32::try_from(n) {
        return is_prime_u32(small);
    }
    if n < 2 {
        return false;
    }
    for p in SMALL_PRIMES {
        if n % p == 0 {
            return n == p;
        }
    }
    if n < 71 * 71 {
        return true;
    }
    let (d, s) = split_power_of_two(n - 1);
    let bases: &[u64] =
        if n < 4_759_123_141 { &[2, 7, 61] } else { &[2, 325, 9375, 28178, 450775, 9780504, 1795265022] };
    bases.iter().all(|&a| strong_probable_prime(n, a % n, d, s))
}

/// Deterministic for every `u32`, in 32-bit arithmetic (cheaper divisions than 64-bit):
/// trial division by the first primes, then Miller-Rabin with bases 2, 7 and 61, which no
/// composite below 4,759,123,141 passes.
fn is_prime_u32(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    for p in SMALL_PRIMES {
        let p = p as u32;
        if n % p == 0 {
            return n == p;
        }
    }
    if n < 71 * 71 {
        return true;
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    let m = u64::from(n);
    [2u64, 7, 61].iter().all(|&a| {
        let a = a % m;
        if a == 0 {
            return true;
        }
        let mut x = pow_mod_small(a, u64::from(d), m);
        if x == 1 || x == m - 1 {
            return true;
        }
        for _ in 1..s {
            x = x * x % m;
            if x == m - 1 {
                return true;
            }
        }
        false
    })
}

/// `base^exp mod m` for `m` below 2^32: every product fits 64 bits.
fn pow_mod_small(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut result = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * base % m;
        }
        base = base * base % m;
        exp >>= 1;
    }
    result
}

fn split_power_of_two(m: u64) -> (u64, u32) {
    let s = m.trailing_zeros();
    (m >> s, s)
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

fn pow_mod(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut result = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul_mod(result, base, m);
        }
        base = mul_mod(base, base, m);
        exp >>= 1;
    }
    result
}

fn strong_probable_prime(n: u64, a: u64, d: u64, s: u32) -> bool {
    if a == 0 {
        return true;
    }
    let mut x = pow_mod(a, d, n);
    if x == 1 || x == n - 1 {
        return true;
    }
    for _ in 1..s {
        x = mul_mod(x, x, n);
        if x == n - 1 {
            return true;
        }
    }
    false
}

fn is_prime_big(n: &BigUint) -> bool {
    for p in SMALL_PRIMES {
        if (n % p) == BigUint::ZERO {
            return *n == BigUint::from(p);
        }
    }
    let one = BigUint::from(1u32);
    let n_minus_one = n - &one;
    let s = n_minus_one.trailing_zeros().unwrap_or(0);
    let d = &n_minus_one >> s;
    SMALL_PRIMES.iter().all(|&a| {
        let mut x = BigUint::from(a).modpow(&d, n);
        if x == one || x == n_minus_one {
            return true;
        }
        for _ in 1..s {
            x = x.modpow(&BigUint::from(2u32), n);
            if x == n_minus_one {
                return true;
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sieve(limit: usize) -> Vec<bool> {
        let mut prime = vec![true; limit];
        prime[0] = false;
        prime[1] = false;
        for i in 2..limit {
            if prime[i] {
                (i * i..limit).step_by(i).for_each(|j| prime[j] = false);
            }
        }
        prime
    }

    #[test]
    fn agrees_with_a_sieve_below_two_hundred_thousand() {
        for (n, expected) in sieve(200_000).into_iter().enumerate() {
            assert_eq!(is_prime_u64(n as u64), expected, "{n}");
        }
    }

    #[test]
    fn thirty_two_bit_path_agrees_with_the_sixty_four_bit_one_near_its_edge() {
        for n in (u64::from(u32::MAX) - 20_000)..=u64::from(u32::MAX) {
            let by_u128 = n >= 2
                && [2u64, 325, 9375, 28178, 450775, 9780504, 1795265022].iter().all(|&a| {
                    let (d, s) = split_power_of_two(n - 1);
                    SMALL_PRIMES.iter().all(|&p| n % p != 0 || n == p) && strong_probable_prime(n, a % n, d, s)
                });
            assert_eq!(is_prime_u64(n), by_u128, "{n}");
        }
    }

    #[test]
    fn zero_and_one_are_not_prime_and_leading_zeros_are_ignored() {
        assert!(!is_prime_digits(b"0"));
        assert!(!is_prime_digits(b"1"));
        assert!(!is_prime_digits(b"0001"));
        assert!(is_prime_digits(b"007"));
        assert!(is_prime_digits(b"7"));
        assert!(!is_prime_digits(b""));
    }

    #[test]
    fn large_known_primes_and_pseudoprimes() {
        assert!(is_prime_u64(18_446_744_073_709_551_557)); // largest u64 prime
        assert!(!is_prime_u64(3_215_031_751)); // strong pseudoprime to 2, 3, 5, 7
        assert!(!is_prime_u64(3_825_123_056_546_413_051)); // strong pseudoprime to the first 9 primes
        assert!(is_prime_digits(b"170141183460469231731687303715884105727")); // 2^127 - 1
        assert!(!is_prime_digits(b"170141183460469231731687303715884105729"));
        assert!(is_prime_digits(b"000000000000000000000000000000000000000000000000000000000000000000000000000000013"));
    }
}
