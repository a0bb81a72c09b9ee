//! Who a print host reached over `https://` is: OctoPrint behind OctoPi's proxy, Moonraker on its
//! `ssl_port`, PrusaLink behind a proxy. Three ways to trust it, chosen in the printer's table:
//! the system's certificate authorities (a host with a certificate from a public or company CA
//! the machine trusts), `ca_file` (the CA that issued the host's certificate; its name must still
//! match the URL's host), or `fingerprint` (exactly the certificate the host presents, by its
//! SHA-256: OctoPi's self-signed certificate, say). A certificate that fails is refused with the
//! fingerprint it had, so the operator can check it and pin it. Handshake signatures are always
//! checked by rustls; nothing is accepted unverified. Shared with the Bambu driver, which pins
//! the same way.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The handshake signature checks of a `ServerCertVerifier` whose `algorithms` field holds the
/// provider's: rustls' own, the same for every verifier here (they differ in which certificate
/// they take, not in how a handshake is signed).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

/// `sha256:<hex>` of a certificate, as shown in errors and taken by the `fingerprint` setting.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses `sha256:<64 hex digits>` (colons between bytes allowed, as some tools print them).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let hex: String = s
        .trim()
        .strip_prefix("sha256:")
        .unwrap_or(s.trim())
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>();
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("fingerprint {s:?} is not sha256: followed by 64 hex digits"))
}

/// The PEM certificates of a `ca_file`: at least one.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ca_file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Whether `end_entity` is the pinned certificate; the error names what was presented.
pub(crate) fn check_pin(
    end_entity: &CertificateDer<'_>,
    pin: &[u8; 32],
    presented: impl FnOnce() -> String,
) -> Result<ServerCertVerified, rustls::Error> {
    let hash = ring::digest::digest(&ring::digest::SHA256, end_entity);
    if hash.as_ref() == pin {
        Ok(ServerCertVerified::assertion())
    } else {
        Err(rustls::Error::General(format!(
            "not the pinned certificate: {}",
            presented()
        )))
    }
}

/// The TLS configuration for a print host at `url`: `None` for `http://` (where `ca_file` and
/// `fingerprint` are refused: they would protect nothing), else trust as the module says.
pub(crate) fn host_config(
    url: &str,
    ca_file: Option<&Path>,
    fingerprint: Option<&str>,
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if !https {
        if url
            .get(..7)
            .is_none_or(|s| !s.eq_ignore_ascii_case("http://"))
        {
            return Err(format!(
                "printer url must start with http:// or https://: {url}"
            ));
        }
        if ca_file.is_some() || fingerprint.is_some() {
            return Err(format!(
                "ca_file and fingerprint are for https:// addresses, and {url} is plain http://"
            ));
        }
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let check = match (ca_file, fingerprint) {
        (Some(_), Some(_)) => return Err("set ca_file or fingerprint, not both".into()),
        (None, Some(f)) => Check::Pinned(parse_fingerprint(f)?),
        (Some(path), None) => Check::Ca(verifier(read_ca_file(path)?, &provider)?),
        (None, None) => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "this machine has no trusted certificate authorities to check {url} with: \
                     set ca_file or fingerprint ({:?})",
                    found.errors
                ));
            }
            Check::Ca(verifier(found.certs, &provider)?)
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HostVerifier { check, algorithms }))
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

fn verifier(
    roots: Vec<CertificateDer<'static>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut store = rustls::RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(roots);
    if added == 0 {
        return Err("no usable CA certificate".into());
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| e.to_string())
}

#[derive(Debug)]
enum Check {
    Ca(Arc<WebPkiServerVerifier>),
    Pinned([u8; 32]),
}

/// WebPKI (chain and host name) or the pin; a failure says which certificate was presented.
#[derive(Debug)]
struct HostVerifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for HostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = || format!("the printer presented {}", fingerprint(end_entity));
        match &self.check {
            Check::Pinned(pin) => check_pin(end_entity, pin, presented),
            Check::Ca(ca) => ca
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| match e {
                    rustls::Error::InvalidCertificate(why) => rustls::Error::General(format!(
                        "certificate not trusted ({why:?}): {}; set ca_file to the CA that \
                         issued it, or fingerprint to pin it",
                        presented()
                    )),
                    other => other,
                }),
        }
    }

    crate::tls::handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_in_both_spellings() {
        let f = fingerprint(b"certificate");
        let bytes = parse_fingerprint(&f).unwrap();
        let colons: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_fingerprint(&colons.join(":")).unwrap(), bytes);
        assert!(parse_fingerprint("sha256:abcd").is_err());
        assert!(parse_fingerprint("sha256:zz").is_err());
    }

    #[test]
    fn trust_settings_are_for_https_addresses_only_and_one_at_a_time() {
        let pin = fingerprint(b"certificate");
        assert!(
            host_config("http://octopi.local", None, None)
                .unwrap()
                .is_none()
        );
        let e = host_config("http://octopi.local", None, Some(&pin)).unwrap_err();
        assert!(e.contains("plain http://"), "{e}");
        let e = host_config("ftp://octopi.local", None, None).unwrap_err();
        assert!(e.contains("http:// or https://"), "{e}");
        assert!(
            host_config("HTTPS://octopi.local", None, Some(&pin))
                .unwrap()
                .is_some()
        );
        let e = host_config(
            "https://octopi.local",
            Some(Path::new("/x.pem")),
            Some(&pin),
        )
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = host_config(
            "https://octopi.local",
            Some(Path::new("/nonexistent.pem")),
            None,
        )
        .unwrap_err();
        assert!(e.contains("cannot read ca_file /nonexistent.pem"), "{e}");
    }
}
