//! Node roles: an API node, a redirect node and a worker on one PostgreSQL database and one
//! NATS stream. Each serves only its part; the worker applies the redirect node's clicks.

mod common;

use common::nats::Names;
use common::postgres::TestDb;
use common::*;
use reqwest::StatusCode;
use snip::config::NodeRole;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_redirect_and_worker_nodes_split_the_work() {
    let Some(url) = common::nats::shared() else {
        return;
    };
    let Some(db) = TestDb::create().await else {
        return;
    };
    let names = Names::unique();
    let node = |role: NodeRole| {
        let (db, url, names) = (db.url.clone(), url.clone(), &names);
        spawn_app_with(move |c| {
            c.role = role;
            c.database_url = db;
            names.configure(&url, c);
        })
    };
    let api = node(NodeRole::Api).await;
    let redirect = node(NodeRole::Redirect).await;
    let worker = node(NodeRole::Worker).await;

    let code = api
        .create_link_to(&api.admin_key, "https://example.com/roles")
        .await;
    expect_problem(api.redirect(&code).await, StatusCode::NOT_FOUND).await;
    expect_problem(
        redirect.get("/api/v1/me", &redirect.admin_key).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(worker.redirect(&code).await, StatusCode::NOT_FOUND).await;
    assert_eq!(worker.get_anon("/healthz").await.status(), StatusCode::OK);

    for _ in 0..50 {
        assert_eq!(redirect.redirect(&code).await.status(), StatusCode::FOUND);
    }
    let written = "snip_click_events_total{state=\"written\"}";
    for _ in 0..200 {
        if worker.metric(written).await >= 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(worker.metric(written).await, 50);
    assert_eq!(
        redirect.metric(written).await,
        0,
        "the redirect node applied clicks"
    );
    assert_eq!(
        redirect
            .metric("snip_click_events_total{state=\"published\"}")
            .await,
        50
    );
    let stats = expect_json(
        api.get(&format!("/api/v1/links/{code}/stats"), &api.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stats["total"], 50);
    drop((api, redirect, worker));
    names.clean(&url).await;
}

#[tokio::test]
async fn a_worker_without_nats_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = snip::Config {
        role: NodeRole::Worker,
        database_url: format!("sqlite://{}/w.db", dir.path().display()),
        ..snip::Config::default()
    };
    let clock = std::sync::Arc::new(snip::clock::SystemClock);
    let err = snip::App::build(config, clock)
        .await
        .err()
        .expect("built a worker without NATS");
    assert!(err.to_string().contains("--nats"), "{err}");
}
