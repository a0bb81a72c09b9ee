//! The camera server of A1 and P1 printers (OpenBambuAPI `video.md`, "A1 and P1"): TLS on port
//! 6000 with the printer's certificate; the client sends an 80-byte login (little-endian u32
//! payload size 0x40, type 0x3000, flags 0, 0, then the user `bblp` and the access code, each
//! right-padded with NUL to 32 bytes); the printer then sends frames, each a 16-byte header whose
//! first u32 is the JPEG's size, followed by the JPEG. One frame is read, then the connection is
//! closed. X1 and H2 machines stream RTSPS on port 322 instead, which this driver does not read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// Largest frame accepted (the printers send 1280x720 JPEGs of about 100 KiB).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("camera connection")]
    Io(#[source] std::io::Error),
    /// The printer closed the connection instead of sending a frame.
    #[error(
        "the printer closed the camera connection: check the access code, and that LAN mode liveview is on"
    )]
    Closed,
    #[error("{0}")]
    Protocol(String),
}

/// The 80-byte login packet.
pub fn login_packet(access_code: &str) -> Result<[u8; 80], CameraError> {
    if access_code.len() > 32 {
        return Err(CameraError::Protocol(
            "the access code is longer than 32 bytes".into(),
        ));
    }
    let mut p = [0u8; 80];
    p[0..4].copy_from_slice(&0x40u32.to_le_bytes());
    p[4..8].copy_from_slice(&0x3000u32.to_le_bytes());
    p[16..20].copy_from_slice(b"bblp");
    p[48..48 + access_code.len()].copy_from_slice(access_code.as_bytes());
    Ok(p)
}

/// The JPEG size a frame header announces, refused above [`MAX_FRAME`].
pub fn frame_size(header: &[u8; 16]) -> Result<usize, CameraError> {
    let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if size == 0 || size > MAX_FRAME {
        return Err(CameraError::Protocol(format!(
            "the camera announced a frame of {size} bytes"
        )));
    }
    Ok(size)
}

/// Logs in and reads one frame, within `timeout`.
pub async fn frame(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    access_code: &str,
    timeout: Duration,
) -> Result<Vec<u8>, CameraError> {
    let login = login_packet(access_code)?;
    let read = async {
        let tcp = TcpStream::connect(addr).await.map_err(CameraError::Io)?;
        let mut s = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(CameraError::Io)?;
        s.write_all(&login).await.map_err(CameraError::Io)?;
        s.flush().await.map_err(CameraError::Io)?;
        let mut header = [0u8; 16];
        match s.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(CameraError::Closed);
            }
            Err(e) => return Err(CameraError::Io(e)),
        }
        let mut jpeg = vec![0u8; frame_size(&header)?];
        s.read_exact(&mut jpeg).await.map_err(CameraError::Io)?;
        if !(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9])) {
            return Err(CameraError::Protocol(
                "the camera's frame is not a whole JPEG".into(),
            ));
        }
        Ok(jpeg)
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        CameraError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no frame in time",
        ))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_packet_is_as_published() {
        let p = login_packet("12345678").unwrap();
        assert_eq!(
            &p[0..16],
            &[0x40, 0, 0, 0, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&p[16..21], b"bblp\0");
        assert!(p[20..48].iter().all(|b| *b == 0));
        assert_eq!(&p[48..56], b"12345678");
        assert!(p[56..80].iter().all(|b| *b == 0));
        assert!(login_packet(&"x".repeat(33)).is_err());
    }

    #[test]
    fn a_frame_header_gives_the_jpeg_size_within_bounds() {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&100_000u32.to_le_bytes());
        h[8] = 1;
        assert_eq!(frame_size(&h).unwrap(), 100_000);
        h[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(frame_size(&h).is_err());
        assert!(frame_size(&[0u8; 16]).is_err());
    }
}
