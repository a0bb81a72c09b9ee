//! age v1 payload (STREAM over ChaCha20-Poly1305) sealed and opened on both cores.
//!
//! The age crate seals and opens its 64 KiB chunks one after the other on one core. Chunks are
//! independent (each has its own nonce: an 11-byte big-endian counter and a last-chunk flag), so
//! here blocks of 16 chunks are sealed or opened in place on both cores: a worker thread feeds the
//! ciphertext SHA-256 in block order and seals or opens blocks when the hash has nothing ready,
//! and the calling thread reads, writes, and seals or opens blocks when it would otherwise wait
//! (see [`pipeline`]). The AEAD is `ring`'s ChaCha20-Poly1305 (BoringSSL's assembly), about twice as
//! fast here as RustCrypto's `chacha20poly1305`, which the age crate uses. Nothing else changes:
//! the header is made from the age crate's own recipient stanzas (`age::Recipient::wrap_file_key`),
//! keys are derived with age-core's HKDF exactly as the spec says, and opening first lets the age
//! crate parse and authenticate the header. The result is checked by the C2SP CCTV vectors and by
//! interop tests against the stock `age` tool in both directions (`tests/it/`).
//!
//! Spec: <https://age-encryption.org/v1> ("Header", "Payload").

use std::io::{self, Read, Write};

use age::secrecy::ExposeSecret as _;
use age_core::format::{FileKey, Stanza};
use age_core::primitives::hkdf;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac as _};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Plaintext bytes per STREAM chunk (fixed by the spec).
const CHUNK: usize = 64 * 1024;
/// Poly1305 tag size.
const TAG: usize = 16;
/// Ciphertext bytes per full chunk.
const CT_CHUNK: usize = CHUNK + TAG;
/// Chunks handled per block (1 MiB of plaintext): enough work to be worth handing to a thread,
/// small enough to stay in cache between sealing, hashing and writing. 32 chunks measured 3–6%
/// slower and needs 15 MiB instead of 9; 8 chunks no faster.
const BLOCK_CHUNKS: usize = 16;
/// Threads next to the calling thread. One: with the calling thread helping, that is one busy
/// thread per core on this 2-core machine; a second worker only made three threads take turns
/// on two cores (200 MB on an idle machine: seal 0.17 s either way, open 0.20 s with two
/// workers vs 0.18 s with one).
const WORKERS: usize = 1;

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

/// Reads plaintext into the chunk slots of a ciphertext-shaped buffer: chunk `i` goes to
/// `buf[i * CT_CHUNK..][..CHUNK]`, leaving room for its tag, so sealing happens in place and the
/// sealed block is written out as it lies, without a copy. Fills up to `chunks` slots, all full
/// but the last, and stops early only at the end of the input. The buffer grows (doubling, in
/// whole slots) only while the input keeps coming, so a small object never allocates a whole
/// block; a buffer reused from the pool is already full size and is filled with one vectored
/// read per block where the reader supports it. Returns the plaintext bytes read.
fn fill_slots<R: Read>(input: &mut R, buf: &mut Vec<u8>, chunks: usize) -> io::Result<usize> {
    let mut n = 0;
    loop {
        let (i, off) = (n / CHUNK, n % CHUNK);
        if i == chunks {
            return Ok(n);
        }
        if buf.len() < (i + 1) * CT_CHUNK {
            let slots = (buf.len() / CT_CHUNK * 2).clamp(i + 1, chunks);
            buf.resize(slots * CT_CHUNK, 0);
        }
        let have = (buf.len() / CT_CHUNK).min(chunks);
        let mut slices: [io::IoSliceMut<'_>; BLOCK_CHUNKS] =
            std::array::from_fn(|_| io::IoSliceMut::new(&mut []));
        let mut k = 0;
        for (j, slot) in buf.chunks_mut(CT_CHUNK).enumerate().take(have).skip(i) {
            let from = if j == i { off } else { 0 };
            if let Some(s) = slices.get_mut(k) {
                *s = io::IoSliceMut::new(&mut slot[from..CHUNK]);
                k += 1;
            }
        }
        match input.read_vectored(&mut slices[..k]) {
            Ok(0) => return Ok(n),
            Ok(got) => n += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Seals a block in place: `buf` holds `len` bytes of plaintext in chunk slots (see
/// [`fill_slots`]); chunk `i` gets counter `first + i`, the last one is flagged final when
/// `last`. Afterwards `buf[..returned]` is the block's ciphertext.
fn seal_block(
    cipher: &LessSafeKey,
    buf: &mut Vec<u8>,
    len: usize,
    first: u64,
    last: bool,
) -> io::Result<usize> {
    let n = len.div_ceil(CHUNK).max(1);
    let out = len + n * TAG;
    if buf.len() < out {
        // Only the empty final chunk of an empty input has no slot yet.
        buf.resize(out, 0);
    }
    for i in 0..n {
        let plen = (len - i * CHUNK).min(CHUNK);
        let slot = &mut buf[i * CT_CHUNK..i * CT_CHUNK + plen + TAG];
        let (body, tag) = slot.split_at_mut(plen);
        let t = cipher
            .seal_in_place_separate_tag(
                chunk_nonce(first + i as u64, last && i == n - 1),
                Aad::empty(),
                body,
            )
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        tag.copy_from_slice(t.as_ref());
    }
    Ok(out)
}

/// Opens a block in place: `buf[..len]` holds whole ciphertext chunks (the last possibly short);
/// each is authenticated and decrypted towards the front of the buffer (ring decrypts from
/// `ciphertext_and_tag` to the start of `in_out`, so chunk `i` moves back by `i` tags), leaving
/// the block's plaintext in `buf[..returned]`. Counters and the final flag as in [`seal_block`].
fn open_block(
    cipher: &LessSafeKey,
    buf: &mut [u8],
    len: usize,
    first: u64,
    last: bool,
) -> io::Result<usize> {
    let n = len.div_ceil(CT_CHUNK);
    if last {
        if n == 0 {
            // Not even the final chunk.
            return Err(aead_failed());
        }
        let tail = len - (n - 1) * CT_CHUNK;
        // The last chunk may be empty only if it is the only one.
        if tail < TAG || (tail == TAG && (first > 0 || n > 1)) {
            return Err(aead_failed());
        }
    }
    for i in 0..n {
        let end = ((i + 1) * CT_CHUNK).min(len);
        if end - i * CT_CHUNK < TAG {
            return Err(aead_failed());
        }
        cipher
            .open_within(
                chunk_nonce(first + i as u64, last && i == n - 1),
                Aad::empty(),
                &mut buf[i * CHUNK..end],
                i * TAG..,
            )
            .map_err(|_| aead_failed())?;
    }
    Ok(len - n * TAG)
}

/// SHA-256 of the whole ciphertext (header and nonce first), fed block by block in order by
/// a [`pipeline`] worker.
pub(crate) struct OrderedHasher {
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
            hasher,
            len: prefix.len() as u64,
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = self.hasher.as_mut() {
            h.update(data);
        }
        self.len += data.len() as u64;
    }

    /// The digest (all zero when disabled) and the number of bytes hashed.
    pub(crate) fn finish(self) -> (crate::Sha256Digest, u64) {
        let digest = self
            .hasher
            .map(|h| h.finalize().into())
            .unwrap_or([0u8; 32]);
        (crate::Sha256Digest(digest), self.len)
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
    let mut hasher = OrderedHasher::new(&head, hash);
    let cipher = payload_cipher(&file_key, &nonce)
        .ok_or_else(|| SealFailure::Output(io::Error::other("payload key setup failed")))?;
    let (total, _) = pipeline(
        input,
        &mut output,
        Stages {
            full: BLOCK_CHUNKS * CHUNK,
            fill: |r: &mut R, buf: &mut Vec<u8>| fill_slots(r, buf, BLOCK_CHUNKS),
            chunks_of: |n: usize| n.div_ceil(CHUNK).max(1) as u64,
            work: |b: &mut Block| seal_block(&cipher, &mut b.buf, b.len, b.counter, b.last),
            hash_first: false,
        },
        &mut hasher,
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

/// One block of the payload on its way through [`pipeline`].
struct Block {
    seq: u64,
    /// Read into by `fill`, then sealed or opened in place; the output is `buf[..out]`.
    buf: Vec<u8>,
    /// Input bytes `fill` reported.
    len: usize,
    /// STREAM counter of the block's first chunk.
    counter: u64,
    /// Whether the block holds the final chunk.
    last: bool,
    /// Output length, or why `work` failed.
    out: io::Result<usize>,
}

/// What [`pipeline`] does to each block.
struct Stages<F, C, P> {
    /// Input bytes of a full block; a shorter read means the end of the input.
    full: usize,
    /// Reads one block into a buffer (growing it as needed), returning the input bytes.
    fill: F,
    /// STREAM chunks in a block of so many input bytes.
    chunks_of: C,
    /// Seals or opens a block in place, returning the output length.
    work: P,
    /// Hash the block's input before `work` (opening: the input is the ciphertext) rather than
    /// its output after (sealing).
    hash_first: bool,
}

/// Blocks buffered at once: the calling thread's current and next read, and up to four being
/// sealed or opened, hashed or waiting to be written. About 1 MiB each, whatever the file size
/// (8 measured no different).
const BUFFERS: usize = 6;

/// Work shared between the workers, under one lock.
struct Shared<'h> {
    /// Blocks waiting for `work`.
    to_work: std::collections::VecDeque<Block>,
    /// Blocks waiting for the hash, by position; hashed strictly in order.
    to_hash: std::collections::BTreeMap<u64, Block>,
    /// Position of the next block to hash.
    hash_next: u64,
    /// The hash, or `None` while a worker is feeding it a block.
    hasher: Option<&'h mut OrderedHasher>,
    /// Set when the calling thread is done (finished or failed): workers leave.
    stop: bool,
}

/// Runs `stages.work` over `input` block by block and hashes every block in order, on
/// [`WORKERS`] threads plus the calling thread, which reads ahead and writes finished blocks in
/// order, so file I/O overlaps with the cryptography and both cores work.
///
/// Scheduling: a free worker first feeds the hash the next block in order if it is ready and no
/// one else is hashing (the hash is the one strictly sequential step, so it goes first), else it
/// takes the oldest block waiting for `work`, else it sleeps. The calling thread, when it cannot
/// read ahead (no free buffer) or has read everything, takes a block waiting for `work` itself
/// before it waits for a worker. Nobody waits for its turn while there is other work. Blocks live in a fixed pool of [`BUFFERS`] buffers, reused for the
/// whole stream, so memory is constant and large buffers are not allocated and freed per block.
///
/// A block is known to be final only once the next read returns nothing, so reading stays one
/// block ahead. A block's output is written only after `work` succeeded on it and on every block
/// before it. Returns the bytes read and written.
fn pipeline<R, W, F, C, P>(
    mut input: R,
    mut output: W,
    mut stages: Stages<F, C, P>,
    hasher: &mut OrderedHasher,
) -> Result<(u64, u64), PipeError>
where
    R: Read,
    W: Write,
    F: FnMut(&mut R, &mut Vec<u8>) -> io::Result<usize>,
    C: Fn(usize) -> u64,
    P: Fn(&mut Block) -> io::Result<usize> + Sync,
{
    use std::collections::BTreeMap;
    use std::sync::{Condvar, Mutex, mpsc};

    // A single block (small objects: keys, metadata) is processed right here, without threads.
    let mut cur = Vec::new();
    let mut cur_len = (stages.fill)(&mut input, &mut cur).map_err(PipeError::Input)?;
    if cur_len < stages.full {
        let mut b = Block {
            seq: 0,
            buf: cur,
            len: cur_len,
            counter: 0,
            last: true,
            out: Ok(0),
        };
        if stages.hash_first {
            hasher.update(&b.buf[..b.len]);
        }
        let n = (stages.work)(&mut b).map_err(PipeError::Process)?;
        if !stages.hash_first {
            hasher.update(&b.buf[..n]);
        }
        output.write_all(&b.buf[..n]).map_err(PipeError::Output)?;
        return Ok((cur_len as u64, n as u64));
    }

    let hash_first = stages.hash_first;
    let shared = Mutex::new(Shared {
        to_work: std::collections::VecDeque::new(),
        to_hash: BTreeMap::new(),
        hash_next: 0,
        hasher: Some(hasher),
        stop: false,
    });
    let wake = Condvar::new();
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());

    std::thread::scope(|s| {
        // `None` means a worker panicked, so the calling thread stops waiting for its blocks.
        let (done_tx, done_rx) = mpsc::channel::<Option<Block>>();
        for _ in 0..WORKERS {
            let done_tx = done_tx.clone();
            let (work, shared, wake) = (&stages.work, &shared, &wake);
            s.spawn(move || {
                struct OnPanic(mpsc::Sender<Option<Block>>);
                impl Drop for OnPanic {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            let _ = self.0.send(None);
                        }
                    }
                }
                let done = OnPanic(done_tx);
                // The calling thread may have stopped listening (an error): sends can fail.
                let finish = |b: Block| {
                    let _ = done.0.send(Some(b));
                };
                let mut st = shared.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if st.stop {
                        return;
                    }
                    if let Some(h) = st.hasher.take() {
                        let next = st.hash_next;
                        if let Some(b) = st.to_hash.remove(&next) {
                            st.hash_next += 1;
                            drop(st);
                            let data = match (hash_first, &b.out) {
                                (true, _) => &b.buf[..b.len],
                                (false, Ok(n)) => &b.buf[..*n],
                                // Sealing failed; the calling thread reports it when it gets here.
                                (false, Err(_)) => &[][..],
                            };
                            h.update(data);
                            st = shared.lock().unwrap_or_else(|e| e.into_inner());
                            st.hasher = Some(h);
                            if hash_first {
                                st.to_work.push_back(b);
                            } else {
                                finish(b);
                            }
                            wake.notify_all();
                            continue;
                        }
                        st.hasher = Some(h);
                    }
                    if let Some(mut b) = st.to_work.pop_front() {
                        drop(st);
                        b.out = work(&mut b);
                        st = shared.lock().unwrap_or_else(|e| e.into_inner());
                        if hash_first {
                            finish(b);
                        } else {
                            st.to_hash.insert(b.seq, b);
                            wake.notify_all();
                        }
                        continue;
                    }
                    st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            });
        }
        drop(done_tx);

        // Tells the workers to leave however this closure ends, so the scope can join them.
        struct StopOnDrop<'a, 'h>(&'a Mutex<Shared<'h>>, &'a Condvar);
        impl Drop for StopOnDrop<'_, '_> {
            fn drop(&mut self) {
                self.0.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
                self.1.notify_all();
            }
        }
        let _stop = StopOnDrop(&shared, &wake);

        // Buffers grow to their block size on first use (see `fill_slots` and `fill_growing`).
        let mut free: Vec<Vec<u8>> = (0..BUFFERS - 1).map(|_| Vec::new()).collect();
        let mut finished: BTreeMap<u64, Block> = BTreeMap::new();
        let (mut sent, written) = (0u64, std::cell::Cell::new(0u64));
        let (mut counter, mut total_in, mut total_out) = (0u64, 0u64, 0u64);

        // Takes finished blocks and writes every block that is now next in order, returning its
        // buffer to the pool. With `progress`, first makes sure something moved: the calling
        // thread would otherwise wait, so it seals or opens a waiting block itself (as a worker
        // would, minus the hash) or, if there is none, waits for a worker to finish one.
        let work = &stages.work;
        let mut collect =
            |progress: bool, free: &mut Vec<Vec<u8>>, output: &mut W| -> Result<(), PipeError> {
                let failed = || PipeError::Process(io::Error::other("worker thread failed"));
                let waiting = if progress {
                    lock().to_work.pop_front()
                } else {
                    None
                };
                let first = match waiting {
                    Some(mut b) => {
                        b.out = work(&mut b);
                        if hash_first {
                            Some(Some(b))
                        } else {
                            lock().to_hash.insert(b.seq, b);
                            wake.notify_all();
                            None
                        }
                    }
                    None if progress => Some(done_rx.recv().map_err(|_| failed())?),
                    None => None,
                };
                for b in first.into_iter().chain(done_rx.try_iter()) {
                    let b = b.ok_or_else(failed)?;
                    finished.insert(b.seq, b);
                }
                while let Some(mut b) = finished.remove(&written.get()) {
                    let n = std::mem::replace(&mut b.out, Ok(0)).map_err(PipeError::Process)?;
                    output.write_all(&b.buf[..n]).map_err(PipeError::Output)?;
                    total_out += n as u64;
                    free.push(b.buf);
                    written.set(written.get() + 1);
                }
                Ok(())
            };

        // `cur` and `cur_len` hold the first block, read above.
        loop {
            let (last, next) = if cur_len < stages.full {
                (true, None)
            } else {
                while free.is_empty() {
                    collect(true, &mut free, &mut output)?;
                }
                let mut nb = free.pop().unwrap_or_default();
                let n = (stages.fill)(&mut input, &mut nb).map_err(PipeError::Input)?;
                if n == 0 {
                    free.push(nb);
                    (true, None)
                } else {
                    (false, Some((nb, n)))
                }
            };
            let b = Block {
                seq: sent,
                buf: cur,
                len: cur_len,
                counter,
                last,
                out: Ok(0),
            };
            {
                let mut st = lock();
                if hash_first {
                    st.to_hash.insert(b.seq, b);
                } else {
                    st.to_work.push_back(b);
                }
            }
            wake.notify_all();
            sent += 1;
            counter += (stages.chunks_of)(cur_len);
            total_in += cur_len as u64;
            collect(false, &mut free, &mut output)?;
            match next {
                None => break,
                Some((nb, n)) => {
                    cur = nb;
                    cur_len = n;
                }
            }
        }
        while written.get() < sent {
            collect(true, &mut free, &mut output)?;
        }
        Ok((total_in, total_out))
    })
}

/// Why [`seal`] failed.
pub(crate) enum SealFailure {
    Age(age::EncryptError),
    Input(io::Error),
    Output(io::Error),
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
/// block only after all its chunks authenticated) and feeding the ciphertext to `hasher`. Input
/// errors and authentication failures come back as `Err(Ok(e))` (kind `InvalidData` for a failed
/// or missing chunk), output errors as `Err(Err(e))`.
pub(crate) fn open_payload<R: Read, W: Write>(
    cipher: &LessSafeKey,
    input: R,
    output: W,
    hasher: &mut OrderedHasher,
) -> Result<u64, Result<io::Error, io::Error>> {
    let full = BLOCK_CHUNKS * CT_CHUNK;
    let (_, total) = pipeline(
        input,
        output,
        Stages {
            full,
            fill: |r: &mut R, buf: &mut Vec<u8>| fill_growing(r, buf, full),
            chunks_of: |n: usize| n.div_ceil(CT_CHUNK) as u64,
            work: |b: &mut Block| open_block(cipher, &mut b.buf, b.len, b.counter, b.last),
            hash_first: true,
        },
        hasher,
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

    /// Sizes around the chunk (64 KiB) and block ([`super::BLOCK_CHUNKS`] chunks) boundaries,
    /// where the last-chunk flag and the thread split change.
    fn sizes() -> Vec<usize> {
        let c = 64 * 1024;
        let b = super::BLOCK_CHUNKS * c;
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

    /// A reader that hands data out in awkward pieces (one byte, odd sizes, more than a chunk)
    /// and is sometimes interrupted, like a pipe or a socket, so reads end mid-chunk.
    struct Trickle<'a> {
        data: &'a [u8],
        pos: usize,
        calls: usize,
    }

    impl<'a> Trickle<'a> {
        fn new(data: &'a [u8]) -> Self {
            Self {
                data,
                pos: 0,
                calls: 0,
            }
        }
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            const SIZES: [usize; 6] = [1, 4093, 65_536, 70_000, 13, 200_000];
            self.calls += 1;
            if self.calls.is_multiple_of(7) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = SIZES[self.calls % SIZES.len()]
                .min(buf.len())
                .min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn short_and_interrupted_reads_seal_and_open_the_same() {
        let k = DeviceKeys::generate();
        let ids: [&dyn age::Identity; 1] = [k.age_identity()];
        for n in sizes() {
            let d = data(n);
            let mut ct = Vec::new();
            let sealed =
                crate::seal_file(&[&k.public().recipient], Trickle::new(&d), &mut ct).unwrap();
            assert_eq!(
                sealed.ciphertext_sha256,
                crate::Sha256Digest::of(&ct),
                "size {n}"
            );
            let mut out = Vec::new();
            open_with_path(&ids, &ct[..], &mut out, Path::AgeCrate).unwrap();
            assert!(out == d, "age crate opening ours, size {n}");
            let mut out = Vec::new();
            let opened = open_file(&[&k], Trickle::new(&ct), &mut out).unwrap();
            assert!(out == d, "size {n}");
            assert_eq!(opened.ciphertext_sha256, sealed.ciphertext_sha256);
        }
    }

    #[test]
    fn fast_open_refuses_damage_in_any_block_of_a_multi_block_file() {
        // Four blocks and a bit, so the workers, not the inline path, open it.
        let (c, ct_c, b) = (64 * 1024, 64 * 1024 + 16, super::BLOCK_CHUNKS);
        let k = DeviceKeys::generate();
        let d = data(4 * b * c + 5 * c + 9);
        let chunks = d.len().div_ceil(c);
        let ct = seal_bytes(&[&k.public().recipient], &d).unwrap();
        let start = ct.len() - (d.len() + chunks * 16);
        for chunk in [0, 1, b - 1, b, 2 * b + 3, 4 * b, chunks - 1] {
            let mut bad = ct.clone();
            bad[start + chunk * ct_c + 7] ^= 0x40;
            let mut out = Vec::new();
            let e = open_file(&[&k], &bad[..], &mut out);
            assert!(
                matches!(e, Err(crate::OpenError::PayloadTampered(_))),
                "chunk {chunk}: {e:?}"
            );
            // Nothing from the damaged block or after it was written.
            assert!(out.len() <= chunk / b * b * c, "chunk {chunk}");
            assert!(out == d[..out.len()], "chunk {chunk}");
        }
        // Cut at a block boundary, at a chunk boundary, inside a tag; one byte too many.
        for cut in [
            start + b * ct_c,
            start + 2 * b * ct_c,
            start + 3 * ct_c,
            ct.len() - 3,
        ] {
            assert!(
                matches!(
                    open_file(&[&k], &ct[..cut], &mut Vec::new()),
                    Err(crate::OpenError::PayloadTampered(_))
                ),
                "cut at {cut}"
            );
        }
        let mut longer = ct.clone();
        longer.push(0);
        assert!(open_file(&[&k], &longer[..], &mut Vec::new()).is_err());
        let mut out = Vec::new();
        open_file(&[&k], &ct[..], &mut out).unwrap();
        assert!(out == d);
    }
}
