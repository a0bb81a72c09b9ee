//! The agent protocol: JSON text frames on the WebSocket an edge agent opens to
//! `GET /api/v1/agent/connect` (the agent always dials out; no port is opened at the printer site).
//!
//! 1. The server sends [`ServerMsg::Challenge`] with a fresh nonce.
//! 2. The agent answers [`AgentMsg::Auth`]: its id and an Ed25519 signature, by the key it enrolled with, over
//!    [`auth_message`]`(nonce)`. The server verifies it against the enrolled public key; only approved agents
//!    are admitted.
//! 3. The server sends [`ServerMsg::Welcome`] with a bearer token for this connection's HTTP calls (job blob
//!    downloads with `Authorization: Bearer <token>`, valid while the agent stays connected).
//! 4. The agent announces its printers ([`AgentMsg::Printers`]), then streams telemetry (at most 1 Hz per
//!    printer, coalesced) and job updates. The server sends jobs and controls whenever they happen; on every
//!    (re)connection it re-sends the jobs assigned to this agent that are not finished, so a job is never
//!    lost to a dropped connection, and the agent must treat a job id it already knows as the same job.
//!
//! Either side may send `Ping`; the other answers `Pong`. Unknown message types are an error.

use crate::ids::{AgentId, BlobHash, JobId, OrgId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Domain-separation prefix of the connection challenge signature.
pub const AUTH_CONTEXT: &[u8] = b"hearth/agent-auth/v1\n";

/// The bytes an agent signs to prove its identity: the context, then the server's nonce (as sent, base64).
pub fn auth_message(nonce: &str) -> Vec<u8> {
    let mut m = AUTH_CONTEXT.to_vec();
    m.extend_from_slice(nonce.as_bytes());
    m
}

/// Server to agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMsg {
    Challenge {
        nonce: String,
    },
    Welcome {
        agent_id: AgentId,
        org_id: OrgId,
        http_token: String,
    },
    /// A job for one of this agent's printers. Sent again after every reconnection until it is finished.
    Job {
        job: AgentJob,
    },
    /// Pause, resume or cancel a job that runs on this agent.
    Control {
        job_id: JobId,
        action: JobAction,
    },
    /// A member asks for a fresh camera snapshot of one of this agent's printers. Sent only for
    /// printers announced with `camera`, so older agents never receive it.
    Snapshot {
        printer: String,
    },
    /// Set the heaters' targets of an idle printer (preheating, cooling down), °C: 0 switches one
    /// off, `None` leaves it. Sent only for printers announced with `heat`, within its limits; the
    /// agent checks both again, and that no job runs.
    Heat {
        printer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nozzle_c: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bed_c: Option<f32>,
        /// The member's request, which the agent's [`AgentMsg::Outcome`] names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    /// Tune a printing printer's speed, flow or part-cooling fan. Sent only for printers
    /// announced with `tune`, within its limits; the agent checks both again, and that it prints.
    Tune {
        printer: String,
        tune: Tune,
        /// The member's request, which the agent's [`AgentMsg::Outcome`] names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    /// Run one of a printer's announced actions ([`PrinterInfo::actions`]) by its id. The agent
    /// runs only what its configuration defines, and checks the printer's state again.
    Action {
        printer: String,
        action: String,
        /// The member's request, which the agent's [`AgentMsg::Outcome`] names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    Ping,
    Pong,
    /// The server refuses something the agent sent; the connection closes after a fatal one.
    Error {
        code: String,
        message: String,
        fatal: bool,
    },
}

/// Agent to server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentMsg {
    /// Base64 Ed25519 signature over [`auth_message`].
    Auth {
        agent_id: AgentId,
        signature: String,
        agent_version: String,
    },
    /// The printers this agent drives (replaces the previous list).
    Printers {
        printers: Vec<PrinterInfo>,
    },
    /// Latest state of one printer.
    Telemetry {
        printer: String,
        status: PrinterTelemetry,
    },
    /// A job changed state on the agent's side. Refusals (bad signature, expired, replayed) use
    /// `state: refused` with the reason in `message`.
    JobUpdate {
        job_id: JobId,
        state: JobState,
        message: Option<String>,
        /// With a final state: the furthest the printer got with the job (0 to 1), as the agent
        /// last observed it, so that the share of filament a stopped job used is known even when
        /// the server restarted since the last telemetry. Absent from older agents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<f32>,
        /// With a final state: the printer slot (`A1`, `Ext`, `G3`, as [`MaterialSlot::name`]) that
        /// fed each of the job's filaments, in the slicer's order (a Bambu printer's AMS
        /// mapping), or each of the printer's tools (a Happy Hare MMU's tool-to-gate map, of which
        /// the file's filaments are the first), so the server takes each filament's grams from
        /// the inventory spool loaded in its slot. Absent when the printer had one holder.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        slots: Vec<String>,
    },
    /// How a member's request to a printer ([`ServerMsg::Heat`], [`ServerMsg::Tune`],
    /// [`ServerMsg::Action`]) ended:
    /// done, or refused by the agent or failed at the printer, in `message`.
    Outcome {
        printer: String,
        request: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Ping,
    Pong,
}

/// A job as handed to an agent. `manifest` is the submitter's signed job manifest, opaque to the server
/// (only the agent, with `hearth-crypto`, verifies it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentJob {
    pub job_id: JobId,
    /// The agent-local name of the printer to use.
    pub printer: String,
    /// The sealed job payload; download from `/api/v1/agent/blobs/{sha256}`.
    pub blob_sha256: BlobHash,
    pub blob_size: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
}

/// A printer an agent drives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrinterInfo {
    /// Unique among this agent's printers (the key in its config), e.g. `mk4-left`.
    pub name: String,
    /// `simulated`, `octoprint`, `moonraker`, ...
    pub kind: String,
    /// Model as configured, e.g. `Prusa MK4`.
    pub model: String,
    /// Scheduling facts the organisation chose to reveal: nozzle, loaded material and colour, build volume.
    #[serde(default)]
    pub nozzle_mm: Option<f32>,
    #[serde(default)]
    pub material: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    /// Pools this printer belongs to (for "any printer of this group").
    #[serde(default)]
    pub pools: Vec<String>,
    #[serde(default)]
    pub can_pause: bool,
    /// A camera is configured for it: the agent sends sealed snapshots of it (`PUT
    /// /api/v1/agent/printers/{name}/snapshot`) and takes one when asked ([`ServerMsg::Snapshot`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub camera: bool,
    /// Its agent sets its heaters' targets when asked ([`ServerMsg::Heat`]), up to these limits;
    /// `None`: it does not (the driver cannot, or the agent's configuration says no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heat: Option<HeatLimits>,
    /// Its agent tunes its speed, flow and fan while it prints when asked ([`ServerMsg::Tune`]),
    /// within these limits; `None`: it does not (the driver cannot, or the configuration says
    /// no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<TuneLimits>,
    /// The actions its agent runs when asked ([`ServerMsg::Action`]): its configuration's own
    /// (`[[printer.action]]`, G-code or Klipper macros) and the driver's (a chamber light).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<PrinterAction>,
}

/// A named action a printer's agent offers (homing, fans, a light, a Klipper macro). Members ask
/// for it by `id`; what it does is the agent's own configuration, which the server never sees
/// and cannot change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrinterAction {
    /// `a-z`, `0-9` and `-`, e.g. `home`, `light-on`.
    pub id: String,
    /// As buttons show it, e.g. "Home all axes".
    pub label: String,
    /// In which states of the printer it runs.
    #[serde(default)]
    pub when: ActionWhen,
    /// Only the organisation's admins may run it (a firmware restart, a calibration); otherwise
    /// operators too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admins_only: bool,
    /// What to ask the member before running it ("Is the bed clear?"); clients ask, the server
    /// does not check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

/// In which states of its printer an action runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionWhen {
    /// Only while it is idle (homing, a macro that moves it).
    #[default]
    Idle,
    /// Whenever it is online (a light, a fan).
    Always,
    /// Only while a job runs or is paused (a print speed).
    Printing,
}

impl PrinterAction {
    /// Whether `id` is a well-formed action id: 1 to 32 of `a-z`, `0-9` and `-`.
    pub fn valid_id(id: &str) -> bool {
        (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    /// Whether it may run on a printer in `state`, as its `when` says; never on one that is
    /// offline. The server checks a member's request with it; the agent checks the server's
    /// against its own view of the printer.
    pub fn allowed_in(&self, state: PrinterState) -> bool {
        use PrinterState::*;
        match self.when {
            ActionWhen::Idle => state == Idle,
            ActionWhen::Always => state != Offline,
            ActionWhen::Printing => state.job_running(),
        }
    }
}

/// The highest targets an agent sets a printer's heaters to when asked, °C (its configuration's
/// `max_nozzle_c` and `max_bed_c`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeatLimits {
    pub max_nozzle_c: f32,
    pub max_bed_c: f32,
}

impl HeatLimits {
    /// Whether the targets given (°C, `None`: left as it is) are within these limits: from 0
    /// (off) to the highest, each. The server checks a member's request with it, and the agent
    /// the server's.
    pub fn allow(&self, nozzle_c: Option<f32>, bed_c: Option<f32>) -> bool {
        let within = |t: Option<f32>, max: f32| t.is_none_or(|t| (0.0..=max).contains(&t));
        within(nozzle_c, self.max_nozzle_c) && within(bed_c, self.max_bed_c)
    }
}

/// What a member tunes on a printing printer; `None` leaves it as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tune {
    /// Speed, percent of the file's (M220).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_percent: Option<u16>,
    /// Flow (extrusion), percent of the file's (M221).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_percent: Option<u16>,
    /// The part-cooling fan, percent of full (M106; 0 switches it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_percent: Option<u8>,
}

impl Tune {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The speed and flow an agent tunes a printer to when asked, percent (its configuration's
/// `[printer.tune]`); the fan goes from 0 to 100 %.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TuneLimits {
    pub min_speed_percent: u16,
    pub max_speed_percent: u16,
    pub min_flow_percent: u16,
    pub max_flow_percent: u16,
}

impl TuneLimits {
    /// Checks `tune` against these limits: `Err` says which value is outside, and what is
    /// allowed. The server checks a member's request with it, and the agent the server's.
    pub fn check(&self, tune: &Tune) -> Result<(), String> {
        let within = |what: &str, v: Option<u16>, min: u16, max: u16| match v {
            Some(v) if !(min..=max).contains(&v) => {
                Err(format!("{what} {v} % is outside {min} to {max} %"))
            }
            _ => Ok(()),
        };
        within(
            "speed",
            tune.speed_percent,
            self.min_speed_percent,
            self.max_speed_percent,
        )?;
        within(
            "flow",
            tune.flow_percent,
            self.min_flow_percent,
            self.max_flow_percent,
        )?;
        within("fan", tune.fan_percent.map(u16::from), 0, 100)
    }
}

/// A printer's overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    Offline,
    Idle,
    Printing,
    Pausing,
    Paused,
    Cancelling,
    Error,
}

impl PrinterState {
    /// Whether a job runs on it: printing, pausing or paused.
    pub fn job_running(self) -> bool {
        matches!(self, Self::Printing | Self::Pausing | Self::Paused)
    }

    /// Its name as the API writes it (`idle`, `printing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Idle => "idle",
            Self::Printing => "printing",
            Self::Pausing => "pausing",
            Self::Paused => "paused",
            Self::Cancelling => "cancelling",
            Self::Error => "error",
        }
    }
}

/// One heater, °C.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heater {
    /// `tool0`, `tool1`, `bed`, `chamber`, or the printer's own name.
    pub name: String,
    pub actual: f32,
    pub target: Option<f32>,
}

/// A printer's live state, as shown to members (clear metadata per DESIGN.md: state, temperatures,
/// progress, ETA, errors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrinterTelemetry {
    pub state: PrinterState,
    #[serde(default)]
    pub heaters: Vec<Heater>,
    /// The Hearth job running, if the agent knows it.
    #[serde(default)]
    pub job_id: Option<JobId>,
    /// 0.0 to 1.0.
    #[serde(default)]
    pub progress: Option<f32>,
    #[serde(default)]
    pub layer: Option<u32>,
    #[serde(default)]
    pub total_layers: Option<u32>,
    #[serde(default)]
    pub elapsed_seconds: Option<u64>,
    #[serde(default)]
    pub remaining_seconds: Option<u64>,
    /// What needs attention, in the printer's words.
    #[serde(default)]
    pub error: Option<String>,
    /// The filament slots the printer reports with what is loaded (a Bambu Lab AMS and external
    /// spool). Pool jobs fit a printer that has their material in one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<MaterialSlot>,
    /// Its own light (a Bambu's chamber light), on or off, when it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light: Option<bool>,
    /// The speed it prints at, percent of the file's (a Bambu's speed mode), when it reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_percent: Option<u16>,
    /// Its flow (extrusion factor), percent of the file's, when it reports it (Klipper's M221).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_percent: Option<u16>,
    /// Its part-cooling fan, percent of full, when it reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_percent: Option<u8>,
}

/// A filament slot a printer reports, with what is loaded in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaterialSlot {
    /// As the printer's screen names it: `A1`..`A4`, `B1`.. for AMS units, `Ext` for the
    /// external spool.
    pub name: String,
    /// Material, e.g. `PLA`.
    pub material: String,
    /// `RRGGBB`, when known.
    #[serde(default)]
    pub color: Option<String>,
    /// Filament left, percent, when the printer knows (RFID spools).
    #[serde(default)]
    pub remain_percent: Option<u8>,
    /// The spool's identity read from its RFID tag (a Bambu Lab spool's `tray_uuid`, 32 hex
    /// digits): the server adds such a spool to the inventory and keeps it in the slot it is seen in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Lifecycle of a job. `queued` and `assigned` are the server's; the rest are reported by the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a printer (pool jobs) or for its agent to connect.
    Queued,
    /// Sent to the agent.
    Assigned,
    /// The agent is downloading, verifying, opening and uploading it to the printer.
    Transferring,
    Printing,
    Paused,
    Completed,
    Failed,
    Cancelled,
    /// The agent refused it: signature, expiry, replay or hash check failed.
    Refused,
}

impl JobState {
    /// No further change will come.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Refused
        )
    }

    /// Whether a job that moved from `self` to `ended` left a part on its printer's bed: a
    /// completed job always did, a stopped one when it had been printing. The server holds a
    /// printer for its bed to be cleared by it, and the job's notification says so by it.
    pub fn left_a_part(self, ended: JobState) -> bool {
        ended == Self::Completed
            || (ended.is_final() && matches!(self, Self::Printing | Self::Paused))
    }
}

/// What a member can ask of a running job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    Pause,
    Resume,
    Cancel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printer_state_is_named_as_the_api_writes_it() {
        use PrinterState::*;
        for s in [Offline, Idle, Printing, Pausing, Paused, Cancelling, Error] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn tuning_is_checked_value_by_value_against_the_limits() {
        let limits = TuneLimits {
            min_speed_percent: 25,
            max_speed_percent: 200,
            min_flow_percent: 75,
            max_flow_percent: 125,
        };
        let tune = |speed_percent, flow_percent, fan_percent| Tune {
            speed_percent,
            flow_percent,
            fan_percent,
        };
        for ok in [
            tune(Some(25), None, None),
            tune(Some(200), Some(75), Some(0)),
            tune(None, Some(125), Some(100)),
            Tune::default(),
        ] {
            assert_eq!(limits.check(&ok), Ok(()), "{ok:?}");
        }
        for (bad, says) in [
            (
                tune(Some(24), None, None),
                "speed 24 % is outside 25 to 200 %",
            ),
            (tune(Some(201), Some(100), None), "speed 201 %"),
            (
                tune(None, Some(74), None),
                "flow 74 % is outside 75 to 125 %",
            ),
            (tune(Some(100), Some(126), None), "flow 126 %"),
            (
                tune(None, None, Some(101)),
                "fan 101 % is outside 0 to 100 %",
            ),
        ] {
            let e = limits.check(&bad).unwrap_err();
            assert!(e.starts_with(says), "{bad:?}: {e}");
        }
        assert!(Tune::default().is_empty());
        assert!(!tune(None, None, Some(0)).is_empty());
    }

    #[test]
    fn heat_targets_are_allowed_from_off_to_the_limits() {
        let limits = HeatLimits {
            max_nozzle_c: 260.0,
            max_bed_c: 100.0,
        };
        assert!(limits.allow(Some(0.0), Some(100.0)));
        assert!(limits.allow(Some(260.0), None));
        assert!(limits.allow(None, None));
        assert!(!limits.allow(Some(260.5), None));
        assert!(!limits.allow(None, Some(-1.0)));
        assert!(!limits.allow(Some(f32::NAN), None));
        assert!(!limits.allow(None, Some(f32::INFINITY)));
    }

    #[test]
    fn actions_run_in_the_states_they_are_for_and_never_offline() {
        let action = |when| PrinterAction {
            id: "a".into(),
            label: "A".into(),
            when,
            admins_only: false,
            confirm: None,
        };
        let (home, light, speed) = (
            action(ActionWhen::Idle),
            action(ActionWhen::Always),
            action(ActionWhen::Printing),
        );
        use PrinterState::*;
        for (state, home_ok, light_ok, speed_ok) in [
            (Idle, true, true, false),
            (Printing, false, true, true),
            (Paused, false, true, true),
            (Cancelling, false, true, false),
            (Error, false, true, false),
            (Offline, false, false, false),
        ] {
            assert_eq!(home.allowed_in(state), home_ok, "{state:?}");
            assert_eq!(light.allowed_in(state), light_ok, "{state:?}");
            assert_eq!(speed.allowed_in(state), speed_ok, "{state:?}");
        }
        let wire = serde_json::to_value(&speed).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"id": "a", "label": "A", "when": "printing"})
        );
        for good in ["home", "light-on", "z-offset-2"] {
            assert!(PrinterAction::valid_id(good), "{good}");
        }
        for bad in ["", "Home", "a b", "x/y", "é", &"a".repeat(33)] {
            assert!(!PrinterAction::valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_completed_job_or_one_stopped_while_printing_left_a_part_on_the_bed() {
        use JobState::*;
        assert!(
            Transferring.left_a_part(Completed),
            "a fast print whose start went unseen"
        );
        assert!(Printing.left_a_part(Cancelled));
        assert!(Paused.left_a_part(Failed));
        assert!(!Transferring.left_a_part(Failed), "it never started");
        assert!(!Assigned.left_a_part(Cancelled));
        assert!(!Printing.left_a_part(Paused), "not ended");
    }

    #[test]
    fn messages_are_tagged_json_and_unknown_types_are_refused() {
        let m = ServerMsg::Control {
            job_id: JobId::new(),
            action: JobAction::Pause,
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(
            s.contains(r#""type":"control""#) && s.contains(r#""action":"pause""#),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<ServerMsg>(&s).unwrap(), m);
        assert!(serde_json::from_str::<AgentMsg>(r#"{"type":"launch_missiles"}"#).is_err());
        let ping: AgentMsg = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, AgentMsg::Ping);
    }

    #[test]
    fn final_job_states() {
        assert!(JobState::Completed.is_final() && JobState::Refused.is_final());
        assert!(!JobState::Printing.is_final() && !JobState::Queued.is_final());
    }
}
