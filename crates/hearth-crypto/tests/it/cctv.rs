//! The C2SP CCTV age vectors against our opening paths: X25519 vectors through `open_bytes` (the
//! path files and jobs take), scrypt vectors through the passphrase path wrapped key bundles take.

use std::io::Read as _;
use std::path::PathBuf;

use hearth_crypto::{
    __open_with_passphrase_for_vectors, DeviceKeys, OpenError, Sha256Digest, open_bytes,
};

use crate::support::test_data_dir;

struct Vector {
    name: String,
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    passphrase: Option<String>,
    armored: bool,
    body: Vec<u8>,
}

fn load(path: &PathBuf) -> Vector {
    let raw = std::fs::read(path).unwrap();
    let split = raw.windows(2).position(|w| w == b"\n\n").unwrap();
    let header = std::str::from_utf8(&raw[..split]).unwrap();
    let mut body = raw[split + 2..].to_vec();
    let mut v = Vector {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        expect: String::new(),
        payload: None,
        identities: vec![],
        passphrase: None,
        armored: false,
        body: vec![],
    };
    let mut compressed = false;
    for line in header.lines() {
        let (k, val) = line.split_once(": ").unwrap();
        match k {
            "expect" => v.expect = val.to_owned(),
            "payload" => v.payload = Some(val.to_owned()),
            "identity" => v.identities.push(val.to_owned()),
            "passphrase" => v.passphrase = Some(val.to_owned()),
            "armored" => v.armored = val == "yes",
            "compressed" => {
                assert_eq!(val, "zlib");
                compressed = true
            }
            _ => {}
        }
    }
    if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        body = out;
    }
    v.body = body;
    v
}

/// Vectors for features Hearth does not offer, by name, with the reason. Part of the test: a vector
/// that appears here and does not exist, or exists and is neither run nor listed, fails it.
fn skip_reason(v: &Vector) -> Option<&'static str> {
    if v.armored {
        return Some(
            "ASCII armor is not part of Hearth's format (sealed objects are binary age v1)",
        );
    }
    if v.name.starts_with("hybrid") {
        return Some(
            "post-quantum hybrid recipients (mlkem768x25519) are not offered by suite age-x25519+ed25519 yet",
        );
    }
    None
}

fn run(v: &Vector) -> Result<Vec<u8>, OpenError> {
    if let Some(p) = &v.passphrase {
        return __open_with_passphrase_for_vectors(&v.body, p);
    }
    let keys: Vec<DeviceKeys> = v
        .identities
        .iter()
        .map(|id| DeviceKeys::from_secret_parts(&[7u8; 32], id).unwrap())
        .collect();
    let refs: Vec<&dyn hearth_crypto::OpeningKey> = keys.iter().map(|k| k as _).collect();
    open_bytes(&refs, &v.body)
}

#[test]
fn cctv_age_vectors() {
    let dir = test_data_dir().join("cctv-age");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("CCTV vectors missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 100,
        "expected the full CCTV age suite, found {}",
        paths.len()
    );

    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut ran = 0;
    for path in &paths {
        let v = load(path);
        if let Some(reason) = skip_reason(&v) {
            skipped.push(format!("{}: {reason}", v.name));
            continue;
        }
        ran += 1;
        let got = run(&v);
        let ok = match (v.expect.as_str(), &got) {
            ("success", Ok(pt)) => Some(Sha256Digest::of(pt).to_hex()) == v.payload,
            ("success", Err(_)) => false,
            ("no match", Err(OpenError::NotARecipient)) => true,
            ("HMAC failure", Err(OpenError::HeaderTampered)) => true,
            ("payload failure", Err(OpenError::PayloadTampered(_) | OpenError::Malformed)) => true,
            (
                "header failure",
                Err(
                    OpenError::Malformed
                    | OpenError::StanzaTampered
                    | OpenError::HeaderTampered
                    | OpenError::NotARecipient
                    | OpenError::ExcessiveWork { .. },
                ),
            ) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {}, got {:?}",
                v.name,
                v.expect,
                got.map(|p| p.len())
            ));
        }
    }
    eprintln!("CCTV: ran {ran}, skipped {}:", skipped.len());
    for s in &skipped {
        eprintln!("  skipped {s}");
    }
    // The skip list is part of the test: it is kept as data beside it and must match exactly.
    let listed: Vec<String> = include_str!("cctv_skipped.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(skipped, listed, "tests/it/cctv_skipped.txt is out of date");
    assert!(
        failures.is_empty(),
        "CCTV vectors failed:\n{}",
        failures.join("\n")
    );
    // Every non-armored, non-hybrid vector must run: at least the 26 successes' worth of coverage.
    assert!(ran >= 80, "only {ran} vectors ran");
}
