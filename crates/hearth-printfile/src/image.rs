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
}
