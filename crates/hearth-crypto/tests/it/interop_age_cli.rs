//! Interoperability with the stock `age` tool (Debian package `age`): what it seals we open, and
//! what we seal a user opens with `age -d -i` and an identity exported by `export_identity_file`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use hearth_crypto::{
    DeviceKeys, JobDestination, PrivateMetadata, export_identity_file, open_file, seal_job,
    seal_upload,
};

use crate::support::{NOW, Org, age_tool};

fn sample(len: usize) -> Vec<u8> {
    // More than one 64 KiB STREAM chunk, not a multiple of it.
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

fn age_decrypt(age: &std::path::Path, identity_file: &str, ciphertext: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("identity.txt");
    std::fs::write(&id, identity_file).unwrap();
    let ct = dir.path().join("blob.age");
    std::fs::write(&ct, ciphertext).unwrap();
    let out = Command::new(age)
        .arg("-d")
        .arg("-i")
        .arg(&id)
        .arg(&ct)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn stock_age_seals_and_we_open() {
    let Some(age) = age_tool() else { return };
    let device = DeviceKeys::generate();
    let other = DeviceKeys::generate();
    let data = sample(200_001);
    let mut child = Command::new(&age)
        .arg("-r")
        .arg(device.public().recipient.to_string())
        .arg("-r")
        .arg(other.public().recipient.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn({
        let data = data.clone();
        move || stdin.write_all(&data).unwrap()
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let mut plain = Vec::new();
    let summary = open_file(&[&device], &out.stdout[..], &mut plain).unwrap();
    assert_eq!(plain, data);
    assert_eq!(summary.ciphertext_len, out.stdout.len() as u64);
}

#[test]
fn we_seal_an_upload_and_stock_age_opens_it_with_the_exported_identity() {
    let Some(age) = age_tool() else { return };
    let org = Org::new();
    let trusted = org.trusted();
    let data = sample(300_000);
    let mut blob = Vec::new();
    let meta = PrivateMetadata {
        name: "bracket.gcode".into(),
        ..Default::default()
    };
    seal_upload(&trusted, &org.bob, "f1", &data[..], &mut blob, &meta, NOW).unwrap();
    // Bob's export holds his device key and the epoch keys he holds.
    let export = export_identity_file(&org.bob, &[&org.epoch]);
    assert_eq!(age_decrypt(&age, &export, &blob), data);
    // The device key alone does not open organisation files.
    let device_only = export_identity_file(&org.bob, &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id"), device_only.as_str()).unwrap();
    std::fs::write(dir.path().join("ct"), &blob).unwrap();
    let out = Command::new(&age)
        .arg("-d")
        .arg("-i")
        .arg(dir.path().join("id"))
        .arg(dir.path().join("ct"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn stock_age_opens_a_job_with_the_agent_identity() {
    let Some(age) = age_tool() else { return };
    let org = Org::new();
    let trusted = org.trusted();
    let data = sample(70_000);
    let mut blob = Vec::new();
    seal_job(
        &trusted,
        &org.bob,
        "job-1",
        JobDestination::Pool {
            pool: "farm",
            agents: &[org.g1.public(), org.g2.public()],
        },
        &data[..],
        &mut blob,
        NOW,
        NOW + 3600,
    )
    .unwrap();
    for agent in [&org.g1, &org.g2] {
        assert_eq!(
            age_decrypt(&age, &export_identity_file(agent, &[]), &blob),
            data
        );
    }
}

#[test]
fn chunk_and_block_boundaries_both_ways() {
    // 64 KiB chunks; our fast path works in blocks of 16 chunks (stream.rs: BLOCK_CHUNKS),
    // handed between two threads. 32 and 64 chunks are block boundaries too, and were the block
    // size before.
    let Some(age) = age_tool() else { return };
    let k = DeviceKeys::generate();
    let export = export_identity_file(&k, &[]);
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("id");
    std::fs::write(&id, export.as_str()).unwrap();
    let c = 64 * 1024;
    for n in [
        0,
        1,
        c,
        c + 1,
        16 * c,
        16 * c + 1,
        32 * c,
        32 * c + 1,
        64 * c + 5 * c + 3,
    ] {
        let data = sample(n);
        // ours -> stock age
        let blob = hearth_crypto::seal_bytes(&[&k.public().recipient], &data).unwrap();
        assert!(
            age_decrypt(&age, &export, &blob) == data,
            "stock age opening ours, size {n}"
        );
        // stock age -> ours
        let plain = dir.path().join("plain");
        std::fs::write(&plain, &data).unwrap();
        let out = Command::new(&age)
            .arg("-r")
            .arg(k.public().recipient.to_string())
            .arg(&plain)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            hearth_crypto::open_bytes(&[&k], &out.stdout).unwrap() == data,
            "ours opening stock age, size {n}"
        );
    }
    drop(id);
}
