//! The few FTP commands a Bambu printer's file server needs (RFC 959, FTPS per RFC 4217), over
//! implicit TLS (PROTOCOLS.md §A4, "File upload"): TLS from the first byte on port 990, user `bblp`
//! with the access code, `PBSZ 0` and `PROT P` so data connections are TLS too, and every data
//! connection resuming the control connection's TLS session, which the printer's server requires.
//! Resumption comes from rustls' session cache: the same `ClientConfig` and server name on both
//! connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// Why an FTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    /// The connection failed or dropped.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server refused the login.
    #[error("login refused: {0}")]
    Login(String),
    /// The server answered with an error code.
    #[error("{command}: {code} {text}")]
    Reply {
        /// The command, without its argument.
        command: &'static str,
        /// FTP reply code.
        code: u16,
        /// The server's text.
        text: String,
    },
    /// The answer could not be understood.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// A logged-in control connection.
pub struct Ftps {
    control: BufReader<TlsStream<TcpStream>>,
    connector: TlsConnector,
    name: ServerName<'static>,
    peer: std::net::IpAddr,
    timeout: Duration,
}

impl std::fmt::Debug for Ftps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ftps")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
}

impl Ftps {
    /// Connects, then logs in as `bblp` with the access code and switches data connections to TLS.
    pub async fn login(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        access_code: &str,
        timeout: Duration,
    ) -> Result<Self, FtpError> {
        let connector = TlsConnector::from(tls);
        let tcp = within(timeout, TcpStream::connect(addr)).await?;
        let stream = within(timeout, connector.connect(name.clone(), tcp)).await?;
        let mut ftp = Self {
            control: BufReader::new(stream),
            connector,
            name,
            peer: addr.ip(),
            timeout,
        };
        ftp.expect("connect", &[220]).await?;
        let (code, text) = ftp.command("USER bblp").await?;
        if code == 331 {
            let (code, text) = ftp.command(&format!("PASS {access_code}")).await?;
            if code != 230 {
                return Err(FtpError::Login(format!("{code} {text}")));
            }
        } else if code != 230 {
            return Err(FtpError::Login(format!("{code} {text}")));
        }
        ftp.ok("PBSZ", "PBSZ 0", &[200]).await?;
        ftp.ok("PROT", "PROT P", &[200]).await?;
        ftp.ok("TYPE", "TYPE I", &[200]).await?;
        Ok(ftp)
    }

    /// Reads one reply, single- or multi-line (`123-...` lines until `123 ...`).
    async fn reply(&mut self) -> Result<(u16, String), FtpError> {
        let mut text = String::new();
        let mut multi: Option<String> = None;
        loop {
            let mut line = String::new();
            let n = within(self.timeout, self.control.read_line(&mut line)).await?;
            if n == 0 {
                return Err(FtpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let line = line.trim_end();
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
            let sep = line.as_bytes().get(3).copied();
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line.get(4..).unwrap_or("").trim());
            match (multi.as_deref(), code) {
                (None, Some(c)) if sep == Some(b'-') => multi = Some(c.to_owned()),
                (None, Some(c)) => return Ok((parse_code(c), text)),
                (None, None) => return Err(FtpError::Protocol(line.to_owned())),
                (Some(m), Some(c)) if c == m && sep != Some(b'-') => {
                    return Ok((parse_code(c), text));
                }
                (Some(_), _) => {}
            }
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), FtpError> {
        let stream = self.control.get_mut();
        within(
            self.timeout,
            stream.write_all(format!("{line}\r\n").as_bytes()),
        )
        .await?;
        within(self.timeout, stream.flush()).await?;
        Ok(())
    }

    async fn command(&mut self, line: &str) -> Result<(u16, String), FtpError> {
        self.send(line).await?;
        self.reply().await
    }

    async fn expect(&mut self, what: &'static str, codes: &[u16]) -> Result<String, FtpError> {
        let (code, text) = self.reply().await?;
        check(what, codes, code, text)
    }

    async fn ok(
        &mut self,
        what: &'static str,
        line: &str,
        codes: &[u16],
    ) -> Result<String, FtpError> {
        let (code, text) = self.command(line).await?;
        check(what, codes, code, text)
    }

    /// Opens a passive data connection (EPSV, else PASV), at the control connection's address:
    /// the address inside a PASV answer is ignored, as most clients do (it may be a NAT's inside).
    async fn passive(&mut self) -> Result<TcpStream, FtpError> {
        let (code, text) = self.command("EPSV").await?;
        let port = if code == 229 {
            // "Entering Extended Passive Mode (|||port|)"
            text.split('|')
                .nth(3)
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| FtpError::Protocol(text.clone()))?
        } else {
            let text = self.ok("PASV", "PASV", &[227]).await?;
            let inner = text
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(inner, _)| inner)
                .unwrap_or(text.as_str());
            let nums: Vec<u16> = inner
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect();
            match nums.as_slice() {
                [_, _, _, _, hi, lo] if *hi < 256 && *lo < 256 => hi * 256 + lo,
                _ => return Err(FtpError::Protocol(text)),
            }
        };
        Ok(within(self.timeout, TcpStream::connect((self.peer, port))).await?)
    }

    async fn secure(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, FtpError> {
        Ok(within(self.timeout, self.connector.connect(self.name.clone(), tcp)).await?)
    }

    /// Stores `body` as `path`, replacing a file of that name. `timeout` bounds the whole transfer.
    pub async fn store(
        &mut self,
        path: &str,
        mut body: impl AsyncRead + Unpin,
        timeout: Duration,
    ) -> Result<u64, FtpError> {
        let tcp = self.passive().await?;
        self.ok("STOR", &format!("STOR {path}"), &[125, 150])
            .await?;
        let sent = async {
            let mut data = self.secure(tcp).await?;
            within(timeout, async {
                let n = tokio::io::copy(&mut body, &mut data).await?;
                // close_notify, then close; the printer's answer comes on the control
                // connection (waiting for its own close_notify hangs on some firmware:
                // ha-bambulab).
                data.shutdown().await?;
                Ok(n)
            })
            .await
            .map_err(FtpError::from)
        }
        .await;
        match sent {
            Ok(n) => {
                self.expect("STOR", &[226, 250]).await?;
                Ok(n)
            }
            // A server that drops the data connection usually said why on the control one
            // (e.g. "522 SSL connection failed: session reuse required").
            Err(e) => match self.reply().await {
                Ok((code, text)) if code >= 400 => Err(FtpError::Reply {
                    command: "STOR",
                    code,
                    text,
                }),
                _ => Err(e),
            },
        }
    }

    /// Reads the whole file at `path`, up to `limit` bytes.
    pub async fn retrieve(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FtpError> {
        let tcp = self.passive().await?;
        self.ok("RETR", &format!("RETR {path}"), &[125, 150])
            .await?;
        let data = self.secure(tcp).await?;
        let mut out = Vec::new();
        let read = within(self.timeout * 6, async {
            let mut limited = data.take(limit);
            limited.read_to_end(&mut out).await
        })
        .await;
        match read {
            Ok(_) => {}
            // A server closing without close_notify has still sent the whole file.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.into()),
        }
        self.expect("RETR", &[226, 250]).await?;
        Ok(out)
    }

    /// The size of `path`, or `None` when there is no such file.
    pub async fn size(&mut self, path: &str) -> Result<Option<u64>, FtpError> {
        match self.command(&format!("SIZE {path}")).await? {
            (213, text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| FtpError::Protocol(text)),
            (550, _) => Ok(None),
            (code, text) => Err(FtpError::Reply {
                command: "SIZE",
                code,
                text,
            }),
        }
    }

    /// Deletes `path`; `false` when there was no such file.
    pub async fn delete(&mut self, path: &str) -> Result<bool, FtpError> {
        match self.command(&format!("DELE {path}")).await? {
            (250, _) => Ok(true),
            (550, _) => Ok(false),
            (code, text) => Err(FtpError::Reply {
                command: "DELE",
                code,
                text,
            }),
        }
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
        let _ = self.control.get_mut().shutdown().await;
    }
}

fn parse_code(c: &str) -> u16 {
    c.parse().unwrap_or(0)
}

fn check(what: &'static str, codes: &[u16], code: u16, text: String) -> Result<String, FtpError> {
    if codes.contains(&code) {
        Ok(text)
    } else {
        Err(FtpError::Reply {
            command: what,
            code,
            text,
        })
    }
}
