//! The second factor at login: a TOTP authenticator (RFC 6238: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way, as every authenticator app makes them; the codes are
//! computed by the `totp-rs` crate) and ten one-time recovery codes, of which the server keeps
//! only SHA-256 hashes. A code is accepted once: the store moves the account's last accepted step
//! forward with a compare-and-set, so a code seen by someone else (over a shoulder, in a phishing
//! relay after use) is refused, whichever instance it is tried on.

use hearth_proto::ids::UserId;
use hearth_store::Store;
use hearth_store::mfa::MfaRow;

use crate::at_rest::AtRest;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use totp_rs::{Builder, Secret, Totp};

/// How many recovery codes an account gets.
pub const RECOVERY_CODES: usize = 10;

/// A new shared secret, 160 bits (RFC 4226's recommendation), base32.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::from(bytes).to_base32()
}

fn totp(secret: &str) -> Option<Totp> {
    Builder::new()
        .with_secret(Secret::try_from_base32(secret).ok()?)
        .build()
        .ok()
}

/// The step whose code `code` is, within a step of `now` (Unix seconds); `None` when it is none.
pub fn code_step(secret: &str, code: &str, now: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret)?
        .check(&code, now)
        .and_then(|s| i64::try_from(s).ok())
}

/// The `otpauth://` URI authenticator apps read (from a QR code): issuer `Hearth (HOST)`.
pub fn otpauth_uri(issuer: &str, login: &str, secret: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(login),
        enc(issuer)
    )
}

/// `text` as a QR code in SVG (one unit a module, four of quiet zone, dark modules as one path),
/// or an empty string when it does not fit one.
pub fn qr_svg(text: &str) -> String {
    use qrcodegen::{QrCode, QrCodeEcc};
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        return String::new();
    };
    let n = qr.size();
    let side = n + 8;
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    let px = side * 5;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

/// A recovery code as typed: lower case, without spaces or dashes.
fn normal(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// How a server before keyed hashes kept a recovery code (SHA-256, hex): still accepted for
/// codes issued then.
fn legacy_recovery_hash(code: &str) -> String {
    hex::encode(Sha256::digest(normal(code).as_bytes()))
}

/// What the server keeps of `user`'s recovery code: a keyed hash ([`AtRest::recovery_hash`]).
fn recovery_hash(at_rest: &AtRest, user: UserId, code: &str) -> String {
    at_rest.recovery_hash(user, &normal(code))
}

/// Fresh recovery codes (`xxxxx-xxxxx`, 50 bits each) for `user` and the hashes the server keeps.
pub fn recovery_codes(at_rest: &AtRest, user: UserId) -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789"; // no l, o, 0, 1
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let c: String = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
                .collect();
            format!("{}-{}", &c[..5], &c[5..])
        })
        .collect();
    let hashes = codes
        .iter()
        .map(|c| recovery_hash(at_rest, user, c))
        .collect();
    (codes, hashes)
}

/// Whether `user` has a confirmed second factor (logins ask for it).
pub async fn is_on(store: &Store, user: UserId) -> hearth_store::Result<bool> {
    Ok(store
        .mfa(user)
        .await?
        .is_some_and(|m| m.enabled_at.is_some()))
}

/// Whether `caller` came with two factors, as an organisation requiring a second factor wants:
/// their account has an authenticator app (every login of it asks for a second factor), or a
/// passkey opened their session (alone, two factors in one, or after the passphrase).
pub async fn two_factors(
    store: &Store,
    caller: &crate::auth::Caller,
) -> hearth_store::Result<bool> {
    Ok(caller.passkey_session() || is_on(store, caller.user.id).await?)
}

/// How a second factor was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    /// A code of the authenticator app.
    Totp,
    /// A recovery code (now used up).
    Recovery,
}

/// Checks `code` for `user`'s confirmed second factor `mfa` at `now` (Unix seconds) and takes
/// it: a TOTP code of a step later than the last one accepted, or an unused recovery code. `None`
/// when it is neither (wrong, reused, or already taken by a concurrent login).
pub async fn take(
    state: &crate::state::AppState,
    user: UserId,
    mfa: &MfaRow,
    code: &str,
    now: u64,
) -> crate::error::ApiResult<Option<Used>> {
    let secret = state
        .at_rest
        .open(user, &mfa.totp_secret)
        .map_err(crate::error::ApiError::internal)?;
    if let Some(step) = code_step(&secret, code, now) {
        return Ok(state
            .store
            .take_totp_step(user, step)
            .await?
            .then_some(Used::Totp));
    }
    for hash in [
        recovery_hash(&state.at_rest, user, code),
        legacy_recovery_hash(code),
    ] {
        if mfa.recovery.contains(&hash) {
            return Ok(state
                .store
                .take_recovery_code(user, &mfa.recovery, &hash)
                .await?
                .then_some(Used::Recovery));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (its 8-digit values; the 6-digit code is their last six),
    /// secret "12345678901234567890".
    #[test]
    fn codes_are_those_of_rfc_6238() {
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let code = &eight[2..];
            assert_eq!(
                code_step(&secret, code, time),
                Some((time / 30) as i64),
                "{time}"
            );
            // One step of skew either way, no more.
            assert!(code_step(&secret, code, time + 30).is_some());
            assert!(code_step(&secret, code, time - 30).is_some());
            assert_eq!(code_step(&secret, code, time + 61), None);
        }
        assert_eq!(code_step(&secret, "28708", 59), None, "five digits");
        assert_eq!(
            code_step(&secret, "287 082", 59),
            Some(1),
            "spaces are ignored"
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_kept_as_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let key = AtRest::load_or_create(&dir.path().join("secret.key")).unwrap();
        let user = UserId::new();
        let (codes, hashes) = recovery_codes(&key, user);
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut seen = codes.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), RECOVERY_CODES);
        assert_eq!(
            hashes[0],
            recovery_hash(&key, user, &codes[0].to_uppercase().replace('-', " "))
        );
        assert!(!hashes.iter().any(|h| codes.contains(h)));
    }

    #[test]
    fn the_qr_code_is_an_svg_of_a_whole_qr_symbol() {
        let svg = qr_svg("otpauth://totp/Hearth:ada?secret=JBSWY3DPEHPK3PXP&issuer=Hearth");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
        // 21 + 4k modules and 8 of quiet zone; the top-left finder's first module is dark.
        let side: i32 = svg["<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((side - 8 - 21) % 4, 0, "{side}");
        assert!(svg.contains("M4,4h1v1h-1z"));
        assert!(!svg.contains("M3,"), "nothing in the quiet zone");
        assert_eq!(qr_svg(&"x".repeat(5000)), "");
    }

    #[test]
    fn the_uri_names_the_account_and_issuer() {
        assert_eq!(
            otpauth_uri("Hearth (farm.example)", "ada", "JBSWY3DPEHPK3PXP"),
            "otpauth://totp/Hearth%20%28farm.example%29:ada?secret=JBSWY3DPEHPK3PXP&issuer=Hearth%20%28farm.example%29&algorithm=SHA1&digits=6&period=30"
        );
    }
}
