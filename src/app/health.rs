//! The dependencies' health, checked in the background every [`CHECK_EVERY`], so that
//! `/readyz` answers at once from what was last seen. The store's check drives the store's
//! breaker, which is then the store's health: it opens when a check finds the database
//! away, and closes within a check of the database answering again (requests need not
//! wait for a probe).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::redis_conn::RedisConn;
use crate::resilience::BreakerState;
use crate::store::LinkStore;
use crate::store::guarded::Guard;

/// How often the dependencies are checked.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Longest wait for a dependency to answer a check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// What the last checks found (the store's is its breaker's state).
#[derive(Debug)]
pub struct Health {
    redis: AtomicBool,
}

impl Default for Health {
    /// Up: the node has just connected.
    fn default() -> Self {
        Self {
            redis: AtomicBool::new(true),
        }
    }
}

impl Health {
    /// Whether Redis answered the last check.
    pub fn redis_up(&self) -> bool {
        self.redis.load(Ordering::Acquire)
    }
}

/// Checks the store (`store`, without its guard, so that an open breaker does not hide a
/// database that is back) and Redis until `stop`.
pub async fn watch(
    store: Arc<dyn LinkStore>,
    guard: Arc<Guard>,
    redis: Option<RedisConn>,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = stop.cancelled() => return,
        }
        let up = matches!(
            tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        let breaker = &guard.breaker;
        match (up, breaker.state()) {
            (true, BreakerState::Open | BreakerState::HalfOpen) => breaker.close_after_check(),
            (false, BreakerState::Closed) => breaker.trip(),
            _ => {}
        }
        if let Some(redis) = &redis {
            let ping = redis.call(|mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            });
            let up = matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(_)));
            health.redis.store(up, Ordering::Release);
        }
    }
}
