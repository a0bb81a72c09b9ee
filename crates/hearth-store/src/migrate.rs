//! Applies `migrations/*.sql` in order, once each, remembering a checksum so an edited migration is caught.
//! On PostgreSQL an advisory lock keeps several `hearthd` instances starting together from racing.

use crate::{Backend, Result, Store, StoreError};
use sha2::{Digest, Sha256};
use sqlx::Row;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "agents_jobs",
        include_str!("../migrations/0002_agents_jobs.sql"),
    ),
    (
        3,
        "printer_rollups",
        include_str!("../migrations/0003_printer_rollups.sql"),
    ),
    (
        4,
        "epochs_devices",
        include_str!("../migrations/0004_epochs_devices.sql"),
    ),
    (
        5,
        "printer_loaded",
        include_str!("../migrations/0005_printer_loaded.sql"),
    ),
    (
        6,
        "epoch_grants",
        include_str!("../migrations/0006_epoch_grants.sql"),
    ),
    (
        7,
        "notifications",
        include_str!("../migrations/0007_notifications.sql"),
    ),
    (
        8,
        "notify_pools",
        include_str!("../migrations/0008_notify_pools.sql"),
    ),
    (
        9,
        "inventory",
        include_str!("../migrations/0009_inventory.sql"),
    ),
    (
        10,
        "timelapse",
        include_str!("../migrations/0010_timelapse.sql"),
    ),
    (
        11,
        "job_priority",
        include_str!("../migrations/0011_job_priority.sql"),
    ),
    (
        12,
        "bed_clearing",
        include_str!("../migrations/0012_bed_clearing.sql"),
    ),
    (
        13,
        "printer_hold",
        include_str!("../migrations/0013_printer_hold.sql"),
    ),
    (
        14,
        "maintenance",
        include_str!("../migrations/0014_maintenance.sql"),
    ),
    (
        15,
        "quiet_hours",
        include_str!("../migrations/0015_quiet_hours.sql"),
    ),
    (
        16,
        "offline_notice",
        include_str!("../migrations/0016_offline_notice.sql"),
    ),
    (
        17,
        "job_label",
        include_str!("../migrations/0017_job_label.sql"),
    ),
    (
        18,
        "error_notice",
        include_str!("../migrations/0018_error_notice.sql"),
    ),
    (19, "mfa", include_str!("../migrations/0019_mfa.sql")),
    (
        20,
        "org_require_mfa",
        include_str!("../migrations/0020_org_require_mfa.sql"),
    ),
    (
        21,
        "session_user_agent",
        include_str!("../migrations/0021_session_user_agent.sql"),
    ),
    (
        22,
        "job_approval",
        include_str!("../migrations/0022_job_approval.sql"),
    ),
    (
        23,
        "audit_action_index",
        include_str!("../migrations/0023_audit_action_index.sql"),
    ),
    (24, "sso", include_str!("../migrations/0024_sso.sql")),
    (
        25,
        "sso_policy",
        include_str!("../migrations/0025_sso_policy.sql"),
    ),
    (
        26,
        "passkeys",
        include_str!("../migrations/0026_passkeys.sql"),
    ),
    (
        27,
        "session_second_factor",
        include_str!("../migrations/0027_session_second_factor.sql"),
    ),
    (
        28,
        "audit_forward",
        include_str!("../migrations/0028_audit_forward.sql"),
    ),
    (
        29,
        "spool_slots",
        include_str!("../migrations/0029_spool_slots.sql"),
    ),
    (
        30,
        "spool_rfid",
        include_str!("../migrations/0030_spool_rfid.sql"),
    ),
    (
        31,
        "sso_logout",
        include_str!("../migrations/0031_sso_logout.sql"),
    ),
    (
        32,
        "sso_id_token",
        include_str!("../migrations/0032_sso_id_token.sql"),
    ),
];

/// Arbitrary constant naming Hearth's migration lock among PostgreSQL advisory locks.
const PG_LOCK_KEY: i64 = 0x4845_4152_5448; // "HEARTH"

pub(crate) async fn run(store: &Store) -> Result<()> {
    let mut conn = store.pool().acquire().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(&mut conn).await;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(conn: &mut sqlx::AnyConnection) -> Result<()> {
    apply_up_to(conn, i64::MAX).await
}

/// Applies the migrations up to `last` to the database at `url`, as an older Hearth left it, so
/// that tests can upgrade a database with data in it. Not for use by Hearth itself.
#[doc(hidden)]
pub async fn up_to(url: &str, last: i64) -> Result<()> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    apply_up_to(&mut conn, last).await
}

/// Applies the migrations up to `last` (tests upgrade a database with data in it).
async fn apply_up_to(conn: &mut sqlx::AnyConnection, last: i64) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS hearth_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= last) {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        let applied = sqlx::query("SELECT checksum FROM hearth_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = applied {
            let stored: String = row.try_get("checksum")?;
            if stored != checksum {
                return Err(StoreError::MigrationChanged {
                    version,
                    name: name.to_owned(),
                });
            }
            continue;
        }
        tracing::info!(version, name, "applying database migration");
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO hearth_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind(version)
            .bind(name)
            .bind(checksum)
            .bind(hearth_proto::time_fmt::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
