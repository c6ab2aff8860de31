//! One rate-limiter suite, run against both backends: in-process buckets and the Redis Lua
//! script on the shared Redis. Time is passed in, so refill is tested without sleeping.

mod common;

use std::sync::Arc;

use common::redis::{shared, unique_prefix};
use snip::ratelimit::local::LocalLimiter;
use snip::ratelimit::redis::RedisLimiter;
use snip::ratelimit::{Backend, Limiter, Policy, PolicyName, RateLimits};
use snip::redis_conn::RedisConn;

fn limits() -> RateLimits {
    RateLimits {
        writes: Policy::new(5.0, 2.0),
        reads: Policy::new(10.0, 1.0),
        anonymous: Policy::new(3.0, 0.5),
        redirects: Policy::new(30.0, 10.0),
        ..RateLimits::default()
    }
}

fn memory(_test: &str, limits: RateLimits) -> Option<Limiter> {
    Some(Limiter::new(
        Backend::Local(LocalLimiter::default()),
        limits,
    ))
}

fn redis(test: &str, limits: RateLimits) -> Option<Limiter> {
    let url = shared()?;
    let conn = RedisConn::new(
        &url,
        &unique_prefix(test),
        std::time::Duration::from_secs(2),
    )
    .expect("redis connection");
    Some(Limiter::new(
        Backend::Redis(Box::new(RedisLimiter::new(conn, 1))),
        limits,
    ))
}

/// Takes `n` tokens at `now`, returning how many were admitted.
async fn admitted(l: &Limiter, name: PolicyName, key: &str, n: usize, now: i64) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if l.check(name, key, now)
            .await
            .expect("limiting is on")
            .allowed
        {
            ok += 1;
        }
    }
    ok
}

macro_rules! limiter_suite {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            const T0: i64 = 1_800_000_000_000;

            #[tokio::test]
            async fn a_burst_admits_exactly_the_capacity() {
                let Some(l) = super::$backend("burst", limits()) else {
                    return;
                };
                assert_eq!(admitted(&l, PolicyName::Writes, "k1", 8, T0).await, 5);
                let d = l.check(PolicyName::Writes, "k1", T0).await.unwrap();
                assert!(!d.allowed);
                assert!((d.retry_after - 0.5).abs() < 1e-6, "{d:?}");
                assert_eq!(l.limited(), vec![(PolicyName::Writes, 4)]);
            }

            #[tokio::test]
            async fn tokens_refill_with_time_up_to_the_capacity() {
                let Some(l) = super::$backend("refill", limits()) else {
                    return;
                };
                assert_eq!(admitted(&l, PolicyName::Writes, "k", 5, T0).await, 5);
                // 1.25 s at 2/s: 2.5 tokens, so two requests pass.
                assert_eq!(
                    admitted(&l, PolicyName::Writes, "k", 3, T0 + 1_250).await,
                    2
                );
                // The half token left + 0.25 s = 1 token.
                assert_eq!(
                    admitted(&l, PolicyName::Writes, "k", 2, T0 + 1_500).await,
                    1
                );
                // A long pause refills to the capacity, no more.
                assert_eq!(
                    admitted(&l, PolicyName::Writes, "k", 9, T0 + 600_000).await,
                    5
                );
            }

            #[tokio::test]
            async fn keys_and_policies_have_separate_buckets() {
                let Some(l) = super::$backend("separate", limits()) else {
                    return;
                };
                assert_eq!(
                    admitted(&l, PolicyName::Anonymous, "1.2.3.4", 5, T0).await,
                    3
                );
                assert_eq!(
                    admitted(&l, PolicyName::Anonymous, "5.6.7.8", 5, T0).await,
                    3
                );
                assert_eq!(admitted(&l, PolicyName::Reads, "1.2.3.4", 12, T0).await, 10);
            }

            #[tokio::test]
            async fn a_costly_request_takes_all_its_tokens_or_none() {
                let Some(l) = super::$backend("cost", limits()) else {
                    return;
                };
                let d = l.take(PolicyName::Reads, "k", T0, 7).await.unwrap();
                assert!(d.allowed && (d.remaining - 3.0).abs() < 1e-6, "{d:?}");
                // 3 left: a request of 4 is refused and takes nothing; it may retry once the
                // missing token has come (1 s at 1 token/s).
                let d = l.take(PolicyName::Reads, "k", T0, 4).await.unwrap();
                assert!(!d.allowed && (d.remaining - 3.0).abs() < 1e-6, "{d:?}");
                assert!((d.retry_after - 1.0).abs() < 1e-6, "{d:?}");
                let d = l.take(PolicyName::Reads, "k", T0, 3).await.unwrap();
                assert!(d.allowed && d.remaining.abs() < 1e-6, "{d:?}");
            }

            #[tokio::test]
            async fn remaining_and_reset_are_reported() {
                let Some(l) = super::$backend("report", limits()) else {
                    return;
                };
                let d = l.check(PolicyName::Reads, "k", T0).await.unwrap();
                assert!(d.allowed);
                assert!((d.remaining - 9.0).abs() < 1e-6, "{d:?}");
                assert!((d.reset_after - 1.0).abs() < 1e-6, "{d:?}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_requests_never_overdraw() {
                let Some(l) = super::$backend("concurrent", limits()) else {
                    return;
                };
                let l = Arc::new(l);
                let tasks: Vec<_> = (0..100)
                    .map(|_| {
                        let l = l.clone();
                        tokio::spawn(async move {
                            l.check(PolicyName::Redirects, "ip", T0)
                                .await
                                .unwrap()
                                .allowed
                        })
                    })
                    .collect();
                let mut ok = 0;
                for t in tasks {
                    ok += usize::from(t.await.unwrap());
                }
                assert_eq!(ok, 30);
            }

            #[tokio::test]
            async fn turned_off_it_decides_nothing() {
                let off = RateLimits {
                    enabled: false,
                    ..limits()
                };
                let Some(l) = super::$backend("off", off) else {
                    return;
                };
                assert!(l.check(PolicyName::Writes, "k", T0).await.is_none());
            }
        }
    };
}

limiter_suite!(memory);
limiter_suite!(redis);

#[tokio::test]
async fn two_limiters_on_one_redis_share_one_budget() {
    let Some(url) = shared() else { return };
    let prefix = unique_prefix("shared-budget");
    let node = || {
        let conn = RedisConn::new(&url, &prefix, std::time::Duration::from_secs(2)).unwrap();
        Limiter::new(
            Backend::Redis(Box::new(RedisLimiter::new(conn, 2))),
            limits(),
        )
    };
    let (a, b) = (node(), node());
    let t = 1_800_000_000_000;
    let mut ok = 0;
    for i in 0..20 {
        let l = if i % 2 == 0 { &a } else { &b };
        ok += usize::from(l.check(PolicyName::Writes, "k", t).await.unwrap().allowed);
    }
    assert_eq!(ok, 5);
    assert_eq!(a.fallbacks() + b.fallbacks(), 0);
}

#[tokio::test]
async fn with_redis_down_the_limiter_falls_back_to_its_share() {
    // Nothing listens on this port: every call fails at once.
    let port = common::redis::free_port();
    let conn = RedisConn::new(
        &format!("redis://127.0.0.1:{port}"),
        "snip-test",
        std::time::Duration::from_millis(200),
    )
    .unwrap();
    let l = Limiter::new(
        Backend::Redis(Box::new(RedisLimiter::new(conn, 5))),
        limits(),
    );
    // 30 redirects a node in a cluster of 5: this node's share is 6.
    let ok = admitted(&l, PolicyName::Redirects, "ip", 10, 1_800_000_000_000).await;
    assert_eq!(ok, 6);
    assert_eq!(l.fallbacks(), 10);
}
