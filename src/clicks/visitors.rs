//! Visitor ids, which tell one day's visitors apart without keeping who they are: a salted
//! hash of IP and user agent, under a salt that changes every day.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::store::LinkStore;

/// A visitor's id: the first 128 bits of the salted hash of IP and user agent. Written as
/// 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorId(pub [u8; 16]);

impl std::fmt::Display for VisitorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = [0u8; 32];
        // Cannot fail: the buffer is exactly twice the bytes, and hex digits are ASCII.
        let _ = hex::encode_to_slice(self.0, &mut text);
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// Visitor ids: a hash of IP and user agent under the day's salt, which the store keeps (so
/// every node agrees) and deletes when the day is over (so no visitor can be followed from
/// one day to the next). The salt is fetched once a day per node.
pub struct VisitorIds {
    store: Arc<dyn LinkStore>,
    today: RwLock<Option<(i64, Arc<str>)>>,
}

/// The salts of some days (day start, ms), as [`VisitorIds::salts`] could get them.
#[derive(Debug, Clone, Default)]
pub struct Salts(pub(super) Vec<(i64, Arc<str>)>);

impl Salts {
    /// The salt of the day starting at `day` (ms), if it was had.
    pub fn get(&self, day: i64) -> Option<&str> {
        self.0.iter().find(|(d, _)| *d == day).map(|(_, s)| &**s)
    }

    /// The given salt for the given days (made up for tests).
    #[cfg(test)]
    pub fn of(days: impl IntoIterator<Item = (i64, String)>) -> Self {
        Self(days.into_iter().map(|(d, s)| (d, s.into())).collect())
    }
}

impl VisitorIds {
    /// Visitor ids backed by `store`.
    pub fn new(store: Arc<dyn LinkStore>) -> Self {
        Self {
            store,
            today: RwLock::new(None),
        }
    }

    /// The visitor id of `ip` with `user_agent` at `now`; `None` if the day's salt cannot be
    /// had (the click is still counted, without its visitor).
    pub async fn id(&self, ip: IpAddr, user_agent: &str, now: DateTime<Utc>) -> Option<VisitorId> {
        let day = now.timestamp_millis() - now.timestamp_millis().rem_euclid(86_400_000);
        let salt = self.salt(day).await?;
        Some(visitor_id(&salt, ip, user_agent))
    }

    /// The salts of `days` (day starts, ms) that can be had.
    pub async fn salts(&self, days: &[i64]) -> Salts {
        let mut salts = Salts::default();
        for &day in days {
            if let Some(salt) = self.salt(day).await {
                salts.0.push((day, salt));
            }
        }
        salts
    }

    /// The salt of the day starting at `day` (ms).
    async fn salt(&self, day: i64) -> Option<Arc<str>> {
        let cached = self
            .today
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(d, _)| *d == day)
            .map(|(_, s)| s.clone());
        if cached.is_some() {
            return cached;
        }
        let candidate: [u8; 16] = rand::random();
        match self.store.daily_salt(day, &hex::encode(candidate)).await {
            Ok(s) => {
                let s: Arc<str> = s.into();
                *self.today.write().unwrap_or_else(|e| e.into_inner()) = Some((day, s.clone()));
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no visitor salt for the day");
                None
            }
        }
    }
}

/// The visitor id of `ip` with `user_agent` under `salt`: the first 128 bits of
/// SHA-256(salt | ip | user agent).
pub fn visitor_id(salt: &str, ip: IpAddr, user_agent: &str) -> VisitorId {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b"|");
    let mut text = [0u8; 64];
    h.update(ip_text(ip, &mut text));
    h.update(b"|");
    h.update(user_agent.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize()[..16]);
    VisitorId(id)
}

/// `ip` in its usual text form, written into `buf` without allocating (IPv4 by hand: it is
/// most traffic, and `fmt` costs more than the hash it feeds).
fn ip_text(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            &buf[..len]
        }
        IpAddr::V6(_) => {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{ip}"));
            let len = cursor.position() as usize;
            &buf[..len]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_is_the_usual_form() {
        let mut buf = [0u8; 64];
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.99.9",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(parsed, &mut buf), ip.as_bytes());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6, &mut buf), b"2001:db8::1");
    }

    proptest::proptest! {
        #[test]
        fn every_ipv4_is_written_as_display_writes_it(octets: [u8; 4]) {
            let ip = IpAddr::from(octets);
            let mut buf = [0u8; 64];
            let text = ip.to_string();
            proptest::prop_assert_eq!(ip_text(ip, &mut buf), text.as_bytes());
        }
    }

    #[test]
    fn visitor_ids_are_written_in_hex() {
        let mut id = [0u8; 16];
        id[0] = 0xab;
        id[15] = 0x01;
        assert_eq!(
            VisitorId(id).to_string(),
            "ab000000000000000000000000000001"
        );
    }
}
