//! Benchmark driver for `scripts/bench-crypto.sh`: one operation per process, so the script can
//! time it and read its peak RSS next to the stock `age` tool doing the same job on the same file.
//!
//! ```text
//! seal_bench keygen IDENTITY_FILE        # writes an age identity file, prints the recipient
//! seal_bench seal RECIPIENT IN OUT       # seal_file, prints the ciphertext SHA-256
//! seal_bench open IDENTITY_FILE IN OUT   # open_file, prints the ciphertext SHA-256
//! seal_bench seal-unhashed RECIPIENT IN OUT  # the STREAM alone, without the SHA-256 (diagnostic)
//! seal_bench hash IN                     # SHA-256 alone (diagnostic)
//! seal_bench seal-age-crate R IN OUT / open-age-crate ID IN OUT  # the age crate alone
//! ```
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufWriter, Write as _};

use hearth_crypto::{DeviceKeys, Recipient, export_identity_file, open_file, seal_file};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["keygen", id_file] => {
            let k = DeviceKeys::generate();
            std::fs::write(id_file, export_identity_file(&k, &[]).as_bytes()).unwrap();
            println!("{}", k.public().recipient);
        }
        ["seal", recipient, input, output] => {
            let r: Recipient = recipient.parse().unwrap();
            let out = BufWriter::with_capacity(1 << 20, File::create(output).unwrap());
            let s = seal_file(&[&r], File::open(input).unwrap(), out).unwrap();
            println!("{}", s.ciphertext_sha256);
        }
        ["open", id_file, input, output] => {
            let text = std::fs::read_to_string(id_file).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                .unwrap();
            let k = DeviceKeys::from_secret_parts(&[0u8; 32], line).unwrap();
            let mut out = BufWriter::with_capacity(1 << 20, File::create(output).unwrap());
            let s = open_file(&[&k], File::open(input).unwrap(), &mut out).unwrap();
            out.flush().unwrap();
            println!("{}", s.ciphertext_sha256);
        }
        ["seal-unhashed", recipient, input, output] => {
            let r: Recipient = recipient.parse().unwrap();
            let out = BufWriter::with_capacity(1 << 20, File::create(output).unwrap());
            hearth_crypto::__seal_unhashed_for_bench(&[&r], File::open(input).unwrap(), out)
                .unwrap();
        }
        ["seal-age-crate", recipient, input, output] => {
            // The age crate alone (single-threaded STREAM, no hash), for comparison.
            let r: age::x25519::Recipient = recipient.parse().unwrap();
            let e = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                .unwrap();
            let out = BufWriter::with_capacity(1 << 20, File::create(output).unwrap());
            let mut w = e.wrap_output(out).unwrap();
            std::io::copy(&mut File::open(input).unwrap(), &mut w).unwrap();
            w.finish().unwrap().flush().unwrap();
        }
        ["open-age-crate", id_file, input, output] => {
            let text = std::fs::read_to_string(id_file).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                .unwrap();
            let id: age::x25519::Identity = line.parse().unwrap();
            let input = std::io::BufReader::with_capacity(1 << 20, File::open(input).unwrap());
            let d = age::Decryptor::new_buffered(input).unwrap();
            let mut r = d
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap();
            let mut out = BufWriter::with_capacity(1 << 20, File::create(output).unwrap());
            std::io::copy(&mut r, &mut out).unwrap();
            out.flush().unwrap();
        }
        ["hash", input] => {
            let (d, _) = hearth_crypto::hash_ciphertext(File::open(input).unwrap()).unwrap();
            println!("{d}");
        }
        _ => {
            eprintln!("usage: seal_bench keygen ID | seal RECIPIENT IN OUT | open ID IN OUT");
            std::process::exit(2);
        }
    }
}
