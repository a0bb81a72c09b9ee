//! Prusa binary G-code (`.bgcode`), per prusa3d/libbgcode `doc/specifications.md`.
//!
//! A 10-byte file header (`GCDE`, version, checksum type) then blocks: a header (type,
//! compression, sizes), parameters (encoding, or thumbnail format and size), data, and a CRC32 of
//! all three. Blocks are read one at a time, so memory is bounded by the largest block (which
//! PrusaSlicer keeps at 64 KiB; we refuse blocks over [`MAX_BLOCK`]).

use std::io::{Read, Write};

use crate::report::ImageFormat;

/// PrusaSlicer writes blocks of at most 64 KiB; larger ones are refused so that memory stays
/// bounded (a block, its decompressed and its decoded copy are held at once).
const MAX_BLOCK: u32 = 8 << 20;

/// Why a binary G-code file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BgcodeError {
    #[error("not a binary G-code file (bad magic)")]
    Magic,
    #[error("unsupported binary G-code version {0}")]
    Version(u32),
    #[error("unsupported checksum type {0}")]
    ChecksumType(u16),
    #[error("block at byte {offset}: {reason}")]
    Block { offset: u64, reason: String },
    #[error("truncated file at byte {offset}")]
    Truncated { offset: u64 },
    #[error("read failed at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

/// Block types of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    FileMetadata,
    Gcode,
    SlicerMetadata,
    PrinterMetadata,
    PrintMetadata,
    Thumbnail,
}

/// One decoded block.
#[derive(Debug)]
pub(crate) enum Block {
    /// `key=value` lines of a metadata block.
    Metadata(BlockKind, Vec<(String, String)>),
    Thumbnail {
        format: ImageFormat,
        width: u16,
        height: u16,
        data: Vec<u8>,
    },
    /// G-code text (already decompressed and MeatPack-decoded).
    Gcode(Vec<u8>),
}

/// Reads blocks one by one.
#[derive(Debug)]
pub(crate) struct Reader<R> {
    r: R,
    offset: u64,
    crc: bool,
    /// CRC mismatches seen, with the block offset (the data is still used).
    pub(crate) bad_crc: Vec<u64>,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(mut r: R) -> Result<Self, BgcodeError> {
        let mut h = [0u8; 10];
        read_exact(&mut r, &mut h, 0)?;
        if &h[..4] != b"GCDE" {
            return Err(BgcodeError::Magic);
        }
        let version = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if version != 1 {
            return Err(BgcodeError::Version(version));
        }
        let ck = u16::from_le_bytes([h[8], h[9]]);
        if ck > 1 {
            return Err(BgcodeError::ChecksumType(ck));
        }
        Ok(Self {
            r,
            offset: 10,
            crc: ck == 1,
            bad_crc: Vec::new(),
        })
    }

    fn bad(&self, offset: u64, reason: impl Into<String>) -> BgcodeError {
        BgcodeError::Block {
            offset,
            reason: reason.into(),
        }
    }

    /// The next block, or `None` at a clean end of file.
    pub(crate) fn next_block(&mut self) -> Result<Option<Block>, BgcodeError> {
        let start = self.offset;
        let mut head = [0u8; 12];
        // The first byte tells a clean end of file from a truncated header.
        let n = read_some(&mut self.r, &mut head[..8], start)?;
        if n == 0 {
            return Ok(None);
        }
        if n < 8 {
            return Err(BgcodeError::Truncated {
                offset: start + n as u64,
            });
        }
        let kind = match u16::from_le_bytes([head[0], head[1]]) {
            0 => BlockKind::FileMetadata,
            1 => BlockKind::Gcode,
            2 => BlockKind::SlicerMetadata,
            3 => BlockKind::PrinterMetadata,
            4 => BlockKind::PrintMetadata,
            5 => BlockKind::Thumbnail,
            t => return Err(self.bad(start, format!("unknown block type {t}"))),
        };
        let compression = u16::from_le_bytes([head[2], head[3]]);
        let usize_ = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let mut head_len = 8;
        let csize = if compression == 0 {
            usize_
        } else {
            read_exact(&mut self.r, &mut head[8..12], start + 8)?;
            head_len = 12;
            u32::from_le_bytes([head[8], head[9], head[10], head[11]])
        };
        if compression > 3 {
            return Err(self.bad(start, format!("unknown compression {compression}")));
        }
        if usize_ > MAX_BLOCK || csize > MAX_BLOCK {
            return Err(self.bad(
                start,
                format!("block of {usize_} bytes is larger than allowed"),
            ));
        }
        let params_len = if kind == BlockKind::Thumbnail { 6 } else { 2 };
        let mut params = [0u8; 6];
        read_exact(
            &mut self.r,
            &mut params[..params_len],
            start + head_len as u64,
        )?;
        let data_off = start + head_len as u64 + params_len as u64;
        let mut data = vec![0u8; csize as usize];
        read_exact(&mut self.r, &mut data, data_off)?;
        let mut end = data_off + u64::from(csize);
        if self.crc {
            let mut c = [0u8; 4];
            read_exact(&mut self.r, &mut c, end)?;
            end += 4;
            let mut h = crc32fast::Hasher::new();
            h.update(&head[..head_len]);
            h.update(&params[..params_len]);
            h.update(&data);
            if h.finalize() != u32::from_le_bytes(c) {
                self.bad_crc.push(start);
            }
        }
        self.offset = end;

        let data = match compression {
            0 => data,
            1 => inflate(&data, usize_).map_err(|e| self.bad(start, e))?,
            2 => crate::heatshrink::decode(&data, 11, 4, usize_ as usize),
            _ => crate::heatshrink::decode(&data, 12, 4, usize_ as usize),
        };
        if data.len() != usize_ as usize {
            return Err(self.bad(
                start,
                format!("decompressed to {} bytes, header says {usize_}", data.len()),
            ));
        }
        let p16 = |i: usize| u16::from_le_bytes([params[i], params[i + 1]]);
        Ok(Some(match kind {
            BlockKind::Thumbnail => Block::Thumbnail {
                format: match p16(0) {
                    0 => ImageFormat::Png,
                    1 => ImageFormat::Jpg,
                    2 => ImageFormat::Qoi,
                    f => return Err(self.bad(start, format!("unknown thumbnail format {f}"))),
                },
                width: p16(2),
                height: p16(4),
                data,
            },
            BlockKind::Gcode => match p16(0) {
                0 => Block::Gcode(data),
                1 | 2 => Block::Gcode(crate::meatpack::decode(&data)),
                e => return Err(self.bad(start, format!("unknown G-code encoding {e}"))),
            },
            _ => {
                if p16(0) != 0 {
                    return Err(self.bad(start, format!("unknown metadata encoding {}", p16(0))));
                }
                Block::Metadata(kind, parse_ini(&data))
            }
        }))
    }
}

fn inflate(data: &[u8], expected: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(expected as usize);
    flate2::read::ZlibDecoder::new(data)
        .take(u64::from(expected) + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("deflate data is corrupt: {e}"))?;
    Ok(out)
}

/// `key=value\n` lines (the INI encoding of metadata blocks).
fn parse_ini(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8], offset: u64) -> Result<usize, BgcodeError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(BgcodeError::Io { offset, source }),
        }
    }
    Ok(n)
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], offset: u64) -> Result<(), BgcodeError> {
    let n = read_some(r, buf, offset)?;
    if n < buf.len() {
        return Err(BgcodeError::Truncated {
            offset: offset + n as u64,
        });
    }
    Ok(())
}

/// Writes the text G-code equivalent of a binary G-code file, laid out as libbgcode's
/// `from_binary_to_ascii` does (so it matches PrusaSlicer's text output byte for byte).
pub fn to_gcode<R: Read, W: Write>(r: R, mut w: W) -> Result<(), crate::Error> {
    let mut reader = Reader::new(r)?;
    let io = crate::Error::Io;
    let mut print_meta: Vec<(String, String)> = Vec::new();
    let mut slicer_meta: Option<Vec<(String, String)>> = None;
    let mut gcode_started = false;
    while let Some(block) = reader.next_block()? {
        match block {
            Block::Metadata(BlockKind::FileMetadata, kv) => {
                let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
                let mut s = get("Producer").unwrap_or("Unknown").to_owned();
                if let Some(on) = get("Produced on") {
                    s.push_str(" on ");
                    s.push_str(on);
                }
                if let Some(by) = get("Prepared by") {
                    s.push_str("\n; prepared by ");
                    s.push_str(by);
                }
                write!(w, "; generated by {s}\n\n\n").map_err(io)?;
            }
            Block::Metadata(BlockKind::PrinterMetadata, kv) => write_kv(&mut w, &kv)?,
            Block::Metadata(BlockKind::PrintMetadata, kv) => print_meta = kv,
            Block::Metadata(_, kv) => slicer_meta = Some(kv),
            Block::Thumbnail {
                format,
                width,
                height,
                data,
            } => {
                use base64::Engine as _;
                let tag = match format {
                    ImageFormat::Png => "thumbnail",
                    ImageFormat::Jpg => "thumbnail_JPG",
                    ImageFormat::Qoi => "thumbnail_QOI",
                };
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
                write!(w, "\n;\n; {tag} begin {width}x{height} {}\n", b64.len()).map_err(io)?;
                for row in b64.as_bytes().chunks(78) {
                    w.write_all(b"; ").map_err(io)?;
                    w.write_all(row).map_err(io)?;
                    w.write_all(b"\n").map_err(io)?;
                }
                write!(w, "; {tag} end\n;\n").map_err(io)?;
            }
            Block::Gcode(text) => {
                if !gcode_started {
                    w.write_all(b"\n").map_err(io)?;
                    gcode_started = true;
                }
                for line in text.split(|&c| c == b'\n') {
                    let t = line.trim_ascii();
                    let t = t.strip_prefix(b";").unwrap_or(t);
                    if !t.is_empty() {
                        w.write_all(line).map_err(io)?;
                        w.write_all(b"\n").map_err(io)?;
                    }
                }
            }
        }
    }
    w.write_all(b"\n").map_err(io)?;
    write_kv(&mut w, &print_meta)?;
    if let Some(kv) = slicer_meta {
        w.write_all(b"\n; prusaslicer_config = begin\n")
            .map_err(io)?;
        write_kv(&mut w, &kv)?;
        w.write_all(b"; prusaslicer_config = end\n\n").map_err(io)?;
    }
    Ok(())
}

fn write_kv<W: Write>(w: &mut W, kv: &[(String, String)]) -> Result<(), crate::Error> {
    for (k, v) in kv {
        writeln!(w, "; {k} = {v}").map_err(crate::Error::Io)?;
    }
    Ok(())
}
