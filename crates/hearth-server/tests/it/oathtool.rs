//! TOTP codes made by oath-toolkit's `oathtool`, the reference tool (a peer that
//! `scripts/peers.sh` installs). Shared with the CLI's tests.

/// `oathtool`'s code for base32 `secret`, `steps` steps (30 s) from now; `None` when the tool is
/// missing (the caller then skips, said on stderr), a failure under `HEARTH_REQUIRE_PEERS=1`.
pub fn code(secret: &str, steps: i64) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = now + steps * 30;
    let out = match std::process::Command::new("oathtool")
        .args(["--totp", "-b", &format!("--now=@{at}"), secret])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
                "HEARTH_REQUIRE_PEERS=1 but oathtool cannot run: {e} (scripts/peers.sh installs it)"
            );
            eprintln!("skipped: oathtool is not installed (scripts/peers.sh installs it)");
            return None;
        }
    };
    assert!(out.status.success(), "{out:?}");
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}
