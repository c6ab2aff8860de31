//! Destination URLs: parsed once at the edge, normalised, and checked against the policy.

use url::{Host, Url};

/// What a destination URL must satisfy beyond being a URL.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// The longest accepted URL, in bytes of its normalised form.
    pub max_len: usize,
    /// snip's own host names and addresses (the base URL's host, the listen address and any
    /// configured extra names), lower-case punycode: links to them would loop. `localhost`,
    /// `*.localhost` and loopback or unspecified addresses are always refused too.
    pub own_hosts: Vec<String>,
    /// Hosts refused, with all their subdomains; lower-case ASCII (punycode).
    pub blocked_hosts: Vec<String>,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        Self {
            max_len: 2048,
            own_hosts: Vec::new(),
            blocked_hosts: Vec::new(),
        }
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Empty input.
    #[error("must not be empty")]
    Empty,
    /// Longer than the policy allows.
    #[error("must be at most {0} characters long")]
    TooLong(usize),
    /// Not a parseable absolute URL.
    #[error("is not a valid absolute URL")]
    Invalid,
    /// A scheme other than http or https.
    #[error("must use the http or https scheme")]
    Scheme,
    /// No host.
    #[error("must have a host")]
    NoHost,
    /// `user:pass@` in the authority, a classic way to disguise the real host.
    #[error("must not contain user information (user:password@)")]
    UserInfo,
    /// Points back at snip.
    #[error("must not point to this service's own host")]
    OwnHost,
    /// On the blocklist.
    #[error("points to a blocked host")]
    Blocked,
}

/// A validated, normalised http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct TargetUrl(Box<str>);

impl TargetUrl {
    /// Parses and checks `input` against `policy`. The stored form is the WHATWG
    /// serialisation: lower-cased scheme and host, IDN hosts in punycode.
    pub fn parse(input: &str, policy: &UrlPolicy) -> Result<Self, UrlError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.len() > policy.max_len {
            return Err(UrlError::TooLong(policy.max_len));
        }
        let url = Url::parse(input).map_err(|_| UrlError::Invalid)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        let (host, local) = match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                let local = d == "localhost" || d.ends_with(".localhost");
                (d, local)
            }
            Some(Host::Domain(_)) | None => return Err(UrlError::NoHost),
            Some(Host::Ipv4(ip)) => (ip.to_string(), is_local_v4(ip)),
            Some(Host::Ipv6(ip)) => {
                let local = ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.to_ipv4().is_some_and(is_local_v4);
                (format!("[{ip}]"), local)
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if local
            || policy
                .own_hosts
                .iter()
                .any(|own| own.eq_ignore_ascii_case(&host))
        {
            return Err(UrlError::OwnHost);
        }
        if policy.blocked_hosts.iter().any(|b| host_matches(&host, b)) {
            return Err(UrlError::Blocked);
        }
        let normalised = String::from(url);
        if normalised.len() > policy.max_len {
            return Err(UrlError::TooLong(policy.max_len));
        }
        Ok(Self(normalised.into_boxed_str()))
    }

    /// Rebuilds a URL read back from the store, where only validated URLs are written.
    pub fn from_trusted(s: String) -> Self {
        Self(s.into_boxed_str())
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Loopback (127.0.0.0/8) and the unspecified address (0.0.0.0, which reaches this host).
fn is_local_v4(ip: std::net::Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

/// Whether `host` is `blocked` or one of its subdomains.
fn host_matches(host: &str, blocked: &str) -> bool {
    host == blocked
        || host
            .strip_suffix(blocked)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Normalises a configured host name (blocklist entry or own host) to the form hosts are
/// compared in: lower-case punycode without a trailing dot.
pub fn normalise_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    idna::domain_to_ascii(host)
        .unwrap_or_else(|_| host.to_owned())
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> UrlPolicy {
        UrlPolicy {
            max_len: 2048,
            own_hosts: vec!["sn.ip".into(), "[2001:db8::5]".into()],
            blocked_hosts: vec!["evil.example".into()],
        }
    }

    fn parse(s: &str) -> Result<String, UrlError> {
        TargetUrl::parse(s, &policy()).map(|u| u.as_str().to_owned())
    }

    #[test]
    fn a_url_of_exactly_the_longest_length_is_taken() {
        let base = "https://example.com/";
        let longest = format!("{base}{}", "a".repeat(2048 - base.len()));
        assert_eq!(parse(&longest).as_deref(), Ok(longest.as_str()));
        let over = format!("{longest}a");
        assert!(matches!(parse(&over), Err(UrlError::TooLong(2048))));
    }

    #[test]
    fn accepts_and_normalises_http_urls() {
        assert_eq!(
            parse("https://Example.COM").unwrap(),
            "https://example.com/"
        );
        assert_eq!(
            parse("http://example.com:8080/a?b=c#d").unwrap(),
            "http://example.com:8080/a?b=c#d"
        );
        assert_eq!(parse("https://1.2.3.4/x").unwrap(), "https://1.2.3.4/x");
    }

    #[test]
    fn idn_hosts_become_punycode() {
        assert_eq!(
            parse("https://bücher.example/").unwrap(),
            "https://xn--bcher-kva.example/"
        );
    }

    #[test]
    fn refuses_what_the_policy_forbids() {
        assert_eq!(parse(""), Err(UrlError::Empty));
        assert_eq!(parse("ftp://example.com/"), Err(UrlError::Scheme));
        assert_eq!(parse("javascript:alert(1)"), Err(UrlError::Scheme));
        assert_eq!(parse("example.com"), Err(UrlError::Invalid));
        assert_eq!(
            parse("https://bank.com@evil2.example/"),
            Err(UrlError::UserInfo)
        );
        assert_eq!(parse("https://u:p@example.com/"), Err(UrlError::UserInfo));
        assert_eq!(parse("https://SN.IP/abc"), Err(UrlError::OwnHost));
        assert_eq!(parse("http://[2001:DB8::5]:8080/"), Err(UrlError::OwnHost));
        for own in [
            "http://localhost:8080/x",
            "http://LocalHost./x",
            "http://app.localhost/x",
            "http://127.0.0.1:8080/x",
            "http://127.1.2.3/x",
            "http://2130706433/x",
            "http://0x7f000001/x",
            "http://0.0.0.0:8080/x",
            "http://[::1]:8080/x",
            "http://[::]/x",
            "http://[::ffff:7f00:1]:8080/x",
            "http://[::ffff:127.0.0.1]/x",
        ] {
            assert_eq!(parse(own), Err(UrlError::OwnHost), "{own}");
        }
        assert!(parse("http://localhost.example/x").is_ok());
        assert!(parse("http://128.0.0.1/x").is_ok());
        assert_eq!(parse("https://evil.example/"), Err(UrlError::Blocked));
        assert_eq!(parse("https://a.b.evil.example/"), Err(UrlError::Blocked));
        assert!(parse("https://notevil.example/").is_ok());
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(parse(&long), Err(UrlError::TooLong(2048)));
    }

    #[test]
    fn configured_hosts_are_normalised() {
        assert_eq!(normalise_host("Bücher.Example."), "xn--bcher-kva.example");
    }

    proptest! {
        #![proptest_config(crate::client_input_cases())]

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        /// What is accepted is an http(s) URL within the length limit, not of an own or
        /// blocked host, and already in its normal form: parsing it again gives itself.
        #[test]
        fn accepted_urls_are_normal_and_allowed(
            s in "(https?|HTTPS?|ftp|javascript):(//)?([a-zA-Z0-9.@:%\\[\\]_~-]|ü|\\PC){0,30}([/?#][\\PC]{0,20}){0,3}"
        ) {
            if let Ok(url) = parse(&s) {
                prop_assert!(url.starts_with("http://") || url.starts_with("https://"), "{}", url);
                prop_assert!(url.len() <= policy().max_len);
                let parsed = url::Url::parse(&url).expect("accepted URLs parse");
                let host = parsed.host_str().unwrap_or_default();
                prop_assert!(!["sn.ip", "localhost", "evil.example"].contains(&host), "{}", url);
                prop_assert!(!host.ends_with(".evil.example"), "{}", url);
                prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
                prop_assert_eq!(parse(&url), Ok(url.clone()));
            }
        }

        #[test]
        fn never_panics_on_url_like_input(s in "(https?|ftp)://[a-zA-Z0-9.@:%/?#\\[\\]-]{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn valid_urls_round_trip(
            // (Labels starting "xn--" are punycode and must decode; they are not generated.)
            host in "[a-w][a-z0-9]{0,20}(-[a-z0-9]{1,5})?\\.(com|org|example)",
            path in "(/[a-zA-Z0-9._~-]{0,10}){0,4}",
            query in proptest::option::of("[a-z]{1,5}=[a-z0-9]{0,5}"),
        ) {
            let input = match query {
                Some(q) => format!("https://{host}{path}?{q}"),
                None => format!("https://{host}{path}"),
            };
            let first = parse(&input).expect("valid URL refused");
            // Parsing the normalised form again changes nothing.
            prop_assert_eq!(parse(&first), Ok(first.clone()));
            let prefix = format!("https://{host}");
            prop_assert!(first.starts_with(&prefix));
        }
    }
}
