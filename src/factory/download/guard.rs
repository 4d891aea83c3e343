//! Which addresses a download may contact: the scheme, every address a host resolves to, and every redirect hop.
//!
//! - only `http` and `https`; every hop's host is resolved here and refused if any of its addresses points into a
//!   private network (loopback, RFC 1918, link-local, …), and the connection is then pinned to exactly the checked
//!   addresses, so a second DNS answer cannot swap a private address in behind the check (DNS rebinding);
//! - redirects are followed by hand, at most [`MAX_REDIRECTS`], each hop checked the same way.
//!
//! Everything here is a plain function of a URL, its addresses or an answer: the transfer (`transfer.rs`) drives the
//! requests and calls these on every hop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::header::LOCATION;
use tracing::debug;
use url::{Host, Url};

use super::{DownloadError, Limits, Tuning, MAX_REDIRECTS};

/// Time to establish one TCP/TLS connection (the overall deadline still applies on top).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses every scheme but `http` and `https`; `redirected` says whether `target` came from a redirect of `url`.
pub(super) fn check_scheme(url: &str, target: &Url, redirected: bool) -> Result<(), DownloadError> {
    match target.scheme() {
        "http" | "https" => Ok(()),
        other => Err(DownloadError::Refused {
            url: url.to_string(),
            reason: if redirected {
                format!("it redirects to {target}, and only http and https are allowed")
            } else {
                format!("only http and https URLs are allowed, not {other}")
            },
        }),
    }
}

/// The addresses `target` may be fetched from: its host resolved (an IP address stands for itself), each address
/// checked against the private ranges. `url` is the caller's, which the errors name. Not bounded in time: the caller
/// puts its own deadline around it.
pub(super) async fn checked_addresses(
    url: &str,
    target: &Url,
    redirected: bool,
    limits: &Limits,
    tuning: &Tuning,
) -> Result<Vec<SocketAddr>, DownloadError> {
    let port = target.port_or_known_default().unwrap_or(80);
    let host = target
        .host()
        .ok_or_else(|| DownloadError::InvalidUrl { url: url.to_string(), reason: format!("{target} has no host") })?;
    let addrs: Vec<SocketAddr> = match &host {
        Host::Ipv4(ip) => vec![SocketAddr::new((*ip).into(), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new((*ip).into(), port)],
        Host::Domain(name) => {
            let resolve_error =
                |reason: String| DownloadError::Resolve { url: url.to_string(), host: name.to_string(), reason };
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((*name, port)).await {
                Err(e) => return Err(resolve_error(e.to_string())),
                Ok(found) => found.collect(),
            };
            if found.is_empty() {
                return Err(resolve_error("no addresses".into()));
            }
            found
        }
    };
    if limits.allow_private {
        return Ok(addrs);
    }
    // One private address is enough to refuse: the connection could go to any of them.
    for addr in &addrs {
        let ip = addr.ip();
        if tuning.public_exceptions.contains(&ip) {
            continue;
        }
        if let Some(class) = address_class(ip) {
            let what = match &host {
                Host::Domain(name) => format!("{name} resolves to {ip}, {}", class.phrase()),
                _ => format!("{ip} is {}", class.phrase()),
            };
            let reason = if redirected { format!("it redirects to {target}, and {what}") } else { what };
            return Err(DownloadError::PrivateAddress { url: url.to_string(), addr: ip, reason });
        }
    }
    Ok(addrs)
}

/// A client that connects `target`'s host only to `addrs`, follows no redirects and uses no proxy (a proxy would
/// resolve the host again, out of reach of the address check).
pub(super) fn pinned_client(target: &Url, addrs: &[SocketAddr], limits: &Limits) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(limits.user_agent.as_str())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0);
    if let Some(Host::Domain(name)) = target.host() {
        builder = builder.resolve_to_addrs(name, addrs);
    }
    builder.build()
}

/// Refuses an answer from `peer` unless it is one of `addrs`: the pinned client may only connect to the addresses it
/// was given, and this checks that it did.
pub(super) fn check_peer(url: &str, addrs: &[SocketAddr], peer: Option<SocketAddr>) -> Result<(), DownloadError> {
    match peer {
        Some(peer) if !addrs.iter().any(|addr| addr.ip() == peer.ip()) => Err(DownloadError::Refused {
            url: url.to_string(),
            reason: format!("connected to {}, which is not an address that was checked", peer.ip()),
        }),
        _ => Ok(()),
    }
}

/// Where an answer from `target` redirects to, or `None` if it is no redirect. `followed` redirects led to `target`;
/// one more than [`MAX_REDIRECTS`], or a redirect without a usable `Location`, is refused. The next hop is checked
/// like the first URL, by [`check_scheme`] and [`checked_addresses`].
pub(super) fn next_hop(
    url: &str,
    target: &Url,
    response: &reqwest::Response,
    followed: usize,
) -> Result<Option<Url>, DownloadError> {
    let status = response.status();
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let refused = |reason: String| DownloadError::Redirect { url: url.to_string(), reason };
    if followed >= MAX_REDIRECTS {
        return Err(refused(format!("more than {MAX_REDIRECTS} redirects")));
    }
    let Some(location) = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return Err(refused(format!("the server answered {status} without a Location")));
    };
    let next = target
        .join(location)
        .map_err(|e| refused(format!("the server redirected to an unusable address {location:?} ({e})")))?;
    debug!(url, from = %target, to = %next, %status, "following a redirect");
    Ok(Some(next))
}

/// Why an address is not public. Downloads from such addresses are refused unless private addresses are allowed:
/// a URL from the internet must not reach the station's own services or its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Unspecified,
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and local-use NAT64.
    Private,
    /// 100.64/10, carrier-grade NAT.
    SharedCgnat,
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10, deprecated but still routed inside some networks.
    SiteLocal,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    /// Everything else that is not global unicast: 0/8, 240/4, IETF assignments, Teredo, IPv4-compatible, …
    Reserved,
}

impl AddressClass {
    /// "a private address", to finish a sentence.
    pub fn phrase(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::SharedCgnat => "a shared (carrier-grade NAT) address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::UniqueLocal => "a unique-local address",
            AddressClass::SiteLocal => "a site-local address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "a broadcast address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

/// The class of a non-public address, or `None` for a public one. IPv6 forms that carry an IPv4 address (mapped,
/// NAT64, 6to4) are judged by that IPv4 address.
pub fn address_class(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(ip) => ipv4_class(ip),
        IpAddr::V6(ip) => ipv6_class(ip),
    }
}

fn ipv4_class(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if ip.is_broadcast() {
        return Some(Broadcast);
    }
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Reserved, // "this network"
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedCgnat,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 0, 0) | (192, 88, 99) => Reserved, // IETF protocol assignments, retired 6to4 relays
        (198, 18..=19, _) => Benchmarking,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    })
}

fn ipv6_class(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_class(v4);
    }
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match ip.segments() {
        // The rest of ::/64: IPv4-compatible and IPv4-translated forms, never global unicast.
        [0, 0, 0, 0, ..] => Some(Reserved),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => ipv4_class(embedded(high, low)), // NAT64 well-known prefix
        [0x64, 0xff9b, 1, ..] => Some(Private),                                   // local-use NAT64
        [0x100, 0, 0, 0, ..] => Some(Reserved),                                   // discard-only
        [0x2001, 0xdb8, ..] => Some(Documentation),
        [0x2001, 2, 0, ..] => Some(Benchmarking),
        [0x2001, 0, ..] => Some(Reserved),                              // Teredo
        [0x2002, high, low, ..] => ipv4_class(embedded(high, low)),     // 6to4
        [0x3fff, second, ..] if second < 0x1000 => Some(Documentation), // 3fff::/20
        [first, ..] if first & 0xfe00 == 0xfc00 => Some(UniqueLocal),   // fc00::/7
        [first, ..] if first & 0xffc0 == 0xfe80 => Some(LinkLocal),     // fe80::/10
        [first, ..] if first & 0xffc0 == 0xfec0 => Some(SiteLocal),     // fec0::/10
        [first, ..] if first & 0xff00 == 0xff00 => Some(Multicast),     // ff00::/8
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::download::test_support::*;

    #[tokio::test]
    async fn follows_a_chain_of_redirects() {
        let content = media(50_000, 15);
        let server = Server::start(move |request, _| match request.path.as_str() {
            "/start" => Reply::new(302, "").header("Location", "/hop/one"),
            "/hop/one" => Reply::new(301, "").header("Location", "two"),
            "/hop/two" => {
                let host = request.header("host").unwrap_or_default().to_string();
                Reply::new(307, "").header("Location", format!("http://{host}/final.mp4"))
            }
            "/final.mp4" => file_reply(request, &content, Some("\"v1\"")),
            _ => Reply::new(404, ""),
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);

        let (result, _) = fetch(&server.url("/start"), &part, &limits(), &quick()).await;
        let done = result.expect("download");

        assert_eq!(done.final_url, server.url("/final.mp4"));
        assert_eq!(done.size, 50_000);
        let paths: Vec<String> = server.requests().into_iter().map(|request| request.path).collect();
        assert_eq!(paths, ["/start", "/hop/one", "/hop/two", "/final.mp4"]);
    }

    #[tokio::test]
    async fn stops_after_too_many_redirects() {
        let server = Server::start(|_, index| Reply::new(302, "").header("Location", format!("/loop/{index}")));
        let dir = tempfile::tempdir().expect("temp dir");
        let url = server.url("/loop");

        let (result, _) = fetch(&url, &part_in(&dir), &limits(), &quick()).await;
        let error = result.expect_err("redirect loop");

        assert!(error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: more than 10 redirects"));
        assert_eq!(server.requests().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn a_redirect_into_a_private_network_is_refused() {
        let server = Server::start(|request, _| match request.path.as_str() {
            "/to-private" => Reply::new(302, "").header("Location", "http://10.1.2.3/admin.mp4"),
            "/to-loopback" => Reply::new(302, "").header("Location", "http://[::1]:9/x.mp4"),
            "/to-ftp" => Reply::new(302, "").header("Location", "ftp://example.com/x.mp4"),
            _ => Reply::new(200, media(10_000, 16)),
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        // The test server stands in for a public one; everything else private stays refused.
        let tuning = Tuning { public_exceptions: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], ..quick() };
        let limits = Limits { allow_private: false, ..limits() };

        let (direct, _) = fetch(&server.url("/fine.mp4"), &part, &limits, &tuning).await;
        assert_eq!(direct.expect("the stand-in origin itself is allowed").size, 10_000);

        let url = server.url("/to-private");
        let (result, _) = fetch(&url, &part, &limits, &tuning).await;
        let error = result.expect_err("redirect to 10.1.2.3");
        assert!(error.is_permanent());
        assert_eq!(
            error.to_string(),
            format!(
                "{url}: refused: it redirects to http://10.1.2.3/admin.mp4, and 10.1.2.3 is a private address \
                 (set factory.allow_private_addresses to allow)"
            )
        );

        let (result, _) = fetch(&server.url("/to-loopback"), &part, &limits, &tuning).await;
        let error = result.expect_err("redirect to ::1");
        assert!(matches!(error, DownloadError::PrivateAddress { addr, .. } if addr == IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(error.to_string().contains("::1 is a loopback address"), "{error}");

        let (result, _) = fetch(&server.url("/to-ftp"), &part, &limits, &tuning).await;
        let error = result.expect_err("redirect to ftp");
        assert!(error.is_permanent());
        assert!(error.to_string().contains("refused: it redirects to ftp://example.com/x.mp4"), "{error}");

        let paths: Vec<String> = server.requests().into_iter().map(|request| request.path).collect();
        assert_eq!(paths, ["/fine.mp4", "/to-private", "/to-loopback", "/to-ftp"], "no refused hop was fetched");
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_private_addresses_are_allowed() {
        let server = Server::start(|_, _| Reply::new(200, media(10_000, 17)));
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let limits = Limits { allow_private: false, ..limits() };
        let url = server.url("/clip.mp4");

        let (result, _) = fetch(&url, &part, &limits, &quick()).await;
        let error = result.expect_err("loopback");
        assert!(error.is_permanent());
        assert_eq!(
            error.to_string(),
            format!("{url}: refused: 127.0.0.1 is a loopback address (set factory.allow_private_addresses to allow)")
        );

        // A name is resolved here and judged by its addresses.
        let port = url.split(':').nth(2).and_then(|rest| rest.split('/').next()).expect("port");
        let by_name = format!("http://localhost:{port}/clip.mp4");
        let (result, _) = fetch(&by_name, &part, &limits, &quick()).await;
        let error = result.expect_err("localhost");
        assert!(error.to_string().contains("refused: localhost resolves to "), "{error}");
        assert!(error.to_string().contains("a loopback address"), "{error}");
        assert!(server.requests().is_empty(), "nothing reached the server");

        let (allowed, _) = fetch(&url, &part, &Limits { allow_private: true, ..limits }, &quick()).await;
        assert_eq!(allowed.expect("allowed").size, 10_000);
    }

    #[tokio::test]
    async fn only_http_and_https_are_fetched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        for (url, expected) in [
            (
                "ftp://example.com/a.mp4",
                "ftp://example.com/a.mp4: refused: only http and https URLs are allowed, not ftp",
            ),
            ("file:///etc/passwd", "file:///etc/passwd: refused: only http and https URLs are allowed, not file"),
            ("not a url", "not a url: not a usable URL (relative URL without a base)"),
        ] {
            let (result, _) = fetch(url, &part, &limits(), &quick()).await;
            let error = result.expect_err(url);
            assert!(error.is_permanent(), "{url}");
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn classifies_addresses() {
        use AddressClass::*;
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Reserved)),
            ("10.0.0.5", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("100.63.255.255", None),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.254", Some(SharedCgnat)),
            ("100.128.0.1", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("172.15.255.255", None),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.0.0.8", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("192.168.1.1", Some(Private)),
            ("192.169.0.1", None),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.20.0.1", None),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:10.0.0.5", Some(Private)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Reserved)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::1", Some(Private)),
            ("100::1", Some(Reserved)),
            ("2001::1", Some(Reserved)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:db8::1", Some(Documentation)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("2002:0808:0808::1", None),
            ("3fff::1", Some(Documentation)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456:789a::1", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("ff02::1", Some(Multicast)),
        ];
        for &(text, expected) in cases {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(address_class(ip), expected, "{text}");
        }
    }
}
