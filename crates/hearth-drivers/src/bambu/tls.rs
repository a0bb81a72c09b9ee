//! Who the printer is: TLS verification for Bambu printers' MQTT and FTPS (PROTOCOLS.md §A4,
//! "Certificates").
//!
//! A Bambu printer presents a certificate issued by "BBL CA" whose common name is the printer's
//! serial number and which has no subjectAltName, reached by IP address. So verification is: the
//! chain leads to the configured CA (rustls' own WebPKI verifier), and the certificate's CN is the
//! configured serial. The name check is the only part done here, since WebPKI looks at
//! subjectAltName only. Or, for a printer whose certificate WebPKI does not accept, the operator
//! pins the certificate itself by its SHA-256. Either way the handshake signatures are checked by
//! rustls' provider, and nothing is ever accepted unverified.

use std::sync::Arc;

use rustls::CertificateError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use x509_cert::der::Decode;
use x509_cert::der::asn1::{ObjectIdentifier, PrintableStringRef, Utf8StringRef};

pub use crate::tls::{fingerprint, parse_fingerprint};

/// How the printer's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Issued (through any intermediates the printer sends) by one of these CAs, to the serial.
    Ca(Vec<CertificateDer<'static>>),
    /// Exactly this certificate, by the SHA-256 of its DER encoding.
    Pinned([u8; 32]),
}

/// Builds the rustls client configuration for one printer.
pub fn client_config(serial: &str, trust: Trust) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PrinterVerifier::new(serial, trust, provider.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // Resumption stays on (the default): the FTPS data channel must resume the control
    // channel's session, which the printers' FTP server requires.
    Ok(Arc::new(config))
}

/// The subject's common names.
fn common_names(cert: &[u8]) -> Vec<String> {
    const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    let Ok(cert) = x509_cert::Certificate::from_der(cert) else {
        return Vec::new();
    };
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == CN)
        .filter_map(|atv| {
            Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    PrintableStringRef::try_from(&atv.value).map(|s| s.as_str().to_owned())
                })
                .ok()
        })
        .collect()
}

#[derive(Debug)]
struct PrinterVerifier {
    serial: String,
    ca: Option<Arc<WebPkiServerVerifier>>,
    pinned: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PrinterVerifier {
    fn new(serial: &str, trust: Trust, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let algorithms = provider.signature_verification_algorithms;
        let (ca, pinned) = match trust {
            Trust::Pinned(hash) => (None, Some(hash)),
            Trust::Ca(certs) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("a CA certificate is unusable: {e}"))?;
                }
                let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| e.to_string())?;
                (Some(v), None)
            }
        };
        Ok(Self {
            serial: serial.to_owned(),
            ca,
            pinned,
            algorithms,
        })
    }
}

impl ServerCertVerifier for PrinterVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = || {
            let cn = common_names(end_entity);
            format!(
                "the printer presented {} ({})",
                fingerprint(end_entity),
                if cn.is_empty() {
                    "no common name".to_owned()
                } else {
                    format!("CN={}", cn.join(","))
                }
            )
        };
        if let Some(pin) = &self.pinned {
            return crate::tls::check_pin(end_entity, pin, presented);
        }
        let Some(ca) = &self.ca else {
            return Err(rustls::Error::General("no trust configured".into()));
        };
        // The serial as the name: a printer certificate that does carry it as a DNS name passes
        // WebPKI's own check; one that carries it only as CN (all seen so far) fails WebPKI's name
        // check *after* its chain verified, and the CN decides.
        let name = ServerName::try_from(self.serial.clone()).map_err(|_| {
            rustls::Error::General(format!("serial {:?} is not a valid name", self.serial))
        })?;
        match ca.verify_server_cert(end_entity, intermediates, &name, ocsp_response, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {
                if common_names(end_entity)
                    .iter()
                    .any(|cn| cn.eq_ignore_ascii_case(&self.serial))
                {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "certificate not issued to serial {}: {}",
                        self.serial,
                        presented()
                    )))
                }
            }
            Err(rustls::Error::InvalidCertificate(e)) => Err(rustls::Error::General(format!(
                "certificate not trusted ({e:?}): {}",
                presented()
            ))),
            Err(e) => Err(e),
        }
    }

    crate::tls::handshake_signatures!();
}
