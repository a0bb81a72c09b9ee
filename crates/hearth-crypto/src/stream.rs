//! age v1 payload (STREAM over ChaCha20-Poly1305) sealed and opened on both cores.
//!
//! The age crate seals and opens its 64 KiB chunks one after the other on one core. Chunks are
//! independent (each has its own nonce: an 11-byte big-endian counter and a last-chunk flag), so
//! here a block of chunks is split between two threads. Nothing else changes: the header is made
//! from the age crate's own recipient stanzas (`age::Recipient::wrap_file_key`), keys are derived
//! with age-core's HKDF exactly as the spec says, and opening first lets the age crate parse and
//! authenticate the header. The result is checked by the C2SP CCTV vectors and by interop tests
//! against the stock `age` tool in both directions (`tests/it/`).
//!
//! Spec: <https://age-encryption.org/v1> ("Header", "Payload").

use std::io::{self, Read, Write};

use age::secrecy::ExposeSecret as _;
use age_core::format::{FileKey, Stanza};
use age_core::primitives::hkdf;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac as _};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Plaintext bytes per STREAM chunk (fixed by the spec).
const CHUNK: usize = 64 * 1024;
/// Poly1305 tag size.
const TAG: usize = 16;
/// Ciphertext bytes per full chunk.
const CT_CHUNK: usize = CHUNK + TAG;
/// Chunks handled per block (2 MiB of plaintext): enough work to be worth two threads.
const BLOCK_CHUNKS: usize = 32;
/// Threads sealing or opening blocks while the calling thread reads and writes.
const WORKERS: usize = 2;

/// The STREAM nonce of a chunk: an 11-byte big-endian counter, then 1 for the last chunk, else 0.
/// Each (key, nonce) pair is used once: the key is fresh per file (HKDF of a random file key and
/// a random nonce) and the counter only grows, which is what `assume_unique_for_key` asks of us.
fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Reads until `max` bytes or the end of the input into `buf`, which grows (from 64 KiB, doubling,
/// up to `max`) only while the input keeps coming, so a small object never allocates a whole
/// block. Returns the bytes read.
fn fill_growing<R: Read>(input: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            if buf.len() >= max {
                return Ok(n);
            }
            let grown = (buf.len() * 2).clamp(CHUNK, max);
            buf.resize(grown, 0);
        }
        let end = buf.len().min(max);
        match input.read(&mut buf[n..end]) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The header bytes from the first line through `---` (what the MAC covers), plus the MAC line.
fn header_with_mac(stanzas: &[Stanza], file_key: &FileKey) -> Vec<u8> {
    let mut h = b"age-encryption.org/v1\n".to_vec();
    for s in stanzas {
        h.extend_from_slice(b"-> ");
        h.extend_from_slice(s.tag.as_bytes());
        for a in &s.args {
            h.push(b' ');
            h.extend_from_slice(a.as_bytes());
        }
        h.push(b'\n');
        let body = STANDARD_NO_PAD.encode(&s.body);
        for line in body.as_bytes().chunks(64) {
            h.extend_from_slice(line);
            h.push(b'\n');
        }
        // Every body ends with a line shorter than 64 columns, possibly empty.
        if body.len() % 64 == 0 {
            h.push(b'\n');
        }
    }
    h.extend_from_slice(b"---");
    let mac = header_mac(&h, file_key);
    h.push(b' ');
    h.extend_from_slice(STANDARD_NO_PAD.encode(mac).as_bytes());
    h.push(b'\n');
    h
}

fn header_hmac(header_through_dashes: &[u8], file_key: &FileKey) -> Option<Hmac<Sha256>> {
    let key = Zeroizing::new(hkdf(&[], b"header", file_key.expose_secret()));
    // HMAC accepts keys of any length, so this does not fail.
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&key[..]).ok()?;
    mac.update(header_through_dashes);
    Some(mac)
}

fn header_mac(header_through_dashes: &[u8], file_key: &FileKey) -> [u8; 32] {
    header_hmac(header_through_dashes, file_key)
        .map(|m| m.finalize().into_bytes().into())
        .unwrap_or([0u8; 32])
}

/// The payload key (HKDF-SHA-256 of the file key, salted with the payload nonce, label "payload")
/// as a ChaCha20-Poly1305 key for `ring` (BoringSSL's assembly; see ARCHITECTURE.md).
fn payload_cipher(file_key: &FileKey, nonce: &[u8; 16]) -> Option<LessSafeKey> {
    let key = Zeroizing::new(hkdf(nonce, b"payload", file_key.expose_secret()));
    // A 32-byte key is always accepted.
    let key = UnboundKey::new(&CHACHA20_POLY1305, &key[..]).ok()?;
    Some(LessSafeKey::new(key))
}

fn aead_failed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "chunk authentication failed")
}

/// Seals `plain` (whole chunks, the last possibly short or empty) into `out`, chunk `i` getting
/// counter `first + i`; the last one is flagged final when `last`.
fn seal_chunks(
    cipher: &LessSafeKey,
    plain: &[u8],
    out: &mut [u8],
    first: u64,
    last: bool,
) -> io::Result<()> {
    let n = plain.len().div_ceil(CHUNK).max(1);
    for i in 0..n {
        let p = &plain[(i * CHUNK).min(plain.len())..((i + 1) * CHUNK).min(plain.len())];
        let slot = &mut out[i * CT_CHUNK..i * CT_CHUNK + p.len() + TAG];
        let (body, tag) = slot.split_at_mut(p.len());
        body.copy_from_slice(p);
        let t = cipher
            .seal_in_place_separate_tag(
                chunk_nonce(first + i as u64, last && i == n - 1),
                Aad::empty(),
                body,
            )
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        tag.copy_from_slice(t.as_ref());
    }
    Ok(())
}

/// SHA-256 of the whole ciphertext, computed by the worker threads: each worker hashes the block
/// it just sealed or is about to open (still in its cache) as soon as the block before it has
/// been hashed, so hashing needs no copy and overlaps with the other worker's cryptography.
pub(crate) struct OrderedHasher {
    state: std::sync::Mutex<HashState>,
    turn: std::sync::Condvar,
}

struct HashState {
    next: u64,
    hasher: Option<Sha256>,
    len: u64,
}

impl OrderedHasher {
    /// Starts with `prefix` (header and nonce); `enabled: false` only counts (benchmark hook).
    pub(crate) fn new(prefix: &[u8], enabled: bool) -> Self {
        let hasher = enabled.then(|| {
            let mut h = Sha256::new();
            h.update(prefix);
            h
        });
        Self {
            state: std::sync::Mutex::new(HashState {
                next: 0,
                hasher,
                len: prefix.len() as u64,
            }),
            turn: std::sync::Condvar::new(),
        }
    }

    /// Hashes block `seq` after blocks `0..seq`. Every block must be fed exactly once, even when
    /// processing it failed, or later blocks would wait forever.
    fn feed(&self, seq: u64, data: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.next != seq {
            st = self.turn.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if let Some(h) = st.hasher.as_mut() {
            h.update(data);
        }
        st.len += data.len() as u64;
        st.next += 1;
        self.turn.notify_all();
    }

    /// The digest (all zero when disabled) and the number of bytes hashed.
    pub(crate) fn finish(self) -> (crate::Sha256Digest, u64) {
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let digest = st.hasher.map(|h| h.finalize().into()).unwrap_or([0u8; 32]);
        (crate::Sha256Digest(digest), st.len)
    }
}

/// Writes a complete age v1 file: header for `stanzas`, nonce, and the payload of `input`.
/// Returns the plaintext length and the ciphertext's SHA-256 and length (`hash: false` skips the
/// hash, for the benchmark's diagnostics only).
pub(crate) fn seal<R: Read, W: Write>(
    recipients: &[&dyn age::Recipient],
    input: R,
    mut output: W,
    hash: bool,
) -> Result<(u64, crate::Sha256Digest, u64), SealFailure> {
    let file_key = FileKey::init_with_mut(|k| rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, k));
    let mut stanzas = Vec::new();
    for r in recipients {
        let (mut s, _labels) = r.wrap_file_key(&file_key).map_err(SealFailure::Age)?;
        stanzas.append(&mut s);
    }
    let mut head = header_with_mac(&stanzas, &file_key);
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    head.extend_from_slice(&nonce);
    output.write_all(&head).map_err(SealFailure::Output)?;
    let hasher = OrderedHasher::new(&head, hash);
    let cipher = payload_cipher(&file_key, &nonce)
        .ok_or_else(|| SealFailure::Output(io::Error::other("payload key setup failed")))?;
    let (total, _) = pipeline(
        input,
        &mut output,
        BLOCK_CHUNKS * CHUNK,
        |n| n + n.div_ceil(CHUNK).max(1) * TAG,
        |n| n.div_ceil(CHUNK).max(1) as u64,
        |seq, plain, out, counter, last| {
            let len = plain.len() + plain.len().div_ceil(CHUNK).max(1) * TAG;
            let r = seal_chunks(&cipher, plain, out, counter, last);
            hasher.feed(seq, &out[..len]);
            r.map(|()| len)
        },
    )
    .map_err(|e| match e {
        PipeError::Input(e) => SealFailure::Input(e),
        PipeError::Output(e) | PipeError::Process(e) => SealFailure::Output(e),
    })?;
    output.flush().map_err(SealFailure::Output)?;
    let (digest, len) = hasher.finish();
    Ok((total, digest, len))
}

/// Which side of [`pipeline`] failed.
enum PipeError {
    Input(io::Error),
    Output(io::Error),
    Process(io::Error),
}

/// Runs `process` over `input` block by block on [`WORKERS`] threads while the calling thread
/// reads ahead and writes finished blocks in order, so file I/O overlaps with the cryptography
/// and both cores work.
///
/// `process(seq, block, out, counter, last)` gets the block's position and one input block (full except the last, which may be
/// short or empty), the STREAM counter of its first chunk and whether it is the final block; it
/// returns the output length. A block is known to be final only once the next read returns
/// nothing, so reading stays one block ahead. A block's output is written only after `process`
/// succeeded on it and on every block before it. Memory is bounded by a fixed pool of buffers.
/// Returns the bytes read and written.
fn pipeline<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    in_block: usize,
    out_len_of: impl Fn(usize) -> usize + Sync,
    chunks_of: impl Fn(usize) -> u64,
    process: impl Fn(u64, &[u8], &mut [u8], u64, bool) -> io::Result<usize> + Sync,
) -> Result<(u64, u64), PipeError> {
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    struct Task {
        seq: u64,
        input: Vec<u8>,
        len: usize,
        output: Vec<u8>,
        counter: u64,
        last: bool,
    }
    type Done = (u64, Vec<u8>, Vec<u8>, io::Result<usize>);

    // A single block (small objects: keys, metadata) is processed right here, without threads.
    let mut cur = Vec::new();
    let mut cur_len = fill_growing(&mut input, &mut cur, in_block).map_err(PipeError::Input)?;
    if cur_len < in_block {
        let mut out = vec![0u8; out_len_of(cur_len)];
        let n = process(0, &cur[..cur_len], &mut out, 0, true).map_err(PipeError::Process)?;
        output.write_all(&out[..n]).map_err(PipeError::Output)?;
        return Ok((cur_len as u64, n as u64));
    }

    std::thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let mut task_txs = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let (tx, rx) = mpsc::channel::<Task>();
            let done_tx = done_tx.clone();
            let (process, out_len_of) = (&process, &out_len_of);
            s.spawn(move || {
                for mut t in rx {
                    let need = out_len_of(t.len);
                    if t.output.len() < need {
                        t.output.resize(need, 0);
                    }
                    let r = process(t.seq, &t.input[..t.len], &mut t.output, t.counter, t.last);
                    // If the caller stopped listening (an error), keep draining: every queued
                    // block must still reach the ordered hasher.
                    let _ = done_tx.send((t.seq, t.input, t.output, r));
                }
            });
            task_txs.push(tx);
        }
        drop(done_tx);

        // Buffers grow to their block size on first use (see `fill_growing`).
        let mut free_in: Vec<Vec<u8>> = (0..WORKERS + 1).map(|_| Vec::new()).collect();
        let mut free_out: Vec<Vec<u8>> = (0..WORKERS + 1).map(|_| Vec::new()).collect();
        let mut finished: BTreeMap<u64, (Vec<u8>, io::Result<usize>)> = BTreeMap::new();
        let (mut sent, mut received, mut written) = (0u64, 0u64, 0u64);
        let (mut counter, mut total_in, mut total_out) = (0u64, 0u64, 0u64);

        // Waits for one finished block and writes every block that is now next in order.
        let mut wait_one = |free_in: &mut Vec<Vec<u8>>,
                            free_out: &mut Vec<Vec<u8>>,
                            received: &mut u64,
                            output: &mut W|
         -> Result<(), PipeError> {
            let (seq, inb, outb, r) = done_rx
                .recv()
                .map_err(|_| PipeError::Process(io::Error::other("worker thread failed")))?;
            *received += 1;
            free_in.push(inb);
            finished.insert(seq, (outb, r));
            while let Some((outb, r)) = finished.remove(&written) {
                let n = r.map_err(PipeError::Process)?;
                output.write_all(&outb[..n]).map_err(PipeError::Output)?;
                total_out += n as u64;
                free_out.push(outb);
                written += 1;
            }
            Ok(())
        };

        // `cur` and `cur_len` hold the first block, read above.
        loop {
            let (last, next) = if cur_len < in_block {
                (true, None)
            } else {
                while free_in.is_empty() {
                    wait_one(&mut free_in, &mut free_out, &mut received, &mut output)?;
                }
                let mut nb = free_in.pop().unwrap_or_default();
                let n = fill_growing(&mut input, &mut nb, in_block).map_err(PipeError::Input)?;
                if n == 0 {
                    free_in.push(nb);
                    (true, None)
                } else {
                    (false, Some((nb, n)))
                }
            };
            while free_out.is_empty() || sent - received >= WORKERS as u64 {
                wait_one(&mut free_in, &mut free_out, &mut received, &mut output)?;
            }
            let task = Task {
                seq: sent,
                input: cur,
                len: cur_len,
                output: free_out.pop().unwrap_or_default(),
                counter,
                last,
            };
            let worker = usize::try_from(sent % WORKERS as u64).unwrap_or(0);
            task_txs[worker]
                .send(task)
                .map_err(|_| PipeError::Process(io::Error::other("worker thread failed")))?;
            sent += 1;
            counter += chunks_of(cur_len);
            total_in += cur_len as u64;
            match next {
                None => break,
                Some((nb, n)) => {
                    cur = nb;
                    cur_len = n;
                }
            }
        }
        while received < sent {
            wait_one(&mut free_in, &mut free_out, &mut received, &mut output)?;
        }
        drop(task_txs);
        Ok((total_in, total_out))
    })
}

/// Why [`seal`] failed.
pub(crate) enum SealFailure {
    Age(age::EncryptError),
    Input(io::Error),
    Output(io::Error),
}

/// Opens chunks `ct` in place into `plain`; see [`seal_chunks`].
fn open_chunks(
    cipher: &LessSafeKey,
    ct: &[u8],
    plain: &mut [u8],
    first: u64,
    last: bool,
) -> io::Result<()> {
    let n = ct.len().div_ceil(CT_CHUNK);
    for i in 0..n {
        let c = &ct[i * CT_CHUNK..((i + 1) * CT_CHUNK).min(ct.len())];
        if c.len() < TAG {
            return Err(aead_failed());
        }
        let (body, tag) = c.split_at(c.len() - TAG);
        let slot = &mut plain[i * CHUNK..i * CHUNK + body.len()];
        slot.copy_from_slice(body);
        let tag = Tag::try_from(tag).map_err(|_| aead_failed())?;
        cipher
            .open_in_place_separate_tag(
                chunk_nonce(first + i as u64, last && i == n - 1),
                Aad::empty(),
                tag,
                slot,
                0..,
            )
            .map_err(|_| aead_failed())?;
    }
    Ok(())
}

/// Derives the payload cipher for a header the age crate has already parsed and authenticated:
/// unwraps the file key from the same stanzas and checks it yields the same header MAC.
pub(crate) fn payload_cipher_for(
    identities: &[&dyn age::Identity],
    header: &[u8],
    nonce: &[u8; 16],
) -> Option<LessSafeKey> {
    let (stanzas, through_dashes, mac) = parse_header(header)?;
    let file_key = identities
        .iter()
        .find_map(|i| i.unwrap_stanzas(&stanzas))?
        .ok()?;
    // Constant-time comparison by the hmac crate.
    header_hmac(through_dashes, &file_key)?
        .verify_slice(&mac)
        .ok()?;
    payload_cipher(&file_key, nonce)
}

/// Splits a header (already checked by `read_canonical_header` and the age crate) into stanzas,
/// the bytes the MAC covers, and the MAC.
fn parse_header(header: &[u8]) -> Option<(Vec<Stanza>, &[u8], Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?;
    let mac_line = text.rfind("\n---")? + 1;
    let through_dashes = &header[..mac_line + 3];
    let mac = STANDARD_NO_PAD
        .decode(
            text[mac_line + 3..]
                .trim_start_matches(' ')
                .trim_end_matches('\n'),
        )
        .ok()?;
    let mut stanzas: Vec<Stanza> = Vec::new();
    let mut body = String::new();
    for line in text[..mac_line].lines().skip(1) {
        if let Some(rest) = line.strip_prefix("-> ") {
            if let Some(last) = stanzas.last_mut() {
                last.body = STANDARD_NO_PAD.decode(&body).ok()?;
            }
            body.clear();
            let mut parts = rest.split(' ');
            let tag = parts.next()?.to_owned();
            stanzas.push(Stanza {
                tag,
                args: parts.map(str::to_owned).collect(),
                body: Vec::new(),
            });
        } else {
            body.push_str(line);
        }
    }
    if let Some(last) = stanzas.last_mut() {
        last.body = STANDARD_NO_PAD.decode(&body).ok()?;
    }
    Some((stanzas, through_dashes, mac))
}

/// Opens the payload that follows the header and nonce, writing plaintext block by block (each
/// block only after all its chunks authenticated). Input errors and authentication failures come
/// back as `Err(Ok(e))` (kind `InvalidData` for a failed or missing chunk), output errors as
/// `Err(Err(e))`.
pub(crate) fn open_payload<R: Read, W: Write>(
    cipher: &LessSafeKey,
    input: R,
    output: W,
    hasher: &OrderedHasher,
) -> Result<u64, Result<io::Error, io::Error>> {
    let (_, total) = pipeline(
        input,
        output,
        BLOCK_CHUNKS * CT_CHUNK,
        |n| n.saturating_sub(n.div_ceil(CT_CHUNK) * TAG),
        |n| n.div_ceil(CT_CHUNK) as u64,
        |seq, ct, plain, counter, last| {
            hasher.feed(seq, ct);
            if last {
                if ct.is_empty() {
                    // Not even the final chunk.
                    return Err(aead_failed());
                }
                let chunks = ct.len().div_ceil(CT_CHUNK);
                let tail = ct.len() - (chunks - 1) * CT_CHUNK;
                // The last chunk may be empty only if it is the only one.
                if tail < TAG || (tail == TAG && (counter > 0 || chunks > 1)) {
                    return Err(aead_failed());
                }
            }
            open_chunks(cipher, ct, plain, counter, last)?;
            Ok(ct.len() - ct.len().div_ceil(CT_CHUNK) * TAG)
        },
    )
    .map_err(|e| match e {
        PipeError::Input(e) | PipeError::Process(e) => Ok(e),
        PipeError::Output(e) => Err(e),
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use crate::DeviceKeys;
    use crate::seal::{Path, open_file, open_with_path, seal_bytes, seal_with_age_crate};

    /// Sizes around the chunk (64 KiB) and block (32 chunks) boundaries, where the last-chunk
    /// flag and the thread split change.
    fn sizes() -> Vec<usize> {
        let c = 64 * 1024;
        let b = 32 * c;
        vec![0, 1, c - 1, c, c + 1, 4 * c + 7, b, b + 1, 2 * b + c + 3]
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i.wrapping_mul(7919) >> 3) as u8).collect()
    }

    #[test]
    fn fast_seal_opens_with_the_age_crate_reader() {
        let k = DeviceKeys::generate();
        let ids: [&dyn age::Identity; 1] = [k.age_identity()];
        for n in sizes() {
            let d = data(n);
            let mut ct = Vec::new();
            let sealed = crate::seal_file(&[&k.public().recipient], &d[..], &mut ct).unwrap();
            let mut out = Vec::new();
            let reference = open_with_path(&ids, &ct[..], &mut out, Path::AgeCrate).unwrap();
            assert!(out == d, "size {n}");
            // The hash the workers compute in order is the SHA-256 of exactly what was written.
            let actual = crate::Sha256Digest::of(&ct);
            assert_eq!(sealed.ciphertext_sha256, actual, "size {n}");
            assert_eq!(sealed.ciphertext_len, ct.len() as u64);
            assert_eq!(reference.ciphertext_sha256, actual);
            let fast = open_file(&[&k], &ct[..], &mut Vec::new()).unwrap();
            assert_eq!(fast.ciphertext_sha256, actual, "size {n}");
            assert_eq!(fast.ciphertext_len, ct.len() as u64);
        }
    }

    #[test]
    fn fast_open_reads_what_the_age_crate_sealed() {
        let k = DeviceKeys::generate();
        for n in sizes() {
            let d = data(n);
            let ct = seal_with_age_crate(&[&k.public().recipient], &d);
            let mut out = Vec::new();
            let s = open_file(&[&k], &ct[..], &mut out).unwrap();
            assert!(out == d, "size {n}");
            assert_eq!(s.plaintext_len, n as u64);
        }
    }

    #[test]
    fn fast_open_refuses_flips_in_every_chunk_of_a_parallel_block() {
        let k = DeviceKeys::generate();
        let d = data(6 * 64 * 1024 + 100);
        let ct = seal_bytes(&[&k.public().recipient], &d).unwrap();
        let payload_start = ct.len() - (d.len() + 7 * 16);
        for chunk in 0..7 {
            let mut bad = ct.clone();
            bad[payload_start + chunk * (64 * 1024 + 16) + 5] ^= 0x80;
            assert!(
                open_file(&[&k], &bad[..], &mut Vec::new()).is_err(),
                "chunk {chunk}"
            );
        }
        // Dropping a whole middle chunk, or swapping two, fails too.
        let c = 64 * 1024 + 16;
        let mut dropped = ct[..payload_start + c].to_vec();
        dropped.extend_from_slice(&ct[payload_start + 2 * c..]);
        assert!(open_file(&[&k], &dropped[..], &mut Vec::new()).is_err());
        let mut swapped = ct.clone();
        swapped[payload_start..payload_start + 2 * c].copy_from_slice(
            &[
                &ct[payload_start + c..payload_start + 2 * c],
                &ct[payload_start..payload_start + c],
            ]
            .concat(),
        );
        assert!(open_file(&[&k], &swapped[..], &mut Vec::new()).is_err());
    }
}
