//! Runs a browser test of `web/tests` from an async test (shared by `hearth-server`'s and
//! `hearth-cli`'s tests, whose servers run on the test's own runtime, so the wait must not block
//! it; `hearth-demo`'s synchronous tests run theirs with `std::process`).

/// `web/tests/SCRIPT` in Chromium, given `env`, failing the test with its output when it fails;
/// its steps are printed. Whether it ran: skipped (said) when the browser or the test's packages
/// are not installed, a failure under HEARTH_REQUIRE_PEERS=1 (`crate::browser::browser`).
pub async fn browser_test(script: &str, env: &[(&str, &str)]) -> bool {
    let Some((web, chromium)) = crate::browser::browser() else {
        return false;
    };
    let out = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(&web)
        .envs(env.iter().copied())
        .env("CHROMIUM", chromium)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the browser test {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
    true
}
