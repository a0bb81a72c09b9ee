//! Quiet hours: a channel sends only alerts between `from` and `to` in its time zone; anything
//! else queued then waits until `to` (the delivery's first try is due then), so a farm's
//! overnight completions arrive together in the morning while a failure still wakes someone.

use hearth_proto::notify::QuietHours;
use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

/// Quiet hours understood: the two times of day and the zone.
#[derive(Debug, Clone)]
pub struct Quiet {
    from: Time,
    to: Time,
    zone: TimeZone,
}

fn time_of_day(what: &str, s: &str) -> Result<Time, String> {
    let bad = || format!("quiet hours {what} {s:?}: give a time of day as HH:MM (22:00)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

impl Quiet {
    /// Checks what a member gave: two different times of day and a time zone this server knows.
    pub fn new(q: &QuietHours) -> Result<Self, String> {
        let from = time_of_day("from", &q.from)?;
        let to = time_of_day("to", &q.to)?;
        if from == to {
            return Err("quiet hours start and end at the same time".into());
        }
        let zone = TimeZone::get(q.time_zone.trim()).map_err(|_| {
            format!(
                "unknown time zone {:?}: give an IANA name such as Europe/Berlin or UTC",
                q.time_zone
            )
        })?;
        Ok(Self { from, to, zone })
    }

    /// The same hours written the one way the API shows them (`07:00`, the zone's own name).
    pub fn normalised(q: &QuietHours) -> Result<QuietHours, String> {
        let quiet = Self::new(q)?;
        let hm = |t: Time| format!("{:02}:{:02}", t.hour(), t.minute());
        Ok(QuietHours {
            from: hm(quiet.from),
            to: hm(quiet.to),
            time_zone: q.time_zone.trim().to_owned(),
        })
    }

    /// When something queued at `now_ms` (Unix ms) goes out: `now_ms`, or the end of the quiet
    /// hours it falls in. The end is found on the local calendar, so it follows daylight saving
    /// time (an end that falls in a skipped hour is the first instant after it).
    pub fn release_at(&self, now_ms: i64) -> i64 {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return now_ms;
        };
        let local = now.to_zoned(self.zone.clone());
        let t = local.time();
        let wraps = self.from > self.to;
        let quiet = if wraps {
            t >= self.from || t < self.to
        } else {
            t >= self.from && t < self.to
        };
        if !quiet {
            return now_ms;
        }
        // Before midnight in hours that wrap: they end tomorrow.
        let day = if wraps && t >= self.from {
            local.date().tomorrow().unwrap_or(local.date())
        } else {
            local.date()
        };
        day.to_datetime(self.to)
            .to_zoned(self.zone.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(now_ms)
            .max(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(from: &str, to: &str, zone: &str) -> QuietHours {
        QuietHours {
            from: from.into(),
            to: to.into(),
            time_zone: zone.into(),
        }
    }

    fn quiet(from: &str, to: &str, zone: &str) -> Quiet {
        Quiet::new(&hours(from, to, zone)).unwrap()
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn inside_the_hours_a_notification_waits_for_their_end_outside_it_goes_now() {
        let night = quiet("22:00", "07:00", "Europe/Berlin");
        // Winter (UTC+1): 23:30 in Berlin waits until 07:00 the next day.
        assert_eq!(
            night.release_at(ms("2026-12-04T22:30:00Z")),
            ms("2026-12-05T06:00:00Z")
        );
        // 03:00 waits until 07:00 the same day.
        assert_eq!(
            night.release_at(ms("2026-12-05T02:00:00Z")),
            ms("2026-12-05T06:00:00Z")
        );
        // 07:00 sharp and midday go now.
        for now in [
            "2026-12-05T06:00:00Z",
            "2026-12-05T11:00:00Z",
            "2026-12-05T20:59:59Z",
        ] {
            assert_eq!(night.release_at(ms(now)), ms(now), "{now}");
        }
        // Summer (UTC+2): the same local hours, another UTC time.
        assert_eq!(
            night.release_at(ms("2026-07-01T21:00:00Z")),
            ms("2026-07-02T05:00:00Z")
        );
        // The night daylight saving time starts (29 March 2026): 07:00 is 05:00 UTC.
        assert_eq!(
            night.release_at(ms("2026-03-28T22:00:00Z")),
            ms("2026-03-29T05:00:00Z")
        );
    }

    #[test]
    fn hours_within_one_day_and_utc() {
        let lunch = quiet("12:00", "13:30", "UTC");
        assert_eq!(
            lunch.release_at(ms("2026-12-05T12:10:00Z")),
            ms("2026-12-05T13:30:00Z")
        );
        assert_eq!(
            lunch.release_at(ms("2026-12-05T13:30:00Z")),
            ms("2026-12-05T13:30:00Z")
        );
        assert_eq!(
            lunch.release_at(ms("2026-12-05T23:00:00Z")),
            ms("2026-12-05T23:00:00Z")
        );
    }

    #[test]
    fn what_cannot_work_is_refused_with_the_reason() {
        let err =
            |from: &str, to: &str, zone: &str| Quiet::new(&hours(from, to, zone)).unwrap_err();
        assert!(err("25:00", "07:00", "UTC").contains("HH:MM"));
        assert!(err("22h", "07:00", "UTC").contains("HH:MM"));
        assert!(err("22:00", "22:00", "UTC").contains("same time"));
        assert!(err("22:00", "07:00", "Mars/Olympus").contains("unknown time zone"));
        let n = Quiet::normalised(&hours("7:5", " 8:00", " UTC ")).unwrap();
        assert_eq!(
            (n.from.as_str(), n.to.as_str(), n.time_zone.as_str()),
            ("07:05", "08:00", "UTC")
        );
    }
}
