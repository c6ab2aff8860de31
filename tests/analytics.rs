//! Click analytics over HTTP: thousands of redirects with mixed agents, referrers and
//! addresses add up exactly in `/stats`, people and bots apart; queued clicks survive a
//! SIGTERM.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::process::Snip;
use common::*;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// (user agent, bot?, browser, device) — the expectations are written out, not computed.
const AGENTS: &[(&str, bool, &str, &str)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        false,
        "Chrome",
        "desktop",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        false,
        "Safari",
        "mobile",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        false,
        "Firefox",
        "desktop",
    ),
    (
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        true,
        "",
        "",
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        true,
        "",
        "",
    ),
    (
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        true,
        "",
        "",
    ),
    ("Twitterbot/1.0", true, "", ""),
];

const REFERRERS: &[Option<&str>] = &[
    Some("https://www.google.com/search?q=snip"),
    Some("https://t.co/xyz"),
    Some("https://news.ycombinator.com/item?id=1"),
    None,
];

/// A stats list (`[{value, clicks}]`) as a map.
fn counts(list: &Value) -> BTreeMap<String, i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_owned(),
                v["clicks"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn owned(m: &BTreeMap<&str, i64>) -> BTreeMap<String, i64> {
    m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn sum(list: &Value) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["clicks"].as_i64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_redirects_add_up_exactly_in_process() {
    let app = spawn_app_with(|c| c.rate_limits.trusted_proxies = vec!["127.0.0.1".into()]).await;
    ten_thousand_redirects_add_up_exactly(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_redirects_add_up_exactly_through_nats() {
    let Some(url) = common::nats::shared() else {
        return;
    };
    let names = common::nats::Names::unique();
    let app = spawn_app_with(|c| {
        c.rate_limits.trusted_proxies = vec!["127.0.0.1".into()];
        names.configure(&url, c);
    })
    .await;
    ten_thousand_redirects_add_up_exactly(&app).await;
    assert_eq!(
        app.metric("snip_click_events_total{state=\"published\"}")
            .await,
        10_000
    );
    drop(app);
    names.clean(&url).await;
}

async fn ten_thousand_redirects_add_up_exactly(app: &TestApp) {
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/stats")
        .await;

    // Request i: agent i % 7, referrer i % 4, address i % 50, and every 25th a HEAD.
    let n = 10_000usize;
    let plan: Vec<(usize, usize, usize, bool)> = (0..n)
        .map(|i| (i % AGENTS.len(), i % REFERRERS.len(), i % 50, i % 25 == 0))
        .collect();
    let statuses: Vec<StatusCode> = futures::stream::iter(plan.clone())
        .map(|(a, r, ip, head)| {
            let method = if head { Method::HEAD } else { Method::GET };
            let mut req = app
                .client
                .request(method, app.url(&format!("/{code}")))
                .header("user-agent", AGENTS[a].0)
                .header("x-forwarded-for", format!("198.51.100.{ip}"));
            if let Some(r) = REFERRERS[r] {
                req = req.header("referer", r);
            }
            async move { req.send().await.unwrap().status() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND));

    // Expected, from the plan.
    let mut bots = 0i64;
    let mut browsers: BTreeMap<&str, i64> = BTreeMap::new();
    let mut devices: BTreeMap<&str, i64> = BTreeMap::new();
    let mut visitors = HashSet::new();
    for (a, _, ip, head) in &plan {
        let (_, bot, browser, device) = AGENTS[*a];
        if bot || *head {
            bots += 1;
            continue;
        }
        *browsers.entry(browser).or_default() += 1;
        *devices.entry(device).or_default() += 1;
        visitors.insert((*a, *ip));
    }
    let humans = n as i64 - bots;

    // The worker writes every two seconds; wait (bounded) until all are written.
    for _ in 0..400 {
        if app
            .metric("snip_click_events_total{state=\"written\"}")
            .await
            >= n as u64
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.metric("snip_click_events_total{state=\"dropped\"}")
            .await,
        0
    );
    // Written in batches (one transaction each), far fewer than the clicks.
    let batches = app.metric("snip_click_batches_total").await;
    assert!((1..n as u64).contains(&batches), "{batches} batches");

    let path = format!("/api/v1/links/{code}/stats");
    let s = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(s["total"], n as i64);
    assert_eq!(s["bots"], bots);
    assert_eq!(s["humans"], humans);
    assert_eq!(s["unique_visitors"], visitors.len() as i64);
    let series_total: i64 = s["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["clicks"].as_i64().unwrap())
        .sum();
    assert_eq!(series_total, n as i64);
    for dim in ["referrers", "browsers", "os", "devices", "countries"] {
        assert_eq!(
            sum(&s[dim]),
            humans,
            "{dim} do not add up to the people's clicks"
        );
    }
    assert_eq!(counts(&s["browsers"]), owned(&browsers));
    assert_eq!(counts(&s["devices"]), owned(&devices));
    let referrers: Vec<&str> = s["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    for r in ["google.com", "t.co", "news.ycombinator.com", "direct"] {
        assert!(referrers.contains(&r), "{r} missing from {referrers:?}");
    }
    assert_eq!(
        s["countries"],
        json!([{"value": "unknown", "clicks": humans}])
    );

    // The link's own click total agrees.
    let link = expect_json(
        app.get(&format!("/api/v1/links/{code}"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["clicks"], n as i64);
}

#[tokio::test]
async fn stats_parameters_are_checked_and_stats_are_private() {
    let app = spawn_app().await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/p")
        .await;
    let path = format!("/api/v1/links/{code}/stats");
    for (q, field) in [
        ("?from=yesterday", "from"),
        ("?interval=week", "interval"),
        ("?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "from"),
        ("?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z", "from"),
        (
            "?interval=hour&from=2030-01-01T00:00:00Z&to=2030-03-01T00:00:00Z",
            "from",
        ),
    ] {
        expect_field_error(app.get(&format!("{path}{q}"), &app.admin_key).await, field).await;
    }
    let s = expect_json(
        app.get(
            &format!("{path}?from=2030-01-01T00:00:00Z&to=2030-01-03T00:00:00Z&interval=day"),
            &app.admin_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(s["series"].as_array().unwrap().len(), 2);
    assert_eq!(s["series"][0]["t"], "2030-01-01T00:00:00.000Z");
    let (_, other) = app.create_user("o@example.com").await;
    expect_problem(app.get(&path, &other).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_clicks_are_written_before_exit_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let key = "snip_TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT";
    let snip = Snip::start(dir.path(), &db, key, "", &[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .post(snip.url("/api/v1/links"))
        .bearer_auth(key)
        .json(&json!({"url": "https://example.com/", "alias": "flush"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for _ in 0..300 {
        let res = client
            .get(snip.url("/flush"))
            .header("user-agent", AGENTS[0].0)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
    }
    // Straight away: most clicks are still in the queue.
    snip.terminate();
    let status = tokio::task::spawn_blocking(move || snip.wait())
        .await
        .unwrap();
    assert!(status.success());

    let snip = Snip::start(dir.path(), &db, key, "", &[]);
    let link = snip.get_json(&client, "/api/v1/links/flush", key).await;
    assert_eq!(link["clicks"], 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countries_come_from_the_geoip_database() {
    let db = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/geoip-test.mmdb");
    let app = spawn_app_with(|c| {
        c.rate_limits.trusted_proxies = vec!["127.0.0.1".into()];
        c.geoip = Some(db);
    })
    .await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/geo")
        .await;
    // 3 × Germany, 2 × France, 1 × Japan, 1 × an address the database does not know.
    let from = [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.130",
        "198.51.100.131",
        "203.0.113.5",
        "192.0.2.1",
    ];
    for ip in from {
        let res = app
            .client
            .get(app.url(&format!("/{code}")))
            .header("user-agent", AGENTS[0].0)
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    for _ in 0..100 {
        if app
            .metric("snip_click_events_total{state=\"written\"}")
            .await
            >= 7
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = expect_json(
        app.get(&format!("/api/v1/links/{code}/stats"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        s["countries"],
        json!([
            {"value": "DE", "clicks": 3},
            {"value": "FR", "clicks": 2},
            {"value": "JP", "clicks": 1},
            {"value": "unknown", "clicks": 1},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_made_with_older_settings_is_brought_up_to_date() {
    use async_nats::jetstream::{self, consumer};
    let Some(url) = common::nats::shared() else {
        return;
    };
    let names = common::nats::Names::unique();
    // The stream and its consumer as an older version made them: a 30 s ack wait.
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: names.stream.clone(),
            subjects: vec![names.subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(names.durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: std::time::Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();

    let app = spawn_app_with(|c| names.configure(&url, c)).await;
    let want = std::time::Duration::from_secs(snip::clicks::nats::ACK_WAIT_SECS);
    let mut seen = None;
    for _ in 0..100 {
        let mut c: consumer::PullConsumer = stream.get_consumer(&names.durable).await.unwrap();
        seen = Some(c.info().await.unwrap().config.ack_wait);
        if seen == Some(want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, Some(want));
    // And the workers consume through it.
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/")
        .await;
    assert!(app.redirect(&code).await.status().is_redirection());
    let mut written = 0;
    for _ in 0..100 {
        written = app
            .metric("snip_click_events_total{state=\"written\"}")
            .await;
        if written == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(written, 1);
    drop(app);
    names.clean(&url).await;
}

#[tokio::test]
async fn with_analytics_off_redirects_work_and_count_no_click() {
    let app = spawn_app_with(|c| c.analytics = false).await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/quiet")
        .await;
    for _ in 0..5 {
        let res = app.redirect(&code).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert_eq!(header(&res, "location"), "https://example.com/quiet");
    }
    // A click is queued as its redirect is answered: none was.
    for state in ["queued", "dropped", "written"] {
        let series = format!("snip_click_events_total{{state=\"{state}\"}}");
        assert_eq!(app.metric(&series).await, 0, "{state}");
    }
    assert_eq!(app.metric("snip_click_queue_depth").await, 0);
    // The link and its statistics still answer, with no click.
    let link = expect_json(
        app.get(&format!("/api/v1/links/{code}"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["clicks"], 0);
    let path = format!("/api/v1/links/{code}/stats");
    let stats = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(stats["total"], 0, "{stats}");
}
