//! Where a webhook may point: a decision the issuer makes twice, at registration (the URL) and
//! at delivery (the address actually connected to), so that a name that resolves somewhere
//! else later, or a literal that was allowed once, never lets the issuer reach into its own
//! network (SSRF from its position: cloud metadata at 169.254.169.254, admin ports on
//! loopback, the private network).
//!
//! - `https` always; `http` only to loopback, and only with [`WebhookPolicy::allow_insecure`].
//! - Loopback, private (RFC 1918, carrier-grade NAT, IPv6 unique local), link-local,
//!   unspecified, broadcast and multicast addresses (IPv4-mapped IPv6 included) only with
//!   [`WebhookPolicy::allow_private`]; `localhost` counts as loopback.
//!
//! At delivery, names go through [`GuardedResolver`], which drops disallowed addresses (none
//! left: the delivery fails); literal addresses are checked before the request is sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Which webhook targets the issuer accepts (default: public `https` only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Allow `http` URLs to loopback (local development; `--allow-insecure-webhooks`).
    pub allow_insecure: bool,
    /// Allow loopback, private, link-local and other non-public addresses
    /// (`--allow-private-webhooks`).
    pub allow_private: bool,
}

/// Why a webhook URL or address is refused (a fixed text for the `422` message).
pub(crate) type Refusal = &'static str;

impl WebhookPolicy {
    /// The registration check of a parsed URL.
    pub(crate) fn check_url(self, url: &Url) -> Result<(), Refusal> {
        let loopback = match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => {
                let local = is_localhost(name);
                if local && !self.allow_private {
                    return Err("url must not point to loopback or a private network");
                }
                local
            }
            None => return Err("url must have a host"),
        };
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_insecure && loopback => Ok(()),
            "http" => Err("url must be https (http only to loopback, when allowed)"),
            _ => Err("url must be an https URL"),
        }
    }

    /// `Ok(is_loopback)` for an address this policy allows.
    fn check_ip(self, ip: IpAddr) -> Result<bool, Refusal> {
        if self.address_allowed(ip) {
            Ok(canonical(ip).is_loopback())
        } else {
            Err("url must not point to loopback or a private network")
        }
    }

    /// Whether the issuer may connect to `ip`.
    pub(crate) fn address_allowed(self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A globally routable unicast address.
fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT.
        || (a == 100 && (64..128).contains(&b)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80)
}

/// A DNS resolver for the delivery client that never hands it a disallowed address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: WebhookPolicy,
}

/// No address of a webhook's host is allowed.
#[derive(Debug, thiserror::Error)]
#[error("the webhook host resolves only to addresses the issuer must not connect to")]
struct NoAllowedAddress;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            if is_localhost(&host) && !policy.allow_private {
                return Err(Box::new(NoAllowedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|addr| policy.address_allowed(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(NoAllowedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: WebhookPolicy, url: &str) -> Result<(), Refusal> {
        policy.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn only_public_https_by_default() {
        let strict = WebhookPolicy::default();
        assert!(check(strict, "https://hooks.example.com/x").is_ok());
        assert!(check(strict, "https://93.184.216.34/x").is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "ftp://hooks.example.com/",
        ] {
            assert!(check(strict, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_two_allowances() {
        let private = WebhookPolicy {
            allow_private: true,
            ..WebhookPolicy::default()
        };
        assert!(check(private, "https://127.0.0.1/x").is_ok());
        assert!(
            check(private, "http://127.0.0.1/x").is_err(),
            "http needs its own allowance"
        );
        let both = WebhookPolicy {
            allow_private: true,
            allow_insecure: true,
        };
        assert!(check(both, "http://127.0.0.1:9/x").is_ok());
        assert!(check(both, "http://localhost:9/x").is_ok());
        assert!(
            check(both, "http://10.0.0.1/x").is_err(),
            "http only to loopback"
        );
        assert!(check(both, "http://hooks.example.com/x").is_err());
    }
}
