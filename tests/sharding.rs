//! Sharding end to end: links spread over PostgreSQL shards by the ring, a listing merged
//! across shards, and an online rebalance after adding a shard while redirects go on.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::postgres::{TestDb, shard_configs};
use common::proxy::{Mode, Proxy};
use common::*;
use rand::seq::IndexedRandom;
use reqwest::{Method, StatusCode};
use serde_json::json;
use snip::config::ShardConfig;
use snip::domain::code::Code;
use snip::domain::link::RedirectStatus;
use snip::domain::target_url::TargetUrl;
use snip::store::postgres::PgStore;
use snip::store::ring::{Ring, RingMember};
use snip::store::sharded::{Shard, ShardedStore};
use snip::store::{LinkFields, LinkRecord, LinkStore};

async fn sharded(dbs: &[TestDb]) -> ShardedStore {
    let mut shards = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        shards.push(Shard {
            name: format!("shard-{i}"),
            vnodes: 200,
            store: Arc::new(PgStore::connect(&db.url).await.unwrap()),
        });
    }
    ShardedStore::new(shards).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_shard_and_rebalancing_online_loses_no_redirect() {
    let mut dbs = Vec::new();
    for _ in 0..3 {
        let Some(db) = TestDb::create().await else {
            return;
        };
        dbs.push(db);
    }
    // The app on three shards; users live on the first.
    let app = spawn_app_with(|c| c.shards = shard_configs(&dbs)).await;
    let (owner, _) = app.create_user("bulk@example.com").await;

    // 20k links placed by a ring of the first two shards only: the layout before the third
    // shard was added.
    let two = sharded(&dbs[..2]).await;
    let now = Utc::now();
    let links: Vec<LinkRecord> = (0..20_000)
        .map(|i| LinkRecord {
            code: Code::generate(7),
            fields: LinkFields {
                url: TargetUrl::from_trusted(format!("https://example.com/{i}")),
                title: None,
                tags: vec![],
                expires_at: None,
                max_clicks: None,
                redirect_status: RedirectStatus::Found,
                password_hash: None,
            },
            owner_id: owner,
            clicks: 0,
            created_at: now + TimeDelta::milliseconds(i),
            updated_at: now,
        })
        .collect();
    for batch in links.chunks(2_000) {
        assert!(
            two.insert_links(batch)
                .await
                .unwrap()
                .iter()
                .all(Result::is_ok)
        );
    }
    let three = sharded(&dbs).await;
    let predicted = links
        .iter()
        .filter(|l| {
            let c = l.code.as_str().as_bytes();
            two.ring().owner_name(c) != three.ring().owner_name(c)
        })
        .count();

    // Redirect continuously while the rebalance runs.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sample: Vec<(String, String)> = links
        .iter()
        .map(|l| (l.code.to_string(), l.fields.url.as_str().to_owned()))
        .collect();
    let client = app.client.clone();
    let base = app.base.clone();
    let redirector = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 200_000 {
                n += 1;
                let (code, url) = sample.choose(&mut rand::rng()).unwrap().clone();
                let ok = match client.get(format!("{base}/{code}")).send().await {
                    Ok(res) => {
                        res.status() == StatusCode::FOUND
                            && res.headers().get("location").and_then(|l| l.to_str().ok())
                                == Some(url.as_str())
                    }
                    Err(_) => false,
                };
                let counter = if ok { &served } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let moved = three.rebalance().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    redirector.await.unwrap();

    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "redirects failed during the rebalance"
    );
    assert!(
        served.load(Ordering::Relaxed) > 100,
        "too few redirects to say anything"
    );
    assert_eq!(moved as usize, predicted);
    let share = predicted as f64 / links.len() as f64;
    assert!(
        (0.25..=0.42).contains(&share),
        "{share} of the links moved to the new shard"
    );

    // Every link is now on its owner, and only there.
    for (i, db) in dbs.iter().enumerate() {
        let store = PgStore::connect(&db.url).await.unwrap();
        let name = format!("shard-{i}");
        let mut after = String::new();
        let mut here = 0;
        loop {
            let codes = store.codes_after(&after, 5_000).await.unwrap();
            let Some(last) = codes.last() else { break };
            after = last.to_string();
            for c in &codes {
                assert_eq!(three.ring().owner_name(c.as_str().as_bytes()), name);
            }
            here += codes.len();
        }
        assert!(here > 0);
        store.close().await;
    }
    for l in links.iter().step_by(50) {
        let t = three
            .get_redirect(&l.code)
            .await
            .unwrap()
            .expect("link lost");
        assert_eq!(t.url, l.fields.url);
    }
    // A second rebalance has nothing left to do.
    assert_eq!(three.rebalance().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_one_users_links_across_shards_in_order() {
    let mut dbs = Vec::new();
    for _ in 0..3 {
        let Some(db) = TestDb::create().await else {
            return;
        };
        dbs.push(db);
    }
    let app = spawn_app_with(|c| c.shards = shard_configs(&dbs)).await;
    let (_, key) = app.create_user("lister@example.com").await;
    let mut codes = Vec::new();
    for i in 0..40 {
        codes.push(
            app.create_link_to(&key, &format!("https://example.com/{i}"))
                .await,
        );
        if i % 10 == 0 {
            app.clock.advance(chrono::Duration::milliseconds(1));
        }
    }
    let three = sharded(&dbs).await;
    let on: Vec<usize> = codes
        .iter()
        .map(|c| three.ring().owner(c.as_bytes()))
        .collect();
    assert!(
        (0..3).all(|s| on.contains(&s)),
        "the links did not spread over all shards"
    );

    let walked = app.walk_cursor("/api/v1/links?limit=7", &key, 20).await;
    let walked = common::codes(&walked);
    let mut expected = walked.clone();
    expected.sort();
    let mut created = codes.clone();
    created.sort();
    assert_eq!(expected, created, "the cursor walk lost or repeated links");
    let page = expect_json(
        app.get("/api/v1/links?page=2&limit=15", &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["total"], 40);
    assert_eq!(common::codes(&items(&page)), walked[15..30].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snip_shards_rebalance_reports_what_it_moved() {
    let mut dbs = Vec::new();
    for _ in 0..2 {
        let Some(db) = TestDb::create().await else {
            return;
        };
        dbs.push(db);
    }
    // Shards named by URL, as `--shard URL` names them.
    async fn shard(db: &TestDb) -> Shard {
        Shard {
            name: db.url.clone(),
            vnodes: 200,
            store: Arc::new(PgStore::connect(&db.url).await.unwrap()),
        }
    }
    let one = ShardedStore::new(vec![shard(&dbs[0]).await]).unwrap();
    let links: Vec<LinkRecord> = (0..300)
        .map(|i| LinkRecord {
            code: Code::generate(7),
            fields: LinkFields {
                url: TargetUrl::from_trusted(format!("https://example.com/{i}")),
                title: None,
                tags: vec!["t".into()],
                expires_at: None,
                max_clicks: None,
                redirect_status: RedirectStatus::Found,
                password_hash: None,
            },
            owner_id: 1,
            clicks: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .collect();
    one.insert_links(&links).await.unwrap();
    let two = ShardedStore::new(vec![shard(&dbs[0]).await, shard(&dbs[1]).await]).unwrap();
    let predicted = links
        .iter()
        .filter(|l| two.ring().owner(l.code.as_str().as_bytes()) == 1)
        .count();
    let out = tokio::task::spawn_blocking({
        let (a, b) = (dbs[0].url.clone(), dbs[1].url.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
                .args(["shards", "rebalance", "--shard", &a, "--shard", &b])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("moved {predicted} links")
    );
    for l in &links {
        let t = two.get_link(&l.code).await.unwrap().expect("link lost");
        assert_eq!(t.fields.tags, ["t"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_in_flight_is_409_and_free_again_when_its_request_fails() {
    let (Some(directory), Some(links_db)) = (TestDb::create().await, TestDb::create().await) else {
        return;
    };
    // The second shard is reached through a proxy that can make it hang.
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let behind = links_db
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    let app = spawn_app_with(|c| {
        c.shards = [directory.url.clone(), behind]
            .into_iter()
            .enumerate()
            .map(|(i, url)| ShardConfig {
                url,
                name: Some(format!("shard-{i}")),
                vnodes: None,
            })
            .collect();
        c.store_timeout_ms = 5_000;
    })
    .await;
    // An alias the ring places on the second shard.
    let ring = Ring::new(
        (0..2)
            .map(|i| RingMember {
                name: format!("shard-{i}"),
                vnodes: 200,
            })
            .collect(),
    );
    let alias = (0..)
        .map(|i| format!("inflight{i}"))
        .find(|a| ring.owner(a.as_bytes()) == 1)
        .unwrap();
    let body = json!({ "url": "https://example.com/in-flight", "alias": alias });
    let post = || {
        app.request(Method::POST, "/api/v1/links", Some(&app.admin_key))
            .header("idempotency-key", "once")
            .json(&body)
            .send()
    };

    // The first request claims the key on the directory, then hangs on the second shard.
    proxy.set(Mode::Blackhole);
    let first = tokio::spawn(post());
    let seen = PgStore::connect(&directory.url).await.unwrap();
    let started = Instant::now();
    loop {
        let record = seen
            .get_idempotency(ADMIN_ID, "once", Utc::now() - TimeDelta::hours(1))
            .await
            .unwrap();
        if record.is_some_and(|r| r.response.is_none()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the first request never claimed its key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!first.is_finished(), "the first request did not hang");
    let second = post().await.unwrap();
    let problem = expect_problem(second, StatusCode::CONFLICT).await;
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("#idempotency-in-flight")),
        "not the in-flight conflict: {problem}"
    );

    // The hanging request fails; its claim is released, so the key may be used again.
    let first = first.await.unwrap().unwrap();
    expect_problem(first, StatusCode::SERVICE_UNAVAILABLE).await;
    proxy.set(Mode::Pass);
    let started = Instant::now();
    let created = loop {
        let res = post().await.unwrap();
        if res.status() == StatusCode::CREATED {
            break res.bytes().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the key stayed taken after its request failed: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // And it is an ordinary key again: the same request replays the stored answer.
    let again = post().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.bytes().await.unwrap(), created);
}
