//! Short codes: random base62 codes and user-chosen aliases share one namespace.

use rand::Rng;

/// The alphabet of generated codes.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of a generated code: 62^7 ≈ 3.5·10^12 codes.
pub const DEFAULT_CODE_LEN: usize = 7;

/// Paths that a code may never take, because snip serves them or may one day.
/// Compared case-insensitively.
pub const RESERVED: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "bulk",
    "dashboard",
    "docs",
    "export",
    "favicon.ico",
    "graphql",
    "health",
    "healthz",
    "login",
    "logout",
    "metrics",
    "openapi.json",
    "readyz",
    "rest",
    "robots.txt",
    "settings",
    "signup",
    "static",
    "ui",
    "well-known",
];

/// A short code: the key of a link. Either generated or a validated alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Code(String);

/// Why a string is not an acceptable alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Shorter than 3 or longer than 64 characters.
    #[error("must be 3 to 64 characters long")]
    Length,
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("may contain only letters A-Z and a-z, digits, '-' and '_'")]
    Charset,
    /// One of the reserved words.
    #[error("is a reserved word")]
    Reserved,
}

impl Code {
    /// Parses a user-chosen alias: `[A-Za-z0-9_-]{3,64}`, not reserved.
    pub fn parse_alias(s: &str) -> Result<Self, AliasError> {
        if !(3..=64).contains(&s.len()) {
            return Err(AliasError::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AliasError::Charset);
        }
        if is_reserved(s) {
            return Err(AliasError::Reserved);
        }
        Ok(Self(s.to_owned()))
    }

    /// Accepts a code taken from a request path for lookup. Anything that could not be a
    /// code is `None`, so the store is never asked about it.
    pub fn from_path(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    /// Rebuilds a code read back from the store, where only valid codes are written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// Generates a random base62 code of `len` characters from the thread-local CSPRNG,
    /// skipping the rare draw that spells a reserved word.
    pub fn generate(len: usize) -> Self {
        let mut rng = rand::rng();
        loop {
            let s: String = (0..len)
                .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
                .collect();
            if !is_reserved(&s) {
                return Self(s);
            }
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is a reserved word, ignoring ASCII case.
pub fn is_reserved(s: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// The length of generated codes for an attempt: after every 3 collisions one more
/// character, so a crowded keyspace costs a few retries, never a failure.
pub fn length_for_attempt(attempt: u32) -> usize {
    DEFAULT_CODE_LEN + (attempt / 3) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_codes_are_base62_of_the_asked_length() {
        for len in [7, 8, 12] {
            let c = Code::generate(len);
            assert_eq!(c.as_str().len(), len);
            assert!(c.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn generated_codes_do_not_repeat_in_a_large_sample() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(Code::generate(DEFAULT_CODE_LEN)));
        }
    }

    #[test]
    fn generated_codes_use_the_whole_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2_000 {
            seen.extend(Code::generate(7).as_str().bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn a_code_displays_as_its_text() {
        let code = Code::parse_alias("my-link_1").unwrap();
        assert_eq!(code.to_string(), "my-link_1");
        assert_eq!(format!("/{code}"), "/my-link_1");
    }

    #[test]
    fn code_length_grows_after_repeated_collisions() {
        assert_eq!(length_for_attempt(0), 7);
        assert_eq!(length_for_attempt(2), 7);
        assert_eq!(length_for_attempt(3), 8);
        assert_eq!(length_for_attempt(6), 9);
    }

    #[test]
    fn aliases_follow_the_rules() {
        assert!(Code::parse_alias("my-link_1").is_ok());
        assert_eq!(Code::parse_alias("ab"), Err(AliasError::Length));
        assert_eq!(Code::parse_alias(&"a".repeat(65)), Err(AliasError::Length));
        assert_eq!(Code::parse_alias("a b"), Err(AliasError::Charset));
        assert_eq!(Code::parse_alias("héllo"), Err(AliasError::Charset));
        assert_eq!(Code::parse_alias("API"), Err(AliasError::Reserved));
        assert_eq!(Code::parse_alias("healthz"), Err(AliasError::Reserved));
        assert!(Code::parse_alias(&"a".repeat(64)).is_ok());
    }

    /// The documented rule for a path segment that may be a code, written out apart.
    fn could_be_a_code(s: &str) -> bool {
        let n = s.chars().count();
        s.is_ascii()
            && (1..=64).contains(&n)
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    }

    proptest! {
        #![proptest_config(crate::client_input_cases())]

        /// An alias is accepted exactly when it is 3–64 characters of the charset and not
        /// reserved; a path segment is looked up exactly when it could be a code.
        #[test]
        fn aliases_and_path_codes_follow_the_documented_rule(
            s in "[A-Za-z0-9_.~%/ -]{0,70}|\\PC{0,70}|(api|healthz|docs|API)"
        ) {
            let alias_ok = could_be_a_code(&s) && s.len() >= 3 && !is_reserved(&s);
            prop_assert_eq!(Code::parse_alias(&s).is_ok(), alias_ok);
            prop_assert_eq!(Code::from_path(&s).is_some(), could_be_a_code(&s));
        }

        #[test]
        fn alias_parsing_never_panics_and_accepts_only_the_charset(s in "\\PC*") {
            if let Ok(c) = Code::parse_alias(&s) {
                prop_assert_eq!(c.as_str(), s.as_str());
                prop_assert!((3..=64).contains(&s.len()));
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                prop_assert!(!is_reserved(&s));
            }
        }

        #[test]
        fn valid_aliases_round_trip(s in "[A-Za-z0-9_-]{3,64}") {
            prop_assume!(!is_reserved(&s));
            prop_assert_eq!(Code::parse_alias(&s).map(|c| c.as_str().to_owned()), Ok(s.clone()));
        }

        #[test]
        fn generated_codes_are_valid_lookups(len in 7usize..12) {
            let c = Code::generate(len);
            prop_assert_eq!(Code::from_path(c.as_str()), Some(c.clone()));
            prop_assert!(!is_reserved(c.as_str()));
        }
    }
}
