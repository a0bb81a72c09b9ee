//! The committed `docs/openapi.json` is what the code generates. Regenerate with `HEARTH_BLESS=1`.

#[test]
fn committed_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = hearth_server::routes::openapi_json();
    if std::env::var("HEARTH_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")).unwrap();
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `HEARTH_BLESS=1 cargo test -p hearth-server openapi` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/api/v1/setup",
        "/api/v1/orgs/{org}/uploads/{id}",
        "/api/v1/orgs/{org}/audit/verify",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} is documented");
    }
}
