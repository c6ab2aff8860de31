//! API keys and scopes. A key is shown once; only its SHA-256 is stored. Keys carry 190 bits
//! of entropy, so a fast hash is enough: there is nothing to brute-force.

use rand::Rng;
use sha2::{Digest, Sha256};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_PREFIX: &str = "snip_";
const KEY_BODY_LEN: usize = 32;
/// How many characters of a key's body are kept in clear to tell keys apart.
pub const DISPLAY_PREFIX_LEN: usize = 8;

/// A plaintext API key, as the client sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

impl ApiKey {
    /// A fresh random key: `snip_` and 32 base62 characters from the CSPRNG.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let body: String = (0..KEY_BODY_LEN)
            .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
            .collect();
        Self(format!("{KEY_PREFIX}{body}"))
    }

    /// Accepts a key of the right shape; anything else cannot be a key.
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(KEY_PREFIX)?;
        (body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(s.to_owned()))
    }

    /// The key itself; for showing once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first characters of the body, stored in clear.
    pub fn display_prefix(&self) -> &str {
        &self.0[KEY_PREFIX.len()..KEY_PREFIX.len() + DISPLAY_PREFIX_LEN]
    }

    /// Its YOURLS signature token under the server's `secret` ([`signature_token`]).
    pub fn signature_token(&self, secret: &str) -> String {
        signature_token(&self.hash(), secret)
    }

    /// The stored form: lower-case hex SHA-256 of the whole key.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Characters of a YOURLS signature token.
pub const SIGNATURE_TOKEN_LEN: usize = 32;

/// The YOURLS signature token of the key whose stored hash is `key_hash`: HMAC-SHA-256 of
/// the hash under the server's `secret`, in hex, cut to 32 characters. The server can
/// make it again from what it stores plus the secret, which is not in the store, so a copy
/// of the database alone gives no token.
pub fn signature_token(key_hash: &str, secret: &str) -> String {
    use hmac::Mac;
    // HMAC takes a key of any length.
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(key_hash.as_bytes());
    let mut token = hex::encode(mac.finalize().into_bytes());
    token.truncate(SIGNATURE_TOKEN_LEN);
    token
}

/// The hashes a YOURLS time-limited signature may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureHash {
    /// MD5, YOURLS's default.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256, the default of YOURLS's newer documentation.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl SignatureHash {
    /// The hash YOURLS's `hash` parameter names.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(Self::Md5),
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha384" => Some(Self::Sha384),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The lower-case hex digest of `parts` joined.
    pub fn hex(self, parts: &[&str]) -> String {
        fn of<D: Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for p in parts {
                d.update(p.as_bytes());
            }
            hex::encode(d.finalize())
        }
        match self {
            Self::Md5 => of::<md5::Md5>(parts),
            Self::Sha1 => of::<sha1::Sha1>(parts),
            Self::Sha256 => of::<Sha256>(parts),
            Self::Sha384 => of::<sha2::Sha384>(parts),
            Self::Sha512 => of::<sha2::Sha512>(parts),
        }
    }

    /// Whether `signature` is `timestamp` and `token` hashed, in either order (YOURLS
    /// accepts both), compared in constant time.
    pub fn matches(self, signature: &str, timestamp: &str, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        [self.hex(&[timestamp, token]), self.hex(&[token, timestamp])]
            .iter()
            .any(|want| bool::from(want.as_bytes().ct_eq(signature.as_bytes())))
    }
}

/// One permission a key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// List and read own links.
    LinksRead,
    /// Create, change, delete own links.
    LinksWrite,
    /// Change or delete one's own user record and keys, and create keys.
    AccountWrite,
    /// Manage all users and keys (admins only).
    UsersAdmin,
}

impl Scope {
    /// All scopes.
    pub const ALL: [Scope; 4] = [
        Scope::LinksRead,
        Scope::LinksWrite,
        Scope::AccountWrite,
        Scope::UsersAdmin,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinksRead => "links:read",
            Self::LinksWrite => "links:write",
            Self::AccountWrite => "account:write",
            Self::UsersAdmin => "users:admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sc| sc.as_str() == s)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Builds a sorted, de-duplicated set.
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    /// `links:read links:write`: what a new key gets by default.
    pub fn default_member() -> Self {
        Self::new(vec![Scope::LinksRead, Scope::LinksWrite])
    }

    /// Every scope: the bootstrap admin's key.
    pub fn all() -> Self {
        Self::new(Scope::ALL.to_vec())
    }

    /// Parses the stored form: names separated by spaces. Unknown names are dropped.
    pub fn from_stored(s: &str) -> Self {
        Self::new(s.split_whitespace().filter_map(Scope::parse).collect())
    }

    /// Parses names sent by a client; the first unknown one is the error.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names
            .iter()
            .map(|n| Scope::parse(n.as_ref()).ok_or_else(|| n.as_ref().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        self.names().join(" ")
    }

    /// The wire names.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|s| s.as_str()).collect()
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Whether a key with these scopes may act under `scope`. `users:admin` also grants
    /// `account:write`: managing users and keys is what it is for.
    pub fn grants(&self, scope: Scope) -> bool {
        self.contains(scope) || (scope == Scope::AccountWrite && self.contains(Scope::UsersAdmin))
    }

    /// Whether every scope of this set is also in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.contains(*s))
    }

    /// The scopes in both sets.
    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Self(
            self.0
                .iter()
                .copied()
                .filter(|s| other.contains(*s))
                .collect(),
        )
    }

    /// The names of the scopes of this set that `other` lacks.
    pub fn missing_from(&self, other: &Scopes) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|s| !other.contains(**s))
            .map(|s| s.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_stably() {
        let k = ApiKey::generate();
        let again = ApiKey::parse(k.expose()).unwrap();
        assert_eq!(k.hash(), again.hash());
        assert_eq!(k.hash().len(), 64);
        assert_ne!(k.hash(), ApiKey::generate().hash());
        assert!(!format!("{k:?}").contains(k.expose()));
    }

    proptest::proptest! {
        #![proptest_config(crate::client_input_cases())]

        /// A bearer token is a key exactly when it is `snip_` and 32 ASCII letters or digits.
        #[test]
        fn keys_follow_the_documented_shape(s in "(snip_)?[A-Za-z0-9]{30,34}|snip_\\PC{0,34}|\\PC{0,40}") {
            let shape = s.strip_prefix("snip_").is_some_and(|b| {
                b.len() == 32 && b.chars().all(|c| c.is_ascii_alphanumeric())
            });
            proptest::prop_assert_eq!(ApiKey::parse(&s).is_some(), shape);
        }
    }

    #[test]
    fn a_key_shows_and_debugs_as_its_prefix_only() {
        let k = ApiKey::parse("snip_ABCDEFGHijklmnopqrstuvwxyz012345").unwrap();
        assert_eq!(k.display_prefix(), "ABCDEFGH");
        let shown = format!("{k:?}");
        assert_eq!(shown, "ApiKey(ABCDEFGH…)");
        assert!(!shown.contains(k.expose()), "{shown}");
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "snip_",
            "snip_short",
            "xxxx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
        assert!(ApiKey::parse(&format!("snip_{}", "-".repeat(32))).is_none());
    }

    #[test]
    fn signature_hashes_match_known_digests_in_either_order() {
        // YOURLS's own example: md5("1700000000" . "1002a612b4"), computed by PHP.
        let md5 = SignatureHash::Md5;
        assert_eq!(
            md5.hex(&["1700000000", "1002a612b4"]),
            "0cdb8baace3e60f757cfc8cfc75adca1"
        );
        assert!(md5.matches(
            "0cdb8baace3e60f757cfc8cfc75adca1",
            "1700000000",
            "1002a612b4"
        ));
        let reversed = md5.hex(&["1002a612b4", "1700000000"]);
        assert!(md5.matches(&reversed, "1700000000", "1002a612b4"));
        assert!(!md5.matches(
            "0CDB8BAACE3E60F757CFC8CFC75ADCA1",
            "1700000000",
            "1002a612b4"
        ));
        assert_eq!(
            SignatureHash::Sha256.hex(&["abc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(SignatureHash::parse("SHA512"), Some(SignatureHash::Sha512));
        assert_eq!(SignatureHash::parse("crc32"), None);
    }

    #[test]
    fn signature_tokens_depend_on_the_key_and_the_secret() {
        let key = ApiKey::generate();
        let token = key.signature_token("a secret of the server");
        assert_eq!(token.len(), SIGNATURE_TOKEN_LEN);
        assert_eq!(
            token,
            signature_token(&key.hash(), "a secret of the server")
        );
        assert_ne!(token, key.signature_token("another secret"));
        assert_ne!(
            token,
            ApiKey::generate().signature_token("a secret of the server")
        );
    }

    #[test]
    fn subsets_and_intersections() {
        let rw = Scopes::default_member();
        let r = Scopes::new(vec![Scope::LinksRead]);
        assert!(r.is_subset_of(&rw));
        assert!(!rw.is_subset_of(&r));
        assert_eq!(rw.intersection(&r), r);
        assert_eq!(rw.missing_from(&r), vec!["links:write"]);
        assert!(Scopes::default().is_subset_of(&r));
    }

    #[test]
    fn a_scope_is_granted_by_itself_and_account_write_also_by_users_admin() {
        let member = Scopes::default_member();
        assert!(member.grants(Scope::LinksRead));
        assert!(!member.grants(Scope::AccountWrite));
        assert!(!member.grants(Scope::UsersAdmin));
        let admin = Scopes::new(vec![Scope::UsersAdmin]);
        assert!(admin.grants(Scope::UsersAdmin));
        assert!(admin.grants(Scope::AccountWrite));
        assert!(!admin.grants(Scope::LinksRead));
        let account = Scopes::new(vec![Scope::AccountWrite]);
        assert!(account.grants(Scope::AccountWrite));
        assert!(!account.grants(Scope::UsersAdmin));
    }

    #[test]
    fn all_scopes_are_every_scope() {
        assert_eq!(
            Scopes::all().to_stored(),
            "links:read links:write account:write users:admin"
        );
    }

    #[test]
    fn scopes_round_trip() {
        let s = Scopes::parse_list(&["users:admin", "links:read", "links:read"]).unwrap();
        assert_eq!(s.to_stored(), "links:read users:admin");
        assert_eq!(Scopes::from_stored(&s.to_stored()), s);
        assert_eq!(
            Scopes::parse_list(&["links:delete"]),
            Err("links:delete".into())
        );
    }
}
