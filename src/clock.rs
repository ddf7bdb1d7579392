//! UTC time without a date library: Unix seconds to and from the
//! `YYYY-MM-DD HH:MM:SS` text the Node server's API used.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of `days_from_civil`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the format of the Node server's `created_at`.
pub fn format_datetime(secs: i64) -> String {
    match datetime_ascii(secs) {
        Some(text) => text.iter().map(|&b| char::from(b)).collect(),
        None => format_datetime_long(secs),
    }
}

/// A time that serialises as `format_datetime` writes it, without a
/// `String` in between: a JSON page of messages writes two or three per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datetime(pub i64);

impl serde::Serialize for Datetime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match datetime_ascii(self.0) {
            Some(text) => s.serialize_str(std::str::from_utf8(&text).unwrap_or_default()),
            None => s.serialize_str(&format_datetime_long(self.0)),
        }
    }
}

/// `secs` as `YYYY-MM-DD HH:MM:SS`, digit by digit (the formatting machinery
/// costs several times more); None outside the years 0 to 9999, which
/// `format_datetime_long` writes as they come.
fn datetime_ascii(secs: i64) -> Option<[u8; 19]> {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let y = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
    let t = secs.rem_euclid(86_400) as u32;
    let mut text = *b"0000-00-00 00:00:00";
    for (at, n) in [
        (0, y / 100),
        (2, y % 100),
        (5, m),
        (8, d),
        (11, t / 3600),
        (14, t / 60 % 60),
        (17, t % 60),
    ] {
        text[at] = b'0' + (n / 10) as u8;
        text[at + 1] = b'0' + (n % 10) as u8;
    }
    Some(text)
}

fn format_datetime_long(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), for webhook timestamps and ISO fields.
pub fn format_iso_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        millis.rem_euclid(1000)
    )
}

/// Parses a strict `YYYY-MM-DD` into the Unix second of that day's start.
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[m as usize - 1] {
        return None;
    }
    Some(days_from_civil(y as i64, m, d) * 86_400)
}

/// Parses `YYYY-MM-DD HH:MM:SS` (also with a `T`, optional fraction and `Z`),
/// as SQLite's CURRENT_TIMESTAMP wrote it in the Node server's database.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    let day = parse_date(text.get(0..10)?)?;
    let rest = text.get(10..)?;
    if rest.is_empty() {
        return Some(day);
    }
    let rest = rest.strip_prefix([' ', 'T'])?;
    let hms = rest.get(0..8)?;
    let b = hms.as_bytes();
    if b[2] != b':' || b[5] != b':' {
        return None;
    }
    let part = |s: &str, max: i64| -> Option<i64> {
        let n: i64 = s
            .parse()
            .ok()
            .filter(|_| s.bytes().all(|c| c.is_ascii_digit()))?;
        (n <= max).then_some(n)
    };
    let (h, mi, s) = (
        part(&hms[0..2], 23)?,
        part(&hms[3..5], 59)?,
        part(&hms[6..8], 60)?,
    );
    let tail = &rest[8..];
    let tail = tail.strip_suffix('Z').unwrap_or(tail);
    if !(tail.is_empty()
        || (tail.starts_with('.') && tail[1..].bytes().all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    Some(day + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(format_datetime(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_datetime(1_764_072_000), "2025-11-25 12:00:00");
        assert_eq!(
            format_iso_millis(1_764_072_000_123),
            "2025-11-25T12:00:00.123Z"
        );
    }

    #[test]
    fn the_digit_by_digit_text_is_the_formatted_one() {
        // Every second of a day, a day of every month of four centuries, and
        // the years that do not fit four digits (written the long way).
        let day = 1_764_028_800;
        let mut times: Vec<i64> = (day..day + 86_400).collect();
        times.extend((-25_000..25_000).map(|n| n * 2_629_746 + 12_345));
        times.extend([
            -62_167_219_201, // 0000-01-01 minus one second: year -1
            -62_167_219_200, // 0000-01-01 00:00:00
            253_402_300_799, // 9999-12-31 23:59:59
            253_402_300_800, // 10000-01-01
            i64::MIN / 2,
            i64::MAX / 2,
        ]);
        for t in times {
            let long = format_datetime_long(t);
            assert_eq!(format_datetime(t), long, "{t}");
            assert_eq!(
                serde_json::to_string(&Datetime(t)).unwrap(),
                format!("\"{long}\""),
                "{t}"
            );
        }
        assert_eq!(format_datetime(-62_167_219_201), "-001-12-31 23:59:59");
        assert_eq!(format_datetime(253_402_300_800), "10000-01-01 00:00:00");
    }

    #[test]
    fn dates_round_trip_through_every_day_of_four_centuries() {
        let start = parse_date("1900-01-01").unwrap() / 86_400;
        for day in start..start + 146_097 {
            let text = &format_datetime(day * 86_400)[..10];
            assert_eq!(parse_date(text), Some(day * 86_400), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "2024-1-01",
            "2024-13-01",
            "2023-02-29",
            "2024-02-30",
            "20x4-01-01",
            "2024/01/01",
            "2024-01-01x",
            "+024-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("2024-02-29").is_some());
    }

    #[test]
    fn parses_sqlite_timestamps() {
        assert_eq!(parse_datetime("2025-11-25 12:00:00"), Some(1_764_072_000));
        assert_eq!(
            parse_datetime("2025-11-25T12:00:00.5Z"),
            Some(1_764_072_000)
        );
        assert_eq!(parse_datetime("2025-11-25"), Some(1_764_028_800));
        assert_eq!(parse_datetime("2025-11-25 25:00:00"), None);
    }
}
