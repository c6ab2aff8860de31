//! Rate limiting: token buckets per API key and per client IP, with separate policies for
//! API writes, API reads, anonymous API calls and redirects. Local (in-process) by default;
//! on Redis when configured, so N nodes share one budget.

pub mod bucket;
pub mod local;
pub mod redis;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

pub use bucket::{Decision, Policy};
use local::LocalLimiter;
use redis::RedisLimiter;

/// The address a client's per-IP budgets are kept under: an IPv4 address as it is (also
/// when written as an IPv4-mapped IPv6 address), and the /64 network of an IPv6 address,
/// since one IPv6 client usually holds a whole /64.
pub fn bucket_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Which policy a request falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyName {
    /// API calls that change something, per key.
    Writes,
    /// API calls that only read, per key.
    Reads,
    /// API calls without a valid key, per client IP.
    Anonymous,
    /// Redirects, per client IP.
    Redirects,
    /// Unknown codes looked up in the store, per client IP.
    Misses,
    /// Password attempts on one link, per client IP.
    Passwords,
    /// Password attempts on one link, from all clients together.
    LinkPasswords,
}

impl PolicyName {
    /// The name used in headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Writes => "writes",
            Self::Reads => "reads",
            Self::Anonymous => "anonymous",
            Self::Redirects => "redirects",
            Self::Misses => "misses",
            Self::Passwords => "passwords",
            Self::LinkPasswords => "link_passwords",
        }
    }
}

/// The configured policies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Off switch (on by default).
    pub enabled: bool,
    /// API writes per key.
    pub writes: Policy,
    /// API reads per key.
    pub reads: Policy,
    /// API calls without a valid key, per IP.
    pub anonymous: Policy,
    /// Redirects per IP.
    pub redirects: Policy,
    /// Unknown codes that reach the store, per IP (enumeration).
    pub misses: Policy,
    /// Password attempts per IP and link (guessing).
    pub passwords: Policy,
    /// Password attempts per link from all IPs together.
    pub link_passwords: Policy,
    /// Nodes sharing the Redis budget: a node falling back to local limits takes 1/nodes.
    pub nodes: u32,
    /// Proxies whose `X-Forwarded-For` is believed: IP addresses or CIDR ranges.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            writes: Policy::new(50.0, 10.0),
            reads: Policy::new(200.0, 50.0),
            anonymous: Policy::new(20.0, 2.0),
            redirects: Policy::new(2000.0, 1000.0),
            misses: Policy::new(60.0, 1.0),
            passwords: Policy::new(5.0, 5.0 / 60.0),
            link_passwords: Policy::new(60.0, 1.0),
            nodes: 1,
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimits {
    /// The policy for a name.
    pub fn policy(&self, name: PolicyName) -> &Policy {
        match name {
            PolicyName::Writes => &self.writes,
            PolicyName::Reads => &self.reads,
            PolicyName::Anonymous => &self.anonymous,
            PolicyName::Redirects => &self.redirects,
            PolicyName::Misses => &self.misses,
            PolicyName::Passwords => &self.passwords,
            PolicyName::LinkPasswords => &self.link_passwords,
        }
    }
}

/// The limiter backend, chosen at start-up.
pub enum Backend {
    /// In-process buckets.
    Local(LocalLimiter),
    /// Shared buckets on Redis.
    Redis(Box<RedisLimiter>),
}

/// The limiter: a backend plus the policies and counters.
pub struct Limiter {
    backend: Backend,
    limits: RateLimits,
    limited: Mutex<HashMap<PolicyName, u64>>,
    checked: AtomicU64,
}

impl Limiter {
    /// A limiter with `backend` and `limits`.
    pub fn new(backend: Backend, limits: RateLimits) -> Self {
        Self {
            backend,
            limits,
            limited: Mutex::default(),
            checked: AtomicU64::new(0),
        }
    }

    /// The policies.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Takes a token for `key` under the policy `name`; `None` when limiting is off.
    pub async fn check(
        &self,
        name: PolicyName,
        key: impl std::fmt::Display,
        now_ms: i64,
    ) -> Option<Decision> {
        self.take(name, key, now_ms, 1).await
    }

    /// Whether `key`'s bucket under `name` holds a token, without taking it: a refused
    /// decision when it is empty; `None` when limiting is off.
    pub async fn peek(
        &self,
        name: PolicyName,
        key: impl std::fmt::Display,
        now_ms: i64,
    ) -> Option<Decision> {
        self.take(name, key, now_ms, 0).await
    }

    /// Takes `cost` tokens for `key` under the policy `name` (all or none); `None` when
    /// limiting is off.
    pub async fn take(
        &self,
        name: PolicyName,
        key: impl std::fmt::Display,
        now_ms: i64,
        cost: u32,
    ) -> Option<Decision> {
        if !self.limits.enabled {
            return None;
        }
        self.checked.fetch_add(1, Ordering::Relaxed);
        let policy = self.limits.policy(name);
        let key = format!("{}:{key}", name.as_str());
        let d = match &self.backend {
            Backend::Local(l) => l.check(policy, &key, now_ms, cost),
            Backend::Redis(r) => r.check(policy, &key, now_ms, cost).await,
        };
        if !d.allowed {
            *self
                .limited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(name)
                .or_default() += 1;
        }
        Some(d)
    }

    /// Requests refused, per policy.
    pub fn limited(&self) -> Vec<(PolicyName, u64)> {
        let mut v: Vec<_> = self
            .limited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort_by_key(|(k, _)| k.as_str());
        v
    }

    /// Requests judged locally because Redis failed.
    pub fn fallbacks(&self) -> u64 {
        match &self.backend {
            Backend::Local(_) => 0,
            Backend::Redis(r) => r.fallbacks(),
        }
    }

    /// Forgets local buckets that have refilled; run periodically.
    pub fn sweep(&self, now_ms: i64) {
        match &self.backend {
            Backend::Local(l) => l.sweep(now_ms),
            Backend::Redis(r) => r.fallback().sweep(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;
    use std::net::IpAddr;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bucket_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            bucket_of(ip("2001:db8:1:2:ffff::9")),
            bucket_of(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            bucket_of(ip("2001:db8:1:3::1")),
            bucket_of(ip("2001:db8:1:2::1"))
        );
        assert_eq!(bucket_of(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(bucket_of(ip("203.0.113.7")), ip("203.0.113.7"));
    }
}
