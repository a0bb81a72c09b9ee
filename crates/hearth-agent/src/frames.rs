//! Timelapse frames kept on disk while the server is out of reach, sent once it is back
//! (`PUT .../snapshot?late=true`), so a server restart or a network outage during a print leaves
//! no gap in the job's timelapse. A print never depends on the server; its timelapse neither.
//!
//! What is kept is what would have been sent: the sealed frame (an age file) and the agent's
//! signed manifest, one JSON file each under `STATE_DIR/timelapse/`, named by a sequence number so
//! they go out in the order they were taken. Nothing here is plaintext. The directory is bounded
//! (`max_bytes`): past it the oldest frames go, as a timelapse would rather lose its start than
//! its end.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Most bytes of kept frames, by default: a long outage at 10 s a frame fits.
pub const MAX_KEPT_BYTES: u64 = 256 * 1024 * 1024;

/// One kept frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The printer's name on this agent.
    pub printer: String,
    /// The signed snapshot manifest, as it would have been sent.
    pub manifest: serde_json::Value,
    /// The sealed frame, base64.
    pub sealed: String,
}

impl Kept {
    pub fn sealed_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(self.sealed.as_bytes())
    }
}

/// The directory of kept frames.
#[derive(Debug)]
pub struct FrameBuffer {
    dir: PathBuf,
    max_bytes: u64,
    /// The next file's sequence number.
    next: Mutex<u64>,
}

fn seq_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

impl FrameBuffer {
    /// Opens (creating) `state_dir/timelapse`; frames kept before a restart are still there.
    pub fn open(state_dir: &Path, max_bytes: u64) -> io::Result<Self> {
        let dir = state_dir.join("timelapse");
        std::fs::create_dir_all(&dir)?;
        let buffer = FrameBuffer {
            dir,
            max_bytes,
            next: Mutex::new(0),
        };
        let last = buffer.files()?.last().map(|(s, _, _)| *s);
        *buffer.next.lock().unwrap_or_else(|p| p.into_inner()) = last.map_or(0, |s| s + 1);
        Ok(buffer)
    }

    /// The kept frames in the order they were taken: (sequence, path, size). Files that are not
    /// frames (a `.part` left by a crash) are removed.
    fn files(&self) -> io::Result<Vec<(u64, PathBuf, u64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            match seq_of(&path) {
                Some(seq) => out.push((seq, path, entry.metadata()?.len())),
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        out.sort_by_key(|(s, _, _)| *s);
        Ok(out)
    }

    /// Keeps a frame of `printer`. Returns how many of the oldest frames went to stay within the
    /// bound.
    pub fn push(
        &self,
        printer: &str,
        sealed: &[u8],
        manifest: serde_json::Value,
    ) -> io::Result<usize> {
        let kept = Kept {
            printer: printer.to_owned(),
            manifest,
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
        };
        let text = serde_json::to_vec(&kept).map_err(io::Error::other)?;
        let seq = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let s = *next;
            *next += 1;
            s
        };
        let path = self.dir.join(format!("{seq:020}.json"));
        let part = path.with_extension("part");
        let mut f = std::fs::File::create(&part)?;
        f.write_all(&text)?;
        f.sync_data()?;
        std::fs::rename(&part, &path)?;
        let files = self.files()?;
        let mut total: u64 = files.iter().map(|(_, _, n)| n).sum();
        let mut dropped = 0;
        for (_, p, n) in &files {
            if total <= self.max_bytes || *p == path {
                break;
            }
            std::fs::remove_file(p)?;
            total -= n;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// The oldest kept frame. One that cannot be read back (damaged) is removed and skipped.
    pub fn oldest(&self) -> io::Result<Option<(PathBuf, Kept)>> {
        for (_, path, _) in self.files()? {
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Kept>(&b).ok())
            {
                Some(k) => return Ok(Some((path, k))),
                None => {
                    tracing::warn!(path = %path.display(), "a kept timelapse frame is damaged; removed");
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(None)
    }

    /// Removes a frame once sent (or refused for good).
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether no frame is kept.
    pub fn is_empty(&self) -> bool {
        self.files().map(|f| f.is_empty()).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n: u64) -> serde_json::Value {
        serde_json::json!({ "manifest": { "taken_at": n } })
    }

    #[test]
    fn frames_come_back_in_order_across_a_restart_and_the_oldest_go_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let b = FrameBuffer::open(dir.path(), 10_000).unwrap();
        assert!(b.is_empty());
        for n in 0..3 {
            assert_eq!(b.push("mk4", &[n as u8; 100], manifest(n)).unwrap(), 0);
        }
        // A restart: the same frames, and new ones after them.
        let b = FrameBuffer::open(dir.path(), 10_000).unwrap();
        b.push("mk4", &[3; 100], manifest(3)).unwrap();
        let mut taken = Vec::new();
        while let Some((path, k)) = b.oldest().unwrap() {
            assert_eq!(k.printer, "mk4");
            taken.push(k.manifest["manifest"]["taken_at"].as_u64().unwrap());
            assert_eq!(k.sealed_bytes().unwrap()[0] as u64, taken[taken.len() - 1]);
            b.remove(&path).unwrap();
        }
        assert_eq!(taken, [0, 1, 2, 3]);
        assert!(b.is_empty());

        // Bounded: each frame's file is about 400 bytes here; 1 000 bytes hold two.
        let small = FrameBuffer::open(&dir.path().join("small"), 1_000).unwrap();
        let mut dropped = 0;
        for n in 0..5 {
            dropped += small.push("mk4", &[0; 200], manifest(n)).unwrap();
        }
        assert_eq!(dropped, 3, "the oldest went");
        let (_, k) = small.oldest().unwrap().unwrap();
        assert_eq!(k.manifest["manifest"]["taken_at"], 3);
    }

    #[test]
    fn a_damaged_frame_or_a_half_written_one_is_dropped_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let tl = dir.path().join("timelapse");
        std::fs::create_dir_all(&tl).unwrap();
        std::fs::write(tl.join("00000000000000000000.json"), b"{ not json").unwrap();
        std::fs::write(tl.join("00000000000000000009.part"), b"half").unwrap();
        let b = FrameBuffer::open(dir.path(), MAX_KEPT_BYTES).unwrap();
        b.push("mk4", b"age", manifest(1)).unwrap();
        let (_, k) = b.oldest().unwrap().unwrap();
        assert_eq!(k.manifest, manifest(1));
        assert_eq!(std::fs::read_dir(&tl).unwrap().count(), 1);
    }
}
