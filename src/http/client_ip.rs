//! The client's IP: the socket peer, or — only when the peer is a trusted proxy — the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::net::IpRange;

/// The client's address for rate limiting.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Entries are read one by one: junk a client wrote (even bytes that are not text) must
    // not hide the address a proxy appended after it.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|a| std::str::from_utf8(a).ok()?.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Addresses the property tests draw from: two trusted ranges' members, outsiders,
    /// and the same IPv4 address written as IPv6.
    const POOL: [&str; 8] = [
        "10.0.0.1",
        "10.9.9.9",
        "fd00::1",
        "1.1.1.1",
        "2.2.2.2",
        "2001:db8::7",
        "::ffff:10.0.0.1",
        "192.0.2.1",
    ];

    fn trusted() -> [IpRange; 2] {
        [
            IpRange::parse("10.0.0.0/8").unwrap(),
            IpRange::parse("fd00::/8").unwrap(),
        ]
    }

    fn headers(lines: &[String]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            if let Ok(v) = HeaderValue::from_bytes(line.as_bytes()) {
                h.append("x-forwarded-for", v);
            }
        }
        h
    }

    /// A chain entry: an address from the pool, with spaces, or junk.
    fn entry() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..POOL.len(), " {0,2}", " {0,2}").prop_map(|(i, a, b)| format!("{a}{}{b}", POOL[i])),
            1 => "[ -~]{0,12}",
            1 => "\\PC{0,6}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(crate::client_input_cases())]

        /// The client is the peer, or the right-most chain address that is not a trusted
        /// proxy; whatever a client writes to the left of that address changes nothing;
        /// splitting the chain over several header lines changes nothing.
        #[test]
        fn the_chain_is_read_from_the_right(
            peer in 0..POOL.len(),
            chain in proptest::collection::vec(entry(), 0..6),
            spoofed in proptest::collection::vec(entry(), 0..4),
            split in 0usize..6,
        ) {
            let trusted = trusted();
            let peer: IpAddr = POOL[peer].parse().unwrap();
            let got = client_ip(peer, &headers(&[chain.join(",")]), &trusted);

            // The documented rule, written out apart.
            let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
            let mut want = peer;
            if is_trusted(peer) {
                let list = chain.join(",");
                for e in list.split(',').rev() {
                    match e.trim().parse::<IpAddr>() {
                        Ok(ip) if !is_trusted(ip) => { want = ip; break; }
                        _ => {}
                    }
                }
            }
            proptest::prop_assert_eq!(got, want);

            // Several header lines read as one list.
            let at = split.min(chain.len());
            let lines = [chain[..at].join(","), chain[at..].join(",")];
            proptest::prop_assert_eq!(client_ip(peer, &headers(&lines), &trusted), got);

            // A client's own additions, to the left of what the proxies saw, change nothing
            // once an untrusted address stands to their right.
            if got != peer {
                let longer = [spoofed.join(","), chain.join(",")].join(",");
                proptest::prop_assert_eq!(client_ip(peer, &headers(&[longer]), &trusted), got);
            }
        }

        /// Any bytes in the header: no panic, and an untrusted peer is always the client.
        #[test]
        fn any_header_bytes_are_safe(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..60)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.insert("x-forwarded-for", v);
            }
            let outsider: IpAddr = "1.1.1.1".parse().unwrap();
            proptest::prop_assert_eq!(client_ip(outsider, &h, &trusted()), outsider);
            let _ = client_ip("10.0.0.1".parse().unwrap(), &h, &trusted());
        }
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2, 10.0.0.5"),
        );
        let trusted = [IpRange::parse("10.0.0.0/8").unwrap()];
        assert_eq!(client_ip(ip("10.0.0.9"), &h, &trusted), ip("2.2.2.2"));
        assert_eq!(client_ip(ip("3.3.3.3"), &h, &trusted), ip("3.3.3.3"));
        assert_eq!(
            client_ip(ip("10.0.0.9"), &HeaderMap::new(), &trusted),
            ip("10.0.0.9")
        );
        // Bytes that are not text, written by the client, do not hide what the proxy added.
        let mut h = HeaderMap::new();
        let line = HeaderValue::from_bytes(b"\xf0\x90\x80\xbf, 2.2.2.2").unwrap();
        h.insert("x-forwarded-for", line);
        assert_eq!(client_ip(ip("10.0.0.9"), &h, &trusted), ip("2.2.2.2"));
    }
}
