//! Maintenance reminders: tasks of a fixed kind on a printer, due after so many hours of printing
//! and/or days since they were last done, as print farms keep them (a nozzle every few hundred
//! hours, rods greased every month). The kinds are a fixed list: no free text about a printer
//! reaches the server in clear.

use crate::ids::{PrinterId, UserId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// What is to be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceKind {
    /// Replace or clean the nozzle.
    Nozzle,
    /// Grease or oil rods, rails and lead screws.
    Lubrication,
    /// Check belt tension and wear.
    Belts,
    /// Clean or replace the build plate or its surface.
    BuildPlate,
    /// Hotend: PTFE tube, heater block, thermistor.
    Hotend,
    /// Extruder gears and idler.
    Extruder,
    /// Clean the fans.
    Fans,
    /// Replace the enclosure's air filter.
    Filter,
    /// Calibrate (bed mesh, Z offset, input shaping, flow).
    Calibration,
    /// A general service.
    Service,
}

impl MaintenanceKind {
    pub const ALL: [MaintenanceKind; 10] = [
        Self::Nozzle,
        Self::Lubrication,
        Self::Belts,
        Self::BuildPlate,
        Self::Hotend,
        Self::Extruder,
        Self::Fans,
        Self::Filter,
        Self::Calibration,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nozzle => "nozzle",
            Self::Lubrication => "lubrication",
            Self::Belts => "belts",
            Self::BuildPlate => "build_plate",
            Self::Hotend => "hotend",
            Self::Extruder => "extruder",
            Self::Fans => "fans",
            Self::Filter => "filter",
            Self::Calibration => "calibration",
            Self::Service => "service",
        }
    }

    /// In words, for a notification or a table: `build plate`.
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }
}

impl std::fmt::Display for MaintenanceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MaintenanceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown maintenance task {s:?}: one of {}", all.join(", "))
            })
    }
}

/// `PUT /api/v1/orgs/{org}/printers/{id}/maintenance/{kind}` (operators): set up a task or change
/// its schedule. At least one of the two intervals; a task is due when either is reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSchedule {
    /// Due after this many hours of printing since it was last done (1–100000).
    #[serde(default)]
    pub every_print_hours: Option<u32>,
    /// Due this many days after it was last done (1–3650).
    #[serde(default)]
    pub every_days: Option<u32>,
    /// Hold the printer (no new job; what it prints goes on) once the task is due, until it is
    /// marked done.
    #[serde(default)]
    pub hold_when_due: bool,
    /// When it was last done (RFC 3339, not in the future), to count the printer's hours and days
    /// since from its history. Absent: a new task counts from now, a changed one keeps its date.
    #[serde(default)]
    pub last_done: Option<String>,
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceStatus {
    Ok,
    /// Within a tenth of an interval of being due.
    Soon,
    Due,
}

/// A maintenance task as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MaintenanceTask {
    pub printer_id: PrinterId,
    /// The printer's name.
    pub printer: String,
    pub kind: MaintenanceKind,
    pub every_print_hours: Option<u32>,
    pub every_days: Option<u32>,
    pub hold_when_due: bool,
    /// When it was last done (or set up, when nobody said).
    pub last_done: String,
    /// Who said it was done; absent when it counts from when it was set up.
    pub done_by: Option<UserId>,
    /// Hours the printer printed since (from its hourly history, up to a minute behind).
    pub print_hours_since: f64,
    /// Hours of printing left before it is due (negative: overdue by that much).
    pub print_hours_left: Option<f64>,
    /// When it falls due by date.
    pub due_on: Option<String>,
    pub status: MaintenanceStatus,
}

/// Where a task stands `now` (Unix ms), `printed_ms` after it was last done at `done_at`:
/// (status, print hours left, when it falls due by date in Unix ms).
pub fn standing(
    every_print_hours: Option<u32>,
    every_days: Option<u32>,
    done_at: i64,
    printed_ms: i64,
    now: i64,
) -> (MaintenanceStatus, Option<f64>, Option<i64>) {
    const HOUR: f64 = 3_600_000.0;
    const DAY: i64 = 86_400_000;
    let hours = printed_ms as f64 / HOUR;
    let left = every_print_hours.map(|h| f64::from(h) - hours);
    let due_on = every_days.map(|d| done_at.saturating_add(i64::from(d) * DAY));
    // Both intervals as the share still to go; the nearer one decides.
    let by_hours = every_print_hours.zip(left).map(|(h, l)| l / f64::from(h));
    let by_days = every_days
        .zip(due_on)
        .map(|(d, on)| (on - now) as f64 / (i64::from(d) * DAY) as f64);
    let share = by_hours
        .into_iter()
        .chain(by_days)
        .fold(f64::INFINITY, f64::min);
    let status = if share <= 0.0 {
        MaintenanceStatus::Due
    } else if share <= 0.1 {
        MaintenanceStatus::Soon
    } else {
        MaintenanceStatus::Ok
    };
    (status, left, due_on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MaintenanceStatus::*;

    const H: i64 = 3_600_000;
    const D: i64 = 24 * H;

    #[test]
    fn a_task_is_due_when_either_interval_is_reached_and_soon_within_a_tenth() {
        let t0 = 1_000 * D;
        // 200 h of printing: 150 h printed is fine, 185 h soon, 200 h due.
        assert_eq!(
            standing(Some(200), None, t0, 150 * H, t0 + D),
            (Ok, Some(50.0), None)
        );
        assert_eq!(standing(Some(200), None, t0, 185 * H, t0).0, Soon);
        assert_eq!(
            standing(Some(200), None, t0, 212 * H, t0),
            (Due, Some(-12.0), None)
        );
        // 30 days: due on day 30 whatever was printed.
        assert_eq!(
            standing(None, Some(30), t0, 0, t0 + 10 * D),
            (Ok, None, Some(t0 + 30 * D))
        );
        assert_eq!(standing(None, Some(30), t0, 0, t0 + 28 * D).0, Soon);
        assert_eq!(standing(None, Some(30), t0, 0, t0 + 30 * D).0, Due);
        // Both: the nearer decides.
        assert_eq!(standing(Some(200), Some(30), t0, 210 * H, t0 + D).0, Due);
        assert_eq!(standing(Some(200), Some(30), t0, 0, t0 + 31 * D).0, Due);
        assert_eq!(standing(Some(200), Some(30), t0, 10 * H, t0 + D).0, Ok);
    }

    #[test]
    fn kinds_read_as_their_names_and_in_words() {
        for k in MaintenanceKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
            assert_eq!(k.as_str().parse::<MaintenanceKind>(), Result::Ok(k));
        }
        assert_eq!(
            "build-plate".parse(),
            Result::Ok(MaintenanceKind::BuildPlate)
        );
        assert_eq!(
            "Build plate".parse(),
            Result::Ok(MaintenanceKind::BuildPlate)
        );
        assert!(
            "grease"
                .parse::<MaintenanceKind>()
                .unwrap_err()
                .contains("lubrication")
        );
    }
}
