//! Test databases: a SQLite file in a temp dir, or a fresh PostgreSQL database per test.

use hearth_store::Store;

/// A store plus what keeps it alive, and a raw URL so tests can tamper with rows directly.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub _dir: tempfile::TempDir,
    pub label: &'static str,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = hearth_store::sqlite_url(&dir.path().join("hearth.db"));
    let store = Store::open(&url).await.unwrap();
    TestDb {
        store,
        url,
        _dir: dir,
        label: "sqlite",
    }
}

/// A fresh PostgreSQL database, if `HEARTH_TEST_DATABASE_URL` is set. Under `HEARTH_REQUIRE_PEERS=1` a
/// missing URL is a failure, not a skip.
pub async fn postgres() -> Option<TestDb> {
    let url = fresh_postgres().await?;
    let store = Store::open(&url).await.unwrap();
    Some(TestDb {
        store,
        url,
        _dir: tempfile::tempdir().unwrap(),
        label: "postgres",
    })
}

/// The URL of a fresh, empty PostgreSQL database, if `HEARTH_TEST_DATABASE_URL` is set (under
/// `HEARTH_REQUIRE_PEERS=1` a missing URL is a failure).
pub async fn fresh_postgres() -> Option<String> {
    let Ok(admin_url) = std::env::var("HEARTH_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_PEERS=1 but HEARTH_TEST_DATABASE_URL is not set"
        );
        eprintln!("skipping PostgreSQL story: HEARTH_TEST_DATABASE_URL is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = match admin_url.rfind('/') {
        Some(i) if admin_url[..i].contains("://") && i > admin_url.find("://").unwrap() + 2 => {
            let query = admin_url[i..]
                .find('?')
                .map(|q| &admin_url[i + q..])
                .unwrap_or("");
            format!("{}/{name}{query}", &admin_url[..i])
        }
        _ => format!("{admin_url}/{name}"),
    };
    Some(url)
}

/// Run a statement directly against the database, bypassing Hearth (to simulate tampering).
pub async fn raw(url: &str, sql: &str) -> u64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut n = 0;
    for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
        n += sqlx::query(stmt)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected();
    }
    pool.close().await;
    n
}
