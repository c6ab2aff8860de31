//! No N+1 in the dashboard: a page of a user's links costs the same few SQL statements
//! with 100 links or 10,000, on the first page or the fortieth, searched or not (counted
//! by `common::statements`). One test in this file: the counter is process-global.

mod common;

use common::statements::{install, statements_of};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Loads `n` more links for the admin through the bulk API.
async fn load(app: &TestApp, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(1000) {
        let items = chunk
            .iter()
            .map(|i| {
                json!({"url": format!("https://example.com/p/{i}"), "title": format!("page {i}"),
                       "tags": ["load", format!("t{}", i % 7)]})
            })
            .collect();
        let results = app.bulk(&app.admin_key, items).await;
        assert!(
            results.iter().all(|r| r["status"] == 201),
            "{:?}",
            results[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_links_page_is_a_fixed_number_of_statements_at_any_size() {
    install();
    let app = spawn_app().await;
    let cookie = {
        let res = app
            .client
            .post(&app.sign_in_link)
            .form(&[
                ("password", "statements 123"),
                ("confirm", "statements 123"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        header(&res, "set-cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    // The fewest statements of three tries: background work (health checks, the click
    // worker) may add one now and then, never take one away.
    let count = |path: String| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let mut fewest = usize::MAX;
            let mut body = String::new();
            for _ in 0..3 {
                let (n, res) = statements_of(
                    app.client
                        .get(app.url(&path))
                        .header("cookie", cookie)
                        .send(),
                )
                .await;
                let res = res.unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{path}");
                body = res.text().await.unwrap();
                fewest = fewest.min(n);
            }
            (fewest, body)
        }
    };
    let next_href = |body: &str| {
        let at = body.find("href=\"/app/links?q=").expect("a next page");
        let rest = &body[at + 6..];
        rest[..rest.find('"').unwrap()]
            .replace("&amp;", "&")
            .replace("&#38;", "&")
    };

    load(&app, 0, 100).await;
    let rows = |body: &str| body.matches("<a class=\"short\"").count();
    let (small, body) = count("/app/links".into()).await;
    assert_eq!(rows(&body), 25);
    assert_eq!(
        small, 2,
        "one statement for the session, one for the page and its rows"
    );

    load(&app, 100, 9_900).await;
    let (first, first_body) = count("/app/links".into()).await;
    assert_eq!(rows(&first_body), 25);
    // Walk to the fortieth page.
    let mut href = next_href(&first_body);
    for _ in 0..38 {
        let page = app
            .client
            .get(app.url(&href))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        href = next_href(&page);
    }
    assert!(href.contains("&cursor="), "{href}");
    let (fortieth, body) = count(href).await;
    assert_eq!(rows(&body), 25);
    let first_code = |b: &str| {
        let at = b.find("<a class=\"short\"").unwrap();
        b[at..at + 60].to_owned()
    };
    assert_ne!(first_code(&body), first_code(&first_body), "a later page");
    // Tag t0 holds the numbers divisible by 7: 42, 420, 427 and 4200 to 4298 by 7.
    let (searched, body) = count("/app/links?q=page+42&tag=t0".into()).await;
    assert_eq!(rows(&body), 18);
    assert_eq!(body.matches("<div>page 42").count(), 18, "{body}");
    assert_eq!(
        [first, fortieth, searched],
        [small; 3],
        "statements for 100 links, then 10,000: first page, fortieth, searched"
    );
}
