//! Several `hearthd` instances behind one address, sharing one PostgreSQL database and one blob
//! directory: NATS carries what lives in an instance's memory (`Hub`), so that a member whose
//! requests land on one instance sees and drives printers whose agents are connected to another.
//!
//! - **Live events** (`hearth.cluster`, [`Wire::Event`]): every event an instance publishes to its
//!   own event streams is also published here; the others pass it to theirs. A printer event also
//!   carries its telemetry, which the others keep as a replica (`Cluster::telemetry`), so printer
//!   listings and dispatch see every printer's live state.
//! - **Presence** ([`Wire::Presence`], every [`PRESENCE_EVERY`]): which agents an instance holds
//!   (with their organisation and HTTP token hash, so an agent's HTTP calls may land on any
//!   instance) and its printers' telemetry. An instance not heard from for [`PRESENCE_TTL`] is gone:
//!   its agents count as disconnected and its printers as offline. A stopping instance says so
//!   ([`Wire::Gone`]).
//! - **Commands to agents** (`hearth.agent.<agent id>`): a job offer, a pause or a snapshot request
//!   for an agent connected elsewhere goes here; the instance holding it passes it on. Delivery is
//!   at most once, as over a connection that may drop: an offer lost this way is re-sent when the
//!   agent reconnects, as after any drop.
//!
//! - **Camera frames** (`hearth.frame.<printer id>`, request and reply): a frame stays in the memory
//!   of the instance the agent sent it to; another instance asked for it requests it from that one
//!   (which printer events say), within NATS's message size (1 MiB by default).
//!
//! - failed logins (`Wire::LoginFailed`): every instance counts every failure, so login throttling
//!   holds however the attempts are spread over the instances; a successful one
//!   (`Wire::LoginSucceeded`) clears the account's failures on every instance, as on one.

use crate::hub::{Hub, lock};
use futures::StreamExt;
use hearth_proto::agent::{PrinterTelemetry, ServerMsg};
use hearth_proto::api::Event;
use hearth_proto::ids::{AgentId, OrgId, PrinterId};
use hearth_proto::time_fmt::now_ms;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an instance says which agents it holds.
pub const PRESENCE_EVERY: Duration = Duration::from_secs(5);
/// An instance not heard from for this long is gone.
pub const PRESENCE_TTL: Duration = Duration::from_secs(20);

const SUBJECT: &str = "hearth.cluster";
const AGENT_SUBJECTS: &str = "hearth.agent.*";
const FRAME_SUBJECTS: &str = "hearth.frame.*";
/// How long a member's request waits for another instance's camera frame.
const FRAME_WAIT: Duration = Duration::from_secs(2);

fn frame_subject(printer: PrinterId) -> String {
    format!("hearth.frame.{printer}")
}

fn agent_subject(agent: AgentId) -> String {
    format!("hearth.agent.{agent}")
}

/// An agent connected to another instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldAgent {
    pub agent: AgentId,
    pub org: OrgId,
    /// SHA-256 of the connection's HTTP bearer token.
    pub token_hash: String,
}

/// What instances tell each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wire {
    Event {
        from: String,
        org: OrgId,
        event: Box<Event>,
    },
    Presence {
        from: String,
        agents: Vec<HeldAgent>,
        printers: Vec<(PrinterId, PrinterTelemetry)>,
    },
    Gone {
        from: String,
    },
    /// A failed login on another instance: every instance counts it, so the throttle holds
    /// however the logins are spread over instances.
    LoginFailed {
        from: String,
        login: String,
        source: Option<String>,
    },
    /// A successful login on another instance: every instance clears the account's failures,
    /// as the one that saw it did.
    LoginSucceeded {
        from: String,
        login: String,
    },
}

#[derive(Debug, Default)]
struct Remote {
    /// When each other instance was last heard from (Unix ms).
    instances: HashMap<String, i64>,
    /// Agents held elsewhere, by the instance holding them.
    agents: HashMap<AgentId, (String, HeldAgent)>,
    /// Printers' telemetry as other instances reported it, by the instance.
    telemetry: HashMap<PrinterId, (String, PrinterTelemetry, i64)>,
    /// When the latest camera frame another instance holds arrived there, by the instance.
    frames: HashMap<PrinterId, (String, i64)>,
    /// Instances that said they stop, not yet forgotten by [`Remote::depart`].
    leaving: Vec<String>,
}

/// What instances that stopped or went silent held: its agents count as disconnected, its
/// printers as unreachable, unless they are back through another instance.
#[derive(Debug, Default, PartialEq)]
pub struct Departed {
    pub agents: Vec<HeldAgent>,
    pub printers: Vec<PrinterId>,
}

/// This instance's link to the others.
#[derive(Debug)]
pub struct Cluster {
    /// This instance's id (random per process).
    pub instance: String,
    client: async_nats::Client,
    /// Messages to publish, in order, by one task (publishing is async; callers are not).
    out: mpsc::UnboundedSender<(String, bytes::Bytes)>,
    remote: Mutex<Remote>,
    /// When it connected (Unix ms).
    joined_at: i64,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {source}")]
pub struct ClusterError {
    url: String,
    #[source]
    source: async_nats::ConnectError,
}

impl Cluster {
    /// Connects to NATS at `url`. The publishing task runs until the connection is dropped.
    pub async fn connect(url: &str) -> Result<Self, ClusterError> {
        let client = async_nats::connect(url)
            .await
            .map_err(|source| ClusterError {
                url: url.to_owned(),
                source,
            })?;
        let (out, mut rx) = mpsc::unbounded_channel::<(String, bytes::Bytes)>();
        let publisher = client.clone();
        tokio::spawn(async move {
            while let Some((subject, payload)) = rx.recv().await {
                if let Err(e) = publisher.publish(subject, payload).await {
                    tracing::warn!(error = %e, "could not publish to NATS");
                }
            }
        });
        Ok(Cluster {
            instance: hex::encode(rand::random::<[u8; 16]>()),
            client,
            out,
            remote: Mutex::new(Remote::default()),
            joined_at: now_ms(),
        })
    }

    /// From when this instance knows what the others hold (every other instance has said it
    /// once since this one joined): before that, a printer it has not heard of may well be held
    /// elsewhere.
    pub fn complete_from(&self) -> i64 {
        self.joined_at + PRESENCE_EVERY.as_millis() as i64 + 1_000
    }

    fn send(&self, subject: String, wire: &impl Serialize) {
        match serde_json::to_vec(wire) {
            Ok(b) => {
                let _ = self.out.send((subject, b.into()));
            }
            Err(e) => tracing::warn!(error = %e, "could not encode a cluster message"),
        }
    }

    /// Tells the others about an event of `org`.
    pub fn publish_event(&self, org: OrgId, event: &Event) {
        self.send(
            SUBJECT.into(),
            &Wire::Event {
                from: self.instance.clone(),
                org,
                event: Box::new(event.clone()),
            },
        );
    }

    /// Passes a command to an agent held by another instance.
    pub fn to_agent(&self, agent: AgentId, msg: &ServerMsg) {
        self.send(agent_subject(agent), msg);
    }

    /// Says which agents and printers this instance holds.
    pub fn presence(&self, agents: Vec<HeldAgent>, printers: Vec<(PrinterId, PrinterTelemetry)>) {
        self.send(
            SUBJECT.into(),
            &Wire::Presence {
                from: self.instance.clone(),
                agents,
                printers,
            },
        );
    }

    /// Tells the others about a failed login here.
    pub fn login_failed(&self, login: &str, source: Option<&str>) {
        self.send(
            SUBJECT.into(),
            &Wire::LoginFailed {
                from: self.instance.clone(),
                login: login.to_owned(),
                source: source.map(str::to_owned),
            },
        );
    }

    /// Tells the others an account logged in here (they clear its failures too).
    pub fn login_succeeded(&self, login: &str) {
        self.send(
            SUBJECT.into(),
            &Wire::LoginSucceeded {
                from: self.instance.clone(),
                login: login.to_owned(),
            },
        );
    }

    /// Says this instance stops (its agents are gone with it); waits until NATS has it.
    pub async fn leave(&self) {
        if let Ok(b) = serde_json::to_vec(&Wire::Gone {
            from: self.instance.clone(),
        }) {
            let _ = self.client.publish(SUBJECT, b.into()).await;
            let _ = self.client.flush().await;
        }
    }

    /// Whether another live instance holds `agent`.
    pub fn holds(&self, agent: AgentId) -> bool {
        lock(&self.remote).holds(agent, now_ms())
    }

    /// The agent and organisation of an HTTP token held by another live instance.
    pub fn token(&self, token_hash: &str) -> Option<(AgentId, OrgId)> {
        lock(&self.remote).token(token_hash, now_ms())
    }

    /// A printer's telemetry as the live instance holding its agent reported it.
    pub fn telemetry(&self, printer: PrinterId) -> Option<(PrinterTelemetry, i64)> {
        lock(&self.remote).telemetry(printer, now_ms())
    }

    /// When the latest camera frame of `printer` that another live instance holds arrived.
    pub fn snapshot_at(&self, printer: PrinterId) -> Option<i64> {
        lock(&self.remote).snapshot_at(printer, now_ms())
    }

    /// The latest camera frame of `printer` from the live instance that holds it (frames stay in
    /// the memory of the instance the agent sent them to).
    pub async fn fetch_frame(&self, printer: PrinterId) -> Option<crate::hub::StoredSnapshot> {
        self.snapshot_at(printer)?;
        let reply = tokio::time::timeout(
            FRAME_WAIT,
            self.client
                .request(frame_subject(printer), bytes::Bytes::new()),
        )
        .await
        .ok()?
        .ok()?;
        // In the form members receive it: `GET .../snapshot`.
        crate::hub::StoredSnapshot::from_api(serde_json::from_slice(&reply.payload).ok()?)
    }

    /// Answers another instance's request for a frame this instance holds.
    async fn answer_frame(&self, hub: &Hub, m: async_nats::Message) {
        let (Some(reply), Some(printer)) = (
            m.reply,
            m.subject
                .rsplit('.')
                .next()
                .and_then(|p| p.parse::<PrinterId>().ok()),
        ) else {
            return;
        };
        let Some(s) = hub.local_snapshot(printer) else {
            return;
        };
        if let Ok(b) = serde_json::to_vec(&s.to_api())
            && let Err(e) = self.client.publish(reply, b.into()).await
        {
            tracing::warn!(error = %e, %printer, "could not hand a camera frame to another instance");
        }
    }

    /// Takes in what another instance said. Returns the event to pass to this instance's
    /// streams, if any.
    pub fn receive(&self, wire: Wire) -> Option<(OrgId, Event)> {
        lock(&self.remote).receive(&self.instance, wire, now_ms())
    }

    /// What the instances that stopped or went silent since the last call held.
    pub fn depart(&self) -> Departed {
        lock(&self.remote).depart(now_ms())
    }
}

impl Remote {
    fn alive(&self, instance: &str, now: i64) -> bool {
        self.instances
            .get(instance)
            .is_some_and(|at| now - at <= PRESENCE_TTL.as_millis() as i64)
    }

    fn holds(&self, agent: AgentId, now: i64) -> bool {
        self.agents
            .get(&agent)
            .is_some_and(|(i, _)| self.alive(i, now))
    }

    fn token(&self, token_hash: &str, now: i64) -> Option<(AgentId, OrgId)> {
        self.agents
            .values()
            .find(|(i, a)| a.token_hash == token_hash && self.alive(i, now))
            .map(|(_, a)| (a.agent, a.org))
    }

    fn telemetry(&self, printer: PrinterId, now: i64) -> Option<(PrinterTelemetry, i64)> {
        let (i, t, at) = self.telemetry.get(&printer)?;
        self.alive(i, now).then(|| (t.clone(), *at))
    }

    fn snapshot_at(&self, printer: PrinterId, now: i64) -> Option<i64> {
        let (i, at) = self.frames.get(&printer)?;
        self.alive(i, now).then_some(*at)
    }

    /// What instance `me` makes of `wire` at `now`.
    fn receive(&mut self, me: &str, wire: Wire, now: i64) -> Option<(OrgId, Event)> {
        match wire {
            Wire::Event { from, .. }
            | Wire::Presence { from, .. }
            | Wire::Gone { from }
            | Wire::LoginFailed { from, .. }
            | Wire::LoginSucceeded { from, .. }
                if from == me =>
            {
                None
            }
            // Counted by `run`, which holds the login limiter.
            Wire::LoginFailed { from, .. } | Wire::LoginSucceeded { from, .. } => {
                self.instances.insert(from, now);
                None
            }
            Wire::Event { from, org, event } => {
                self.instances.insert(from.clone(), now);
                match &*event {
                    Event::Printer { printer } => {
                        if let Some(at) = printer
                            .camera
                            .as_ref()
                            .and_then(|c| c.snapshot_at.as_deref())
                            .and_then(hearth_proto::time_fmt::parse_rfc3339)
                        {
                            self.frames.insert(printer.id, (from.clone(), at));
                        }
                        self.telemetry
                            .insert(printer.id, (from, printer.telemetry.clone(), now));
                    }
                    Event::Agent {
                        agent_id,
                        connected: false,
                    } if self.agents.get(agent_id).is_some_and(|(i, _)| *i == from) => {
                        self.agents.remove(agent_id);
                    }
                    _ => {}
                }
                Some((org, *event))
            }
            Wire::Presence {
                from,
                agents,
                printers,
            } => {
                self.instances.insert(from.clone(), now);
                self.agents.retain(|_, (i, _)| *i != from);
                for a in agents {
                    self.agents.insert(a.agent, (from.clone(), a));
                }
                for (p, t) in printers {
                    self.telemetry.insert(p, (from.clone(), t, now));
                }
                None
            }
            Wire::Gone { from } => {
                self.instances.remove(&from);
                self.leaving.push(from);
                None
            }
        }
    }

    /// Forgets the instances that said they stop or have been silent past [`PRESENCE_TTL`] at
    /// `now`, and returns what they held (to be said gone once, by [`departed`]).
    fn depart(&mut self, now: i64) -> Departed {
        let ttl = PRESENCE_TTL.as_millis() as i64;
        let mut gone: Vec<String> = std::mem::take(&mut self.leaving);
        self.instances.retain(|i, at| {
            let alive = now.saturating_sub(*at) <= ttl;
            if !alive {
                gone.push(i.clone());
            }
            alive
        });
        // One that spoke again since it said it stops is back.
        gone.retain(|i| !self.instances.contains_key(i));
        if gone.is_empty() {
            return Departed::default();
        }
        let of_gone = |i: &String| gone.contains(i);
        let mut d = Departed::default();
        self.agents.retain(|_, (i, a)| {
            let keep = !of_gone(i);
            if !keep {
                d.agents.push(a.clone());
            }
            keep
        });
        self.telemetry.retain(|p, (i, _, _)| {
            let keep = !of_gone(i);
            if !keep {
                d.printers.push(*p);
            }
            keep
        });
        self.frames.retain(|_, (i, _)| !of_gone(i));
        d
    }
}

/// Says what departed instances held gone, on this instance: their agents disconnected and their
/// printers offline on its event streams, and the printers away for notifications (each
/// surviving instance notes them; the database lets one report each). A printer whose agent is
/// already back, here or elsewhere, is left alone.
async fn departed(state: &crate::state::AppState, d: Departed) {
    for a in &d.agents {
        if !state.hub.is_connected(a.agent) {
            state.hub.publish_local(
                a.org,
                Event::Agent {
                    agent_id: a.agent,
                    connected: false,
                },
            );
        }
    }
    let mut away: HashMap<OrgId, Vec<PrinterId>> = HashMap::new();
    for p in d.printers {
        if state.hub.telemetry(p).1.is_some() {
            continue;
        }
        let Ok(row) = state.store.printer(p).await else {
            continue;
        };
        state.hub.publish_local(
            row.org_id,
            Event::Printer {
                printer: crate::hub::printer_view(state, &row),
            },
        );
        away.entry(row.org_id).or_default().push(p);
    }
    for (org, printers) in away {
        tracing::warn!(
            printers = printers.len(),
            "the hearthd instance holding these printers' agents stopped answering"
        );
        crate::notify::printers_away_now(
            state,
            org,
            &printers,
            "the hearthd instance its agent was connected to stopped answering",
        );
    }
}

/// Runs this instance's side of the cluster until `stop` resolves: passes the others' events to
/// this instance's streams, commands to the agents it holds, and says every [`PRESENCE_EVERY`]
/// which agents and printers it holds.
pub async fn run(
    cluster: std::sync::Arc<Cluster>,
    state: &crate::state::AppState,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let (hub, limiter) = (&state.hub, &state.limiter);
    let mut events = cluster.client.subscribe(SUBJECT).await?;
    let mut commands = cluster.client.subscribe(AGENT_SUBJECTS).await?;
    let mut frames = cluster.client.subscribe(FRAME_SUBJECTS).await?;
    let mut presence = tokio::time::interval(PRESENCE_EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = presence.tick() => {
                let (agents, printers) = hub.held();
                cluster.presence(agents, printers);
                departed(state, cluster.depart()).await;
            }
            Some(m) = events.next() => {
                match serde_json::from_slice::<Wire>(&m.payload) {
                    Ok(Wire::LoginFailed { from, login, source }) if from != cluster.instance => {
                        limiter.record_failure(&login, source.as_deref());
                    }
                    Ok(Wire::LoginSucceeded { from, login }) if from != cluster.instance => {
                        limiter.record_success(&login);
                    }
                    Ok(w) => {
                        let gone = matches!(w, Wire::Gone { .. });
                        if let Some((org, event)) = cluster.receive(w) {
                            hub.publish_local(org, event);
                        }
                        if gone {
                            departed(state, cluster.depart()).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "an unreadable cluster message"),
                }
            }
            Some(m) = frames.next() => cluster.answer_frame(hub, m).await,
            Some(m) = commands.next() => {
                let agent = m.subject.rsplit('.').next().and_then(|a| a.parse::<AgentId>().ok());
                let msg = serde_json::from_slice::<ServerMsg>(&m.payload);
                if let (Some(agent), Ok(msg)) = (agent, msg)
                    && let Some(tx) = hub.local_sender(agent)
                {
                    let _ = tx.send(msg).await;
                }
            }
        }
    }
    cluster.leave().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::agent::PrinterState;

    fn printing() -> PrinterTelemetry {
        PrinterTelemetry {
            state: PrinterState::Printing,
            ..crate::hub::offline()
        }
    }

    #[test]
    fn another_instances_agents_count_while_it_is_heard_from_and_not_after() {
        let mut r = Remote::default();
        let (agent, org, printer) = (AgentId::new(), OrgId::new(), PrinterId::new());
        let held = HeldAgent {
            agent,
            org,
            token_hash: "h".into(),
        };
        let presence = |from: &str| Wire::Presence {
            from: from.into(),
            agents: vec![held.clone()],
            printers: vec![(printer, printing())],
        };
        // Its own messages come back from NATS: not another instance.
        assert_eq!(r.receive("a", presence("a"), 0), None);
        assert!(!r.holds(agent, 0));
        r.receive("a", presence("b"), 1_000);
        assert!(r.holds(agent, 1_000));
        assert_eq!(r.token("h", 1_000), Some((agent, org)));
        assert_eq!(r.token("other", 1_000), None);
        assert_eq!(
            r.telemetry(printer, 1_000).map(|(t, _)| t.state),
            Some(PrinterState::Printing)
        );
        // Not heard from for longer than the TTL: its agents are away, its printers offline.
        let late = 1_000 + PRESENCE_TTL.as_millis() as i64 + 1;
        assert!(!r.holds(agent, late));
        assert_eq!(r.telemetry(printer, late), None);
        // An event keeps it alive and is passed on; the agent disconnecting there ends it.
        let gone = Wire::Event {
            from: "b".into(),
            org,
            event: Box::new(Event::Agent {
                agent_id: agent,
                connected: false,
            }),
        };
        assert!(matches!(r.receive("a", gone, 2_000), Some((o, _)) if o == org));
        assert!(!r.holds(agent, 2_000));
        // An instance that says it stops takes its printers with it.
        r.receive("a", presence("b"), 3_000);
        r.receive("a", Wire::Gone { from: "b".into() }, 3_001);
        assert!(!r.holds(agent, 3_001));
        assert_eq!(r.telemetry(printer, 3_001), None);
    }

    #[test]
    fn instances_that_stop_or_go_silent_hand_over_what_they_held_once() {
        let mut r = Remote::default();
        let org = OrgId::new();
        let held = |agent| HeldAgent {
            agent,
            org,
            token_hash: "h".into(),
        };
        let (agent_b, agent_c, agent_d) = (AgentId::new(), AgentId::new(), AgentId::new());
        let (printer_b, printer_c, printer_d) =
            (PrinterId::new(), PrinterId::new(), PrinterId::new());
        let presence = |from: &str, agent, printer| Wire::Presence {
            from: from.into(),
            agents: vec![held(agent)],
            printers: vec![(printer, printing())],
        };
        r.receive("a", presence("b", agent_b, printer_b), 1_000);
        r.receive("a", presence("c", agent_c, printer_c), 1_000);
        assert_eq!(r.depart(1_000), Departed::default());
        // c goes on speaking, b falls silent past the TTL: b's printer and agent are handed over,
        // once.
        let late = 1_000 + PRESENCE_TTL.as_millis() as i64 + 1;
        r.receive("a", presence("c", agent_c, printer_c), late - 1);
        assert_eq!(
            r.depart(late),
            Departed {
                agents: vec![held(agent_b)],
                printers: vec![printer_b],
            }
        );
        assert_eq!(r.depart(late), Departed::default());
        // c says it stops: handed over at once, not after the TTL.
        r.receive("a", Wire::Gone { from: "c".into() }, late + 1);
        assert_eq!(r.depart(late + 1).printers, vec![printer_c]);
        // One that says it stops and then speaks again (it did not stop after all) is still there.
        r.receive("a", presence("d", agent_d, printer_d), late + 2);
        r.receive("a", Wire::Gone { from: "d".into() }, late + 3);
        r.receive("a", presence("d", agent_d, printer_d), late + 4);
        assert_eq!(r.depart(late + 5), Departed::default());
        assert!(r.telemetry(printer_d, late + 5).is_some());
    }
}
