//! Where the server may post. An organisation admin chooses a notification URL, so without a
//! guard they could make `hearthd` send requests into the network it runs in (a cloud metadata
//! address, an internal admin page). Unless `notifications.allow_private_addresses` is on, every
//! address a destination resolves to must be public: checked when the channel is created, and again
//! at each connection by the HTTP client's resolver ([`GuardedResolver`]), so a name that later
//! resolves elsewhere (DNS rebinding) is refused too. Redirects are not followed.

use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is an address on the public internet (not loopback, private, link-local, shared,
/// multicast, documentation, benchmarking or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || seg0 == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || seg0 == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 to anything
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Check a destination URL's form: http(s), a host, no credentials in it.
pub fn parse_destination(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url.trim()).map_err(|e| format!("not a URL ({e}): {url:?}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!(
            "a notification URL starts with https:// (or http://), not {}:",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "put no user name or password in the URL (for a protected ntfy topic give its access token)"
                .into(),
        );
    }
    Ok(parsed)
}

/// `https://hooks.slack.com`: what the API shows of a destination whose path may be a credential.
pub fn shown(url: &str) -> String {
    if url.starts_with("mailto:") {
        // Addresses are not credentials.
        return url.to_owned();
    }
    match Url::parse(url) {
        Ok(u) => {
            let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default());
            if let Some(port) = u.port() {
                s.push_str(&format!(":{port}"));
            }
            s
        }
        Err(_) => "(invalid)".into(),
    }
}

fn refused(host: &str, ip: IpAddr) -> String {
    format!(
        "{host} is {ip}, a private or local address; this server sends notifications only to public \
         addresses unless its administrator sets notifications.allow_private_addresses = true"
    )
}

/// Resolve `url`'s host now and check every address (when private ones are not allowed).
pub async fn check_destination(url: &Url, allow_private: bool) -> Result<(), String> {
    literal_allowed(url, allow_private)?;
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private && let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(refused(host, a.ip()));
    }
    Ok(())
}

/// The HTTP client's resolver: the system's, with non-public answers refused.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(refused(&host, a.ip()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The client deliveries go through: no redirects, the configured timeout, the system's roots plus
/// `extra_ca` (PEM), and the guarded resolver unless private addresses are allowed. Single sign-on
/// talks to its providers through one too (private addresses allowed: the operator chose them).
pub fn client(
    allow_private: bool,
    timeout: std::time::Duration,
    extra_ca: Option<&[u8]>,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("hearthd/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = extra_ca {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("ca_file: {e}"))?;
        if certs.is_empty() {
            return Err("ca_file holds no certificate".into());
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if !allow_private {
        b = b.dns_resolver(Arc::new(GuardedResolver));
    }
    b.build()
        .map_err(|e| format!("the notifications' HTTP client: {e}"))
}

/// An IP-literal URL never reaches the resolver, so deliveries check it here.
pub fn literal_allowed(url: &Url, allow_private: bool) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    match host.parse::<IpAddr>() {
        Ok(ip) if !allow_private && !is_public(ip) => Err(refused(host, ip)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn destinations_are_http_with_a_host_and_no_credentials() {
        assert!(parse_destination("https://ntfy.sh/farm").is_ok());
        for bad in [
            "ftp://example.org/x",
            "file:///etc/passwd",
            "https://user:pw@example.org/",
            "not a url",
        ] {
            assert!(parse_destination(bad).is_err(), "{bad}");
        }
        assert_eq!(
            shown("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(shown("http://10.0.0.5:8080/topic"), "http://10.0.0.5:8080");
    }

    #[tokio::test]
    async fn a_private_destination_is_refused_unless_allowed() {
        let url = parse_destination("http://127.0.0.1:9/hook").unwrap();
        let e = check_destination(&url, false).await.unwrap_err();
        assert!(e.contains("allow_private_addresses"), "{e}");
        assert!(check_destination(&url, true).await.is_ok());
        let url = parse_destination("http://localhost:9/hook").unwrap();
        assert!(check_destination(&url, false).await.is_err());
        assert!(literal_allowed(&parse_destination("http://[::1]/").unwrap(), false).is_err());
    }
}
