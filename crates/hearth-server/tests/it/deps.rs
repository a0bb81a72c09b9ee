//! The server must never link the code that opens sealed data (`hearth-crypto`, the `age` crate and its
//! identities) nor printer drivers. This reads `cargo metadata` and fails as soon as any of them appears
//! among the server's normal dependencies, even transitively.

use std::collections::{BTreeSet, HashMap};

const FORBIDDEN: &[&str] = &[
    "hearth-crypto",
    "age",
    "age-core",
    "hearth-drivers",
    "hearth-agent",
    "hearth-cli",
];

#[test]
fn the_server_cannot_link_decryption_or_printer_drivers() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                // Only what ships in the binary: normal and build dependencies, not dev-dependencies.
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].as_str() != Some("dev"))
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| **n == "hearth-server")
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for dep in nodes.get(id).into_iter().flatten() {
            if seen.insert(*dep) {
                stack.push(dep);
            }
        }
    }
    let linked: BTreeSet<&str> = seen.iter().map(|id| names[id]).collect();
    assert!(
        linked.contains("hearth-store") && linked.contains("hearth-proto"),
        "the walk found the server's deps"
    );
    let bad: Vec<_> = FORBIDDEN.iter().filter(|f| linked.contains(*f)).collect();
    assert!(bad.is_empty(), "hearth-server must not depend on {bad:?}");
}
