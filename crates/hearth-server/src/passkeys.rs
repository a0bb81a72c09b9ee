//! The passkey relying party (WebAuthn through kanidm's `webauthn-rs`): who this server is to
//! authenticators. Its RP ID is the host of `public_url` and the only origin it accepts is that
//! URL's; never the request's `Host`, which a relaying phishing site would choose. Without a
//! `public_url`, or with an IP address there (authenticators refuse IP addresses), passkeys are off.

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

/// The relying party, when passkeys are on.
pub struct RelyingParty(Option<Webauthn>);

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RelyingParty")
            .field(&self.0.as_ref().map(|w| w.get_allowed_origins()))
            .finish()
    }
}

impl RelyingParty {
    /// The relying party of `public_url` (`Settings::public_base`); off, with the reason in the
    /// log, when that cannot name one.
    pub fn new(public_url: Option<&str>) -> Self {
        let Some(public) = public_url else {
            return Self(None);
        };
        match Self::build(public) {
            Ok(w) => Self(Some(w)),
            Err(why) => {
                tracing::info!(public_url = public, "passkeys are off: {why}");
                Self(None)
            }
        }
    }

    fn build(public: &str) -> Result<Webauthn, String> {
        let url = Url::parse(public).map_err(|e| format!("public_url is not a URL ({e})"))?;
        let host = url.host_str().unwrap_or_default();
        if host.is_empty() || host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
            return Err(
                "public_url names no host, or an IP address, which authenticators refuse as a \
                 relying party: use a name (localhost, or the name members browse to)"
                    .into(),
            );
        }
        let origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| format!("public_url has no origin ({e})"))?;
        WebauthnBuilder::new(host, &origin)
            .and_then(|b| b.rp_name("Hearth").build())
            .map_err(|e| format!("webauthn-rs refused it ({e})"))
    }

    /// The relying party, `None` when passkeys are off.
    pub fn get(&self) -> Option<&Webauthn> {
        self.0.as_ref()
    }
}
