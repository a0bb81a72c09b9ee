//! The connection to the server: dial out, authenticate, heartbeat, reconnect with backoff.
//!
//! One task (`run`) owns the WebSocket. It reports `ConnEvent`s to the agent's event loop and sends
//! what the loop gives it. Handshake (see `hearth_proto::agent`): `Challenge` -> `Auth` (Ed25519 signature
//! by `AgentIdentity`) -> `Welcome`; only then is the connection `Up`. Pings are answered here; a
//! connection that carried nothing for `dead_after` is dropped and dialled again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use hearth_proto::agent::{AgentMsg, ServerMsg, auth_message};
use hearth_proto::ids::{AgentId, OrgId};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::backoff::Backoff;
use crate::config::Timing;
use crate::identity::AgentIdentity;

/// What the connection task tells the event loop.
#[derive(Debug)]
pub enum ConnEvent {
    /// Authenticated. Messages for the server go into `tx` (until `Down`).
    Up {
        tx: mpsc::UnboundedSender<AgentMsg>,
        http_token: String,
        agent_id: AgentId,
        org_id: OrgId,
    },
    /// A message from the server (not Ping/Pong, which this task handles).
    Msg(ServerMsg),
    /// The connection ended (messages still in `tx` may be lost).
    Down { reason: String },
}

/// What the connection task needs.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub url: String,
    pub identity: Arc<dyn AgentIdentity>,
    pub tls: Arc<rustls::ClientConfig>,
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("the server refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("no traffic for {0:?}")]
    Dead(Duration),
    #[error("event loop gone")]
    Closed,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Dials, serves and re-dials until `shutdown` turns true.
pub async fn run(
    settings: ConnSettings,
    events: mpsc::UnboundedSender<ConnEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let t = &settings.timing;
    let mut backoff = Backoff::new(
        Duration::from_millis(t.backoff_min_ms),
        Duration::from_millis(t.backoff_max_ms),
        0.2,
    );
    let stable_after = Duration::from_millis(t.stable_after_ms);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        let mut outer = shutdown.clone();
        let result = tokio::select! {
            r = session(&settings, &events, &mut shutdown) => r,
            _ = stopped(&mut outer) => return,
        };
        match result {
            Ok(()) => return,
            Err(SessionError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, url = %settings.url, "connection to the server ended");
            }
        }
        if started.elapsed() >= stable_after {
            backoff.reset();
        }
        let delay = backoff.next_delay(rand::thread_rng().r#gen::<f64>());
        tracing::info!(?delay, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// One connection: handshake, then traffic until it fails. `Ok` only on shutdown.
async fn session(
    settings: &ConnSettings,
    events: &mpsc::UnboundedSender<ConnEvent>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let dead_after = settings.timing.dead_after();
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(16 << 20);
    let connector = tokio_tungstenite::Connector::Rustls(settings.tls.clone());
    let (mut ws, _) = tokio::time::timeout(
        dead_after,
        tokio_tungstenite::connect_async_tls_with_config(
            settings.url.as_str(),
            Some(ws_config),
            false,
            Some(connector),
        ),
    )
    .await
    .map_err(|_| SessionError::Dead(dead_after))??;

    // Handshake.
    let nonce = match recv(&mut ws, dead_after).await? {
        ServerMsg::Challenge { nonce } => nonce,
        other => return Err(unexpected("challenge", &other)),
    };
    let id = &settings.identity;
    let signature =
        base64::engine::general_purpose::STANDARD.encode(id.sign_challenge(&auth_message(&nonce)));
    send(
        &mut ws,
        &AgentMsg::Auth {
            agent_id: id.agent_id(),
            signature,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    )
    .await?;
    let (agent_id, org_id, http_token) = match recv(&mut ws, dead_after).await? {
        ServerMsg::Welcome {
            agent_id,
            org_id,
            http_token,
        } => (agent_id, org_id, http_token),
        ServerMsg::Error { code, message, .. } => {
            return Err(SessionError::Refused { code, message });
        }
        other => return Err(unexpected("welcome", &other)),
    };
    tracing::info!(%agent_id, %org_id, url = %settings.url, "connected to the server");
    let (tx, mut rx) = mpsc::unbounded_channel();
    events
        .send(ConnEvent::Up {
            tx,
            http_token,
            agent_id,
            org_id,
        })
        .map_err(|_| SessionError::Closed)?;

    let result = serve(settings, events, shutdown, &mut ws, &mut rx).await;
    let reason = match &result {
        Ok(()) => "shutdown".to_owned(),
        Err(e) => e.to_string(),
    };
    let _ = events.send(ConnEvent::Down { reason });
    if result.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    result
}

async fn serve(
    settings: &ConnSettings,
    events: &mpsc::UnboundedSender<ConnEvent>,
    shutdown: &mut watch::Receiver<bool>,
    ws: &mut Ws,
    rx: &mut mpsc::UnboundedReceiver<AgentMsg>,
) -> Result<(), SessionError> {
    let dead_after = settings.timing.dead_after();
    let mut heartbeat = tokio::time::interval(settings.timing.heartbeat());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut last_rx = Instant::now();
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(frame) = frame else {
                    return Err(SessionError::Protocol("the server closed the connection".into()));
                };
                last_rx = Instant::now();
                match frame? {
                    Message::Text(text) => match serde_json::from_str::<ServerMsg>(&text) {
                        Ok(ServerMsg::Ping) => send(ws, &AgentMsg::Pong).await?,
                        Ok(ServerMsg::Pong) => {}
                        Ok(ServerMsg::Error { code, message, fatal: true }) => {
                            return Err(SessionError::Refused { code, message });
                        }
                        Ok(ServerMsg::Error { code, message, fatal: false }) => {
                            tracing::warn!(%code, %message, "the server refused a message");
                        }
                        Ok(msg) => events.send(ConnEvent::Msg(msg)).map_err(|_| SessionError::Closed)?,
                        Err(e) => {
                            return Err(SessionError::Protocol(format!("unknown server message: {e}")));
                        }
                    },
                    Message::Close(_) => {
                        return Err(SessionError::Protocol("the server closed the connection".into()));
                    }
                    // Transport pings are answered by tungstenite; binary frames are not part of the protocol.
                    _ => {}
                }
            }
            out = rx.recv() => match out {
                Some(msg) => send(ws, &msg).await?,
                None => return Err(SessionError::Closed),
            },
            _ = heartbeat.tick() => {
                if last_rx.elapsed() >= dead_after {
                    return Err(SessionError::Dead(dead_after));
                }
                send(ws, &AgentMsg::Ping).await?;
            }
            _ = stopped(shutdown) => return Ok(()),
        }
    }
}

async fn recv(ws: &mut Ws, limit: Duration) -> Result<ServerMsg, SessionError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| SessionError::Dead(limit))?
            .ok_or_else(|| SessionError::Protocol("closed during the handshake".into()))??;
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(&text)
                    .map_err(|e| SessionError::Protocol(format!("bad server message: {e}")));
            }
            Message::Close(_) => {
                return Err(SessionError::Protocol("closed during the handshake".into()));
            }
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, msg: &AgentMsg) -> Result<(), SessionError> {
    let text = serde_json::to_string(msg)
        .map_err(|e| SessionError::Protocol(format!("cannot encode: {e}")))?;
    ws.send(Message::text(text)).await?;
    Ok(())
}

fn unexpected(wanted: &str, got: &ServerMsg) -> SessionError {
    SessionError::Protocol(format!("expected {wanted}, got {got:?}"))
}

/// Resolves once shutdown was asked for (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
