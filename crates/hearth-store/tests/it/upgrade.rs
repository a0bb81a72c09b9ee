//! Upgrading a database with data in it, on SQLite and on PostgreSQL: what an older Hearth stored
//! survives the migrations that rebuild its tables.

use crate::support::fresh_postgres;
use hearth_store::Store;
use sqlx::{Connection, Row};

#[tokio::test]
async fn what_jobs_used_survives_the_spool_slots_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    usage_survives_the_spool_slots_migration(&hearth_store::sqlite_url(&dir.path().join("old.db")))
        .await;
}

#[tokio::test]
async fn what_jobs_used_survives_the_spool_slots_migration_on_postgres() {
    if let Some(url) = fresh_postgres().await {
        usage_survives_the_spool_slots_migration(&url).await;
    }
}

/// Migration 0029 rebuilds `spool_usage` (a row per filament): what jobs used before it stays, as
/// part 0 of each job.
async fn usage_survives_the_spool_slots_migration(url: &str) {
    hearth_store::migrate::up_to(url, 28).await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO orgs (id, name, quota_bytes, created_at) VALUES ('o1', 'Acme', 0, 1); \
         INSERT INTO jobs (id, org_id, blob_sha256, manifest, facts, state, submitted_by, \
         created_at, updated_at) VALUES ('j1', 'o1', 'h', '{}', '{}', 'completed', 'u1', 1, 7), \
         ('j2', 'o1', 'h', '{}', '{}', 'cancelled', 'u1', 1, 8); \
         INSERT INTO materials (id, org_id, name, material, density, diameter, created_at) \
         VALUES ('m1', 'o1', 'PLA', 'PLA', 1.24, 1.75, 1); \
         INSERT INTO spools (id, org_id, material_id, initial_grams, remaining_grams, low_grams, \
         created_at) VALUES ('s1', 'o1', 'm1', 1000, 987.5, 100, 1); \
         INSERT INTO spool_usage (job_id, org_id, spool_id, printer_id, material, color, grams, \
         cost, state, at) VALUES ('j1', 'o1', 's1', NULL, 'PLA', '#fff', 12.5, 0.3, 'completed', 7), \
         ('j2', 'o1', NULL, NULL, NULL, NULL, 3.0, NULL, 'cancelled', 8)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let _store = Store::open(url).await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT job_id, part, spool_id, slot, grams, cost, state, at FROM spool_usage \
         ORDER BY job_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>("job_id"),
                r.get::<i64, _>("part"),
                r.get::<Option<String>, _>("spool_id"),
                r.get::<Option<String>, _>("slot"),
                r.get::<f64, _>("grams"),
                r.get::<Option<f64>, _>("cost"),
                r.get::<String, _>("state"),
                r.get::<i64, _>("at"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "j1".into(),
                0,
                Some("s1".into()),
                None,
                12.5,
                Some(0.3),
                "completed".into(),
                7
            ),
            ("j2".into(), 0, None, None, 3.0, None, "cancelled".into(), 8),
        ]
    );
}
