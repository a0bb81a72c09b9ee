//! Sealing and opening age v1 files, streaming from a `Read` into a `Write` in constant memory.
//!
//! What we write is a plain age v1 file (binary, not armored), so the stock `age` tool opens it
//! with an exported identity. Both directions return the SHA-256 of the *ciphertext*, which is what
//! manifests sign: the server stores and serves ciphertext, and a reader checks the hash before
//! trusting any plaintext (see [`open_verified`]).

use std::io::{self, BufRead as _, BufReader, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use crate::encoding::Sha256Digest;
use crate::keys::Recipient;

/// Size of the buffers used when streaming. age seals in 64 KiB chunks; larger reads let the
/// chunking run without extra copies.
const BUF: usize = 1 << 20;

/// What sealing produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealSummary {
    /// SHA-256 of the ciphertext written (what a manifest signs).
    pub ciphertext_sha256: Sha256Digest,
    /// Bytes of ciphertext written.
    pub ciphertext_len: u64,
    /// Bytes of plaintext read.
    pub plaintext_len: u64,
}

/// What opening produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSummary {
    /// SHA-256 of the ciphertext read.
    pub ciphertext_sha256: Sha256Digest,
    /// Bytes of ciphertext read.
    pub ciphertext_len: u64,
    /// Bytes of plaintext written.
    pub plaintext_len: u64,
}

/// Sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No recipients were given.
    #[error("nothing to seal to: no recipients")]
    NoRecipients,
    /// age refused the recipient set.
    #[error("age could not seal to these recipients")]
    Age(#[source] age::EncryptError),
    /// Reading the plaintext failed.
    #[error("reading the plaintext failed")]
    Input(#[source] io::Error),
    /// Writing the ciphertext failed.
    #[error("writing the ciphertext failed")]
    Output(#[source] io::Error),
}

/// Opening failed. Each way a sealed file can be wrong has its own variant.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// None of the header's recipient stanzas is for our key (not sealed to us, or our stanza was
    /// removed).
    #[error("this file is not sealed to this key (no recipient stanza matches)")]
    NotARecipient,
    /// A stanza for our key type failed to decrypt: it was altered or made for another key.
    #[error("a recipient stanza failed to decrypt: the header was altered")]
    StanzaTampered,
    /// The header's MAC does not match: a stanza was added, dropped or altered.
    #[error(
        "the header MAC does not match: the header was altered (stanza added, dropped or changed)"
    )]
    HeaderTampered,
    /// The data is not an age v1 file, or its header is malformed.
    #[error("not a well-formed age v1 file")]
    Malformed,
    /// The payload failed authentication: altered, truncated or extended ciphertext.
    #[error("the payload failed authentication: the ciphertext was altered or truncated")]
    PayloadTampered(#[source] io::Error),
    /// A passphrase-sealed file asks for more scrypt work than we allow.
    #[error("the file asks for excessive passphrase work (2^{required} > 2^{limit})")]
    ExcessiveWork {
        /// log2 of the work the file asks for.
        required: u8,
        /// log2 of the work we allow.
        limit: u8,
    },
    /// The ciphertext does not have the SHA-256 the signed manifest names.
    #[error("ciphertext SHA-256 {actual} does not match the signed manifest's {expected}")]
    HashMismatch {
        /// What the manifest signed.
        expected: Sha256Digest,
        /// What we read.
        actual: Sha256Digest,
    },
    /// The ciphertext changed between checking its hash and opening it.
    #[error(
        "the ciphertext changed while it was being opened (hash {actual} after checking {expected})"
    )]
    ChangedWhileOpening {
        /// Hash at check time.
        expected: Sha256Digest,
        /// Hash while opening.
        actual: Sha256Digest,
    },
    /// Reading the ciphertext failed.
    #[error("reading the ciphertext failed")]
    Input(#[source] io::Error),
    /// Writing the plaintext failed.
    #[error("writing the plaintext failed")]
    Output(#[source] io::Error),
}

impl OpenError {
    pub(crate) fn from_age(e: age::DecryptError) -> Self {
        use age::DecryptError as D;
        match e {
            D::NoMatchingKeys => OpenError::NotARecipient,
            D::KeyDecryptionFailed => OpenError::StanzaTampered,
            D::InvalidMac => OpenError::HeaderTampered,
            D::ExcessiveWork { required, target } => OpenError::ExcessiveWork {
                required,
                limit: target,
            },
            D::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => OpenError::Malformed,
            D::Io(io) => OpenError::Input(io),
            D::DecryptionFailed => OpenError::PayloadTampered(io::Error::new(
                io::ErrorKind::InvalidData,
                "decryption failed",
            )),
            _ => OpenError::Malformed,
        }
    }
}

/// Bytes handed to the hashing thread at a time.
const HASH_BATCH: usize = 1 << 20;

/// SHA-256 of a stream, computed on a second thread so hashing the ciphertext overlaps with
/// encrypting or decrypting it (the two cost about the same per byte). The thread starts only once
/// a full batch is there, so small objects are hashed inline. Memory stays bounded: at most a few
/// batches are in flight.
struct Feed<'s, 'e> {
    scope: &'s std::thread::Scope<'s, 'e>,
    batch: Vec<u8>,
    len: u64,
    worker: Option<Worker<'s>>,
    /// Batches allocated so far; at most `HASH_BUFFERS`, then they are recycled.
    allocated: usize,
}

/// Batches in circulation between the feeding and the hashing thread.
const HASH_BUFFERS: usize = 4;

struct Worker<'s> {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
    handle: std::thread::ScopedJoinHandle<'s, Sha256>,
}

impl<'s, 'e> Feed<'s, 'e> {
    fn new(scope: &'s std::thread::Scope<'s, 'e>) -> Self {
        Self {
            scope,
            batch: Vec::new(),
            len: 0,
            worker: None,
            allocated: 1,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            if self.batch.capacity() < HASH_BATCH {
                self.batch.reserve_exact(HASH_BATCH - self.batch.len());
            }
            let take = (HASH_BATCH - self.batch.len()).min(data.len());
            self.batch.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.batch.len() == HASH_BATCH {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let worker = self.worker.get_or_insert_with(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_BUFFERS);
            let (back_tx, back) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_BUFFERS);
            let handle = self.scope.spawn(move || {
                let mut hasher = Sha256::new();
                for mut buf in rx {
                    hasher.update(&buf);
                    buf.clear();
                    // Never blocks: at most HASH_BUFFERS buffers exist.
                    let _ = back_tx.try_send(buf);
                }
                hasher
            });
            Worker { tx, back, handle }
        });
        // Reuse a hashed batch; allocate only while fewer than HASH_BUFFERS exist, then wait for
        // the hashing thread, so memory stays bounded and large buffers are not churned.
        let next = match worker.back.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.allocated < HASH_BUFFERS => {
                self.allocated += 1;
                Vec::with_capacity(HASH_BATCH)
            }
            Err(_) => worker.back.recv().unwrap_or_default(),
        };
        let full = std::mem::replace(&mut self.batch, next);
        if worker.tx.send(full).is_err() {
            // The hashing thread is gone (it can only have panicked); `finish` reports it.
        }
    }

    /// The digest and length of everything fed, or `None` if the hashing thread failed.
    fn finish(self) -> Option<(Sha256Digest, u64)> {
        let hasher = match self.worker {
            None => {
                let mut h = Sha256::new();
                h.update(&self.batch);
                h
            }
            Some(w) => {
                if !self.batch.is_empty() && w.tx.send(self.batch).is_err() {
                    return None;
                }
                drop(w.tx);
                w.handle.join().ok()?
            }
        };
        Some((Sha256Digest(hasher.finalize().into()), self.len))
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<'f, 's, 'e, R> {
    inner: R,
    feed: &'f mut Feed<'s, 'e>,
}

impl<R: Read> Read for HashingReader<'_, '_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed.update(&buf[..n]);
        Ok(n)
    }
}

fn hashing_failed() -> io::Error {
    io::Error::other("the hashing thread failed")
}

/// Marks errors that came from the output side, so they are not mistaken for input errors
/// when both pass through `io::copy`.
struct TagOutput<W>(W);

#[derive(Debug)]
struct OutputFailed(io::Error);
impl std::fmt::Display for OutputFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for OutputFailed {}

impl<W: Write> Write for TagOutput<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write(buf)
            .map_err(|e| io::Error::other(OutputFailed(e)))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0
            .flush()
            .map_err(|e| io::Error::other(OutputFailed(e)))
    }
}

fn split_output(e: io::Error) -> Result<io::Error, io::Error> {
    // Ok(out) if the error came from the output side.
    if e.get_ref().is_some_and(|inner| inner.is::<OutputFailed>()) {
        let inner = e
            .into_inner()
            .and_then(|b| b.downcast::<OutputFailed>().ok());
        match inner {
            Some(b) => Ok(b.0),
            None => Ok(io::Error::other("output failed")),
        }
    } else {
        Err(e)
    }
}

/// Copies `input` to `output` through a large buffer; errors say which side failed.
fn pump<R: Read, W: Write>(mut input: R, mut output: W) -> Result<u64, PumpError> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PumpError::Input(e)),
        };
        output.write_all(&buf[..n]).map_err(PumpError::Output)?;
        total += n as u64;
    }
}

enum PumpError {
    Input(io::Error),
    Output(io::Error),
}

/// Seals everything `plaintext` yields to `recipients`, writing an age v1 file to `ciphertext`.
///
/// Memory stays constant whatever the size. The output is flushed but not closed.
pub fn seal_file<R: Read, W: Write>(
    recipients: &[&Recipient],
    plaintext: R,
    ciphertext: W,
) -> Result<SealSummary, SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let (plaintext_len, ciphertext_sha256, ciphertext_len) =
        seal_stream(recipients, plaintext, ciphertext, true)?;
    Ok(SealSummary {
        ciphertext_sha256,
        ciphertext_len,
        plaintext_len,
    })
}

/// The age crate's own single-threaded sealing, kept as the reference the fast path is tested
/// against.
#[cfg(test)]
pub(crate) fn seal_with_age_crate(recipients: &[&Recipient], plaintext: &[u8]) -> Vec<u8> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_age() as &dyn age::Recipient),
    )
    .expect("recipients");
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).expect("header");
    w.write_all(plaintext).expect("write");
    w.finish().expect("finish");
    out
}

/// Benchmark hook: seals without hashing the ciphertext, to show what the hash costs next to the
/// stock `age` tool (which hashes nothing). Not for product code: manifests need the hash.
#[doc(hidden)]
pub fn __seal_unhashed_for_bench<R: Read, W: Write>(
    recipients: &[&Recipient],
    plaintext: R,
    ciphertext: W,
) -> Result<u64, SealError> {
    seal_stream(recipients, plaintext, ciphertext, false).map(|(n, _, _)| n)
}

/// The streaming seal behind [`seal_file`] and the benchmark hook: plaintext length, ciphertext
/// SHA-256 (when `hash`) and ciphertext length.
fn seal_stream<R: Read, W: Write>(
    recipients: &[&Recipient],
    plaintext: R,
    ciphertext: W,
    hash: bool,
) -> Result<(u64, crate::Sha256Digest, u64), SealError> {
    let recipients: Vec<&dyn age::Recipient> = recipients
        .iter()
        .map(|r| r.as_age() as &dyn age::Recipient)
        .collect();
    crate::stream::seal(&recipients, plaintext, ciphertext, hash).map_err(|e| match e {
        crate::stream::SealFailure::Age(e) => SealError::Age(e),
        crate::stream::SealFailure::Input(e) => SealError::Input(e),
        crate::stream::SealFailure::Output(e) => SealError::Output(e),
    })
}

/// Seals a small in-memory object (private metadata, an epoch key) and returns the ciphertext.
pub fn seal_bytes(recipients: &[&Recipient], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    seal_file(recipients, plaintext, &mut out)?;
    Ok(out)
}

/// Something that can open files sealed to it: a device's or agent's keys, or an organisation
/// epoch key. Implemented only inside this crate.
pub trait OpeningKey: private::Sealed {
    #[doc(hidden)]
    fn identity(&self) -> &age::x25519::Identity;
}

mod private {
    pub trait Sealed {}
    impl Sealed for crate::DeviceKeys {}
    impl Sealed for crate::EpochKey {}
}

impl OpeningKey for crate::DeviceKeys {
    fn identity(&self) -> &age::x25519::Identity {
        self.age_identity()
    }
}

impl OpeningKey for crate::EpochKey {
    fn identity(&self) -> &age::x25519::Identity {
        self.age_identity()
    }
}

/// Opens an age v1 file sealed to one of `keys`, streaming the plaintext into `plaintext`.
///
/// Every chunk is authenticated before it is written, but a truncated or altered file is only
/// detected when the bad chunk is reached: if this returns an error, discard what was written.
/// When a signed manifest names the ciphertext's hash, use [`open_verified`] instead, which checks
/// the hash before releasing any plaintext.
pub fn open_file<R: Read, W: Write>(
    keys: &[&dyn OpeningKey],
    ciphertext: R,
    plaintext: W,
) -> Result<OpenSummary, OpenError> {
    let identities: Vec<&dyn age::Identity> = keys
        .iter()
        .map(|k| k.identity() as &dyn age::Identity)
        .collect();
    open_with(&identities, ciphertext, plaintext)
}

pub(crate) fn open_with<R: Read, W: Write>(
    identities: &[&dyn age::Identity],
    ciphertext: R,
    plaintext: W,
) -> Result<OpenSummary, OpenError> {
    open_with_path(identities, ciphertext, plaintext, Path::Fast)
}

/// Which payload decryptor to use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Two-core STREAM decryption (`stream.rs`), after the age crate authenticated the header.
    Fast,
    /// The age crate's own reader: for passphrase files, where unwrapping twice would run scrypt
    /// twice, and as the reference in tests.
    AgeCrate,
}

pub(crate) fn open_with_path<R: Read, W: Write>(
    identities: &[&dyn age::Identity],
    ciphertext: R,
    plaintext: W,
    path: Path,
) -> Result<OpenSummary, OpenError> {
    if path == Path::Fast {
        return open_fast(identities, ciphertext, plaintext);
    }
    std::thread::scope(|scope| {
        let mut feed = Feed::new(scope);
        let plaintext_len = open_hashed(identities, ciphertext, plaintext, &mut feed)?;
        let (ciphertext_sha256, ciphertext_len) = feed
            .finish()
            .ok_or_else(|| OpenError::Input(hashing_failed()))?;
        Ok(OpenSummary {
            ciphertext_sha256,
            ciphertext_len,
            plaintext_len,
        })
    })
}

/// Reads the header (checking its stanza grammar) and the payload nonce after it. Returns the
/// bytes and where the nonce starts.
fn read_header_and_nonce<B: io::BufRead>(input: &mut B) -> Result<(Vec<u8>, usize), OpenError> {
    let mut head = read_canonical_header(input)?;
    let header_len = head.len();
    // The payload nonce follows the header; a short one is left for age to report.
    input
        .take(16)
        .read_to_end(&mut head)
        .map_err(OpenError::Input)?;
    Ok((head, header_len))
}

/// Reads the header and payload nonce; the age crate parses and authenticates the header and
/// unwraps the file key. Returns the header-and-nonce bytes and where the nonce starts.
fn read_and_check_header<B: io::BufRead>(
    identities: &[&dyn age::Identity],
    input: &mut B,
) -> Result<(Vec<u8>, usize), OpenError> {
    let (head, header_len) = read_header_and_nonce(input)?;
    let decryptor = age::Decryptor::new_buffered(&head[..]).map_err(OpenError::from_age)?;
    decryptor
        .decrypt(identities.iter().copied())
        .map_err(|e| match e {
            // While unwrapping the file key, a failed decryption means the key (or
            // passphrase) does not match any stanza.
            age::DecryptError::DecryptionFailed => OpenError::NotARecipient,
            other => OpenError::from_age(other),
        })?;
    Ok((head, header_len))
}

/// The two-core path: the age crate checks the header, `stream.rs` opens the payload and the
/// worker threads hash the ciphertext as they go.
fn open_fast<R: Read, W: Write>(
    identities: &[&dyn age::Identity],
    ciphertext: R,
    plaintext: W,
) -> Result<OpenSummary, OpenError> {
    let mut buffered = BufReader::with_capacity(1 << 16, ciphertext);
    let (head, header_len) = read_and_check_header(identities, &mut buffered)?;
    let (header, nonce) = head.split_at(header_len);
    let nonce: [u8; 16] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
    let cipher = crate::stream::payload_cipher_for(identities, header, &nonce)
        .ok_or(OpenError::Malformed)?;
    let mut hasher = crate::stream::OrderedHasher::new(&head, true);
    let plaintext_len = crate::stream::open_payload(&cipher, &mut buffered, plaintext, &mut hasher)
        .map_err(|e| match e {
            Ok(input) => map_payload_input(input),
            Err(output) => OpenError::Output(output),
        })?;
    let (ciphertext_sha256, ciphertext_len) = hasher.finish();
    Ok(OpenSummary {
        ciphertext_sha256,
        ciphertext_len,
        plaintext_len,
    })
}

fn map_payload_input(e: io::Error) -> OpenError {
    if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::UnexpectedEof {
        OpenError::PayloadTampered(e)
    } else {
        OpenError::Input(e)
    }
}

/// The age crate's own path (passphrase files, and the reference in tests), hashing through
/// [`Feed`].
fn open_hashed<R: Read, W: Write>(
    identities: &[&dyn age::Identity],
    ciphertext: R,
    plaintext: W,
    feed: &mut Feed<'_, '_>,
) -> Result<u64, OpenError> {
    let hashing = HashingReader {
        inner: ciphertext,
        feed,
    };
    let mut buffered = BufReader::with_capacity(BUF, hashing);
    // One pass of the age crate over the header: for passphrase files, unwrapping runs scrypt.
    let (head, _) = read_header_and_nonce(&mut buffered)?;
    let plaintext_len = {
        let mut input = io::Cursor::new(&head[..]).chain(&mut buffered);
        let reader = age::Decryptor::new_buffered(&mut input)
            .map_err(OpenError::from_age)?
            .decrypt(identities.iter().copied())
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed => OpenError::NotARecipient,
                other => OpenError::from_age(other),
            })?;
        match pump(reader, TagOutput(plaintext)) {
            Ok(n) => n,
            Err(PumpError::Input(e)) => return Err(map_payload_input(e)),
            Err(PumpError::Output(e)) => {
                return Err(match split_output(e) {
                    Ok(out) => OpenError::Output(out),
                    Err(other) => OpenError::Output(other),
                });
            }
        }
    };
    // age stops at the final chunk; hash anything after it too (age itself rejects trailing data).
    io::copy(&mut buffered, &mut io::sink()).map_err(OpenError::Input)?;
    Ok(plaintext_len)
}

/// Largest header we read (about 8000 X25519 recipients), so garbage cannot exhaust memory.
const MAX_HEADER: u64 = 1 << 20;

/// Reads the age header (through the `--- MAC` line) and checks the stanza grammar strictly:
/// every stanza body is base64 in full 64-column lines ending with one shorter line (possibly
/// empty). The age crate 0.12 accepts a stanza missing that final line, which the age spec and
/// the CCTV vectors (`stanza_missing_body`, `stanza_missing_final_line`) reject; the stock Go tool
/// always writes it, so being strict here refuses only non-canonical files.
fn read_canonical_header<B: io::BufRead>(input: &mut B) -> Result<Vec<u8>, OpenError> {
    let mut header = Vec::new();
    let mut limited = input.take(MAX_HEADER);
    let mut in_body = false;
    let mut first = true;
    loop {
        let start = header.len();
        let n = limited
            .read_until(b'\n', &mut header)
            .map_err(OpenError::Input)?;
        if n == 0 || header[header.len() - 1] != b'\n' {
            return Err(OpenError::Malformed);
        }
        let line = &header[start..header.len() - 1];
        if first {
            first = false;
            if line != b"age-encryption.org/v1" {
                // Not age v1 (or another version): let age report it.
                return Ok(header);
            }
            continue;
        }
        if in_body {
            let is_b64 = line
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/');
            if !is_b64 || line.len() > 64 {
                return Err(OpenError::Malformed);
            }
            if line.len() < 64 {
                in_body = false;
            }
        } else if line.starts_with(b"-> ") {
            in_body = true;
        } else if line.starts_with(b"---") {
            return Ok(header);
        } else {
            return Err(OpenError::Malformed);
        }
    }
}

/// Hashes a whole ciphertext stream (for example a spooled job, before opening it).
pub fn hash_ciphertext<R: Read>(ciphertext: R) -> Result<(Sha256Digest, u64), io::Error> {
    let mut ciphertext = ciphertext;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut len = 0u64;
    loop {
        match ciphertext.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((Sha256Digest(hasher.finalize().into()), len))
}

/// Opens a ciphertext whose SHA-256 a verified manifest names.
///
/// First reads the whole ciphertext to check its hash, so a swapped blob (even one validly sealed
/// to us, which anyone can make from our public key) releases no plaintext; then seeks back, opens
/// it, and checks the hash again in case the data changed in between. If this returns an error,
/// discard what was written.
pub fn open_verified<R: Read + Seek, W: Write>(
    keys: &[&dyn OpeningKey],
    expected_sha256: &Sha256Digest,
    mut ciphertext: R,
    plaintext: W,
) -> Result<OpenSummary, OpenError> {
    ciphertext
        .seek(SeekFrom::Start(0))
        .map_err(OpenError::Input)?;
    let (actual, _) = hash_ciphertext(&mut ciphertext).map_err(OpenError::Input)?;
    if &actual != expected_sha256 {
        return Err(OpenError::HashMismatch {
            expected: *expected_sha256,
            actual,
        });
    }
    ciphertext
        .seek(SeekFrom::Start(0))
        .map_err(OpenError::Input)?;
    let summary = open_file(keys, ciphertext, plaintext)?;
    if &summary.ciphertext_sha256 != expected_sha256 {
        return Err(OpenError::ChangedWhileOpening {
            expected: *expected_sha256,
            actual: summary.ciphertext_sha256,
        });
    }
    Ok(summary)
}

/// Opens a small in-memory object.
pub fn open_bytes(keys: &[&dyn OpeningKey], ciphertext: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut out = Vec::new();
    open_file(keys, ciphertext, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceKeys;

    #[test]
    fn round_trip_reports_the_same_ciphertext_hash_both_ways() {
        let k = DeviceKeys::generate();
        let r = k.public().recipient;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut ct = Vec::new();
        let s = seal_file(&[&r], &data[..], &mut ct).unwrap();
        assert_eq!(s.plaintext_len, data.len() as u64);
        assert_eq!(s.ciphertext_len, ct.len() as u64);
        assert_eq!(s.ciphertext_sha256, Sha256Digest::of(&ct));
        let mut pt = Vec::new();
        let o = open_file(&[&k], &ct[..], &mut pt).unwrap();
        assert_eq!(pt, data);
        assert_eq!(o.ciphertext_sha256, s.ciphertext_sha256);
        assert_eq!(o.ciphertext_len, s.ciphertext_len);
    }

    #[test]
    fn every_flipped_bit_position_class_fails() {
        let k = DeviceKeys::generate();
        let ct = seal_bytes(&[&k.public().recipient], &[7u8; 100_000]).unwrap();
        // header line, stanza body, MAC, nonce, first chunk, last byte
        let header_end = ct.windows(4).position(|w| w == b"--- ").unwrap();
        for pos in [
            5,
            30,
            90,
            header_end + 10,
            header_end + 50,
            header_end + 70,
            ct.len() / 2,
            ct.len() - 1,
        ] {
            let mut bad = ct.clone();
            bad[pos] ^= 0x01;
            assert!(
                open_bytes(&[&k], &bad).is_err(),
                "flip at {pos} was accepted"
            );
        }
        assert!(matches!(
            open_bytes(&[&k], &ct[..ct.len() - 1]),
            Err(OpenError::PayloadTampered(_))
        ));
    }

    #[test]
    fn wrong_key_is_not_a_recipient() {
        let k = DeviceKeys::generate();
        let other = DeviceKeys::generate();
        let ct = seal_bytes(&[&k.public().recipient], b"x").unwrap();
        assert!(matches!(
            open_bytes(&[&other], &ct),
            Err(OpenError::NotARecipient)
        ));
    }

    #[test]
    fn open_verified_refuses_a_swapped_blob_before_writing() {
        let k = DeviceKeys::generate();
        let r = k.public().recipient;
        let good = seal_bytes(&[&r], b"good").unwrap();
        let evil = seal_bytes(&[&r], b"evil").unwrap();
        let mut out = Vec::new();
        let e = open_verified(
            &[&k],
            &Sha256Digest::of(&good),
            io::Cursor::new(&evil),
            &mut out,
        );
        assert!(matches!(e, Err(OpenError::HashMismatch { .. })));
        assert!(out.is_empty());
        open_verified(
            &[&k],
            &Sha256Digest::of(&good),
            io::Cursor::new(&good),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"good");
    }
}
