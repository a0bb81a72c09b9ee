//! `hearth ui`: the member's own dashboard, served by this machine on loopback. The server's
//! dashboard holds no key and cannot open anything sealed; this one runs where the device key is,
//! so it shows what only a member may see — file names, notes and thumbnails, camera frames — and
//! uploads and prints the way `hearth upload` and `hearth print` do: analysed, sealed and signed
//! here, with every manifest and frame checked against the verified organisation chain.
//!
//! It is a local web server, so it guards what a local web server must: it listens on loopback
//! only; every request must name it by a loopback host (a page of another site that points its
//! own name at 127.0.0.1, "DNS rebinding", is refused); the API needs the secret printed at start,
//! which `/open?token=` turns into an HttpOnly, SameSite=Strict cookie (another site's page
//! cannot send it); the page loads nothing from elsewhere (a strict Content-Security-Policy) and
//! may not be framed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use futures::StreamExt as _;
use hearth_crypto::{PrivateMetadata, Thumbnail, TrustedState};
use hearth_proto::api::Job;
use hearth_proto::ids::JobId;
use serde::Deserialize;
use serde_json::json;
use std::io::Write as _;
use tokio::sync::Mutex;

use crate::cmd::files::{
    Opened, job_labels, library_rows, list_thumbnail, open_job, open_library_id,
};
use crate::cmd::fleet::{ask_agent, find_printer, names_of, printers_of};
use crate::cmd::local::{error, same_secret};
use crate::cmd::timelapse::{Reel, printer_names};
use crate::cmd::upload::{
    MAX_COPIES, Queueing, Reveal, RevealArgs, Target, again_target, print_path, upload_path,
};
use crate::ctx::Ctx;

#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Where to listen: a loopback address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,
    /// Do not open the page in the default browser; only print its address.
    #[arg(long)]
    pub no_open: bool,
    #[command(flatten)]
    pub reveal: RevealArgs,
}

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/ui.js");
const STYLE: &str = include_str!("../../ui/ui.css");
const COOKIE: &str = "hearth_ui";
/// What the page may load: only itself (images also as `data:` thumbnails and `blob:` frames).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Ui {
    /// The logged-in context; locked only to verify the chain (which may save the profile's new
    /// checkpoint), then copied for the request.
    ctx: Mutex<Ctx>,
    token: String,
    /// The `Host` values this server answers to.
    hosts: Vec<String>,
    reveal: Reveal,
    /// The timelapses being watched: the listing and epoch keys of each, fetched when the page
    /// asks for one and reused for its frames.
    reels: Mutex<HashMap<JobId, Reel>>,
    /// The library's metadata opened so far (the Files tab lists it again without opening it
    /// again).
    opened: Mutex<Opened>,
}

pub async fn run(args: &UiArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "hearth ui shows opened files and camera frames: it listens on loopback only, not {}",
            args.listen
        );
    }
    let mut ctx = Ctx::load()?;
    // Fail now, not at the first click, when there is no organisation or its chain does not verify.
    ctx.trusted().await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (another `hearth ui`? give --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let port = addr.port();
    let hosts = match addr {
        SocketAddr::V4(_) => vec![format!("{}:{port}", addr.ip()), format!("localhost:{port}")],
        SocketAddr::V6(_) => vec![
            format!("[{}]:{port}", addr.ip()),
            format!("localhost:{port}"),
        ],
    };
    let token = hex::encode(rand::random::<[u8; 24]>());
    let ui = Arc::new(Ui {
        ctx: Mutex::new(ctx),
        token,
        hosts,
        reveal: args.reveal.reveal,
        reels: Mutex::new(HashMap::new()),
        opened: Mutex::new(Opened::default()),
    });
    let link = format!("http://{}/open?token={}", ui.hosts[0], ui.token);
    // Slicers set up for `hearth bridge` send here too: the same OctoPrint calls, the same key.
    let slicers = crate::cmd::bridge::routes(&mut *ui.ctx.lock().await, ui.reveal)?;
    let app = router(ui.clone()).merge(slicers);
    println!("hearth ui listening on http://{addr}");
    println!("open {link}");
    eprintln!(
        "slicers (PrusaSlicer, OrcaSlicer) may send here as to OctoPrint: host http://{addr}, API key from `hearth bridge --show-key`"
    );
    std::io::stdout().flush()?;
    if !args.no_open && !open_in_browser(&link) {
        eprintln!("(no browser could be started here: open the address above yourself)");
    }
    eprintln!("the page works while this runs; Ctrl-C stops it");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("hearth ui stopped")
}

/// Starts the platform's opener on `url`; whether one started.
fn open_in_browser(url: &str) -> bool {
    let (program, first): (&str, &[&str]) = if cfg!(target_os = "macos") {
        ("open", &[])
    } else if cfg!(windows) {
        ("rundll32", &["url.dll,FileProtocolHandler"])
    } else {
        ("xdg-open", &[])
    };
    std::process::Command::new(program)
        .args(first)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

fn router(ui: Arc<Ui>) -> Router {
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/printers", get(printers))
        .route("/api/printers/{name}/frame", get(frame))
        .route("/api/printers/{name}/heat", post(printer_heat))
        .route("/api/printers/{name}/tune", post(printer_tune))
        .route(
            "/api/printers/{name}/actions/{action}",
            post(printer_action),
        )
        .route("/api/files", get(files).post(upload))
        .route("/api/files/{id}", axum::routing::delete(delete_file))
        .route("/api/files/{id}/print", post(print))
        .route("/api/files/{id}/download", get(download))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs.csv", get(jobs_csv))
        .route("/api/jobs/{job}/again", post(again))
        .route("/api/jobs/{job}/{action}", post(control))
        .route("/api/timelapses", get(timelapses))
        .route("/api/timelapses/{job}", get(timelapse))
        .route("/api/timelapses/{job}/{index}", get(timelapse_frame))
        .layer(middleware::from_fn_with_state(ui.clone(), authorised));
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route("/ui.js", get(|| async { page(SCRIPT, "text/javascript") }))
        .route("/ui.css", get(|| async { page(STYLE, "text/css") }))
        .route("/open", get(open))
        .merge(api)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Every request: a loopback `Host` (else a rebound name is reaching us), and, when the browser
/// says where a request comes from, this very origin. Every answer: not framed, not sniffed, not
/// cached, nothing loaded from elsewhere.
async fn guard(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ui.hosts.iter().any(|h| h == host) {
        return error(
            StatusCode::FORBIDDEN,
            &format!(
                "this is hearth ui on {}: open it by that address",
                ui.hosts[0]
            ),
        );
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| ui.hosts.iter().any(|h| h == o));
        if !same {
            return error(StatusCode::FORBIDDEN, "a request from another site");
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The API: the secret as the cookie `/open` set, or as a bearer token (scripts, tests).
async fn authorised(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    if given_token(req.headers()).is_some_and(|t| same_secret(t, &ui.token)) {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "open the address `hearth ui` printed (with its token) to use this page",
        )
    }
}

fn given_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

#[derive(Deserialize)]
struct OpenQuery {
    token: String,
}

/// `/open?token=`: the link `hearth ui` printed. Sets the cookie and goes to the page, so the
/// token leaves the address bar.
async fn open(State(ui): State<Arc<Ui>>, Query(q): Query<OpenQuery>) -> Response {
    if !same_secret(&q.token, &ui.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "this link is from an earlier `hearth ui`: open the one it printed now",
        );
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", ui.token),
            ),
            (header::LOCATION, "/".to_owned()),
        ],
    )
        .into_response()
}

/// A failed request: what went wrong, said whole. The server's own refusals keep their status
/// (a 404 stays a 404); anything else here is the server or a check failing, 502.
struct Failure(StatusCode, anyhow::Error);

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        let status = e
            .chain()
            .find_map(|c| c.downcast_ref::<hearth_client::ClientError>())
            .and_then(|c| c.status())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        Failure(status, e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error(self.0, &format!("{:#}", self.1))
    }
}

fn refused(status: StatusCode, message: impl Into<String>) -> Failure {
    Failure(status, anyhow!(message.into()))
}

type Answer = Result<Response, Failure>;

impl Ui {
    /// A copy of the context with the chain verified now (members, agents and epochs change).
    async fn session(&self) -> anyhow::Result<(Ctx, TrustedState)> {
        let mut ctx = self.ctx.lock().await;
        let (_, trusted) = ctx.trusted().await?;
        Ok((ctx.clone(), trusted))
    }
}

async fn me(State(ui): State<Arc<Ui>>) -> Answer {
    let (ctx, _) = ui.session().await?;
    let device = ctx.device()?;
    // The role the server decides with (an admin's device in the chain is another matter): the
    // membership's, capped by this machine's token.
    let me: hearth_proto::api::Me = ctx
        .client
        .raw_get("/api/v1/me")
        .await
        .map_err(anyhow::Error::new)?;
    let role = me
        .memberships
        .iter()
        .find(|m| Some(m.org.id) == ctx.profile.org_id)
        .map(|m| match &me.token {
            Some(t) => m.role.min(t.max_role),
            None => m.role,
        });
    Ok(axum::Json(json!({
        "server": ctx.profile.server,
        "login": ctx.profile.login,
        "org": { "id": ctx.profile.org_id, "name": ctx.profile.org_name },
        "fingerprint": device.fingerprint().to_string(),
        "role": role,
        "revealed": ui.reveal.names(),
    }))
    .into_response())
}

/// The printers, each printing one with `job`: the job it prints as [`labelled`] shows it.
async fn printers(State(ui): State<Arc<Ui>>) -> Answer {
    let ctx = ui.ctx.lock().await.clone();
    let printers = printers_of(&ctx).await?;
    let busy: Vec<JobId> = printers.iter().filter_map(|p| p.telemetry.job_id).collect();
    let mut on: HashMap<JobId, serde_json::Value> = HashMap::new();
    if !busy.is_empty() {
        // A printer is shown even when what it prints cannot be named.
        match labelled_jobs(&ui, |j| busy.contains(&j.id)).await {
            Ok(jobs) => on.extend(jobs.into_iter().map(|(j, row)| (j.id, row))),
            Err(e) => eprintln!("cannot name the jobs printing: {e:#}"),
        }
    }
    let rows: Vec<serde_json::Value> = printers
        .iter()
        .map(|p| {
            let mut row = json!(p);
            if let Some(job) = p.telemetry.job_id.and_then(|id| on.remove(&id)) {
                row["job"] = job;
            }
            row
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

/// `POST /api/printers/{name}/actions/{action}`: runs one of the printer's actions; answers once
/// its agent says it was done (`{"said"}`), or with why not.
async fn printer_action(
    State(ui): State<Arc<Ui>>,
    Path((name, action)): Path<(String, String)>,
) -> Answer {
    let label = |p: &hearth_proto::api::Printer| {
        p.actions
            .iter()
            .find(|a| a.id == action)
            .map_or(action.clone(), |a| a.label.clone())
    };
    ask_printer(&ui, &name, label, async |client, org, id| {
        client.run_printer_action(org, id, &action).await
    })
    .await
}

/// `POST /api/printers/{name}/heat` with `{"nozzle_c", "bed_c"}`: preheats the printer or cools
/// it down; answers once its agent says it set them, or with why not.
async fn printer_heat(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    axum::Json(req): axum::Json<hearth_proto::api::HeatRequest>,
) -> Answer {
    let said = |_: &_| crate::cmd::fleet::heat_said(&req);
    ask_printer(&ui, &name, said, async |client, org, id| {
        client.heat_printer(org, id, &req).await
    })
    .await
}

/// `POST /api/printers/{name}/tune` with `{"speed_percent", "flow_percent", "fan_percent"}`:
/// tunes the printer's print; answers once its agent says it sent them, or with why not.
async fn printer_tune(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    axum::Json(req): axum::Json<hearth_proto::agent::Tune>,
) -> Answer {
    let said = |_: &_| crate::cmd::fleet::tune_said(&req);
    ask_printer(&ui, &name, said, async |client, org, id| {
        client.tune_printer(org, id, &req).await
    })
    .await
}

/// Sends printer `name` a request with `send` and answers the page once its agent said how it
/// went, naming the printer and `what` the request was.
async fn ask_printer(
    ui: &Ui,
    name: &str,
    what: impl FnOnce(&hearth_proto::api::Printer) -> String,
    send: impl AsyncFnOnce(
        &hearth_client::Client,
        hearth_proto::ids::OrgId,
        hearth_proto::ids::PrinterId,
    ) -> hearth_client::Result<hearth_proto::api::Accepted>,
) -> Answer {
    let ctx = ui.ctx.lock().await.clone();
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let p = find_printer(&printers, name)?;
    let answer = ask_agent(&ctx, AGENT_ANSWER_WITHIN, async || {
        send(&ctx.client, org, p.id).await
    })
    .await?;
    agent_said(&format!("{}: {}", p.name, what(p)), answer)
}

/// How long the page waits for a printer's agent to answer.
const AGENT_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// `{"said": "WHAT: done."}`, or a refusal (409) with the agent's why, or `202` when it has not
/// answered yet.
fn agent_said(what: &str, answer: Option<Result<(), String>>) -> Answer {
    match answer {
        Some(Ok(())) => Ok(axum::Json(json!({ "said": format!("{what}: done.") })).into_response()),
        Some(Err(why)) => Err(refused(StatusCode::CONFLICT, format!("{what}: {why}"))),
        None => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "said": format!("{what}: sent; its agent has not said yet how it went.")
            })),
        )
            .into_response()),
    }
}

/// `GET /api/jobs`: the organisation's jobs (newest first, as the server lists them), each as
/// [`labelled`] shows it, with its printer's name.
async fn jobs(State(ui): State<Arc<Ui>>) -> Answer {
    let ctx = ui.ctx.lock().await.clone();
    let names: HashMap<_, _> = printers_of(&ctx)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let rows: Vec<serde_json::Value> = labelled_jobs(&ui, |_| true)
        .await?
        .into_iter()
        .map(|(j, mut row)| {
            row["printer_name"] = json!(j.printer.and_then(|p| names.get(&p)));
            row
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

#[derive(Deserialize)]
struct PeriodQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

/// `GET /api/jobs.csv?since=DAY&until=DAY`: the period's jobs as `hearth jobs --csv` writes them,
/// each named from its label opened here, as a download.
async fn jobs_csv(State(ui): State<Arc<Ui>>, Query(q): Query<PeriodQuery>) -> Answer {
    let since = q.since.filter(|s| !s.is_empty());
    let until = q.until.filter(|s| !s.is_empty());
    let (ctx, trusted) = ui.session().await?;
    let jobs = crate::cmd::fleet::jobs_in_period(&ctx, since.as_deref(), until.as_deref(), true)
        .await
        .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let shown: Vec<&Job> = jobs.iter().collect();
    let names = {
        let mut opened = ui.opened.lock().await;
        names_of(job_labels(&ctx, &trusted, &shown, &mut opened).await?)
    };
    let csv = crate::cmd::fleet::csv_of(&ctx, &shown, &names).await?;
    let file = format!(
        "hearth-jobs{}{}.csv",
        since
            .map(|s| format!("-from-{}", &s[..s.len().min(10)]))
            .unwrap_or_default(),
        until
            .map(|u| format!("-to-{}", &u[..u.len().min(10)]))
            .unwrap_or_default()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        csv,
    )
        .into_response())
}

/// The jobs `which` picks, each as the server has it and as the page shows it: with what only
/// members see, `name`, `thumbnail` (a `data:` URL) and `by` (who signed it) from its sealed
/// label, checked against the verified chain as signed for that job and opened here; or
/// `label_problem` when it does not check out. A job submitted without a label has neither.
async fn labelled_jobs(
    ui: &Ui,
    which: impl Fn(&Job) -> bool,
) -> anyhow::Result<Vec<(Job, serde_json::Value)>> {
    let (ctx, trusted) = ui.session().await?;
    let all: Vec<Job> = ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{}/jobs", ctx.org()?))
        .await
        .context("cannot list the jobs")?;
    let picked: Vec<Job> = all.into_iter().filter(|j| which(j)).collect();
    let mut labels = {
        let mut opened = ui.opened.lock().await;
        job_labels(
            &ctx,
            &trusted,
            &picked.iter().collect::<Vec<_>>(),
            &mut opened,
        )
        .await?
    };
    Ok(picked
        .into_iter()
        .map(|j| {
            let mut row = json!(j);
            row.as_object_mut().map(|o| o.remove("label"));
            match labels.remove(&j.id) {
                Some(Ok(l)) => {
                    row["name"] = json!(l.name);
                    row["by"] = json!(l.by);
                    row["thumbnail"] = json!(l.thumbnail.as_ref().map(data_url));
                }
                Some(Err(problem)) => row["label_problem"] = json!(problem),
                None => {}
            }
            (j, row)
        })
        .collect())
}

#[derive(Deserialize)]
struct FrameQuery {
    #[serde(default)]
    fresh: bool,
}

/// A printer's latest camera frame (`?fresh=true`: a new one, asked of its agent), checked and
/// opened here; `X-Taken-At` (RFC 3339) and `X-Agent` say when and by whom it was taken.
async fn frame(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    Query(q): Query<FrameQuery>,
) -> Answer {
    let (ctx, trusted) = ui.session().await?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let printer = find_printer(&printers, &name).map_err(|e| Failure(StatusCode::NOT_FOUND, e))?;
    if printer.camera.is_none() {
        return Err(refused(
            StatusCode::NOT_FOUND,
            format!(
                "printer {} has no camera: add [printer.camera] to its agent's configuration",
                printer.name
            ),
        ));
    }
    let f = crate::cmd::camera::frame(
        &ctx,
        &trusted,
        org,
        printer,
        q.fresh,
        std::time::Duration::from_secs(20),
    )
    .await?;
    Ok(image(f.image, f.taken_at, Some(f.agent)))
}

/// An opened image with when it was taken (and by whom, when known), as the page gets it.
fn image(image: Vec<u8>, taken_at: i64, agent: Option<String>) -> Response {
    let mime = match crate::cmd::camera::image_ext(&image) {
        "png" => "image/png",
        _ => "image/jpeg",
    };
    let mut res = (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::HeaderName::from_static("x-taken-at"),
                hearth_proto::time_fmt::rfc3339(taken_at * 1000),
            ),
        ],
        image,
    )
        .into_response();
    if let Some(a) = agent.and_then(|a| HeaderValue::from_str(&a).ok()) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-agent"), a);
    }
    res
}

/// The timelapses the server keeps, each with its job's printer.
async fn timelapses(State(ui): State<Arc<Ui>>) -> Answer {
    let ctx = ui.ctx.lock().await.clone();
    let all = ctx
        .client
        .timelapses(ctx.org()?)
        .await
        .context("cannot list the timelapses")?;
    let names = printer_names(&ctx, &all).await?;
    // What each job printed, when its label is among the jobs the server lists.
    let ids: Vec<JobId> = all.iter().map(|s| s.job_id).collect();
    let mut labelled: HashMap<JobId, serde_json::Value> =
        match labelled_jobs(&ui, |j| ids.contains(&j.id)).await {
            Ok(jobs) => jobs.into_iter().map(|(j, row)| (j.id, row)).collect(),
            Err(e) => {
                eprintln!("cannot name the timelapses' jobs: {e:#}");
                HashMap::new()
            }
        };
    let rows: Vec<serde_json::Value> = all
        .iter()
        .zip(names)
        .map(|(s, printer)| {
            let mut row = json!(s);
            row["printer"] = json!(printer);
            if let Some(j) = labelled.remove(&s.job_id) {
                row["name"] = j["name"].clone();
                row["label_problem"] = j["label_problem"].clone();
            }
            row
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

fn job_id(job: &str) -> Result<JobId, Failure> {
    job.parse()
        .map_err(|_| refused(StatusCode::BAD_REQUEST, format!("{job:?} is not a job id")))
}

/// `GET /api/timelapses/{job}`: a timelapse's frames, fetched again now (the chain verified
/// again), for the page to open one by one.
async fn timelapse(State(ui): State<Arc<Ui>>, Path(job): Path<String>) -> Answer {
    let job = job_id(&job)?;
    let (ctx, trusted) = ui.session().await?;
    let reel = Reel::fetch(&ctx, trusted, job).await?;
    let frames: Vec<serde_json::Value> = reel
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| json!({ "index": i, "seq": f.seq, "received_at": f.received_at }))
        .collect();
    let said = json!({ "job": job, "printer": reel.printer, "frames": frames });
    ui.reels.lock().await.insert(job, reel);
    Ok(axum::Json(said).into_response())
}

/// `GET /api/timelapses/{job}/{index}`: one frame, checked as a frame of that job by its
/// printer's agent and opened.
async fn timelapse_frame(
    State(ui): State<Arc<Ui>>,
    Path((job, index)): Path<(String, usize)>,
) -> Answer {
    let job = job_id(&job)?;
    let ctx = ui.ctx.lock().await.clone();
    let mut reels = ui.reels.lock().await;
    let reel = match reels.entry(job) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let (_, trusted) = ui.session().await?;
            e.insert(Reel::fetch(&ctx, trusted, job).await?)
        }
    };
    if index >= reel.frames.len() {
        return Err(refused(
            StatusCode::NOT_FOUND,
            format!(
                "the timelapse of job {job} has {} frames",
                reel.frames.len()
            ),
        ));
    }
    let (img, taken_at) = reel.open(&ctx, index).await?;
    Ok(image(img, taken_at, None))
}

/// The list's thumbnail ([`list_thumbnail`]) as a `data:` URL.
fn thumbnail_url(meta: &PrivateMetadata) -> Option<String> {
    list_thumbnail(meta).map(data_url)
}

/// A thumbnail as a `data:` URL.
fn data_url(t: &Thumbnail) -> String {
    format!(
        "data:{};base64,{}",
        t.mime,
        base64::engine::general_purpose::STANDARD.encode(&t.data)
    )
}

async fn files(State(ui): State<Arc<Ui>>) -> Answer {
    let (ctx, trusted) = ui.session().await?;
    let mut opened = ui.opened.lock().await;
    let rows: Vec<serde_json::Value> = library_rows(&ctx, &trusted, &mut opened)
        .await?
        .into_iter()
        .map(|l| {
            let mut row = l.row;
            if let Some(meta) = &l.meta {
                row["note"] = json!(meta.note);
                row["thumbnail"] = json!(thumbnail_url(meta));
            }
            row
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/files?name=NAME[&note=NOTE]` with the file as the body: analysed, sealed and
/// uploaded as `hearth upload` does. The body goes to a private temporary file as it arrives.
async fn upload(State(ui): State<Arc<Ui>>, Query(q): Query<UploadQuery>, body: Body) -> Answer {
    // Only the last component: the name is sealed, but it is the name the file opens under.
    let name = q
        .name
        .rsplit(['/', '\\'])
        .next()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| refused(StatusCode::BAD_REQUEST, "the file has no name"))?
        .to_owned();
    let note = q.note.filter(|n| !n.trim().is_empty());
    let tmp = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file());
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                format!("the upload broke off: {e}"),
            )
        })?;
        size += chunk.len() as u64;
        out.write_all(&chunk)
            .context("cannot write the temporary file")?;
    }
    out.flush().context("cannot write the temporary file")?;
    drop(out);
    if size == 0 {
        return Err(refused(StatusCode::BAD_REQUEST, format!("{name} is empty")));
    }
    let (ctx, trusted) = ui.session().await?;
    let entry = upload_path(&ctx, &trusted, tmp.path(), &name, note, ui.reveal).await?;
    eprintln!("sealed and uploaded {name} as file {}", entry.id);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": entry.id, "name": name, "bytes": size })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintRequest {
    #[serde(default)]
    printer: Option<String>,
    #[serde(default)]
    pool: Option<String>,
    #[serde(default = "one")]
    copies: u32,
    #[serde(default)]
    priority: i64,
    #[serde(default = "day")]
    valid_hours: i64,
    /// The sliced plate of a plate project.
    #[serde(default)]
    plate: Option<u32>,
}

fn one() -> u32 {
    1
}

fn day() -> i64 {
    24
}

/// `POST /api/files/{id}/print`: the library file opened here and sealed as a signed job for a
/// printer or a pool, as `hearth print FILE_ID` does.
async fn print(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    axum::Json(r): axum::Json<PrintRequest>,
) -> Answer {
    let target = chosen_target(&r)?
        .ok_or_else(|| refused(StatusCode::BAD_REQUEST, "choose a printer or a pool"))?;
    let (ctx, trusted) = ui.session().await?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = library_file_here(&ctx, &trusted, &id, dir.path()).await?;
    queue_print(
        &ui,
        &ctx,
        &trusted,
        &path,
        &target,
        &r,
        &format!("file {id}"),
    )
    .await
}

/// Library file `id` opened into `dir` (checked against its signed manifest); 404 when the
/// library has no such file.
async fn library_file_here(
    ctx: &Ctx,
    trusted: &TrustedState,
    id: &str,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, Failure> {
    open_library_id(ctx, trusted, id, dir)
        .await?
        .ok_or_else(|| {
            refused(
                StatusCode::NOT_FOUND,
                format!("no file {id} in the library"),
            )
        })
}

/// `POST /api/jobs/{job}/again`: what the job printed (its sealed payload, while the server keeps
/// it) opened here and sealed as a new signed job, as `hearth print JOB` does; by default where the
/// job went before.
async fn again(
    State(ui): State<Arc<Ui>>,
    Path(job): Path<String>,
    axum::Json(r): axum::Json<PrintRequest>,
) -> Answer {
    let job = job_id(&job)?;
    let chosen = chosen_target(&r)?;
    let (ctx, trusted) = ui.session().await?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let (path, before) = open_job(&ctx, &trusted, &job.to_string(), dir.path())
        .await
        .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e))?
        .ok_or_else(|| refused(StatusCode::NOT_FOUND, format!("no job {job}")))?;
    let target = match chosen {
        Some(t) => t,
        None => again_target(&ctx, &before)
            .await
            .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e))?,
    };
    queue_print(
        &ui,
        &ctx,
        &trusted,
        &path,
        &target,
        &r,
        &format!("job {job} again"),
    )
    .await
}

/// The printer or pool a print request names, if it names one.
fn chosen_target(r: &PrintRequest) -> Result<Option<Target>, Failure> {
    if !(1..=MAX_COPIES).contains(&r.copies) {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            format!("copies: 1 to {MAX_COPIES}"),
        ));
    }
    match (&r.printer, &r.pool) {
        (Some(p), None) if !p.is_empty() => Ok(Some(Target::Printer(p.clone()))),
        (None, Some(p)) if !p.is_empty() => Ok(Some(Target::Pool(p.clone()))),
        (None, None) => Ok(None),
        _ => Err(refused(
            StatusCode::BAD_REQUEST,
            "choose a printer or a pool",
        )),
    }
}

/// The file at `path` (`what` it is, for the log) sealed as a signed job for `target` and queued
/// as `r` asks, as `hearth print` does; the page is told the jobs and the CLI's warnings.
async fn queue_print(
    ui: &Ui,
    ctx: &Ctx,
    trusted: &TrustedState,
    path: &std::path::Path,
    target: &Target,
    r: &PrintRequest,
    what: &str,
) -> Answer {
    let printed = print_path(
        ctx,
        trusted,
        path,
        target,
        r.valid_hours.saturating_mul(3600),
        ui.reveal,
        Queueing {
            priority: r.priority,
            copies: r.copies,
            plate: r.plate,
        },
    )
    .await
    .map_err(|e| {
        // What the member chose (an unknown printer, a window out of range) is theirs to fix.
        let own = e
            .chain()
            .all(|c| c.downcast_ref::<hearth_client::ClientError>().is_none());
        Failure(
            if own {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_GATEWAY
            },
            e,
        )
    })?;
    eprintln!(
        "queued {} for {what}",
        printed
            .jobs
            .iter()
            .map(|j| format!("job {}", j.id))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "jobs": printed.jobs, "warnings": printed.warnings })),
    )
        .into_response())
}

/// `POST /api/jobs/{job}/{action}`: pause, resume or cancel a job (`hearth pause|resume|cancel`).
async fn control(
    State(ui): State<Arc<Ui>>,
    Path((job, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let job = job_id(&job)?;
    let ctx = ui.ctx.lock().await.clone();
    let org = ctx.org()?;
    let j = match action.as_str() {
        "pause" | "resume" | "cancel" => crate::cmd::fleet::job_action(&ctx, job, &action).await?,
        // An admin's decision on a job waiting for approval; a rejection's reason in the body.
        "approve" => ctx
            .client
            .approve_job(org, job)
            .await
            .with_context(|| format!("cannot approve job {job}"))?,
        "reject" => {
            let reason = serde_json::from_slice::<hearth_proto::api::RejectJob>(&body)
                .ok()
                .and_then(|r| r.reason);
            ctx.client
                .reject_job(org, job, reason.as_deref())
                .await
                .with_context(|| format!("cannot reject job {job}"))?
        }
        _ => {
            return Err(refused(
                StatusCode::NOT_FOUND,
                format!("{action:?}: a job is paused, resumed, cancelled, approved or rejected"),
            ));
        }
    };
    eprintln!("{action} sent for job {job}");
    Ok(axum::Json(j).into_response())
}

/// `DELETE /api/files/{id}`: the file goes from the library, with its sealed bytes (its uploader
/// or an admin, as the server decides).
async fn delete_file(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> Answer {
    let id: hearth_proto::ids::FileId = id
        .parse()
        .map_err(|_| refused(StatusCode::BAD_REQUEST, format!("{id:?} is not a file id")))?;
    let ctx = ui.ctx.lock().await.clone();
    ctx.client
        .delete_file(ctx.org()?, id)
        .await
        .with_context(|| format!("cannot delete file {id}"))?;
    eprintln!("deleted file {id}");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/files/{id}/download`: the library file opened here, under its own name.
async fn download(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> Answer {
    let (ctx, trusted) = ui.session().await?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = library_file_here(&ctx, &trusted, &id, dir.path()).await?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("download")
        .to_owned();
    let file = tokio::fs::File::open(&path)
        .await
        .context("cannot read the opened file")?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    // The directory goes when the body has been sent (the open file keeps the bytes readable).
    let stream = tokio_util::io::ReaderStream::new(file).map(move |c| {
        let _keep = &dir;
        c
    });
    // RFC 6266: an ASCII fallback and the UTF-8 name.
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_or_a_bearer_token_is_read_and_compared_whole() {
        let mut h = HeaderMap::new();
        assert_eq!(given_token(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; hearth_ui=abc; other=1"),
        );
        assert_eq!(given_token(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(given_token(&h), Some("xyz"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        // A cookie whose name only starts with ours is not ours.
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("hearth_uix=abc"));
        assert_eq!(given_token(&h), None);
    }
}
