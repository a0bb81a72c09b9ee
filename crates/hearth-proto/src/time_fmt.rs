//! Timestamps are kept as Unix milliseconds (exact, portable across databases) and shown as RFC 3339.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-26T18:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_else(|_| ms.to_string())
}

/// The Unix milliseconds of an RFC 3339 time (what [`rfc3339`] writes, or any offset), `None`
/// when `s` is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_what_it_formats_and_refuses_what_is_no_time() {
        for ms in [0, 1_795_716_000_123, 1_795_716_000_999, 4_102_444_800_000] {
            assert_eq!(super::parse_rfc3339(&super::rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            super::parse_rfc3339("2026-11-26T19:00:00.123+01:00"),
            Some(1_795_716_000_123)
        );
        assert_eq!(super::parse_rfc3339("yesterday"), None);
        assert_eq!(super::parse_rfc3339(""), None);
    }

    #[test]
    fn formats_milliseconds_as_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_795_716_000_123),
            "2026-11-26T18:00:00.123Z"
        );
    }
}
