//! Tamper tests: any flipped bit of a sealed file, a signed manifest or a chain link must fail.

use hearth_crypto::{
    DeviceKeys, OpenError, PrivateMetadata, SignedFileManifest, open_bytes, seal_bytes, seal_upload,
};

use crate::support::{NOW, Org};

#[test]
fn every_single_bit_flip_of_a_small_sealed_file_fails() {
    let k = DeviceKeys::generate();
    let ct = seal_bytes(&[&k.public().recipient], b"tiny design").unwrap();
    for byte in 0..ct.len() {
        for bit in 0..8 {
            let mut bad = ct.clone();
            bad[byte] ^= 1 << bit;
            let r = open_bytes(&[&k], &bad);
            assert!(r.is_err(), "flip of bit {bit} in byte {byte} was accepted");
        }
    }
}

#[test]
fn truncation_and_extension_fail() {
    let k = DeviceKeys::generate();
    let ct = seal_bytes(&[&k.public().recipient], &vec![3u8; 65536 * 2 + 5]).unwrap();
    assert!(matches!(
        open_bytes(&[&k], &ct[..ct.len() - 20]),
        Err(OpenError::PayloadTampered(_))
    ));
    let mut longer = ct.clone();
    longer.push(0);
    assert!(open_bytes(&[&k], &longer).is_err());
    // Cut exactly at a chunk boundary: the final-chunk flag no longer matches.
    let header_and_nonce = ct.len() - (65536 * 2 + 5) - 3 * 16;
    assert!(open_bytes(&[&k], &ct[..header_and_nonce + 65536 + 16]).is_err());
}

#[test]
fn every_single_bit_flip_of_a_signed_manifest_fails() {
    let org = Org::new();
    let trusted = org.trusted();
    let up = seal_upload(
        &trusted,
        &org.bob,
        "f1",
        &b"x"[..],
        &mut Vec::new(),
        &PrivateMetadata::default(),
        NOW,
    )
    .unwrap();
    let json = serde_json::to_vec(&up.manifest).unwrap();
    let mut accepted = 0;
    for byte in 0..json.len() {
        for bit in 0..8 {
            let mut bad = json.clone();
            bad[byte] ^= 1 << bit;
            if let Ok(m) = serde_json::from_slice::<SignedFileManifest>(&bad)
                && m.verify(&trusted).is_ok()
            {
                // A flip that decodes to the very same manifest (e.g. in a JSON escape) is not a change.
                if m != up.manifest {
                    accepted += 1;
                }
            }
        }
    }
    assert_eq!(accepted, 0);
}

#[test]
fn garbage_and_mutated_input_never_panics_and_never_opens() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let k = DeviceKeys::generate();
    let good = seal_bytes(&[&k.public().recipient], &vec![9u8; 70_000]).unwrap();
    for _ in 0..300 {
        let len = rng.gen_range(0..400);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        if rng.gen_bool(0.5) {
            junk.splice(0..0, b"age-encryption.org/v1\n-> X25519 ".iter().copied());
        }
        assert!(open_bytes(&[&k], &junk).is_err());
        let mut bad = good.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..bad.len());
            bad[i] = rng.r#gen();
        }
        if bad != good {
            assert!(open_bytes(&[&k], &bad).is_err());
        }
        let cut = rng.gen_range(0..good.len());
        assert!(open_bytes(&[&k], &good[..cut]).is_err());
    }
}
