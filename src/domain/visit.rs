//! What a click says about its visitor: browser, OS, device class, whether it is a bot, and
//! where it came from. Pure functions over request data; no I/O.

use std::borrow::Cow;
use std::sync::LazyLock;

/// Link unfurlers and other automated clients that woothee does not call crawlers. Matched
/// case-insensitively as substrings of the user agent.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "embedly",
    "quora link preview",
    "outbrain",
    "pinterest",
    "vkshare",
    "w3c_validator",
    "whatsapp",
    "skypeuripreview",
    "nuzzel",
    "bitlybot",
    "slack",
    "discord",
    "telegram",
    "linkedin",
    "preview",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "httpclient",
    "axios/",
    "node-fetch",
    "headless",
    "lighthouse",
    "monitor",
    "uptime",
    "pingdom",
];

static PARSER: LazyLock<woothee::parser::Parser> = LazyLock::new(woothee::parser::Parser::new);

/// What a request's user agent and method say about the client: bot or person, browser,
/// OS and device class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentProfile {
    /// Automated client (crawler, unfurler, monitor, HEAD request, no user agent).
    pub bot: bool,
    /// Browser family, e.g. `Chrome`; `unknown` when not recognised.
    pub browser: String,
    /// Operating system, e.g. `Windows 10`, `iPhone`; `unknown` when not recognised.
    pub os: String,
    /// `desktop`, `mobile`, `tablet`, `bot` or `unknown`.
    pub device: String,
}

/// Classifies a request by its user agent and method.
pub fn classify(user_agent: Option<&str>, head: bool) -> AgentProfile {
    let ua = user_agent.map(str::trim).filter(|u| !u.is_empty());
    let parsed = ua.and_then(|u| PARSER.parse(u));
    let lower = ua.map(str::to_ascii_lowercase).unwrap_or_default();
    let crawler = parsed.as_ref().is_some_and(|p| p.category == "crawler");
    let marked = BOT_MARKERS.iter().any(|m| lower.contains(m));
    let bot = head || ua.is_none() || crawler || marked;
    let known = |s: &str| {
        if s.is_empty() || s == "UNKNOWN" {
            "unknown".to_owned()
        } else {
            s.to_owned()
        }
    };
    let (browser, os, category) = match &parsed {
        Some(p) => (known(p.name), known(p.os), p.category),
        None => ("unknown".to_owned(), "unknown".to_owned(), "UNKNOWN"),
    };
    let device = if bot {
        "bot"
    } else if lower.contains("ipad") || (lower.contains("android") && !lower.contains("mobile")) {
        "tablet"
    } else {
        match category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" => "mobile",
            _ => "unknown",
        }
    };
    AgentProfile {
        bot,
        browser,
        os,
        device: device.to_owned(),
    }
}

/// The longest host name DNS allows; a referrer naming a longer one is counted as none, so
/// that no request can make a click event bigger than this and the user agent's 512 bytes.
const MAX_HOST: usize = 253;

/// The host of a `Referer` header, lower-cased, without a `www.` prefix; `None` for none, for
/// a host longer than DNS allows, or for anything that is not an http(s) URL. Borrowed from
/// the header when it is already in lower case (as it nearly always is), so that the common
/// click allocates nothing here.
pub fn referrer_host(referer: Option<&str>) -> Option<Cow<'_, str>> {
    let referer = referer?.trim();
    // `www.` is cut (in any case) before the host is lower-cased.
    fn without_www(host: &str) -> &str {
        let cut = host.len() > 4 && host.as_bytes()[..4].eq_ignore_ascii_case(b"www.");
        &host[if cut { 4 } else { 0 }..]
    }
    let host = match plain_host(referer) {
        Some(host) => {
            let host = without_www(host);
            Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(host.to_ascii_lowercase())
            } else {
                Cow::Borrowed(host)
            })
        }
        None => {
            let url = url::Url::parse(referer).ok()?;
            if !matches!(url.scheme(), "http" | "https") {
                return None;
            }
            Some(Cow::Owned(
                without_www(url.host_str()?).to_ascii_lowercase(),
            ))
        }
    };
    host.filter(|h| h.len() <= MAX_HOST)
}

/// The host of the common referrer, `http(s)://name.example[:port]/…`, found without a full
/// URL parse (which is most of a click's cost at the edge). Anything less plain — user
/// info, IP literals and numeric hosts, percent-escapes, punycode, odd characters — is
/// `None`, and left to the URL parser, whose answer this must equal where it answers.
fn plain_host(referer: &str) -> Option<&str> {
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let bytes = rest.as_bytes();
    // One pass over the host: letters, digits and hyphens, in labels between dots.
    let plain_label =
        |l: &[u8]| !l.is_empty() && !l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"));
    let (mut label, mut end) = (0, bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => {}
            b'.' => {
                if !plain_label(&bytes[label..i]) {
                    return None;
                }
                label = i + 1;
            }
            b':' | b'/' | b'?' | b'#' => {
                end = i;
                break;
            }
            _ => return None,
        }
    }
    // A last label that starts with a digit may make the host an IPv4 address.
    let last = &bytes[label..end];
    if !plain_label(last) || last[0].is_ascii_digit() {
        return None;
    }
    if bytes.get(end) == Some(&b':') {
        let port = &bytes[end + 1..];
        let digits = port.iter().take_while(|b| b.is_ascii_digit()).count();
        let after = port.get(digits);
        if digits == 0 || digits > 5 || after.is_some_and(|b| !matches!(b, b'/' | b'?' | b'#')) {
            return None;
        }
    }
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

    #[test]
    fn browsers_and_devices() {
        let v = classify(Some(CHROME_WIN), false);
        assert_eq!(
            (v.bot, v.browser.as_str(), v.device.as_str()),
            (false, "Chrome", "desktop")
        );
        assert!(v.os.starts_with("Windows"), "{}", v.os);
        let v = classify(Some(SAFARI_IPHONE), false);
        assert_eq!(
            (v.bot, v.browser.as_str(), v.os.as_str(), v.device.as_str()),
            (false, "Safari", "iPhone", "mobile")
        );
    }

    #[test]
    fn bots_unfurlers_head_and_empty_agents_are_bots() {
        for ua in [
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "curl/8.4.0",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        ] {
            let v = classify(Some(ua), false);
            assert!(v.bot, "{ua}");
            assert_eq!(v.device, "bot");
        }
        assert!(classify(Some(CHROME_WIN), true).bot, "HEAD");
        assert!(classify(None, false).bot);
        assert!(classify(Some("  "), false).bot);
    }

    #[test]
    fn tablets_are_ipads_and_android_without_mobile() {
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
            (KHTML, like Gecko) Version/17.0 Safari/604.1";
        let android_tablet = "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 \
            (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let android_phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
            (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
        assert_eq!(classify(Some(ipad), false).device, "tablet");
        assert_eq!(classify(Some(android_tablet), false).device, "tablet");
        assert_eq!(classify(Some(android_phone), false).device, "mobile");
    }

    #[test]
    fn what_the_parser_cannot_name_is_unknown() {
        let v = classify(
            Some(
                "Mozilla/5.0 (X11; FooOS 1.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            ),
            false,
        );
        assert_eq!((v.browser.as_str(), v.os.as_str()), ("Chrome", "unknown"));
    }

    #[test]
    fn the_quick_path_takes_plain_hosts_and_leaves_the_rest() {
        for (referer, host) in [
            ("https://example.com/path", "example.com"),
            ("http://Sub.Example.com:8080/x", "Sub.Example.com"),
            ("https://a-b.example.com", "a-b.example.com"),
            ("https://example.com?q=1", "example.com"),
            ("https://example.com#top", "example.com"),
            ("https://example.com:8080", "example.com"),
            ("https://example.com:65535?x", "example.com"),
            ("https://example.com:1/", "example.com"),
        ] {
            assert_eq!(plain_host(referer), Some(host), "{referer}");
        }
        for referer in [
            "ftp://example.com/",
            "https://",
            "https://.example.com/",
            "https://example..com/",
            "https://user@example.com/",
            "https://ex%41mple.com/",
            "https://xn--bcher-kva.example/",
            "https://example.xn--p1ai/",
            "https://1.2.3.4/",
            "https://host.9lives/",
            "https://example.com:/x",
            "https://example.com:123456/",
            "https://example.com:80x/",
        ] {
            assert_eq!(plain_host(referer), None, "{referer}");
        }
    }

    #[test]
    fn a_host_that_is_only_www_dot_keeps_it() {
        assert_eq!(
            referrer_host(Some("https://www./")).as_deref(),
            Some("www.")
        );
        assert_eq!(
            referrer_host(Some("https://www.a.example/")).as_deref(),
            Some("a.example")
        );
    }

    /// The referrer's host as the URL parser reads it: the documented meaning of
    /// `referrer_host`, without the quick path.
    fn referrer_by_the_url_parser(referer: &str) -> Option<String> {
        let url = url::Url::parse(referer.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let host = url.host_str()?.to_ascii_lowercase();
        let host = match host.strip_prefix("www.") {
            Some(rest) if !rest.is_empty() => rest.to_owned(),
            _ => host,
        };
        (host.len() <= MAX_HOST).then_some(host)
    }

    proptest::proptest! {
        #![proptest_config(crate::client_input_cases())]

        /// Any `Referer` reads as the URL parser reads it (the quick path included), and
        /// never panics.
        #[test]
        fn referrers_read_as_the_url_parser_reads_them(
            s in "\\PC{0,40}|\\s?(https?|HTTP|ftp)://([a-zA-Z0-9@%:\\[\\]\\\\_-]{0,8}\\.?){0,4}[/?#]?\\PC{0,8}"
        ) {
            let quick = referrer_host(Some(&s)).map(|h| h.into_owned());
            proptest::prop_assert_eq!(quick, referrer_by_the_url_parser(&s));
        }

        /// Any user agent is classified without a panic, into the documented classes; HEAD
        /// requests are bots, and bots are the device class `bot`.
        #[test]
        fn any_user_agent_is_classified(
            ua in "\\PC{0,60}|Mozilla/5\\.0 \\([A-Za-z0-9 ;._/-]{0,40}\\)[A-Za-z0-9 ;._/()-]{0,40}",
            head: bool,
        ) {
            let v = classify(Some(&ua), head);
            proptest::prop_assert!(
                ["desktop", "mobile", "tablet", "bot", "unknown"].contains(&v.device.as_str()),
                "{:?}", v
            );
            proptest::prop_assert_eq!(v.bot, v.device == "bot");
            proptest::prop_assert!(!head || v.bot);
            proptest::prop_assert!(!v.browser.is_empty() && !v.os.is_empty());
            if ua.trim().is_empty() {
                proptest::prop_assert!(v.bot);
            }
        }

        /// Where the quick host reader answers, it answers as the URL parser does.
        #[test]
        fn the_quick_host_reader_agrees_with_the_url_parser(
            s in "(https?|HTTP|ftp)://([a-zA-Z0-9@%:\\[\\]\\\\-]{0,6}\\.?){0,4}[/?#]?[a-z]{0,3}"
        ) {
            if let Some(host) = plain_host(&s) {
                let url = url::Url::parse(&s);
                proptest::prop_assert!(url.is_ok(), "{s} is no URL");
                let url = url.unwrap();
                let host = host.to_ascii_lowercase();
                proptest::prop_assert_eq!(Some(host.as_str()), url.host_str());
            }
        }
    }

    #[test]
    fn referrers() {
        assert_eq!(
            referrer_host(Some("https://www.Google.com/search?q=x")).as_deref(),
            Some("google.com")
        );
        assert_eq!(
            referrer_host(Some("http://t.co/abc")).as_deref(),
            Some("t.co")
        );
        assert_eq!(referrer_host(Some("android-app://com.slack")), None);
        for (given, host) in [
            (
                "https://news.ycombinator.com:443/item?id=1",
                "news.ycombinator.com",
            ),
            ("http://user@Example.com/", "example.com"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("https://xn--bcher-kva.example/", "xn--bcher-kva.example"),
            ("https://b%C3%BCcher.example/", "xn--bcher-kva.example"),
        ] {
            assert_eq!(referrer_host(Some(given)).as_deref(), Some(host), "{given}");
        }
        assert_eq!(referrer_host(Some("nonsense")), None);
        // No longer than DNS allows.
        let long = format!("https://{}example/", "a.".repeat(123));
        assert_eq!(referrer_host(Some(&long)).map(|h| h.len()), Some(253));
        let longer = format!("https://{}example/", "a.".repeat(124));
        assert_eq!(referrer_host(Some(&longer)), None);
        assert_eq!(referrer_host(None), None);
    }
}
