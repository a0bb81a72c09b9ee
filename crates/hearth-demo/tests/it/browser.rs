//! Whether the browser tests can run here (shared by `hearth-demo`'s and `hearth-cli`'s tests).

use std::process::Command;

/// What the browser test needs, or `None` (a skip) when it is missing and peers are not required:
/// Node.js, Chromium, and `playwright-core` installed in `web/tests` (`scripts/install-browser.sh`
/// installs both).
pub fn browser() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/tests");
    let chromium = std::env::var_os("CHROMIUM").map_or("/usr/bin/chromium".into(), Into::into);
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = [
        (!node, "Node.js"),
        (!std::path::Path::new(&chromium).exists(), "Chromium"),
        (
            !web.join("node_modules/playwright-core").exists(),
            "playwright-core in web/tests",
        ),
    ]
    .into_iter()
    .filter_map(|(gone, what)| gone.then_some(what))
    .collect::<Vec<_>>();
    if missing.is_empty() {
        return Some((web, chromium));
    }
    let why = format!(
        "{} missing: run scripts/install-browser.sh",
        missing.join(", ")
    );
    assert!(
        std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
        "HEARTH_REQUIRE_PEERS=1 but {why}"
    );
    eprintln!("skipped: {why}");
    None
}
