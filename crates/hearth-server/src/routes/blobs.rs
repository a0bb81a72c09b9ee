//! Sealed blobs: resumable uploads (tus 1.0: creation, HEAD for the offset, PATCH to append, termination)
//! and streaming downloads with Range support. The server verifies the announced SHA-256 before a blob
//! becomes visible, and never holds more than one chunk of a body in memory.

use crate::auth::{Operator, OrgAccess, Viewer};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use hearth_proto::api::{Blob, ErrorBody};
use hearth_proto::ids::{BlobHash, OrgId, UploadId};
use hearth_proto::time_fmt::now_ms;
use hearth_proto::{Role, TUS_VERSION};
use hearth_store::blobdir::FinishError;
use hearth_store::{BlobRow, UploadRow};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use tower::ServiceExt;

const TUS_RESUMABLE: &str = "tus-resumable";
const UPLOAD_OFFSET: &str = "upload-offset";
const UPLOAD_LENGTH: &str = "upload-length";
const UPLOAD_METADATA: &str = "upload-metadata";
const OFFSET_CONTENT_TYPE: &str = "application/offset+octet-stream";

fn tus_headers(extra: &[(&'static str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h
}

fn require_tus(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get(TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus_version",
            format!("send Tus-Resumable: {TUS_VERSION}"),
        )),
    }
}

fn header_i64(headers: &HeaderMap, name: &str) -> ApiResult<i64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_header",
                format!("{name} must be a non-negative integer"),
            )
        })
}

/// tus `Upload-Metadata`: comma-separated `key base64(value)` pairs. Hearth needs `sha256` (hex).
fn announced_hash(headers: &HeaderMap) -> ApiResult<BlobHash> {
    let meta = headers
        .get(UPLOAD_METADATA)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let value = meta
        .split(',')
        .filter_map(|pair| pair.trim().split_once(' '))
        .find(|(k, _)| *k == "sha256")
        .map(|(_, v)| v.trim())
        .ok_or_else(|| {
            ApiError::invalid("Upload-Metadata must carry sha256 (base64 of the hex SHA-256)")
        })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::invalid("the sha256 metadata value is not base64"))?;
    decoded
        .parse()
        .map_err(|e: hearth_proto::ids::BadBlobHash| ApiError::invalid(e.to_string()))
}

fn upload_url(org: OrgId, id: UploadId) -> String {
    format!("/api/v1/orgs/{org}/uploads/{id}")
}

/// tus discovery: versions, extensions and the largest blob accepted.
#[utoipa::path(options, path = "/api/v1/orgs/{org}/uploads", tag = "blobs", params(("org" = OrgId, Path)), responses((status = 204)))]
pub async fn upload_options(State(state): State<AppState>) -> (StatusCode, HeaderMap) {
    let h = tus_headers(&[
        ("tus-version", TUS_VERSION.to_owned()),
        ("tus-extension", "creation,termination".to_owned()),
        (
            "tus-max-size",
            state.settings.limits.max_blob_bytes.to_string(),
        ),
    ]);
    (StatusCode::NO_CONTENT, h)
}

/// Start a resumable upload of a sealed blob (tus creation). Headers: `Tus-Resumable: 1.0.0`,
/// `Upload-Length`, `Upload-Metadata: sha256 <base64 of hex>`. The length counts against the quota at once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/uploads", tag = "blobs", params(("org" = OrgId, Path),
    ("Upload-Length" = i64, Header), ("Upload-Metadata" = String, Header), ("Tus-Resumable" = String, Header)),
    responses((status = 201, description = "created; Location names the upload"),
        (status = 413, description = "larger than allowed, or over the organisation's quota", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_upload(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_tus(&headers)?;
    let length = header_i64(&headers, UPLOAD_LENGTH)?;
    let max = state.settings.limits.max_blob_bytes;
    if length > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a sealed file may be at most {max} bytes; this one is {length}"),
        ));
    }
    let sha256 = announced_hash(&headers)?;
    let org = access.org.id;
    let now = now_ms();
    let row = UploadRow {
        id: UploadId::new(),
        org_id: org,
        user_id: access.caller.user.id,
        length,
        sha256,
        created_at: now,
        expires_at: now + state.settings.limits.upload_ttl_hours * 3_600_000,
    };
    let mut tx = state.store.begin().await?;
    let usage = tx.usage(org).await?;
    let quota = tx.quota(org).await?;
    if usage.used + usage.reserved + length > quota {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "quota_exceeded",
            format!(
                "this upload of {length} bytes would exceed the organisation's quota: {} of {quota} bytes are \
                 used or reserved by uploads in progress",
                usage.used + usage.reserved
            ),
        ));
    }
    // The file exists before the row commits: a crash in between leaves an orphan file, which startup
    // removes, never a row without its file.
    state.blobs.create_upload(row.id).await?;
    tx.insert_upload(&row).await?;
    tx.commit().await?;
    let url = upload_url(org, row.id);
    let headers = tus_headers(&[("location", url), ("upload-offset", "0".into())]);
    Ok((StatusCode::CREATED, headers).into_response())
}

async fn upload_of(state: &AppState, org: OrgId, id: UploadId) -> ApiResult<UploadRow> {
    let row = state.store.upload(id).await?;
    if row.org_id != org {
        return Err(ApiError::not_found(format!("upload {id}")));
    }
    Ok(row)
}

/// Finish the database side of an upload whose bytes are verified and in place. Idempotent, so a crash
/// between moving the blob and committing is completed by the next request for the upload.
async fn record_blob(
    state: &AppState,
    access: &OrgAccess<Operator>,
    row: &UploadRow,
) -> ApiResult<()> {
    let blob = BlobRow {
        org_id: row.org_id,
        sha256: row.sha256.clone(),
        size: row.length,
        created_at: now_ms(),
        created_by: row.user_id,
    };
    let mut tx = state.store.begin().await?;
    tx.insert_blob(&blob).await?;
    tx.delete_upload(row.id).await?;
    tx.append_audit(access.caller.audit(
        row.org_id.to_string(),
        "blob.upload",
        Some(format!("blob:{}", row.sha256)),
        json!({ "size": row.length, "upload": row.id }),
    ))
    .await?;
    tx.commit().await?;
    state.metrics.uploads_completed.fetch_add(1, Relaxed);
    state.metrics.audit_entries.fetch_add(1, Relaxed);
    Ok(())
}

/// Where an upload's bytes stand.
enum OnDisk {
    /// This many bytes received so far.
    Partial(i64),
    /// Verified and moved into place (possibly recovered after a crash just now).
    Complete,
}

/// The current offset of the upload, or the recovery of one whose bytes were already moved into place.
async fn disk_offset(
    state: &AppState,
    access: &OrgAccess<Operator>,
    row: &UploadRow,
) -> ApiResult<OnDisk> {
    match state.blobs.upload_offset(row.id).await? {
        Some(n) => Ok(OnDisk::Partial(n as i64)),
        None if state.blobs.blob_exists(&row.sha256).await? => {
            record_blob(state, access, row).await?;
            Ok(OnDisk::Complete)
        }
        None => {
            let mut tx = state.store.begin().await?;
            tx.delete_upload(row.id).await?;
            tx.commit().await?;
            Err(ApiError::new(
                StatusCode::GONE,
                "upload_lost",
                "this upload's data is gone; start a new upload",
            ))
        }
    }
}

/// How much of an upload the server holds (tus HEAD): resume from `Upload-Offset`.
#[utoipa::path(head, path = "/api/v1/orgs/{org}/uploads/{id}", tag = "blobs", params(("org" = OrgId, Path), ("id" = UploadId, Path)),
    responses((status = 200, description = "Upload-Offset and Upload-Length headers"), (status = 404), (status = 410)))]
pub async fn upload_status(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, UploadId)>,
) -> ApiResult<(StatusCode, HeaderMap)> {
    let row = upload_of(&state, access.org.id, id).await?;
    let offset = match disk_offset(&state, &access, &row).await? {
        OnDisk::Partial(n) => n,
        OnDisk::Complete => row.length,
    };
    Ok((
        StatusCode::OK,
        tus_headers(&[
            ("upload-offset", offset.to_string()),
            ("upload-length", row.length.to_string()),
        ]),
    ))
}

/// Append bytes at `Upload-Offset` (tus PATCH, `Content-Type: application/offset+octet-stream`). When the
/// last byte arrives the blob is verified against the announced SHA-256 and becomes visible.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/uploads/{id}", tag = "blobs", params(("org" = OrgId, Path), ("id" = UploadId, Path),
    ("Upload-Offset" = i64, Header), ("Tus-Resumable" = String, Header)),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "accepted; Upload-Offset is the new offset"),
        (status = 409, description = "offset mismatch or upload busy", body = ErrorBody),
        (status = 413, description = "more bytes than announced", body = ErrorBody),
        (status = 422, description = "the finished bytes do not match the announced SHA-256", body = ErrorBody)))]
pub async fn upload_patch(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, UploadId)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, HeaderMap)> {
    require_tus(&headers)?;
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some(OFFSET_CONTENT_TYPE)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the bytes as {OFFSET_CONTENT_TYPE}"),
        ));
    }
    let claimed = header_i64(&headers, UPLOAD_OFFSET)?;
    // Shared with the upload file's writes: a write still running after this request is gone
    // (a client that disconnects mid-body) keeps the upload busy until its bytes are on disk.
    let lock = std::sync::Arc::new(state.lock_upload(id).ok_or_else(|| {
        ApiError::conflict("another request is writing this upload; retry after HEAD")
    })?);
    let row = upload_of(&state, access.org.id, id).await?;
    let offset = match disk_offset(&state, &access, &row).await? {
        OnDisk::Partial(n) => n,
        OnDisk::Complete if claimed == row.length => {
            return Ok((
                StatusCode::NO_CONTENT,
                tus_headers(&[("upload-offset", row.length.to_string())]),
            ));
        }
        OnDisk::Complete => row.length,
    };
    if claimed != offset {
        return Err(ApiError::conflict(format!(
            "Upload-Offset is {claimed} but the server holds {offset} bytes"
        )));
    }
    let mut file = state.blobs.append_upload(id).await?.holding(lock.clone());
    let mut stream = body.into_data_stream();
    let mut too_long = false;
    let mut broken = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if file.offset() as i64 + bytes.len() as i64 > row.length {
                    too_long = true;
                    break;
                }
                file.write(&bytes).await?;
                state
                    .metrics
                    .upload_bytes
                    .fetch_add(bytes.len() as u64, Relaxed);
            }
            Err(e) => {
                broken = Some(e);
                break;
            }
        }
    }
    // Whatever arrived is kept and made durable, so the client resumes after it.
    let new_offset = file.sync().await? as i64;
    if let Some(e) = broken {
        tracing::info!(upload = %id, offset = new_offset, error = %e, "upload interrupted; it can resume");
        return Err(ApiError::bad_request(
            "interrupted",
            format!("the request body broke off at {new_offset}"),
        ));
    }
    if too_long {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the upload announced {} bytes; more were sent", row.length),
        ));
    }
    if new_offset == row.length {
        match state.blobs.finish_upload(id, &row.sha256).await {
            Ok(()) => record_blob(&state, &access, &row).await?,
            Err(FinishError::HashMismatch { expected, actual }) => {
                let mut tx = state.store.begin().await?;
                tx.delete_upload(id).await?;
                tx.commit().await?;
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hash_mismatch",
                    format!(
                        "the uploaded bytes hash to {actual}, not the announced {expected}; upload discarded"
                    ),
                ));
            }
            Err(FinishError::Store(e)) => return Err(e.into()),
        }
    }
    Ok((
        StatusCode::NO_CONTENT,
        tus_headers(&[("upload-offset", new_offset.to_string())]),
    ))
}

/// Abandon an upload (tus termination); its reservation is released.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/uploads/{id}", tag = "blobs", params(("org" = OrgId, Path), ("id" = UploadId, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn upload_delete(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, UploadId)>,
) -> ApiResult<(StatusCode, HeaderMap)> {
    let _lock = state
        .lock_upload(id)
        .ok_or_else(|| ApiError::conflict("this upload is being written"))?;
    let row = upload_of(&state, access.org.id, id).await?;
    let mut tx = state.store.begin().await?;
    tx.delete_upload(row.id).await?;
    tx.commit().await?;
    state.blobs.remove_upload(row.id).await?;
    Ok((StatusCode::NO_CONTENT, tus_headers(&[])))
}

/// Paging for blob lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BlobPage {
    /// Continue after this hash.
    pub after: Option<BlobHash>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
}

/// The organisation's sealed blobs (hash, size, who uploaded and when), in hash order.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/blobs", tag = "blobs", params(("org" = OrgId, Path), BlobPage), responses((status = 200, body = Vec<Blob>)))]
pub async fn list_blobs(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Query(q): Query<BlobPage>,
) -> ApiResult<Json<Vec<Blob>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .store
        .blobs(access.org.id, q.after.as_ref(), limit)
        .await?;
    Ok(Json(rows.iter().map(BlobRow::to_api).collect()))
}

/// Download a sealed blob. Supports `Range` so an interrupted download resumes.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/blobs/{sha256}", tag = "blobs", params(("org" = OrgId, Path), ("sha256" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206), (status = 404, body = ErrorBody)))]
pub async fn download_blob(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, sha256)): Path<(OrgId, BlobHash)>,
    req: Request,
) -> ApiResult<Response> {
    let (actor, source) = (access.caller.actor(), access.caller.source.clone());
    serve_blob(&state, access.org.id, &sha256, req, actor, source).await
}

/// Stream one of `org`'s blobs (with `Range`) and audit a completed GET as `actor`. Members and agents
/// download through this one path.
pub(crate) async fn serve_blob(
    state: &AppState,
    org: OrgId,
    sha256: &BlobHash,
    req: Request,
    actor: String,
    source: Option<String>,
) -> ApiResult<Response> {
    let row = state.store.blob(org, sha256).await?;
    let is_get = req.method() == Method::GET;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let resp = tower_http::services::ServeFile::new(state.blobs.blob_path(sha256))
        .oneshot(req)
        .await
        .map_err(ApiError::internal)?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::internal(std::io::Error::other(format!(
            "blob {sha256} is recorded but missing on disk"
        ))));
    }
    if is_get && resp.status().is_success() {
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        state.metrics.download_bytes.fetch_add(bytes, Relaxed);
        let mut tx = state.store.begin().await?;
        tx.append_audit(hearth_store::audit::NewAuditEntry {
            scope: org.to_string(),
            ts_ms: now_ms(),
            actor,
            action: "blob.download".into(),
            target: Some(format!("blob:{sha256}")),
            source,
            details: json!({ "size": row.size, "range": range }),
        })
        .await?;
        tx.commit().await?;
        state.metrics.audit_entries.fetch_add(1, Relaxed);
    }
    Ok(resp.map(Body::new))
}

/// In `tx`, deletes `org`'s blob `sha256` unless the organisation still uses it
/// ([`hearth_store::Tx::blob_in_use`]) or it is gone already. `None`: kept (or gone); `Some(bytes)`:
/// deleted, and `bytes` says whether its bytes are to go from the blob directory once `tx`
/// commits (no other organisation holds the same ones): [`remove_bytes`].
pub(crate) async fn release_in(
    tx: &mut hearth_store::Tx,
    org: OrgId,
    sha256: &BlobHash,
) -> ApiResult<Option<bool>> {
    if tx.blob_in_use(org, sha256).await? {
        return Ok(None);
    }
    match delete_row(tx, org, sha256).await {
        Ok(bytes) => Ok(Some(bytes)),
        // Gone already (deleted by a member, or by another instance's sweep).
        Err(hearth_store::StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// In `tx`, deletes `org`'s row of blob `sha256`; whether no organisation holds its bytes any
/// more (they are to go from the blob directory once `tx` commits).
async fn delete_row(
    tx: &mut hearth_store::Tx,
    org: OrgId,
    sha256: &BlobHash,
) -> hearth_store::Result<bool> {
    tx.delete_blob(org, sha256).await?;
    Ok(!tx.blob_referenced(sha256).await?)
}

/// After the transaction that released them committed: the bytes no row references any more.
pub(crate) async fn remove_bytes<'a>(
    state: &AppState,
    released: impl IntoIterator<Item = (&'a BlobHash, Option<bool>)>,
) -> ApiResult<()> {
    for (sha256, bytes) in released {
        if bytes == Some(true) {
            state.blobs.remove_blob(sha256).await?;
        }
    }
    Ok(())
}

/// Deletes the blobs that no file and no job has used `limits.unused_blob_keep_hours` after their
/// upload (before `now`, Unix ms; the server runs it once a minute; 0 hours keeps them), each with
/// an entry `blob.expire` in its organisation's audit log: a client that stopped between an upload
/// and the file or job using it would otherwise leave the bytes counting against the quota.
pub async fn expire_unused_blobs(state: &AppState, now: i64) -> ApiResult<()> {
    let hours = state.settings.limits.unused_blob_keep_hours;
    if hours <= 0 {
        return Ok(());
    }
    let before = now - hours * 3_600_000;
    let why = format!("no file or job used it within {hours} hours of its upload");
    for (org, sha256, size) in state.store.unused_blobs(before, 500).await? {
        expire_blob(state, org, &sha256, size, &why).await?;
    }
    Ok(())
}

/// In one transaction with its `blob.expire` audit entry (why it went), deletes `org`'s blob
/// unless it is in use or gone by then ([`release_in`]); then its bytes if no one else has them.
async fn expire_blob(
    state: &AppState,
    org: OrgId,
    sha256: &BlobHash,
    size: i64,
    why: &str,
) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let released = release_in(&mut tx, org, sha256).await?;
    if released.is_none() {
        return Ok(());
    }
    tx.append_audit(crate::routes::system_audit(
        org.to_string(),
        "blob.expire",
        Some(format!("blob:{sha256}")),
        json!({ "size": size, "why": why }),
    ))
    .await?;
    tx.commit().await?;
    state.metrics.audit_entries.fetch_add(1, Relaxed);
    remove_bytes(state, [(sha256, released)]).await
}

/// Deletes the sealed payloads of jobs that all ended more than `limits.job_payload_keep_days`
/// before `now` (Unix ms; the server runs it once a minute; 0 days keeps them), each with an
/// entry `blob.expire` in its organisation's audit log. The jobs stay in the history.
pub async fn expire_job_payloads(state: &AppState, now: i64) -> ApiResult<()> {
    let days = state.settings.limits.job_payload_keep_days;
    if days <= 0 {
        return Ok(());
    }
    let before = now - days * crate::routes::DAY_MS;
    let why = format!("the sealed payload of jobs that ended more than {days} days ago");
    for (org, sha256, size) in state.store.ended_job_payloads(before, 500).await? {
        expire_blob(state, org, &sha256, size, &why).await?;
    }
    Ok(())
}

/// Delete a sealed blob from the organisation. Operators may delete what they uploaded; admins
/// anything; not while a file of the library or a job that has not ended uses it (409).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/blobs/{sha256}", tag = "blobs", params(("org" = OrgId, Path), ("sha256" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_blob(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, sha256)): Path<(OrgId, BlobHash)>,
) -> ApiResult<StatusCode> {
    let row = state.store.blob(access.org.id, &sha256).await?;
    if access.role < Role::Admin && row.created_by != access.caller.user.id {
        return Err(ApiError::forbidden(format!(
            "only its uploader or an {} may delete this blob",
            "admin"
        )));
    }
    let mut tx = state.store.begin().await?;
    if tx.blob_in_use(access.org.id, &sha256).await? {
        return Err(ApiError::conflict(
            "a file of the library or a job that has not ended uses this blob: delete the file \
             (DELETE .../files/{id}) or wait for the job to end",
        ));
    }
    let bytes = delete_row(&mut tx, access.org.id, &sha256).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "blob.delete",
        Some(format!("blob:{sha256}")),
        json!({ "size": row.size }),
    ))
    .await?;
    tx.commit().await?;
    remove_bytes(&state, [(&sha256, Some(bytes))]).await?;
    Ok(StatusCode::NO_CONTENT)
}
