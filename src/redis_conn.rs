//! One Redis connection shared by the cache and the rate limiter, with the rules every call
//! obeys: a tight timeout, and a circuit breaker (logged once per change) so a dead Redis
//! costs one timeout a second, not one per request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::resilience::{Breaker, BreakerSettings, BreakerState};

/// A Redis connection with timeouts and a circuit breaker. Cheap to clone.
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    manager: ConnectionManager,
    timeout: Duration,
    prefix: Arc<str>,
    breaker: Arc<Breaker>,
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
            // Redis is on every request's path and has a local fallback: one failure opens
            // the breaker, and it probes again within a second.
            breaker: Arc::new(Breaker::new(
                "redis",
                BreakerSettings {
                    failures_to_open: 1,
                    open_for: Duration::from_secs(1),
                    max_open_for: Duration::from_secs(1),
                },
            )),
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

    /// Whether Redis is answering (its breaker is closed).
    pub fn is_up(&self) -> bool {
        self.breaker.state() == BreakerState::Closed
    }

    /// The breaker, for metrics.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs one Redis call under the timeout. `Err(())` when Redis failed, timed out, or
    /// its breaker is open (then nothing is sent).
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, ()>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(permit) = self.breaker.allow() else {
            return Err(());
        };
        match tokio::time::timeout(self.timeout, f(self.manager.clone())).await {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis call failed");
                permit.failure();
                Err(())
            }
            Err(_) => {
                tracing::debug!("redis call timed out");
                permit.failure();
                Err(())
            }
        }
    }
}
