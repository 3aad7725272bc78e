//! Webhook endpoints: what the command API checks when a tenant registers one and what the
//! dispatcher checks again before it sends. Secrets in the Standard Webhooks format, the rule for
//! an endpoint's URL (and for the addresses its host resolves to), and the event types each
//! message format knows.

use base64::Engine;
use rand::RngCore;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// The longest endpoint URL taken, in characters.
pub const MAX_URL: usize = 2000;
/// The most event types an endpoint may list.
pub const MAX_EVENT_TYPES: usize = 100;

/// A new signing secret: `whsec_` and the standard base64 of 32 random bytes, as Standard
/// Webhooks has it (the signer uses the decoded bytes as its HMAC-SHA256 key).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The message formats an endpoint may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Standard Webhooks, rsvp's own event names (`InviteCreated`).
    Standard,
    /// Vortex's webhook payloads and names (`invitation.created`).
    Vortex,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Standard, Format::Vortex];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Vortex => "vortex",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The event types an endpoint of this format may ask for.
    pub fn event_types(self) -> Vec<&'static str> {
        match self {
            Self::Standard => events::event::EVENT_TYPES.iter().map(|(name, _)| *name).collect(),
            Self::Vortex => dialects::vortex::WEBHOOK_EVENT_TYPES.to_vec(),
        }
    }

    pub fn knows(self, event_type: &str) -> bool {
        self.event_types().contains(&event_type)
    }
}

/// An endpoint's URL, parsed: `http` or `https`, a host, no user or password, no fragment, at
/// most [`MAX_URL`] characters, no space or control character (which the URL standard would
/// silently drop or trim). Unless `allow_private`, a host that is an IP literal must be a public
/// address ([`is_public_ip`]) and `localhost` and its subdomains are refused. The error says
/// what is wrong, never echoing the URL.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let scheme_ok =
        ["http://", "https://"].iter().any(|s| raw.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)));
    if !scheme_ok {
        return Err("must be an absolute http or https URL".into());
    }
    if raw.chars().count() > MAX_URL {
        return Err(format!("at most {MAX_URL} characters"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\u{feff}') {
        return Err("must not contain a space or a control character".into());
    }
    let url = Url::parse(raw).map_err(|e| format!("is not a URL: {e}"))?;
    if url.as_str().chars().count() > MAX_URL {
        return Err(format!("at most {MAX_URL} characters"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (`#...`)".into());
    }
    let private = match url.host() {
        None => return Err("must have a host".into()),
        Some(Host::Domain("")) => return Err("must have a host".into()),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => !is_public_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public_ip(IpAddr::V6(ip)),
    };
    if private && !allow_private {
        return Err("must be a public address: loopback, private, link-local and other reserved hosts are refused \
                    (the operator may allow them with RSVP_WEBHOOK_ALLOW_PRIVATE)"
            .into());
    }
    Ok(url)
}

/// Whether a webhook may be sent to this address: not unspecified, loopback, private (RFC 1918),
/// shared (CGNAT, 100.64/10), link-local (cloud metadata at 169.254.169.254), multicast,
/// broadcast, documentation, benchmarking or reserved; for IPv6 also unique-local (fc00::/7),
/// site-local, discard-only, and an IPv4 address carried inside one (mapped, compatible, NAT64,
/// 6to4), which must itself be public. The dispatcher asks it of every address a host resolves to.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0                                   // "this network", 0.0.0.0/8
        || a == 10                                         // private
        || a == 127                                        // loopback
        || (a == 100 && (64..128).contains(&b))            // shared address space (CGNAT)
        || (a == 169 && b == 254)                          // link-local
        || (a == 172 && (16..32).contains(&b))             // private
        || (a == 192 && b == 0 && c == 0)                  // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                  // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99)                // 6to4 relay anycast
        || (a == 192 && b == 168)                          // private
        || (a == 198 && (18..20).contains(&b))             // benchmarking
        || (a == 198 && b == 51 && c == 100)               // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113)                // documentation (TEST-NET-3)
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): the IPv4 address decides.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48): the IPv4 address decides.
    if s[0] == 0x64 && s[1] == 0xff9b {
        return s[2] == 0 && is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 (2002::/16): the IPv4 address in bits 16..48 decides.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let refused = (s[0] & 0xff00) == 0xff00                // multicast
        || (s[0] & 0xfe00) == 0xfc00                       // unique-local
        || (s[0] & 0xffc0) == 0xfe80                       // link-local
        || (s[0] & 0xffc0) == 0xfec0                       // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)              // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000)               // documentation (3fff::/20)
        || (s[0] == 0x2001 && s[1] < 0x200)                // IETF protocol assignments, Teredo
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only
    !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_secret_is_whsec_and_32_random_bytes_in_standard_base64() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let encoded = a.strip_prefix("whsec_").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(bytes.len(), 32);
    }

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for refused in [
            "10.0.0.1",
            "127.0.0.1",
            "0.0.0.0",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:192.168.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:c0a8:0001::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(!is_public_ip(ip(refused)), "{refused} is refused");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            "2002:5db8:d822::1",
        ] {
            assert!(is_public_ip(ip(allowed)), "{allowed} is public");
        }
    }

    #[test]
    fn a_url_is_http_or_https_with_a_host_and_no_credentials_or_fragment() {
        let ok = check_url("https://hooks.example.com/rsvp?x=1", false).unwrap();
        assert_eq!(ok.as_str(), "https://hooks.example.com/rsvp?x=1");
        assert!(check_url("HTTP://Hooks.Example.com", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "mailto:a@example.com",
            "http://",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://example.com/#frag",
            "https://example.com/a b",
            "https://example.com/\n",
            " https://example.com/",
            "https://exa mple.com/",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad:?} is refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(check_url(&long, true).unwrap_err().contains("2000"));
        let fits = format!("https://example.com/{}", "a".repeat(MAX_URL - 20));
        assert!(check_url(&fits, true).is_ok());
    }

    #[test]
    fn private_hosts_are_refused_unless_allowed() {
        for private in [
            "http://10.0.0.1/hook",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[fc00::1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            // The URL standard reads these as 127.0.0.1.
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0/",
        ] {
            assert!(check_url(private, false).unwrap_err().contains("public"), "{private} is refused");
            assert!(check_url(private, true).is_ok(), "{private} is taken when allowed");
        }
        assert!(check_url("http://93.184.216.34/", false).is_ok());
        assert!(check_url("https://localhost.example.com/", false).is_ok());
    }

    #[test]
    fn each_format_has_its_vocabulary() {
        assert!(Format::Standard.knows("InviteCreated"));
        assert!(!Format::Standard.knows("invitation.created"));
        assert!(Format::Vortex.knows("invitation.email.bounced"));
        assert!(!Format::Vortex.knows("InviteAccepted"));
        assert_eq!(Format::Vortex.event_types().len(), 15);
        assert_eq!(Format::parse("vortex"), Some(Format::Vortex));
        assert_eq!(Format::parse("Standard"), None);
    }
}
