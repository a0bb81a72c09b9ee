//! A fake server hub speaking `hearth_proto::agent` exactly as documented: challenge, Ed25519-verified
//! auth, welcome with an HTTP token, re-sending unfinished jobs on every connection; plus the agent blob
//! download (`GET /api/v1/agent/blobs/{sha256}`, Bearer token, `Range`). It can go "down" (drops the live
//! connection and every new one) and come back, and it can cut a blob download short once.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use futures::{SinkExt, StreamExt};
use hearth_proto::agent::{
    AgentJob, AgentMsg, JobState, PrinterInfo, PrinterTelemetry, ServerMsg, auth_message,
};
use hearth_proto::ids::{AgentId, BlobHash, JobId, OrgId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

pub const TOKEN: &str = "hat_test_token";

#[derive(Debug, Default)]
pub struct HubState {
    pub down: bool,
    /// Requests refused while down (an agent trying to connect again).
    pub refused: u32,
    /// Authenticated connections so far.
    pub connections: u32,
    /// Connections open now.
    pub open: u32,
    pub updates: Vec<(JobId, JobState, Option<String>)>,
    /// The progress each update carried, in the order of `updates`.
    pub progress: Vec<Option<f32>>,
    /// The slots each update carried, in the order of `updates`.
    pub slots: Vec<Vec<String>>,
    pub telemetry: Vec<(String, PrinterTelemetry)>,
    pub printers: Vec<PrinterInfo>,
    /// The agent's answers to requests: (request, ok, message).
    pub outcomes: Vec<(String, bool, Option<String>)>,
    /// The server's view of the jobs: re-sent while not final.
    pub jobs: BTreeMap<JobId, (AgentJob, JobState)>,
    pub ranges: Vec<Option<String>>,
    pub bad_auth: u32,
    /// Cut the next blob response after this many bytes.
    pub cut_next_blob: Option<usize>,
}

impl HubState {
    pub fn states_of(&self, job: JobId) -> Vec<JobState> {
        self.updates
            .iter()
            .filter(|u| u.0 == job)
            .map(|u| u.1)
            .collect()
    }

    pub fn last_telemetry(&self, printer: &str) -> Option<&PrinterTelemetry> {
        self.telemetry
            .iter()
            .rev()
            .find(|t| t.0 == printer)
            .map(|t| &t.1)
    }
}

struct Inner {
    state: Mutex<HubState>,
    notify: Notify,
    agent_id: AgentId,
    org_id: OrgId,
    key: Mutex<VerifyingKey>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    current: Mutex<Option<(u32, mpsc::UnboundedSender<ServerMsg>)>>,
    kill: watch::Sender<u64>,
    mute: watch::Sender<u64>,
}

pub struct Hub {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hub {
    pub async fn start(agent_id: AgentId, public_key_b64: &str) -> Self {
        let pk = base64::engine::general_purpose::STANDARD
            .decode(public_key_b64)
            .unwrap();
        let key = VerifyingKey::from_bytes(&pk.try_into().unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(HubState::default()),
            notify: Notify::new(),
            agent_id,
            org_id: OrgId::new(),
            key: Mutex::new(key),
            blobs: Mutex::new(HashMap::new()),
            current: Mutex::new(None),
            kill: watch::channel(0).0,
            mute: watch::channel(0).0,
        });
        let i = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let i = i.clone();
                tokio::spawn(async move { route(i, stream).await });
            }
        });
        Self { addr, inner, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn put_blob(&self, bytes: Vec<u8>) -> BlobHash {
        let hash = BlobHash::of(&bytes);
        self.inner
            .blobs
            .lock()
            .unwrap()
            .insert(hash.as_str().to_owned(), bytes);
        hash
    }

    /// Assigns a job: recorded as unfinished (so re-sent on reconnection) and sent now if connected.
    pub fn assign(&self, job: AgentJob) {
        self.with(|s| {
            s.jobs.insert(job.job_id, (job.clone(), JobState::Assigned));
        });
        self.send(ServerMsg::Job { job });
    }

    /// Sends a message on the live connection (dropped if none).
    pub fn send(&self, msg: ServerMsg) -> bool {
        match self.inner.current.lock().unwrap().as_ref() {
            Some((_, tx)) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut HubState) -> T) -> T {
        let r = f(&mut self.inner.state.lock().unwrap());
        self.inner.notify.notify_waiters();
        r
    }

    /// The server goes away (drops the connection, refuses new ones) or comes back.
    pub fn set_down(&self, down: bool) {
        self.with(|s| s.down = down);
        if down {
            self.inner.kill.send_modify(|g| *g += 1);
        }
    }

    /// The live connection goes silent (TCP stays open, nothing is read or answered), like a server that
    /// hangs or a network that drops packets.
    pub fn mute_current(&self) {
        self.inner.mute.send_modify(|g| *g += 1);
    }

    /// Waits until `check` yields something (bounded; woken by every hub change, no sleeping).
    pub async fn wait<T>(&self, what: &str, check: impl FnMut(&HubState) -> Option<T>) -> T {
        self.wait_for(what, Duration::from_secs(15), check).await
    }

    /// `wait` with a deadline suited to real printers.
    pub async fn wait_long<T>(&self, what: &str, check: impl FnMut(&HubState) -> Option<T>) -> T {
        self.wait_for(what, Duration::from_secs(90), check).await
    }

    async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&HubState) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = check(&self.inner.state.lock().unwrap()) {
                return v;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let s = self.inner.state.lock().unwrap();
                panic!(
                    "timed out waiting for {what}; updates {:?}, connections {}",
                    s.updates, s.connections
                );
            }
        }
    }

    /// Sends once the `n`th connection is up.
    pub async fn send_when_connected(&self, msg: ServerMsg, n: u32) {
        self.wait("connection", |s| {
            (s.connections >= n && s.open > 0).then_some(())
        })
        .await;
        assert!(self.send(msg));
    }

    pub async fn wait_state(&self, job: JobId, state: JobState) {
        self.wait(&format!("job {job} {state:?}"), |s| {
            s.states_of(job).contains(&state).then_some(())
        })
        .await
    }
}

async fn route(inner: Arc<Inner>, stream: TcpStream) {
    let mut buf = [0u8; 2048];
    let head = loop {
        let Ok(n) = stream.peek(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break String::from_utf8_lossy(&buf[..end]).into_owned();
        }
        tokio::task::yield_now().await;
    };
    {
        let mut s = inner.state.lock().unwrap();
        if s.down {
            s.refused += 1;
            drop(s);
            inner.notify.notify_waiters();
            return;
        }
    }
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    if path == "/api/v1/agent/connect" {
        ws_session(inner, stream).await;
    } else if path == "/api/v1/agents/enroll" {
        enroll(inner, stream, &head).await;
    } else if let Some(hash) = path.strip_prefix("/api/v1/agent/blobs/") {
        blob(inner, stream, &head, hash.to_owned()).await;
    }
}

pub const ENROLL_TOKEN: &str = "hae_test_enrollment";

/// `POST /api/v1/agents/enroll`: the one token is accepted; the agent's key becomes the one checked.
async fn enroll(inner: Arc<Inner>, mut stream: TcpStream, head: &str) {
    let mut consumed = vec![0u8; head.len() + 4];
    stream.read_exact(&mut consumed).await.unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    let req: hearth_proto::api::EnrollRequest = serde_json::from_slice(&body).unwrap();
    if req.token != ENROLL_TOKEN {
        let msg = br#"{"code":"unauthenticated","message":"bad token"}"#;
        let head = format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            msg.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(msg).await;
        return;
    }
    let pk = base64::engine::general_purpose::STANDARD
        .decode(&req.signing_key)
        .unwrap();
    *inner.key.lock().unwrap() = VerifyingKey::from_bytes(&pk.try_into().unwrap()).unwrap();
    let resp = serde_json::to_vec(&hearth_proto::api::EnrollResponse {
        agent_id: inner.agent_id,
        org_id: inner.org_id,
    })
    .unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        resp.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&resp).await;
}

async fn blob(inner: Arc<Inner>, mut stream: TcpStream, head: &str, hash: String) {
    let mut consumed = vec![0u8; head.len() + 4];
    stream.read_exact(&mut consumed).await.unwrap();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        let _ = stream
            .write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let range = header("range");
    let cut = {
        let mut s = inner.state.lock().unwrap();
        s.ranges.push(range.clone());
        s.cut_next_blob.take()
    };
    inner.notify.notify_waiters();
    let Some(bytes) = inner.blobs.lock().unwrap().get(&hash).cloned() else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let body = &bytes[start.min(bytes.len())..];
    let status = if range.is_some() {
        format!(
            "206 Partial Content\r\ncontent-range: bytes {start}-{}/{}",
            bytes.len() - 1,
            bytes.len()
        )
    } else {
        "200 OK".to_owned()
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let send = cut.map_or(body.len(), |c| c.min(body.len()));
    let _ = stream.write_all(&body[..send]).await;
    let _ = stream.flush().await;
}

async fn ws_session(inner: Arc<Inner>, stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut kill = inner.kill.subscribe();
    let mut mute = inner.mute.subscribe();
    let nonce = base64::engine::general_purpose::STANDARD.encode(JobId::new().0.as_bytes());
    let text = |m: &ServerMsg| Message::text(serde_json::to_string(m).unwrap());
    if ws
        .send(text(&ServerMsg::Challenge {
            nonce: nonce.clone(),
        }))
        .await
        .is_err()
    {
        return;
    }
    let Some(Ok(Message::Text(auth))) = ws.next().await else {
        return;
    };
    let ok = match serde_json::from_str::<AgentMsg>(&auth) {
        Ok(AgentMsg::Auth {
            agent_id,
            signature,
            ..
        }) => {
            let sig = base64::engine::general_purpose::STANDARD
                .decode(signature)
                .ok()
                .and_then(|s| Signature::from_slice(&s).ok());
            agent_id == inner.agent_id
                && sig.is_some_and(|sig| {
                    inner
                        .key
                        .lock()
                        .unwrap()
                        .verify(&auth_message(&nonce), &sig)
                        .is_ok()
                })
        }
        _ => false,
    };
    if !ok {
        inner.state.lock().unwrap().bad_auth += 1;
        inner.notify.notify_waiters();
        let _ = ws
            .send(text(&ServerMsg::Error {
                code: "unauthenticated".into(),
                message: "bad signature".into(),
                fatal: true,
            }))
            .await;
        return;
    }
    let _ = ws
        .send(text(&ServerMsg::Welcome {
            agent_id: inner.agent_id,
            org_id: inner.org_id,
            http_token: TOKEN.into(),
        }))
        .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (session, resend): (u32, Vec<AgentJob>) = {
        let mut s = inner.state.lock().unwrap();
        s.connections += 1;
        let session = s.connections;
        *inner.current.lock().unwrap() = Some((session, tx));
        s.open += 1;
        let resend = s
            .jobs
            .values()
            .filter(|(_, st)| !st.is_final())
            .map(|(j, _)| j.clone())
            .collect();
        (session, resend)
    };
    inner.notify.notify_waiters();
    for job in resend {
        let _ = ws.send(text(&ServerMsg::Job { job })).await;
    }
    kill.borrow_and_update();
    mute.borrow_and_update();
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { break };
                let Message::Text(t) = frame else { continue };
                let msg: AgentMsg = serde_json::from_str(&t).unwrap();
                match msg {
                    AgentMsg::Ping => {
                        let _ = ws.send(text(&ServerMsg::Pong)).await;
                    }
                    AgentMsg::JobUpdate { job_id, state, message, progress, slots } => {
                        let mut s = inner.state.lock().unwrap();
                        s.updates.push((job_id, state, message));
                        s.progress.push(progress);
                        s.slots.push(slots);
                        if let Some(j) = s.jobs.get_mut(&job_id) {
                            j.1 = state;
                        }
                    }
                    AgentMsg::Telemetry { printer, status } => {
                        inner.state.lock().unwrap().telemetry.push((printer, status));
                    }
                    AgentMsg::Printers { printers } => inner.state.lock().unwrap().printers = printers,
                    AgentMsg::Outcome { request, ok, message, .. } => {
                        inner.state.lock().unwrap().outcomes.push((request, ok, message));
                    }
                    AgentMsg::Pong | AgentMsg::Auth { .. } => {}
                }
                inner.notify.notify_waiters();
            }
            Some(out) = rx.recv() => {
                if ws.send(text(&out)).await.is_err() {
                    break;
                }
            }
            _ = kill.changed() => break,
            _ = mute.changed() => {
                // Hold the socket without reading it until the agent gives up on it (or the hub is
                // told to kill connections).
                let _ = kill.changed().await;
                break;
            }
        }
    }
    {
        let mut current = inner.current.lock().unwrap();
        if current.as_ref().is_some_and(|c| c.0 == session) {
            *current = None;
        }
    }
    inner.state.lock().unwrap().open -= 1;
    inner.notify.notify_waiters();
}
