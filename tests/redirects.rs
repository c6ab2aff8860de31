//! The public side against docs/api.md: redirects and their caching headers, expiry on
//! the injected clock, exact `max_clicks`, password forms, previews, health and docs.

mod common;

use chrono::Duration;
use common::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use snip::clock::Clock;

fn cache_control_for(status: u16) -> &'static str {
    match status {
        301 | 308 => "public, max-age=3600",
        _ => "private, no-cache",
    }
}

/// Turns `&#x2F;`-style escapes of `/` back into `/`, so a target URL can be found in
/// HTML whatever escaper rendered it.
fn unescape_slashes(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

#[tokio::test]
async fn each_redirect_status_has_its_location_and_cache_control() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    for status in [301_u16, 302, 307, 308] {
        let target = format!("https://example.com/to/{status}?a=1&b=2");
        let link = app
            .create_link(&key, &json!({ "url": target, "redirect_status": status }))
            .await;
        let code = str_field(&link, "code");
        for method in [Method::GET, Method::HEAD] {
            let resp = app.send(method.clone(), &format!("/{code}"), None).await;
            assert_eq!(resp.status().as_u16(), status, "{method} /{code}");
            assert_eq!(header(&resp, "location"), target, "{method} /{code}");
            assert_eq!(
                header(&resp, "cache-control"),
                cache_control_for(status),
                "{method} /{code}"
            );
            if method == Method::HEAD {
                assert!(resp.bytes().await.expect("body").is_empty());
            }
        }
    }
}

#[tokio::test]
async fn the_default_status_is_302() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let code = app
        .create_link_to(&key, "https://example.com/default")
        .await;
    let resp = app.redirect(&code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/default");
    assert_eq!(header(&resp, "cache-control"), "private, no-cache");
}

#[tokio::test]
async fn unknown_code_is_404_and_deleted_is_410() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    expect_problem(app.redirect("nosuchcode").await, StatusCode::NOT_FOUND).await;
    // Twice: a cached negative answer must not turn into something else.
    expect_problem(app.redirect("nosuchcode").await, StatusCode::NOT_FOUND).await;
    let resp = app.send(Method::HEAD, "/nosuchcode", None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let code = app.create_link_to(&key, "https://example.com/del").await;
    // Warm any cache first: deletion must still win.
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
    expect_status(
        app.delete(&format!("/api/v1/links/{code}"), &key).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(app.redirect(&code).await, StatusCode::GONE).await;
    let resp = app.send(Method::HEAD, &format!("/{code}"), None).await;
    assert_eq!(resp.status(), StatusCode::GONE);
}

#[tokio::test]
async fn a_link_expires_when_the_clock_passes_expires_at() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let expires = app.clock.now() + Duration::hours(1);
    let link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/soon", "expires_at": fmt_time(expires) }),
        )
        .await;
    let code = str_field(&link, "code");

    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
    app.clock.advance(Duration::minutes(59));
    let resp = app.redirect(&code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/soon");

    app.clock.advance(Duration::minutes(2));
    expect_problem(app.redirect(&code).await, StatusCode::GONE).await;
    let resp = app.send(Method::HEAD, &format!("/{code}"), None).await;
    assert_eq!(resp.status(), StatusCode::GONE);

    // Extending the expiry through the API brings it back.
    let later = fmt_time(app.clock.now() + Duration::hours(1));
    expect_json(
        app.patch_json(
            &format!("/api/v1/links/{code}"),
            &key,
            &json!({ "expires_at": later }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clicks_is_exact_under_concurrency() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/limited", "max_clicks": 25 }),
        )
        .await;
    let code = str_field(&link, "code");

    let answers = join_all((0..100).map(|_| async {
        let resp = app.redirect(&code).await;
        let status = resp.status();
        let location = header(&resp, "location");
        let ctype = header(&resp, "content-type");
        (status, location, ctype)
    }))
    .await;
    let redirected = answers
        .iter()
        .filter(|(s, l, _)| *s == StatusCode::FOUND && l == "https://example.com/limited")
        .count();
    let gone = answers
        .iter()
        .filter(|(s, _, c)| *s == StatusCode::GONE && c.starts_with("application/problem+json"))
        .count();
    assert_eq!((redirected, gone), (25, 75), "{answers:?}");

    // Used up for good.
    expect_problem(app.redirect(&code).await, StatusCode::GONE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_without_max_clicks_always_redirect() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let code = app.create_link_to(&key, "https://example.com/free").await;
    let statuses = join_all((0..100).map(|_| async { app.redirect(&code).await.status() })).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::FOUND),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_password_link_asks_for_the_password() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let link = app
        .create_link(
            &key,
            &json!({
                "url": "https://example.com/secret",
                "password": "open sesame",
                "redirect_status": 307,
            }),
        )
        .await;
    let code = str_field(&link, "code");
    let path = format!("/{code}");

    let resp = app.redirect(&code).await;
    assert_eq!(header(&resp, "location"), "", "the form must not redirect");
    assert!(header(&resp, "content-type").starts_with("text/html"));
    let html = expect_text(resp, StatusCode::OK).await;
    assert!(html.contains("<form"), "{html}");
    assert!(html.contains("name=\"password\""), "{html}");
    assert!(
        !unescape_slashes(&html).contains("example.com/secret"),
        "the form leaks the target: {html}"
    );

    let resp = app
        .request(Method::POST, &path, None)
        .form(&[("password", "wrong")])
        .send()
        .await
        .expect("send");
    assert_eq!(header(&resp, "location"), "");
    assert!(header(&resp, "content-type").starts_with("text/html"));
    let html = expect_text(resp, StatusCode::UNAUTHORIZED).await;
    assert!(html.contains("<form"), "the form is shown again: {html}");

    let resp = app
        .request(Method::POST, &path, None)
        .form(&[("password", "open sesame")])
        .send()
        .await
        .expect("send");
    // 303 whatever the link's status (307 here), so the browser does not post the
    // password on to the destination, and nobody keeps the answer.
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, "location"), "https://example.com/secret");
    assert_eq!(header(&resp, "cache-control"), "no-store");

    // The right password does not unlock the plain GET.
    let resp = app.redirect(&code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "location"), "");
}

#[tokio::test]
async fn preview_shows_the_target_without_redirecting_or_counting() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let target = "https://preview-target.example/some/path";
    let link = app
        .create_link(&key, &json!({ "url": target, "max_clicks": 1 }))
        .await;
    let code = str_field(&link, "code");

    for _ in 0..3 {
        let resp = app.get_anon(&format!("/{code}+")).await;
        assert_eq!(header(&resp, "location"), "", "a preview must not redirect");
        assert!(header(&resp, "content-type").starts_with("text/html"));
        let html = expect_text(resp, StatusCode::OK).await;
        assert!(unescape_slashes(&html).contains(target), "{html}");
    }
    // The previews counted no click: the one allowed redirect is still there.
    let resp = app.redirect(&code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), target);
    expect_problem(app.redirect(&code).await, StatusCode::GONE).await;

    expect_problem(app.get_anon("/nosuchcode+").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let app = spawn_app().await;
    let health = expect_json(app.get_anon("/healthz").await, StatusCode::OK).await;
    assert_eq!(health, json!({ "status": "ok" }));
    let ready = expect_json(app.get_anon("/readyz").await, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["store"]["state"], "up", "{ready}");
    assert_eq!(ready["checks"]["store"]["circuit"], "closed", "{ready}");
    // Only configured dependencies are checked.
    assert!(ready["checks"].get("redis").is_none(), "{ready}");
}

#[tokio::test]
async fn openapi_describes_the_api() {
    let app = spawn_app().await;
    let resp = app.get_anon("/openapi.json").await;
    assert!(header(&resp, "content-type").starts_with("application/json"));
    let doc = expect_json(resp, StatusCode::OK).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3.1"),
        "openapi is {:?}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/links",
        "/api/v1/links/bulk",
        "/api/v1/links/{code}",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/me",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(paths["/api/v1/links"].get("post").is_some());
    assert!(paths["/api/v1/links"].get("get").is_some());
}

/// The `src`/`href` values of every `<script>` and `<link>` tag in `html`.
fn asset_refs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut refs = Vec::new();
    for tag in ["<script", "<link"] {
        for (start, _) in lower.match_indices(tag) {
            let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
            let element = &html[start..end];
            let element_lower = &lower[start..end];
            for attr in ["src=", "href="] {
                if let Some(at) = element_lower.find(attr) {
                    let value = &element[at + attr.len()..];
                    let value = value.trim_start_matches(['"', '\'']);
                    let stop = value.find(['"', '\'', ' ', '>']).unwrap_or(value.len());
                    refs.push(value[..stop].to_string());
                }
            }
        }
    }
    refs
}

#[tokio::test]
async fn docs_are_served_from_the_binary() {
    let app = spawn_app().await;
    let resp = app.get_anon("/docs/").await;
    assert!(header(&resp, "content-type").starts_with("text/html"));
    let html = expect_text(resp, StatusCode::OK).await;
    let refs = asset_refs(&html);
    assert!(!refs.is_empty(), "no scripts or styles in {html}");
    for r in &refs {
        let lower = r.to_ascii_lowercase();
        assert!(
            !(lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("//")),
            "/docs/ loads {r} from outside"
        );
        // Every local asset it names is there.
        let path = match r.strip_prefix("./") {
            Some(rest) => format!("/docs/{rest}"),
            None if r.starts_with('/') => r.clone(),
            None => format!("/docs/{r}"),
        };
        let resp = app.get_anon(&path).await;
        assert_eq!(resp.status(), StatusCode::OK, "asset {path}");
    }
}

#[tokio::test]
async fn the_redirect_path_needs_no_key_and_ignores_one() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let code = app.create_link_to(&key, "https://example.com/k").await;
    let resp = app
        .send(Method::GET, &format!("/{code}"), Some(UNKNOWN_KEY))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/k");
}
