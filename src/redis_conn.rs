//! One Redis connection shared by the cache and the rate limiter, with the rules every call
//! obeys: a tight timeout, a health state logged once per change, and a short back-off
//! after a failure so a dead Redis costs one timeout a second, not one per request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long after a failure calls are skipped before Redis is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A Redis connection with timeouts and a health state. Cheap to clone.
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    manager: ConnectionManager,
    timeout: Duration,
    prefix: Arc<str>,
    health: Arc<Health>,
}

struct Health {
    up: AtomicBool,
    /// Milliseconds since `epoch` of the last failure.
    failed_at: AtomicI64,
    epoch: Instant,
}

impl RedisConn {
    /// Prepares a connection to `url`. It connects lazily, so snip starts (degraded) even
    /// when Redis is down. Every key snip writes starts with `prefix`.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parsing the Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .context("creating the Redis connection")?;
        Ok(Self {
            client,
            manager,
            timeout,
            prefix: prefix.into(),
            health: Arc::new(Health {
                up: AtomicBool::new(true),
                failed_at: AtomicI64::new(i64::MIN / 2),
                epoch: Instant::now(),
            }),
        })
    }

    /// A key under snip's prefix. The `{…}` hash tag keeps a code's keys in one cluster slot.
    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{{{id}}}", self.prefix)
    }

    /// The prefix, e.g. for pub/sub channel names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the last call succeeded.
    pub fn is_up(&self) -> bool {
        self.health.up.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.health.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs one Redis call under the timeout. `Err(())` when Redis failed, timed out, or
    /// failed less than a second ago (then nothing is sent).
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, ()>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let h = &self.health;
        if !h.up.load(Ordering::Relaxed)
            && self.now_ms() - h.failed_at.load(Ordering::Relaxed)
                < RETRY_AFTER_FAILURE.as_millis() as i64
        {
            return Err(());
        }
        match tokio::time::timeout(self.timeout, f(self.manager.clone())).await {
            Ok(Ok(v)) => {
                if !h.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis is reachable again");
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                Err(())
            }
            Err(_) => {
                self.failed("timed out");
                Err(())
            }
        }
    }

    fn failed(&self, why: &str) {
        self.health
            .failed_at
            .store(self.now_ms(), Ordering::Relaxed);
        if self.health.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = why, "redis unavailable; serving without it");
        }
    }
}
