//! One rustls configuration (ring provider) for the WebSocket and the blob downloads: Mozilla's roots
//! (`webpki-roots`), the system's trust store (where an organisation installs its own CA, and what
//! the `hearth` CLI trusts too; `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured) and, for
//! self-hosted servers, the operator's CA file (`ca_cert`).

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA certificate {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no usable certificate in {0}")]
    NoCert(std::path::PathBuf),
    #[error("TLS setup")]
    Rustls(#[from] rustls::Error),
    #[error("HTTP client setup")]
    Http(#[from] reqwest::Error),
}

/// The certificates of the system's trust store. Parts that cannot be read are logged and left out:
/// the web's roots and `ca_cert` still apply.
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "could not read part of the system's certificate store");
    }
    found.certs
}

/// A client configuration trusting the web's roots, `system` (see [`system_roots`]) and
/// `extra_ca_pem` (PEM bytes), without ALPN.
pub fn client_config(
    extra_ca_pem: Option<&[u8]>,
    system: &[CertificateDer<'static>],
) -> Result<ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // A store may hold certificates rustls cannot use (old formats); they are skipped.
    let (_, unusable) = roots.add_parsable_certificates(system.iter().cloned());
    if unusable > 0 {
        tracing::debug!(unusable, "certificates of the system store skipped");
    }
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut &pem[..]).flatten() {
            roots.add(cert)?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError::NoCert("<pem>".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Reads the configured CA file.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    if rustls_pemfile::certs(&mut &pem[..])
        .flatten()
        .next()
        .is_none()
    {
        return Err(TlsError::NoCert(path.to_owned()));
    }
    Ok(pem)
}

/// The HTTP client for blob downloads, sharing the trust of `config` (HTTP/1.1 over TLS).
pub fn http_client(config: &ClientConfig) -> Result<reqwest::Client, TlsError> {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()?)
}
