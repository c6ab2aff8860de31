//! The whole service on PostgreSQL: `--database postgres://…` selects the adapter, and the
//! API and redirects behave as on SQLite (the store suite proves the details).

mod common;

use common::postgres::TestDb;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_created_listed_followed_and_deleted_on_postgres() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let app = spawn_app_with(|c| c.database_url = db.url.clone()).await;
    let (_, key) = app.create_user("pg@example.com").await;
    let link = app
        .create_link(
            &key,
            &json!({"url": "https://example.com/pg", "tags": ["b", "a"], "max_clicks": 2}),
        )
        .await;
    let code = str_field(&link, "code");
    assert_eq!(link["tags"], json!(["a", "b"]));
    let page = expect_json(app.get("/api/v1/links?page=1", &key).await, StatusCode::OK).await;
    assert_eq!(page["total"], 1);
    for _ in 0..2 {
        let res = app.redirect(&code).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert_eq!(header(&res, "location"), "https://example.com/pg");
    }
    expect_problem(app.redirect(&code).await, StatusCode::GONE).await;
    let alias = app
        .post_link(
            &key,
            &json!({"url": "https://example.com/x", "alias": code}),
        )
        .await;
    expect_problem(alias, StatusCode::CONFLICT).await;
    drop(app);
}
