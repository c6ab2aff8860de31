//! The distributed limiter: the same token bucket as `bucket.rs`, as one atomic Lua script
//! on Redis (one round trip), so every node draws from one budget. When Redis fails the
//! request is judged by a local bucket holding this node's share of the policy (fail-open),
//! and the fallback is counted.

use std::sync::atomic::{AtomicU64, Ordering};

use super::bucket::{Decision, Policy, decision};
use super::local::LocalLimiter;
use crate::redis_conn::RedisConn;

/// KEYS[1] = bucket; ARGV = capacity, refill per second, now (ms), cost (0 to only look).
/// Allowed while the bucket holds `cost` tokens (one for a look); a refusal takes nothing.
/// Returns {allowed (0|1), tokens left (string, fractional)}.
const TAKE: &str = r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
local elapsed = math.max(0, now - at) / 1000
tokens = math.min(capacity, tokens + elapsed * rate)
local allowed = 0
if tokens >= math.max(cost, 1) then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(math.max(now, at)))
local ttl = 60000
if rate > 0 then ttl = math.ceil(capacity / rate * 1000) + 1000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return {allowed, tostring(tokens)}
";

/// A token-bucket limiter on Redis.
pub struct RedisLimiter {
    conn: RedisConn,
    script: redis::Script,
    fallback: LocalLimiter,
    nodes: u32,
    fallbacks: AtomicU64,
}

impl RedisLimiter {
    /// A limiter on `conn`; `nodes` is how many nodes share a budget, to size the fallback.
    pub fn new(conn: RedisConn, nodes: u32) -> Self {
        Self {
            conn,
            script: redis::Script::new(TAKE),
            fallback: LocalLimiter::default(),
            nodes,
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Takes `cost` tokens from `key`'s shared bucket (0 only looks).
    pub async fn check(&self, policy: &Policy, key: &str, now_ms: i64, cost: u32) -> Decision {
        let redis_key = self.conn.key("rl", key);
        let script = &self.script;
        let res = self
            .conn
            .call(|mut c| async move {
                script
                    .key(redis_key)
                    .arg(policy.capacity)
                    .arg(policy.refill_per_sec)
                    .arg(now_ms)
                    .arg(cost)
                    .invoke_async::<(i64, String)>(&mut c)
                    .await
            })
            .await;
        match res {
            Ok((allowed, tokens)) => decision(
                policy,
                allowed == 1,
                tokens.parse().unwrap_or(0.0),
                f64::from(cost.max(1)),
            ),
            Err(()) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.fallback
                    .check(&policy.divided(self.nodes), key, now_ms, cost)
            }
        }
    }

    /// Requests judged locally because Redis failed.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The fallback's buckets, for sweeping.
    pub fn fallback(&self) -> &LocalLimiter {
        &self.fallback
    }
}
