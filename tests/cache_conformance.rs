//! One redirect-cache suite, run against both setups: L1 alone (memory) and L1 over a Redis
//! L2 on the shared Redis. The store underneath is a real SQLite file.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use common::redis::{shared, unique_prefix};
use snip::cache::{CacheSettings, RedirectCache, RedisCache};
use snip::domain::code::Code;
use snip::domain::link::RedirectStatus;
use snip::domain::target_url::TargetUrl;
use snip::domain::user::{Email, Role, UserDraft};
use snip::redis_conn::RedisConn;
use snip::store::sqlite::SqliteStore;
use snip::store::{LinkFields, LinkRecord, LinkStore, UserStore};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

struct Setup {
    store: Arc<SqliteStore>,
    owner: i64,
    l2: Option<Arc<RedisCache>>,
    stop: CancellationToken,
    _dir: TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Setup {
    /// A cache node over the shared store (and L2, if any), listening for invalidations.
    async fn node(&self) -> Arc<RedirectCache> {
        let cache = Arc::new(RedirectCache::new(
            self.store.clone() as Arc<dyn LinkStore>,
            self.l2.clone(),
            CacheSettings::default(),
        ));
        if let Some(l2) = &self.l2 {
            l2.listen(cache.l1().clone(), self.stop.clone());
            // Subscribing empties L1 once; start the test after that.
            for _ in 0..200 {
                if cache.l1().is_listening() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                cache.l1().is_listening(),
                "the invalidation listener did not start"
            );
        }
        cache
    }

    async fn insert(&self, code: &str, url: &str) -> Code {
        let now = Utc::now();
        let link = LinkRecord {
            code: Code::parse_alias(code).unwrap(),
            fields: fields(url),
            owner_id: self.owner,
            clicks: 0,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_link(&link, None).await.unwrap();
        link.code
    }
}

fn fields(url: &str) -> LinkFields {
    LinkFields {
        url: TargetUrl::from_trusted(url.to_owned()),
        title: None,
        tags: vec![],
        expires_at: None,
        max_clicks: None,
        redirect_status: RedirectStatus::Found,
        password_hash: None,
    }
}

async fn store() -> (Arc<SqliteStore>, i64, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    let owner = store
        .create_user(
            &UserDraft {
                email: Email::parse("o@example.com").unwrap(),
                name: String::new(),
                role: Role::Member,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    (Arc::new(store), owner.id, dir)
}

async fn memory(_test: &str) -> Option<Setup> {
    let (store, owner, dir) = store().await;
    Some(Setup {
        store,
        owner,
        l2: None,
        stop: CancellationToken::new(),
        _dir: dir,
    })
}

async fn redis(test: &str) -> Option<Setup> {
    let url = shared()?;
    let (store, owner, dir) = store().await;
    let conn = RedisConn::new(&url, &unique_prefix(test), Duration::from_secs(2)).unwrap();
    Some(Setup {
        store,
        owner,
        l2: Some(Arc::new(RedisCache::new(conn))),
        stop: CancellationToken::new(),
        _dir: dir,
    })
}

fn loads(c: &RedirectCache) -> u64 {
    c.stats().store_loads.load(Ordering::SeqCst)
}

async fn url_of(c: &RedirectCache, code: &Code) -> Option<String> {
    c.get(code)
        .await
        .unwrap()
        .map(|t| t.url.as_str().to_owned())
}

macro_rules! cache_suite {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn a_miss_loads_once_then_hits() {
                let Some(s) = super::$backend("miss-hit").await else {
                    return;
                };
                let code = s.insert("abc", "https://example.com/a").await;
                let c = s.node().await;
                assert_eq!(
                    url_of(&c, &code).await.as_deref(),
                    Some("https://example.com/a")
                );
                assert_eq!(
                    url_of(&c, &code).await.as_deref(),
                    Some("https://example.com/a")
                );
                let st = c.stats();
                assert_eq!(st.l1_misses.load(Ordering::SeqCst), 1);
                assert_eq!(st.l1_hits.load(Ordering::SeqCst), 1);
                assert_eq!(loads(&c), 1);
            }

            #[tokio::test]
            async fn unknown_codes_are_cached_until_the_code_is_created() {
                let Some(s) = super::$backend("negative").await else {
                    return;
                };
                let c = s.node().await;
                let code = Code::parse_alias("later").unwrap();
                for _ in 0..5 {
                    assert_eq!(url_of(&c, &code).await, None);
                }
                assert_eq!(c.stats().l1_negative_hits.load(Ordering::SeqCst), 4);
                assert_eq!(loads(&c), 1);
                s.insert("later", "https://example.com/l").await;
                c.refresh(&code).await;
                assert_eq!(
                    url_of(&c, &code).await.as_deref(),
                    Some("https://example.com/l")
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_misses_of_one_code_are_one_load() {
                let Some(s) = super::$backend("coalesce").await else {
                    return;
                };
                let code = s.insert("hot", "https://example.com/hot").await;
                let c = s.node().await;
                let tasks: Vec<_> = (0..50)
                    .map(|_| {
                        let (c, code) = (c.clone(), code.clone());
                        tokio::spawn(async move { url_of(&c, &code).await })
                    })
                    .collect();
                for t in tasks {
                    assert_eq!(t.await.unwrap().as_deref(), Some("https://example.com/hot"));
                }
                assert_eq!(loads(&c), 1);
                assert_eq!(c.loads_in_flight(), 0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn requests_that_give_up_mid_load_leave_no_load_behind() {
                let Some(s) = super::$backend("give_up").await else {
                    return;
                };
                let mut codes = Vec::new();
                for i in 0..20 {
                    codes.push(s.insert(&format!("gone{i}"), "https://example.com/").await);
                }
                let c = s.node().await;
                // Each code is asked for by three requests, dropped at once, most of them
                // while the load they share is running: all three for even codes, all but
                // the last for odd ones.
                for (n, code) in codes.iter().enumerate() {
                    let waiting: Vec<_> = (0..3)
                        .map(|_| {
                            let (c, code) = (c.clone(), code.clone());
                            tokio::spawn(async move { url_of(&c, &code).await })
                        })
                        .collect();
                    tokio::task::yield_now().await;
                    for (i, t) in waiting.into_iter().enumerate() {
                        if i < 2 || n % 2 == 0 {
                            t.abort();
                        } else {
                            assert_eq!(t.await.unwrap().as_deref(), Some("https://example.com/"));
                        }
                    }
                }
                for _ in 0..100 {
                    if c.loads_in_flight() == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(c.loads_in_flight(), 0);
                // A request that stayed to the end put its code in L1: asking for the odd
                // codes again loads nothing.
                let before = loads(&c);
                let hits = c.stats().l1_hits.load(Ordering::SeqCst);
                for code in codes.iter().skip(1).step_by(2) {
                    assert_eq!(
                        url_of(&c, code).await.as_deref(),
                        Some("https://example.com/")
                    );
                }
                assert_eq!(loads(&c), before, "an odd code was not cached by its load");
                assert_eq!(c.stats().l1_hits.load(Ordering::SeqCst), hits + 10);
                // A code whose every request gave up is not stuck: it loads (at most once)
                // and is answered, then cached.
                for code in &codes {
                    assert_eq!(
                        url_of(&c, code).await.as_deref(),
                        Some("https://example.com/")
                    );
                }
                assert!(
                    loads(&c) <= before + 10,
                    "a code loaded twice after the aborts"
                );
                let after = loads(&c);
                for code in &codes {
                    assert_eq!(
                        url_of(&c, code).await.as_deref(),
                        Some("https://example.com/")
                    );
                }
                assert_eq!(loads(&c), after);
            }

            #[tokio::test]
            async fn refresh_after_a_write_serves_the_new_state() {
                let Some(s) = super::$backend("refresh").await else {
                    return;
                };
                let code = s.insert("chg", "https://example.com/old").await;
                let c = s.node().await;
                assert_eq!(
                    url_of(&c, &code).await.as_deref(),
                    Some("https://example.com/old")
                );
                s.store
                    .update_link(&code, &fields("https://example.com/new"), Utc::now())
                    .await
                    .unwrap();
                c.refresh(&code).await;
                assert_eq!(
                    url_of(&c, &code).await.as_deref(),
                    Some("https://example.com/new")
                );
                s.store.delete_link(&code, Utc::now()).await.unwrap();
                c.refresh(&code).await;
                assert!(c.get(&code).await.unwrap().unwrap().deleted);
            }
        }
    };
}

cache_suite!(memory);
cache_suite!(redis);

#[tokio::test]
async fn a_second_node_is_served_from_l2() {
    let Some(s) = redis("l2-shared").await else {
        return;
    };
    let code = s.insert("shared", "https://example.com/s").await;
    let (a, b) = (s.node().await, s.node().await);
    assert_eq!(
        url_of(&a, &code).await.as_deref(),
        Some("https://example.com/s")
    );
    assert_eq!(
        url_of(&b, &code).await.as_deref(),
        Some("https://example.com/s")
    );
    assert_eq!((loads(&a), loads(&b)), (1, 0));
    assert_eq!(b.stats().l2_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_obeyed_by_the_other_within_a_second() {
    let Some(s) = redis("invalidate").await else {
        return;
    };
    let code = s.insert("both", "https://example.com/v1").await;
    let (a, b) = (s.node().await, s.node().await);
    assert_eq!(
        url_of(&b, &code).await.as_deref(),
        Some("https://example.com/v1")
    );
    s.store
        .update_link(&code, &fields("https://example.com/v2"), Utc::now())
        .await
        .unwrap();
    a.refresh(&code).await;
    let started = std::time::Instant::now();
    while url_of(&b, &code).await.as_deref() != Some("https://example.com/v2") {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B still serves the old URL after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(b.stats().invalidations.load(Ordering::SeqCst) >= 1);
}
