//! Reads the format and pixel size of a thumbnail from its first bytes (PNG, JPEG, QOI), so the
//! report states what the image really is rather than what the container claimed.

use crate::report::ImageFormat;

/// Returns the format, width and height, or `None` when the bytes are none of the three formats.
pub(crate) fn probe(data: &[u8]) -> Option<(ImageFormat, u32, u32)> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        // The IHDR chunk is always first: length, "IHDR", width, height (big-endian).
        let w = be32(data.get(16..20)?);
        let h = be32(data.get(20..24)?);
        return Some((ImageFormat::Png, w, h));
    }
    if data.starts_with(b"qoif") {
        return Some((
            ImageFormat::Qoi,
            be32(data.get(4..8)?),
            be32(data.get(8..12)?),
        ));
    }
    if data.starts_with(&[0xFF, 0xD8]) {
        return jpeg_size(data).map(|(w, h)| (ImageFormat::Jpg, w, h));
    }
    None
}

fn be32(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

/// Walks JPEG segments to the first start-of-frame marker.
fn jpeg_size(data: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let seg = data.get(i + 4..i + 9)?;
            let h = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
            let w = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// Largest picture decoded (pixels), so a hostile header cannot ask for gigabytes.
const MAX_PIXELS: u64 = 4096 * 4096;

/// Decodes a QOI image (<https://qoiformat.org/qoi-specification.pdf>) to RGBA pixels.
fn qoi_decode(data: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let (_, w, h) = probe(data).filter(|(f, _, _)| *f == ImageFormat::Qoi)?;
    let n = u64::from(w) * u64::from(h);
    if n == 0 || n > MAX_PIXELS {
        return None;
    }
    let n = usize::try_from(n).ok()?;
    let mut out = Vec::with_capacity(n * 4);
    let mut index = [[0u8; 4]; 64];
    let mut px = [0u8, 0, 0, 255];
    let mut i = 14;
    while out.len() < n * 4 {
        let b1 = *data.get(i)?;
        i += 1;
        let mut run = 1;
        match b1 {
            0xFE => {
                px[..3].copy_from_slice(data.get(i..i + 3)?);
                i += 3;
            }
            0xFF => {
                px.copy_from_slice(data.get(i..i + 4)?);
                i += 4;
            }
            _ => match b1 >> 6 {
                0 => px = index[usize::from(b1)],
                1 => {
                    px[0] = px[0].wrapping_add((b1 >> 4) & 3).wrapping_sub(2);
                    px[1] = px[1].wrapping_add((b1 >> 2) & 3).wrapping_sub(2);
                    px[2] = px[2].wrapping_add(b1 & 3).wrapping_sub(2);
                }
                2 => {
                    let b2 = *data.get(i)?;
                    i += 1;
                    let vg = (b1 & 0x3F).wrapping_sub(32);
                    px[0] = px[0].wrapping_add(vg.wrapping_sub(8).wrapping_add(b2 >> 4));
                    px[1] = px[1].wrapping_add(vg);
                    px[2] = px[2].wrapping_add(vg.wrapping_sub(8).wrapping_add(b2 & 0x0F));
                }
                _ => run = usize::from(b1 & 0x3F) + 1,
            },
        }
        let hash = (usize::from(px[0]) * 3
            + usize::from(px[1]) * 5
            + usize::from(px[2]) * 7
            + usize::from(px[3]) * 11)
            % 64;
        index[hash] = px;
        for _ in 0..run {
            if out.len() < n * 4 {
                out.extend_from_slice(&px);
            }
        }
    }
    Some((w, h, out))
}

/// Encodes 8-bit RGBA pixels (`w * h * 4` bytes, rows top to bottom) as a PNG (no filtering;
/// thumbnails are small). `None` when the sizes do not match.
pub fn encode_png(w: u32, h: u32, rgba: &[u8]) -> Option<Vec<u8>> {
    if u64::from(w) * u64::from(h) * 4 != rgba.len() as u64 || w == 0 {
        return None;
    }
    use std::io::Write as _;
    let row = usize::try_from(w).ok()? * 4;
    let mut raw = Vec::with_capacity(rgba.len() + usize::try_from(h).ok()?);
    for line in rgba.chunks(row) {
        raw.push(0);
        raw.extend_from_slice(line);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).ok()?;
    let idat = z.finish().ok()?;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], body: &[u8]| {
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    };
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &idat);
    chunk(b"IEND", &[]);
    Some(out)
}

impl crate::report::Thumbnail {
    /// The picture as PNG: as is when it is one, converted when it is QOI (PrusaSlicer's format
    /// for MK4/XL/MINI printers). `None` for JPEG (no decoder here) or an unreadable image.
    pub fn to_png(&self) -> Option<Vec<u8>> {
        match self.format {
            ImageFormat::Png => Some(self.data.clone()),
            ImageFormat::Qoi => {
                let (w, h, rgba) = qoi_decode(&self.data)?;
                encode_png(w, h, &rgba)
            }
            ImageFormat::Jpg => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sizes() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&[0, 0, 0, 220, 0, 0, 0, 124]);
        assert_eq!(probe(&png), Some((ImageFormat::Png, 220, 124)));
        let qoi = b"qoif\0\0\x01\x39\0\0\0\xad\x04\x00";
        assert_eq!(probe(qoi), Some((ImageFormat::Qoi, 313, 173)));
        let jpg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0, 16, 0, 32, 3,
        ];
        assert_eq!(probe(&jpg), Some((ImageFormat::Jpg, 32, 16)));
        assert_eq!(probe(b"nope"), None);
        assert_eq!(probe(&[0xFF, 0xD8, 0xFF]), None);
    }

    #[test]
    fn qoi_decodes_every_op_and_converts_to_png() {
        // 2x2: RGB op, RUN of 1 more, DIFF op, INDEX of the first colour, then the end marker.
        let mut q = b"qoif\0\0\0\x02\0\0\0\x02\x04\x00".to_vec();
        q.extend_from_slice(&[0xFE, 10, 20, 30]); // (10,20,30,255)
        q.push(0xC0); // run 1
        q.push(0x40 | (3 << 4) | (2 << 2) | 1); // r+1, g+0, b-1
        let h = (10 * 3 + 20 * 5 + 30 * 7 + 255 * 11) % 64;
        q.push(h as u8);
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        let (w, hh, px) = qoi_decode(&q).unwrap();
        assert_eq!((w, hh), (2, 2));
        assert_eq!(
            px,
            [
                10, 20, 30, 255, 10, 20, 30, 255, 11, 20, 29, 255, 10, 20, 30, 255
            ]
        );
        let png = encode_png(w, hh, &px).unwrap();
        assert_eq!(probe(&png), Some((ImageFormat::Png, 2, 2)));
        // Truncated data is refused, not guessed.
        assert!(qoi_decode(&q[..17]).is_none());
    }
}
