//! `hearth bridge`: the two OctoPrint calls PrusaSlicer and OrcaSlicer make when they "send to
//! OctoPrint" (`GET /api/version`, `POST /api/files/local`), served on the member's own machine, so a
//! slicer's upload is analysed, sealed and signed here before anything leaves — and printed on the
//! configured printer or pool when the slicer asks to print.
//!
//! The multipart body is parsed as it streams in ([`Multipart`]) and the file goes to a private
//! temporary file, so memory does not grow with the file.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::Mutex;

use crate::cmd::local::{error, same_secret};
use crate::cmd::upload::{Reveal, RevealArgs, Target, print_path, upload_path};
use crate::ctx::Ctx;

#[derive(Debug, clap::Args)]
pub struct BridgeArgs {
    /// Where to listen; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// Print the API key to paste into the slicer (created on first use) and exit.
    #[arg(long)]
    pub show_key: bool,
    /// Print here when the slicer asks to print after upload (remembered).
    #[arg(long, conflicts_with = "pool")]
    pub printer: Option<String>,
    /// Print on any printer of this pool when the slicer asks to print (remembered).
    #[arg(long)]
    pub pool: Option<String>,
    #[command(flatten)]
    pub reveal: RevealArgs,
}

struct Bridge {
    ctx: Mutex<Ctx>,
    key: String,
    target: Option<Target>,
    reveal: Reveal,
}

/// The bridge's key (created on first use, kept in the profile) and where a slicer's "print after
/// upload" goes (as remembered).
fn key_and_target(ctx: &mut Ctx) -> anyhow::Result<(String, Option<Target>)> {
    if ctx.profile.bridge_key.is_none() {
        ctx.profile.bridge_key = Some(hex::encode(rand::random::<[u8; 20]>()));
        ctx.save()?;
    }
    let key = ctx.profile.bridge_key.clone().unwrap_or_default();
    let target = match (&ctx.profile.bridge_printer, &ctx.profile.bridge_pool) {
        (Some(p), _) => Some(Target::Printer(p.clone())),
        (None, Some(p)) => Some(Target::Pool(p.clone())),
        _ => None,
    };
    Ok((key, target))
}

/// The OctoPrint calls slicers make, answered for this profile (its bridge key, created in `ctx`
/// when it has none, and remembered target): what `hearth bridge` serves, and `hearth ui` beside
/// its page.
pub fn routes(ctx: &mut Ctx, reveal: Reveal) -> anyhow::Result<Router> {
    let (key, target) = key_and_target(ctx)?;
    let state = Arc::new(Bridge {
        ctx: Mutex::new(ctx.clone()),
        key,
        target,
        reveal,
    });
    Ok(Router::new()
        .route("/api/version", get(version))
        .route("/api/server", get(server))
        .route("/api/files/local", post(upload))
        .layer(DefaultBodyLimit::disable())
        .with_state(state))
}

pub async fn run(args: &BridgeArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    if args.printer.is_some() || args.pool.is_some() {
        ctx.profile.bridge_printer = args.printer.clone();
        ctx.profile.bridge_pool = args.pool.clone();
        ctx.save()?;
    }
    let (key, _) = key_and_target(&mut ctx)?;
    if args.show_key {
        println!("{key}");
        return Ok(());
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: the bridge listens on {} — files arrive there in clear before sealing; keep it on 127.0.0.1",
            args.listen
        );
    }
    // Fail now, not at the first upload, when the chain does not verify.
    ctx.trusted().await?;
    let app = routes(&mut ctx, args.reveal.reveal)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("hearth bridge listening on http://{addr}");
    std::io::stdout().flush()?;
    eprintln!(
        "in the slicer: OctoPrint host http://{addr}, API key from `hearth bridge --show-key`"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the bridge stopped")
}

fn authorised(b: &Bridge, headers: &HeaderMap) -> bool {
    let given = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    same_secret(given, &b.key)
}

async fn version(State(b): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    if !authorised(&b, &headers) {
        return error(StatusCode::FORBIDDEN, "Invalid API key");
    }
    axum::Json(json!({
        "api": "0.1",
        "server": "1.11.8",
        "text": "OctoPrint 1.11.8 (Hearth bridge: sealed before upload)",
    }))
    .into_response()
}

async fn server(State(b): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    if !authorised(&b, &headers) {
        return error(StatusCode::FORBIDDEN, "Invalid API key");
    }
    axum::Json(json!({ "safemode": null, "version": "1.11.8" })).into_response()
}

async fn upload(State(b): State<Arc<Bridge>>, headers: HeaderMap, body: Body) -> Response {
    if !authorised(&b, &headers) {
        return error(StatusCode::FORBIDDEN, "Invalid API key");
    }
    match handle_upload(&b, &headers, body).await {
        Ok(r) => r,
        Err((status, e)) => {
            eprintln!("bridge upload failed: {e:#}");
            error(status, &format!("{e:#}"))
        }
    }
}

type Failure = (StatusCode, anyhow::Error);

fn bad(e: anyhow::Error) -> Failure {
    (StatusCode::BAD_REQUEST, e)
}

async fn handle_upload(b: &Bridge, headers: &HeaderMap, body: Body) -> Result<Response, Failure> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary_of)
        .ok_or_else(|| bad(anyhow!("expected multipart/form-data with a boundary")))?;
    let mut parser = Multipart::new(&boundary);
    let tmp = tempfile::NamedTempFile::new()
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.into()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file());
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut filename: Option<String> = None;
    let mut current: Option<(String, bool)> = None;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad(anyhow!("the upload broke off: {e}")))?;
        for ev in parser.feed(&chunk).map_err(bad)? {
            match ev {
                Part::Start { name, filename: f } => {
                    let is_file = name == "file" && f.is_some();
                    if is_file {
                        filename = f;
                    }
                    current = Some((name, is_file));
                }
                Part::Data(d) => match &current {
                    Some((_, true)) => out
                        .write_all(&d)
                        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.into()))?,
                    Some((name, false)) => {
                        let v = fields.entry(name.clone()).or_default();
                        if v.len() + d.len() > 64 * 1024 {
                            return Err(bad(anyhow!("form field {name} is too long")));
                        }
                        v.push_str(&String::from_utf8_lossy(&d));
                    }
                    None => {}
                },
                Part::End => current = None,
            }
        }
    }
    if !parser.done() {
        return Err(bad(anyhow!("the multipart body ended early")));
    }
    out.flush()
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.into()))?;
    drop(out);
    let Some(filename) = filename else {
        return Err(bad(anyhow!("No file included")));
    };
    let filename = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("upload.gcode")
        .to_owned();
    let folder = fields
        .get("path")
        .map(|p| p.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    let path = if folder.is_empty() {
        filename.clone()
    } else {
        format!("{folder}/{filename}")
    };
    let print = fields.get("print").is_some_and(|v| v.trim() == "true");
    let mut ctx = b.ctx.lock().await;
    let internal = |e: anyhow::Error| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let (_, trusted) = ctx.trusted().await.map_err(internal)?;
    let entry = upload_path(&ctx, &trusted, tmp.path(), &path, None, b.reveal)
        .await
        .map_err(internal)?;
    eprintln!("sealed and uploaded {path} as file {}", entry.id);
    let mut effective_print = false;
    if print {
        let Some(target) = &b.target else {
            return Err((
                StatusCode::CONFLICT,
                anyhow!(
                    "uploaded, but no printer is configured: start the bridge with --printer NAME or --pool NAME"
                ),
            ));
        };
        let printed = print_path(
            &ctx,
            &trusted,
            tmp.path(),
            target,
            24 * 3600,
            b.reveal,
            Default::default(),
        )
        .await
        .map_err(internal)?;
        for w in &printed.warnings {
            eprintln!("warning: {w}");
        }
        for job in &printed.jobs {
            eprintln!("queued job {} for {path}", job.id);
        }
        effective_print = true;
    }
    drop(tmp);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let resource = format!("http://{host}/api/files/local/{path}");
    let body = json!({
        "done": true,
        "effectivePrint": effective_print,
        "effectiveSelect": effective_print,
        "files": { "local": {
            "name": filename,
            "origin": "local",
            "path": path,
            "refs": {
                "resource": resource,
                "download": format!("http://{host}/downloads/files/local/{path}"),
            },
        }},
    });
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, resource)],
        axum::Json(body),
    )
        .into_response())
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary_of(ct: &str) -> Option<String> {
    let mut parts = ct.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

/// What the streaming multipart parser reports.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Start {
        name: String,
        filename: Option<String>,
    },
    Data(Vec<u8>),
    End,
}

#[derive(Debug, PartialEq, Eq)]
enum St {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

/// A push parser for `multipart/form-data` (RFC 7578): feed it chunks as they arrive; it keeps at
/// most one delimiter's worth of bytes (plus one part's headers) between calls.
#[derive(Debug)]
struct Multipart {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: St,
}

impl Multipart {
    fn new(boundary: &str) -> Self {
        // Starting with CRLF makes the first delimiter look like every later one.
        Self {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            buf: b"\r\n".to_vec(),
            state: St::Preamble,
        }
    }

    fn done(&self) -> bool {
        self.state == St::Done
    }

    fn feed(&mut self, chunk: &[u8]) -> anyhow::Result<Vec<Part>> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            match self.state {
                St::Preamble => match memchr::memmem::find(&self.buf, &self.delimiter) {
                    Some(i) => {
                        self.buf.drain(..i + self.delimiter.len());
                        self.state = St::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len().min(self.buf.len());
                        self.buf.drain(..self.buf.len() - keep);
                        break;
                    }
                },
                St::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        break;
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = St::Done;
                    } else if self.buf.starts_with(b"\r\n") {
                        self.buf.drain(..2);
                        self.state = St::Headers;
                    } else {
                        // Transport padding (spaces or tabs) may follow a delimiter.
                        match self.buf.iter().position(|b| *b != b' ' && *b != b'\t') {
                            Some(0) => bail!("malformed multipart delimiter"),
                            Some(n) => {
                                self.buf.drain(..n);
                            }
                            None => break,
                        }
                    }
                }
                St::Headers => {
                    let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
                        if self.buf.len() > 16 * 1024 {
                            bail!("multipart part headers are too long");
                        }
                        break;
                    };
                    let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 4);
                    let (name, filename) = disposition(&head)
                        .ok_or_else(|| anyhow!("a multipart part has no form-data name"))?;
                    out.push(Part::Start { name, filename });
                    self.state = St::Body;
                }
                St::Body => match memchr::memmem::find(&self.buf, &self.delimiter) {
                    Some(i) => {
                        if i > 0 {
                            out.push(Part::Data(self.buf[..i].to_vec()));
                        }
                        self.buf.drain(..i + self.delimiter.len());
                        out.push(Part::End);
                        self.state = St::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len();
                        if self.buf.len() > keep {
                            let n = self.buf.len() - keep;
                            out.push(Part::Data(self.buf[..n].to_vec()));
                            self.buf.drain(..n);
                        }
                        break;
                    }
                },
                St::Done => {
                    self.buf.clear();
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// `name` and `filename` (or RFC 5987 `filename*=utf-8''...`) of a part's Content-Disposition.
fn disposition(head: &str) -> Option<(String, Option<String>)> {
    let line = head.split("\r\n").find(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    let (_, value) = line.split_once(':')?;
    let mut name = None;
    let mut filename = None;
    let mut filename_star = None;
    for p in value.split(';').skip(1) {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let unquoted = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
            .to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(unquoted),
            "filename" => filename = Some(unquoted),
            "filename*" => filename_star = v.split_once("''").map(|(_, enc)| percent_decode(enc)),
            _ => {}
        }
    }
    Some((name?, filename_star.or(filename)))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"print\"\r\n\r\ntrue\r\n",
        );
        b.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n\r\n");
        b.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.gcode\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        b.extend_from_slice(b"G28\n--XyZ inside\r\n--XyAlmost\r\nG1 X1\n");
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        b
    }

    type Parsed = Vec<(String, Option<String>, Vec<u8>)>;

    fn parse(chunk: usize) -> (Parsed, bool) {
        let mut p = Multipart::new("XyZ");
        let mut parts: Parsed = Vec::new();
        for c in body().chunks(chunk) {
            for ev in p.feed(c).unwrap() {
                match ev {
                    Part::Start { name, filename } => parts.push((name, filename, Vec::new())),
                    Part::Data(d) => parts.last_mut().unwrap().2.extend_from_slice(&d),
                    Part::End => {}
                }
            }
        }
        (parts, p.done())
    }

    #[test]
    fn parses_the_same_at_every_chunk_size() {
        let (whole, done) = parse(10_000);
        assert!(done);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0], ("print".into(), None, b"true".to_vec()));
        assert_eq!(whole[1], ("path".into(), None, Vec::new()));
        assert_eq!(
            whole[2],
            (
                "file".into(),
                Some("a b.gcode".into()),
                b"G28\n--XyZ inside\r\n--XyAlmost\r\nG1 X1\n".to_vec()
            )
        );
        for n in 1..40 {
            assert_eq!(parse(n), (whole.clone(), true), "chunk size {n}");
        }
    }

    #[test]
    fn boundary_and_rfc5987_names() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary_of("text/plain; boundary=abc"), None);
        let (n, f) = disposition(
            "Content-Disposition: form-data; name=\"file\"; filename*=utf-8''caf%C3%A9.gcode",
        )
        .unwrap();
        assert_eq!((n.as_str(), f.as_deref()), ("file", Some("café.gcode")));
    }
}
