//! Where callbacks may go. A callback URL comes from the client, so without a rule the
//! server would make requests for anyone to its own network (a cloud's metadata address,
//! an internal admin port) and report what answered. Unless the operator allows private
//! destinations, callbacks go only to public addresses: checked when the job is accepted
//! (literal addresses and `localhost`) and again when it is delivered (every address a
//! name resolves to; no redirects are followed).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use warmbox_runner::request::RequestError;

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared,
/// unspecified, broadcast, multicast or documentation space (IPv4 mapped into IPv6
/// included).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// A callback URL must be an absolute http or https URL with a host; without
/// `allow_private`, not a literal non-public address nor `localhost`.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), RequestError> {
    let bad = |why: &str| {
        Err(RequestError::invalid(format!(
            "callback_url: {url:?} {why}; give an absolute http:// or https:// URL"
        )))
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return bad(&format!("is not a URL ({e})")),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return bad(&format!("has scheme {:?}", parsed.scheme()));
    }
    let private = match parsed.host() {
        None => return bad("has no host"),
        Some(url::Host::Domain("")) => return bad("has no host"),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
    };
    if private && !allow_private {
        return Err(RequestError::invalid(format!(
            "callback_url: {url:?} points at a loopback, private or link-local address; \
             callbacks go to public addresses (an operator may allow private ones with \
             --callback-allow-private)"
        )));
    }
    Ok(())
}

/// Resolves names to their public addresses only: a name that resolves to nothing public
/// fails to connect, so a public name pointed at an internal address reaches nothing.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (callbacks go to public addresses)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client of callbacks: `timeout` per delivery, no redirects, and without
/// `allow_private` only public addresses.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let b = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if allow_private {
        b.build()
    } else {
        b.dns_resolver(std::sync::Arc::new(PublicOnly)).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_told_apart() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn callback_urls_are_checked() {
        check_url("https://judge.example/cb?a=1", false).unwrap();
        check_url("http://127.0.0.1:9/x", true).unwrap();
        assert_eq!(
            check_url("ftp://x/y", false).unwrap_err().message,
            "callback_url: \"ftp://x/y\" has scheme \"ftp\"; give an absolute http:// or \
             https:// URL"
        );
        assert_eq!(
            check_url("/relative", false).unwrap_err().message,
            "callback_url: \"/relative\" is not a URL (relative URL without a base); give an \
             absolute http:// or https:// URL"
        );
        for url in [
            "http://127.0.0.1:9/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://localhost:8080/x",
            "http://api.localhost/x",
        ] {
            assert_eq!(
                check_url(url, false).unwrap_err().message,
                format!(
                    "callback_url: {url:?} points at a loopback, private or link-local \
                     address; callbacks go to public addresses (an operator may allow private \
                     ones with --callback-allow-private)"
                )
            );
        }
    }
}
