//! The HTTP surface: one router, the OpenAPI description generated from the same handlers, and the
//! layers every request passes (tracing, metrics, panic catching, JSON 404/405).

pub mod accounts;
pub mod audit;
pub mod blobs;
pub mod camera;
pub mod fleet;
pub mod inventory;
pub mod legal;
pub mod maintenance;
pub mod notify;
pub mod passkeys;
pub mod sso;
pub mod stats;
pub mod system;
pub mod timelapse;
pub mod tokens;
pub mod ui;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use hearth_proto::time_fmt::now_ms;
use hearth_store::audit::NewAuditEntry;
use utoipa::OpenApi;

/// The OpenAPI 3.1 description of `/api/v1`, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth API", description = "Self-hosted cloud for 3D-printer fleets. The server stores sealed (age) blobs and sees no design."),
    paths(
        system::healthz, system::readyz, system::metrics, system::info,
        accounts::setup, accounts::login, accounts::logout, accounts::me, accounts::begin_mfa, accounts::confirm_mfa, accounts::remove_mfa, accounts::reset_mfa, accounts::set_mfa_policy, accounts::set_sso_policy, accounts::set_approval_policy, accounts::new_recovery_codes, accounts::list_sessions, accounts::end_session, accounts::end_other_sessions, sso::start, sso::callback, sso::backchannel_logout, sso::finish, sso::passkey_second_factor, sso::list_identities, sso::unlink, passkeys::list, passkeys::register_start, passkeys::register_finish, passkeys::remove, passkeys::login_start, passkeys::login_finish, passkeys::second_factor_start, passkeys::reset, passkeys::rename,
        accounts::create_user, accounts::list_users,
        accounts::create_org, accounts::list_orgs, accounts::get_org, accounts::set_quota, accounts::usage,
        accounts::list_members, accounts::add_member, accounts::set_member_role, accounts::remove_member,
        tokens::create_token, tokens::list_tokens, tokens::revoke_token,
        blobs::upload_options, blobs::create_upload, blobs::upload_status, blobs::upload_patch, blobs::upload_delete,
        blobs::list_blobs, blobs::download_blob, blobs::delete_blob,
        audit::org_audit, audit::org_audit_verify, audit::system_audit, audit::system_audit_verify, audit::system_audit_forwarding, legal::record, legal::list_system, legal::list_org,
        fleet::create_enrollment_token, fleet::enroll, fleet::list_agents, fleet::approve_agent, fleet::revoke_agent,
        fleet::list_printers, fleet::set_hold, fleet::heat, fleet::tune, fleet::run_action, fleet::set_bed, fleet::bed_cleared, fleet::set_loaded, fleet::reset_loaded, inventory::load_slot, inventory::unload_slot, fleet::printer_history, fleet::printer_temperatures, fleet::fleet_temperatures, fleet::submit_job, fleet::list_jobs, fleet::get_job, fleet::get_job_manifest, fleet::set_priority, fleet::approve_job, fleet::reject_job, fleet::control_job, fleet::events,
        fleet::change_secret, fleet::put_device, fleet::member_device, fleet::latest_epoch, fleet::get_epoch, fleet::put_epoch, fleet::grant_epoch, fleet::my_epoch_grant,
        fleet::create_file, fleet::list_files, fleet::delete_file, fleet::get_chain, fleet::append_chain, fleet::get_key_bundle, fleet::put_key_bundle,
        fleet::agent_blob, fleet::agent_chain, fleet::agent_connect,
        camera::agent_snapshot, camera::get_snapshot, camera::request_snapshot,
        stats::fleet_stats,
        maintenance::list_maintenance, maintenance::set_maintenance, maintenance::maintenance_done, maintenance::remove_maintenance,
        timelapse::list_timelapses, timelapse::get_timelapse, timelapse::get_timelapse_frame, timelapse::delete_timelapse,
        inventory::list_materials, inventory::create_material, inventory::update_material, inventory::delete_material,
        inventory::list_spools, inventory::create_spool, inventory::get_spool, inventory::update_spool, inventory::spool_usage, inventory::material_usage, inventory::member_usage,
        notify::list_channels, notify::create_channel, notify::update_channel, notify::delete_channel, notify::test_channel, notify::list_deliveries,
    ),
    // Notification: the `data` of a webhook delivery, which no handler returns.
    components(schemas(hearth_proto::api::ErrorBody, hearth_proto::notify::Notification)),
    modifiers(&Security),
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hth_...")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "Browser session; state-changing requests also need the X-CSRF-Token header",
            ))),
        );
    }
}

/// The generated document as committed in `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_default() + "\n"
}

/// Build the router.
pub fn router(state: AppState) -> Router {
    let json_limit = state.settings.limits.max_json_bytes;
    let api = Router::new()
        .route("/info", get(system::info))
        .route("/setup", post(accounts::setup))
        .route("/auth/login", post(accounts::login))
        .route("/auth/logout", post(accounts::logout))
        .route("/auth/sso/{provider}/start", get(sso::start))
        .route("/auth/sso/{provider}/callback", get(sso::callback))
        .route("/auth/sso/{provider}/logout", post(sso::backchannel_logout))
        .route("/auth/sso/finish", post(sso::finish))
        .route("/auth/sso/finish/passkey", post(sso::passkey_second_factor))
        .route("/me/sso", get(sso::list_identities))
        .route("/me/passkeys", get(passkeys::list))
        .route("/me/passkeys/register", post(passkeys::register_start))
        .route(
            "/me/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route(
            "/me/passkeys/{id}",
            delete(passkeys::remove).patch(passkeys::rename),
        )
        .route("/auth/passkey/start", post(passkeys::login_start))
        .route("/auth/passkey/finish", post(passkeys::login_finish))
        .route("/auth/login/passkey", post(passkeys::second_factor_start))
        .route("/me/sso/{provider}", delete(sso::unlink))
        .route("/me", get(accounts::me))
        .route(
            "/me/mfa",
            post(accounts::begin_mfa).delete(accounts::remove_mfa),
        )
        .route("/me/mfa/confirm", post(accounts::confirm_mfa))
        .route("/me/mfa/recovery-codes", post(accounts::new_recovery_codes))
        .route(
            "/me/sessions",
            get(accounts::list_sessions).delete(accounts::end_other_sessions),
        )
        .route("/me/sessions/{id}", delete(accounts::end_session))
        .route("/users/{id}/mfa", delete(accounts::reset_mfa))
        .route("/users/{id}/passkeys", delete(passkeys::reset))
        .route(
            "/users",
            post(accounts::create_user).get(accounts::list_users),
        )
        .route("/orgs", post(accounts::create_org).get(accounts::list_orgs))
        .route("/orgs/{org}", get(accounts::get_org))
        .route("/orgs/{org}/quota", put(accounts::set_quota))
        .route("/orgs/{org}/mfa-policy", put(accounts::set_mfa_policy))
        .route("/orgs/{org}/sso-policy", put(accounts::set_sso_policy))
        .route(
            "/orgs/{org}/approval-policy",
            put(accounts::set_approval_policy),
        )
        .route("/orgs/{org}/usage", get(accounts::usage))
        .route(
            "/orgs/{org}/members",
            get(accounts::list_members).post(accounts::add_member),
        )
        .route(
            "/orgs/{org}/members/{user}",
            put(accounts::set_member_role).delete(accounts::remove_member),
        )
        .route(
            "/tokens",
            post(tokens::create_token).get(tokens::list_tokens),
        )
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke_token))
        .route(
            "/orgs/{org}/uploads",
            post(blobs::create_upload).options(blobs::upload_options),
        )
        .route(
            "/orgs/{org}/uploads/{id}",
            axum::routing::head(blobs::upload_status)
                .patch(blobs::upload_patch)
                .delete(blobs::upload_delete)
                .options(blobs::upload_options),
        )
        .route("/orgs/{org}/blobs", get(blobs::list_blobs))
        .route(
            "/orgs/{org}/blobs/{sha256}",
            get(blobs::download_blob).delete(blobs::delete_blob),
        )
        .route("/orgs/{org}/audit", get(audit::org_audit))
        .route("/orgs/{org}/audit/verify", get(audit::org_audit_verify))
        .route("/system/audit", get(audit::system_audit))
        .route("/system/audit/verify", get(audit::system_audit_verify))
        .route(
            "/system/audit/forwarding",
            get(audit::system_audit_forwarding),
        )
        .route(
            "/system/legal-requests",
            get(legal::list_system).post(legal::record),
        )
        .route("/orgs/{org}/legal-requests", get(legal::list_org))
        .route(
            "/orgs/{org}/agents/enrollment-tokens",
            post(fleet::create_enrollment_token),
        )
        .route("/agents/enroll", post(fleet::enroll))
        .route("/orgs/{org}/agents", get(fleet::list_agents))
        .route(
            "/orgs/{org}/agents/{id}/approve",
            post(fleet::approve_agent),
        )
        .route("/orgs/{org}/agents/{id}/revoke", post(fleet::revoke_agent))
        .route("/orgs/{org}/printers", get(fleet::list_printers))
        .route("/orgs/{org}/printers/{id}/hold", put(fleet::set_hold))
        .route("/orgs/{org}/printers/{id}/heat", post(fleet::heat))
        .route("/orgs/{org}/printers/{id}/tune", post(fleet::tune))
        .route(
            "/orgs/{org}/printers/{id}/actions/{action}",
            post(fleet::run_action),
        )
        .route("/orgs/{org}/printers/{id}/bed", put(fleet::set_bed))
        .route(
            "/orgs/{org}/printers/{id}/bed/cleared",
            post(fleet::bed_cleared),
        )
        .route(
            "/orgs/{org}/printers/{id}/loaded",
            put(fleet::set_loaded).delete(fleet::reset_loaded),
        )
        .route(
            "/orgs/{org}/printers/{id}/slots/{slot}",
            put(inventory::load_slot).delete(inventory::unload_slot),
        )
        .route(
            "/orgs/{org}/printers/{id}/history",
            get(fleet::printer_history),
        )
        .route(
            "/orgs/{org}/printers/{id}/temperatures",
            get(fleet::printer_temperatures),
        )
        .route("/orgs/{org}/temperatures", get(fleet::fleet_temperatures))
        .route(
            "/orgs/{org}/printers/{id}/snapshot",
            get(camera::get_snapshot).post(camera::request_snapshot),
        )
        .route(
            "/orgs/{org}/jobs",
            post(fleet::submit_job).get(fleet::list_jobs),
        )
        .route("/orgs/{org}/jobs/{id}", get(fleet::get_job))
        .route("/orgs/{org}/jobs/{id}/priority", put(fleet::set_priority))
        .route("/orgs/{org}/jobs/{id}/approve", post(fleet::approve_job))
        .route("/orgs/{org}/jobs/{id}/reject", post(fleet::reject_job))
        .route(
            "/orgs/{org}/jobs/{id}/manifest",
            get(fleet::get_job_manifest),
        )
        .route("/orgs/{org}/stats", get(stats::fleet_stats))
        .route(
            "/orgs/{org}/maintenance",
            get(maintenance::list_maintenance),
        )
        .route(
            "/orgs/{org}/printers/{id}/maintenance/{kind}",
            put(maintenance::set_maintenance).delete(maintenance::remove_maintenance),
        )
        .route(
            "/orgs/{org}/printers/{id}/maintenance/{kind}/done",
            post(maintenance::maintenance_done),
        )
        .route("/orgs/{org}/timelapses", get(timelapse::list_timelapses))
        .route(
            "/orgs/{org}/jobs/{id}/timelapse",
            get(timelapse::get_timelapse).delete(timelapse::delete_timelapse),
        )
        .route(
            "/orgs/{org}/jobs/{id}/timelapse/{seq}",
            get(timelapse::get_timelapse_frame),
        )
        .route("/orgs/{org}/jobs/{id}/{action}", post(fleet::control_job))
        .route("/orgs/{org}/events", get(fleet::events))
        .route("/agent/chain", get(fleet::agent_chain))
        .route("/me/secret", put(fleet::change_secret))
        .route("/me/device", put(fleet::put_device))
        .route(
            "/orgs/{org}/members/{user}/device",
            get(fleet::member_device),
        )
        .route("/orgs/{org}/epochs", post(fleet::put_epoch))
        .route("/orgs/{org}/epochs/latest", get(fleet::latest_epoch))
        .route("/orgs/{org}/epochs/{epoch}", get(fleet::get_epoch))
        .route(
            "/orgs/{org}/epochs/{epoch}/grant",
            get(fleet::my_epoch_grant),
        )
        .route(
            "/orgs/{org}/members/{user}/epochs/{epoch}",
            put(fleet::grant_epoch),
        )
        .route(
            "/orgs/{org}/files",
            post(fleet::create_file).get(fleet::list_files),
        )
        .route(
            "/orgs/{org}/files/{id}",
            axum::routing::delete(fleet::delete_file),
        )
        .route(
            "/orgs/{org}/chain",
            get(fleet::get_chain).post(fleet::append_chain),
        )
        .route(
            "/me/key-bundle",
            get(fleet::get_key_bundle).put(fleet::put_key_bundle),
        )
        .route(
            "/orgs/{org}/materials",
            get(inventory::list_materials).post(inventory::create_material),
        )
        .route(
            "/orgs/{org}/materials/{id}",
            axum::routing::patch(inventory::update_material).delete(inventory::delete_material),
        )
        .route(
            "/orgs/{org}/spools",
            get(inventory::list_spools).post(inventory::create_spool),
        )
        .route(
            "/orgs/{org}/spools/{id}",
            get(inventory::get_spool).patch(inventory::update_spool),
        )
        .route("/orgs/{org}/spools/{id}/usage", get(inventory::spool_usage))
        .route(
            "/orgs/{org}/usage/materials",
            get(inventory::material_usage),
        )
        .route("/orgs/{org}/usage/members", get(inventory::member_usage))
        .route(
            "/orgs/{org}/notifications",
            get(notify::list_channels).post(notify::create_channel),
        )
        .route(
            "/orgs/{org}/notifications/{id}",
            axum::routing::delete(notify::delete_channel).patch(notify::update_channel),
        )
        .route(
            "/orgs/{org}/notifications/{id}/test",
            post(notify::test_channel),
        )
        .route(
            "/orgs/{org}/notifications/{id}/deliveries",
            get(notify::list_deliveries),
        )
        .route("/agent/blobs/{sha256}", get(fleet::agent_blob))
        // A sealed camera frame is larger than any other JSON body.
        .route(
            "/agent/printers/{name}/snapshot",
            put(camera::agent_snapshot).layer(DefaultBodyLimit::max(
                camera::SNAPSHOT_BODY_LIMIT.max(json_limit),
            )),
        )
        .route("/agent/connect", get(fleet::agent_connect))
        .layer(DefaultBodyLimit::max(json_limit));

    let mut root = Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics));
    if state.settings.ui.enabled {
        root = root
            .route("/", get(ui::index))
            .route("/ui/{file}", get(ui::asset));
    }
    root.nest("/api/v1", api)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal(std::io::Error::other("handler panicked")).into_response()
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    state.metrics.count_response(resp.status().as_u16());
    resp
}

/// A day in milliseconds (retention periods are in days, times in Unix ms).
pub(crate) const DAY_MS: i64 = 24 * 3600 * 1000;

/// An audit entry for something the server did by itself (a sweep, dispatch, an expiry).
pub fn system_audit(
    scope: impl Into<String>,
    action: &str,
    target: Option<String>,
    details: serde_json::Value,
) -> NewAuditEntry {
    NewAuditEntry {
        scope: scope.into(),
        ts_ms: now_ms(),
        actor: "system".into(),
        action: action.to_owned(),
        target,
        source: None,
        details,
    }
}

impl Caller {
    /// An audit entry for something this caller did.
    pub fn audit(
        &self,
        scope: impl Into<String>,
        action: &str,
        target: Option<String>,
        details: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            scope: scope.into(),
            ts_ms: now_ms(),
            actor: self.actor(),
            action: action.to_owned(),
            target,
            source: self.source.clone(),
            details,
        }
    }
}
