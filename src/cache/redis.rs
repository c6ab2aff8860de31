//! L2 on Redis: cached redirect targets as small JSON values under `{prefix}:l:{code}`, and
//! invalidations published on `{prefix}:invalidate` for every node's L1.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Cached, CachedTarget, L1};
use crate::clock::{from_millis, to_millis};
use crate::domain::code::Code;
use crate::domain::link::RedirectStatus;
use crate::domain::target_url::TargetUrl;
use crate::redis_conn::RedisConn;
use crate::store::{Gate, RedirectTarget};

/// The stored form of a cached target.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    u: String,
    s: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<i64>,
    c: i64,
    d: bool,
}

/// The value stored for an unknown code.
const MISSING: &str = "-";

fn encode(value: &Cached) -> String {
    match value {
        Cached::Missing => MISSING.to_owned(),
        Cached::Found(t) => serde_json::to_string(&Wire {
            u: t.url.as_str().to_owned(),
            s: t.redirect_status.code(),
            p: t.password_hash().map(str::to_owned),
            e: t.expires_at().map(to_millis),
            m: t.max_clicks(),
            c: t.clicks_used(),
            d: t.deleted,
        })
        .unwrap_or_default(),
    }
}

fn decode(code: &str, raw: &str) -> Option<Cached> {
    if raw == MISSING {
        return Some(Cached::Missing);
    }
    let w: Wire = serde_json::from_str(raw).ok()?;
    let target = RedirectTarget::new(
        TargetUrl::from_trusted(w.u),
        RedirectStatus::from_code(i64::from(w.s))?,
        w.d,
        Gate {
            password_hash: w.p,
            expires_at: w.e.map(from_millis),
            max_clicks: w.m,
            clicks_used: w.c,
        },
    );
    Some(Cached::Found(Arc::new(CachedTarget::new(code, target))))
}

/// The Redis L2.
#[derive(Clone)]
pub struct RedisCache {
    conn: RedisConn,
}

impl RedisCache {
    /// An L2 over a Redis connection.
    pub fn new(conn: RedisConn) -> Self {
        Self { conn }
    }

    fn channel(&self) -> String {
        format!("{}:invalidate", self.conn.prefix())
    }

    /// A cached value; `Ok(None)` on a miss, `Err(())` when Redis failed.
    pub async fn get(&self, code: &Code) -> Result<Option<Cached>, ()> {
        let key = self.conn.key("l", code.as_str());
        let raw: Option<String> = self
            .conn
            .call(|mut c| async move { c.get(key).await })
            .await?;
        Ok(raw.as_deref().and_then(|raw| decode(code.as_str(), raw)))
    }

    /// Stores a value with a lifetime.
    pub async fn set(&self, code: &Code, value: &Cached, ttl: Duration) -> Result<(), ()> {
        let key = self.conn.key("l", code.as_str());
        let raw = encode(value);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.conn
            .call(|mut c| async move { c.pset_ex::<_, _, ()>(key, raw, ms).await })
            .await
    }

    /// Removes a value.
    pub async fn delete(&self, code: &Code) -> Result<(), ()> {
        let key = self.conn.key("l", code.as_str());
        self.conn
            .call(|mut c| async move { c.del::<_, ()>(key).await })
            .await
    }

    /// Tells every node to drop `code` from its L1.
    pub async fn publish_invalidation(&self, code: &Code) -> Result<(), ()> {
        let channel = self.channel();
        let code = code.as_str().to_owned();
        self.conn
            .call(|mut c| async move { c.publish::<_, _, ()>(channel, code).await })
            .await
    }

    /// Applies other nodes' invalidations to `l1` until `shutdown`. Reconnects after a
    /// loss, and then empties L1: invalidations sent meanwhile were missed.
    pub fn listen(&self, l1: L1, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let client = self.conn.client().clone();
        let channel = self.channel();
        let timeout = self.conn.timeout().max(Duration::from_millis(500));
        tokio::spawn(async move {
            let mut connected_before = false;
            let mut backoff = crate::resilience::Backoff::default();
            while !shutdown.is_cancelled() {
                let pubsub = async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(ps)
                };
                let Ok(Ok(mut ps)) = tokio::time::timeout(timeout, pubsub).await else {
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                };
                backoff.reset();
                if connected_before {
                    tracing::info!("invalidation channel back; emptying L1");
                }
                l1.invalidate_all();
                l1.set_listening(true);
                connected_before = true;
                let mut messages = ps.on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(msg) => {
                                if let Ok(code) = msg.get_payload::<String>()
                                    && let Some(code) = Code::from_path(&code)
                                {
                                    l1.invalidate(&code);
                                }
                            }
                            None => {
                                l1.set_listening(false);
                                tracing::warn!("invalidation channel lost; reconnecting");
                                break;
                            }
                        },
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        let gated = RedirectTarget::new(
            TargetUrl::from_trusted("https://example.com/".into()),
            RedirectStatus::Permanent,
            false,
            Gate {
                password_hash: Some("$argon2id$x".into()),
                expires_at: Some(from_millis(1_700_000_000_000)),
                max_clicks: Some(3),
                clicks_used: 1,
            },
        );
        let open = RedirectTarget::new(
            TargetUrl::from_trusted("https://example.com/open".into()),
            RedirectStatus::Temporary,
            true,
            Gate::default(),
        );
        for target in [gated, open] {
            let t = Cached::Found(Arc::new(CachedTarget::new("abc", target)));
            assert_eq!(decode("abc", &encode(&t)), Some(t));
        }
        assert_eq!(
            decode("abc", &encode(&Cached::Missing)),
            Some(Cached::Missing)
        );
        assert_eq!(decode("abc", "{garbage"), None);
    }
}
