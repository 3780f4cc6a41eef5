//! Timestamps: RFC 3339 date-times with a zone, reduced to the UTC day they fall on.
//!
//! Only the UTC calendar day matters to the rules (day and week windows, Mondays), so a
//! timestamp is read straight into a day number (days since 1970-01-01) without any
//! date-time library. Leap seconds, missing zones and impossible dates are refused.

use serde::Deserialize;

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t` and `z` may be lowercase, as RFC 3339
/// allows) and returns the UTC day: days since 1970-01-01, negative before it.
pub fn parse_utc_day(s: &[u8]) -> Option<i64> {
    parse_utc_day_cached(s, &mut DateCache::default())
}

/// The last calendar date read and its day number: input mostly comes in time order, so most
/// timestamps repeat the previous date and skip the calendar arithmetic.
#[derive(Debug, Clone, Default)]
pub struct DateCache {
    date: [u8; 10],
    day: i64,
}

/// [`parse_utc_day`], remembering the last date in `cache`.
#[inline]
pub fn parse_utc_day_cached(s: &[u8], cache: &mut DateCache) -> Option<i64> {
    let (date, rest) = s.split_first_chunk::<10>()?;
    let local_day = if *date == cache.date {
        cache.day
    } else {
        let day = parse_date(date)?;
        *cache = DateCache { date: *date, day };
        day
    };
    Some(local_day + minutes_after_local_midnight_in_utc(rest)?.div_euclid(24 * 60))
}

/// `YYYY-MM-DD` as a day number, if it is a real date.
fn parse_date(s: &[u8; 10]) -> Option<i64> {
    let year = i64::from(digits4(s, 0)?);
    let month = digits2(s, 5)?;
    let day = digits2(s, 8)?;
    if s[4] != b'-' || s[7] != b'-' || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `THH:MM:SS[.fraction](Z|±HH:MM)`: minutes from local midnight to the UTC time.
fn minutes_after_local_midnight_in_utc(s: &[u8]) -> Option<i64> {
    if s.len() < 10 || !matches!(s[0], b'T' | b't') || s[3] != b':' || s[6] != b':' {
        return None;
    }
    let (hour, minute, second) = (digits2(s, 1)?, digits2(s, 4)?, digits2(s, 7)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &s[9..];
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &tail[digits..];
    }
    let offset_minutes: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (digits2(rest, 1)?, digits2(rest, 4)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    Some(i64::from(hour) * 60 + i64::from(minute) - offset_minutes)
}

#[inline]
fn digit(s: &[u8], i: usize) -> Option<u32> {
    let b = s[i];
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

#[inline]
fn digits2(s: &[u8], i: usize) -> Option<u32> {
    Some(digit(s, i)? * 10 + digit(s, i + 1)?)
}

#[inline]
fn digits4(s: &[u8], i: usize) -> Option<u32> {
    Some(digits2(s, i)? * 100 + digits2(s, i + 2)?)
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub use hopline_model::clock::{civil_from_days, days_from_civil};

/// A day of the week, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    #[default]
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// The weekday of a UTC day number (1970-01-01 was a Thursday).
    pub fn of_day(day: i64) -> Weekday {
        const ALL: [Weekday; 7] = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ];
        ALL[(day + 3).rem_euclid(7) as usize]
    }

    /// Monday is 0, Sunday 6.
    pub fn index(self) -> i64 {
        self as i64
    }
}

/// The first day of the week that holds `day`, for weeks starting on `start`.
pub fn week_of(day: i64, start: Weekday) -> i64 {
    day - (Weekday::of_day(day).index() - start.index()).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Option<i64> {
        parse_utc_day(s.as_bytes())
    }

    #[test]
    fn utc_dates_become_day_numbers() {
        assert_eq!(day("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(day("2000-01-01T00:00:00Z"), Some(10_957));
        assert_eq!(day("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(day("2000-03-01T12:00:00.123456Z"), Some(days_from_civil(2000, 3, 1)));
    }

    #[test]
    fn offsets_move_the_day_to_utc() {
        assert_eq!(day("2000-01-03T00:00:03+02:00"), day("2000-01-02T12:00:00Z"));
        assert_eq!(day("2000-01-02T23:30:00-01:00"), day("2000-01-03T00:30:00Z"));
        assert_eq!(day("2000-01-02T23:30:00-00:00"), day("2000-01-02T00:00:00Z"));
    }

    #[test]
    fn the_date_cache_changes_no_answer() {
        let mut cache = DateCache::default();
        for text in
            ["2000-01-03T10:00:00Z", "2000-01-03T00:30:00+01:00", "2000-01-03T23:30:00-01:00", "2000-01-03T10:00:60Z"]
        {
            assert_eq!(parse_utc_day_cached(text.as_bytes(), &mut cache), day(text), "{text}");
        }
        assert_eq!(parse_utc_day_cached(b"2001-02-29T00:00:00Z", &mut cache), None);
        assert_eq!(parse_utc_day_cached(b"2001-02-29T00:00:00Z", &mut cache), None);
    }

    #[test]
    fn lowercase_separator_and_zone_are_rfc3339() {
        assert_eq!(day("2000-01-01t00:00:00z"), Some(10_957));
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:60Z",
            "2001-02-29T00:00:00Z",
            "2000-02-30T00:00:00Z",
            "2000-13-01T00:00:00Z",
            "2000-00-01T00:00:00Z",
            "2000-01-01 00:00:00Z",
            "2000-01-01T24:00:00Z",
            "2000-01-01T00:00:00.Z",
            "2000-01-01T00:00:00+0200",
            "2000-01-01T00:00:00+24:00",
            "2000-01-01T00:00Z",
            "2000-1-01T00:00:00Z",
            "2000-01-01T00:00:00ZZ",
            "",
        ] {
            assert_eq!(day(bad), None, "{bad}");
        }
        assert!(day("2000-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn weekdays_and_week_starts() {
        let monday = days_from_civil(2000, 1, 3);
        assert_eq!(Weekday::of_day(monday), Weekday::Monday);
        assert_eq!(Weekday::of_day(monday - 1), Weekday::Sunday);
        assert_eq!(week_of(monday + 6, Weekday::Monday), monday);
        assert_eq!(week_of(monday - 1, Weekday::Monday), monday - 7);
        assert_eq!(week_of(monday - 1, Weekday::Sunday), monday - 1);
        assert_eq!(week_of(monday, Weekday::Sunday), monday - 1);
    }
}
