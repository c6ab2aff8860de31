//! The compatible APIs (YOURLS at `/yourls-api.php`, Shlink v3 under `/rest`) over real
//! HTTP: their answers field by field, their errors, keys, scopes and shared rate limits;
//! then the real clients, unchanged: the `yourls` package from PyPI and
//! `@shlinkio/shlink-js-sdk` from the npm registry, each driven by a script in
//! `tests/clients/`. Also the streamed export, which `snip import` reads back.
//!
//! `.ci/run` installs both clients into `target/clients`. Without them the client tests
//! are skipped loudly on a laptop, and fail in CI.

mod common;

use std::path::PathBuf;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `GET /yourls-api.php?{query}`.
async fn yourls(app: &TestApp, query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/yourls-api.php?{query}")))
        .send()
        .await
        .unwrap()
}

/// A YOURLS call in JSON with the admin key as signature: `(status, body)`.
async fn yourls_json(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let res = yourls(app, &format!("{query}&format=json&signature={ADMIN_KEY}")).await;
    let status = res.status();
    assert_eq!(
        header(&res, "content-type"),
        "application/json; charset=utf-8"
    );
    (status, res.json().await.unwrap())
}

/// Sets the first admin's dashboard password, `a long password 1`, by the sign-in link.
async fn set_admin_password(app: &TestApp) {
    let set = app
        .client
        .post(&app.sign_in_link)
        .form(&[
            ("password", "a long password 1"),
            ("confirm", "a long password 1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn yourls_answers_with_its_fields_in_each_format() {
    let app = spawn_app().await;
    let (status, made) = yourls_json(
        &app,
        "action=shorturl&url=https%3A%2F%2Fexample.com%2Fa&keyword=yo-a&title=Hello",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(made["status"], "success");
    assert_eq!(made["shorturl"], app.url("/yo-a"));
    assert_eq!(made["url"]["keyword"], "yo-a");
    assert_eq!(made["url"]["title"], "Hello");
    assert_eq!(made["statusCode"], "200");
    let date = made["url"]["date"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{date}"
    );
    // The link is a snip link like any other.
    assert_eq!(app.redirect("yo-a").await.status(), StatusCode::FOUND);

    // The same URL again: HTTP 200, `fail`, and the existing link.
    let simple = yourls(
        &app,
        &format!("action=shorturl&url=https://example.com/a&format=simple&signature={ADMIN_KEY}"),
    )
    .await;
    assert_eq!(
        simple.text().await.unwrap(),
        app.url("/yo-a"),
        "the existing short URL"
    );
    let (status, dup) = yourls_json(&app, "action=shorturl&url=https://example.com/a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dup["status"], "fail");
    assert_eq!(dup["code"], "error:url");
    assert_eq!(dup["url"]["keyword"], "yo-a");
    assert_eq!(dup["shorturl"], app.url("/yo-a"));
    assert!(dup["message"].as_str().unwrap().contains("already exists"));

    // A taken keyword, a bad URL, a loop to snip itself.
    let (_, taken) = yourls_json(&app, "action=shorturl&url=https://b.example/&keyword=yo-a").await;
    assert_eq!(
        (taken["status"].as_str(), taken["code"].as_str()),
        (Some("fail"), Some("error:keyword"))
    );
    let (status, bad) = yourls_json(&app, "action=shorturl&url=javascript:alert(1)").await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("error:nourl"))
    );
    let own = format!("action=shorturl&url={}", encode_query(&app.url("/yo-a")));
    let (status, own) = yourls_json(&app, &own).await;
    assert_eq!(
        (status, own["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("error:noloop"))
    );

    // Expand by keyword and by short URL; unknown keywords are 404.
    let (_, ex) = yourls_json(&app, "action=expand&shorturl=yo-a").await;
    assert_eq!(ex["longurl"], "https://example.com/a");
    let by_url = format!("action=expand&shorturl={}", encode_query(&app.url("/yo-a")));
    assert_eq!(yourls_json(&app, &by_url).await.1["keyword"], "yo-a");
    let (status, missing) = yourls_json(&app, "action=expand&shorturl=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "Error: short URL not found");

    // Clicks reach url-stats, stats and db-stats once the worker has counted them (the
    // redirect above and three more).
    for _ in 0..3 {
        app.redirect("yo-a").await;
    }
    let mut clicks = 0;
    for _ in 0..100 {
        clicks = yourls_json(&app, "action=url-stats&shorturl=yo-a").await.1["link"]["clicks"]
            .as_i64()
            .unwrap();
        if clicks == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(clicks, 4);
    yourls_json(
        &app,
        "action=shorturl&url=https://example.com/b&keyword=yo-b",
    )
    .await;
    let (_, stats) = yourls_json(&app, "action=stats&filter=top&limit=10").await;
    assert_eq!(stats["links"]["link_1"]["shorturl"], app.url("/yo-a"));
    assert_eq!(stats["links"]["link_2"]["shorturl"], app.url("/yo-b"));
    assert_eq!(stats["stats"], json!({"total_links": 2, "total_clicks": 4}));
    let (_, bottom) = yourls_json(&app, "action=stats&filter=bottom&limit=1").await;
    assert_eq!(bottom["links"]["link_1"]["shorturl"], app.url("/yo-b"));
    assert!(bottom["links"].get("link_2").is_none());
    let (_, none) = yourls_json(&app, "action=stats&filter=last").await;
    assert!(none.get("links").is_none(), "no limit, no links: {none}");
    let (_, db) = yourls_json(&app, "action=db-stats").await;
    assert_eq!(db["db-stats"], json!({"total_links": 2, "total_clicks": 4}));

    // XML is the default format; simple prints one value; JSONP wraps the JSON.
    let res = yourls(
        &app,
        &format!("action=expand&shorturl=yo-a&signature={ADMIN_KEY}"),
    )
    .await;
    assert_eq!(
        header(&res, "content-type"),
        "application/xml; charset=utf-8"
    );
    let xml = res.text().await.unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root>"),
        "{xml}"
    );
    assert!(
        xml.contains("<longurl>https://example.com/a</longurl>"),
        "{xml}"
    );
    let simple = yourls(
        &app,
        &format!("action=expand&shorturl=yo-a&format=simple&signature={ADMIN_KEY}"),
    )
    .await;
    assert_eq!(simple.text().await.unwrap(), "https://example.com/a");
    let jsonp = yourls(
        &app,
        &format!("action=version&format=jsonp&callback=cb_1&signature={ADMIN_KEY}"),
    )
    .await;
    let text = jsonp.text().await.unwrap();
    assert!(text.starts_with("cb_1({\"version\":"), "{text}");
    let evil = yourls(
        &app,
        &format!("action=version&format=jsonp&callback=alert(1)&signature={ADMIN_KEY}"),
    )
    .await;
    assert_eq!(evil.status(), StatusCode::BAD_REQUEST);

    // A form body, plain or multipart, as POST.
    let posted = app
        .client
        .post(app.url("/yourls-api.php"))
        .form(&[
            ("action", "shorturl"),
            ("url", "https://example.com/posted"),
            ("format", "json"),
            ("signature", ADMIN_KEY),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.json::<Value>().await.unwrap()["status"], "success");
    let form = reqwest::multipart::Form::new()
        .text("action", "shorturl")
        .text("url", "https://example.com/multipart")
        .text("format", "simple")
        .text("signature", ADMIN_KEY);
    let res = app
        .client
        .post(app.url("/yourls-api.php"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let short = res.text().await.unwrap();
    assert!(short.starts_with(&app.base), "{short}");

    // Unknown actions.
    let (status, unknown) = yourls_json(&app, "action=nuke").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown["message"],
        "Unknown or missing \"action\" parameter"
    );
}

#[tokio::test]
async fn a_url_whose_link_is_gone_is_shortened_anew() {
    let app = spawn_app().await;
    let soon = fmt_time(snip::clock::Clock::now(&app.clock) + chrono::TimeDelta::hours(1));
    app.create_link(
        ADMIN_KEY,
        &json!({"url": "https://example.com/old", "alias": "old-one", "expires_at": soon}),
    )
    .await;
    app.create_link(
        ADMIN_KEY,
        &json!({"url": "https://example.com/used", "alias": "used-one", "max_clicks": 1}),
    )
    .await;
    app.redirect("used-one").await;
    app.clock.advance(chrono::TimeDelta::hours(2));
    let (_, made) = yourls_json(&app, "action=shorturl&url=https://example.com/old").await;
    assert_eq!(made["status"], "success", "{made}");
    assert_ne!(made["url"]["keyword"], "old-one");
    // The used-up link's click is counted by the worker; then it is not handed out either.
    for _ in 0..100 {
        let link = expect_json(
            app.get("/api/v1/links/used-one", ADMIN_KEY).await,
            StatusCode::OK,
        )
        .await;
        if link["clicks"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, made) = yourls_json(&app, "action=shorturl&url=https://example.com/used").await;
    assert_eq!(made["status"], "success", "{made}");
}

#[tokio::test]
async fn yourls_takes_keys_or_a_dashboard_password_and_keeps_scopes() {
    let app = spawn_app().await;
    // No credentials, a wrong key, a time-limited signature.
    let res = yourls(&app, "action=db-stats&format=json").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "Please log in", "errorCode": "403", "callback": ""})
    );
    let wrong = yourls(
        &app,
        "action=db-stats&format=json&signature=snip_0000000000000000000000000000000X",
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    // The dashboard account's e-mail and password.
    set_admin_password(&app).await;
    let ok = yourls(
        &app,
        "action=db-stats&format=json&username=admin%40localhost&password=a+long+password+1",
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let bad = yourls(
        &app,
        "action=db-stats&format=json&username=admin%40localhost&password=nope",
    )
    .await;
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["message"],
        "Invalid username or password"
    );

    // A read-only key reads but does not create, and sees only its owner's links.
    let (member, member_key) = app.create_user("member@example.com").await;
    let ro = app
        .create_key(member, ADMIN_KEY, &json!({"scopes": ["links:read"]}))
        .await;
    let ro = str_field(&ro, "key");
    let create = |key: &str| {
        format!("action=shorturl&url=https://example.com/ro&format=json&signature={key}")
    };
    let res = yourls(&app, &create(&ro)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("links:write"));
    let admins = app
        .create_link(
            ADMIN_KEY,
            &json!({"url": "https://example.com/admin", "alias": "admins"}),
        )
        .await;
    assert_eq!(admins["code"], "admins");
    let res = yourls(
        &app,
        &format!("action=expand&shorturl=admins&format=json&signature={member_key}"),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "a member must not see the admin's link"
    );
}

#[tokio::test]
async fn yourls_time_limited_signatures_use_the_keys_signature_token() {
    use snip::domain::key::SignatureHash;
    const SECRET: &str = "a server secret of at least thirty-two characters";
    let app = spawn_app_with(|c| c.yourls_signature_secret = Some(SECRET.into())).await;
    let made = app
        .create_key(ADMIN_ID, ADMIN_KEY, &json!({"scopes": ["links:read"]}))
        .await;
    let token = str_field(&made, "yourls_signature_token");
    assert_eq!(token.len(), 32);
    let now = snip::clock::Clock::now(&app.clock).timestamp();
    let signed = |ts: i64, signature: &str, hash: Option<&str>| {
        let hash = hash.map(|h| format!("&hash={h}")).unwrap_or_default();
        format!("action=db-stats&format=json&timestamp={ts}&signature={signature}{hash}")
    };
    let md5 = SignatureHash::Md5.hex(&[&now.to_string(), &token]);
    // MD5 when no hash is named, as YOURLS does; the key's own scopes apply.
    assert_eq!(
        yourls(&app, &signed(now, &md5, None)).await.status(),
        StatusCode::OK
    );
    let res = yourls(
        &app,
        &format!(
            "{}&action=shorturl&url=https://example.com/",
            signed(now, &md5, None)
        ),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a read-only key stays read-only"
    );
    // Another hash, the token first, a timestamp nearly 12 hours off.
    let ts = now - 43_000;
    let sha512 = SignatureHash::Sha512.hex(&[&token, &ts.to_string()]);
    assert_eq!(
        yourls(&app, &signed(ts, &sha512, Some("sha512")))
            .await
            .status(),
        StatusCode::OK
    );
    // Refused: a stale timestamp, the wrong hash named, upper-case hex, another token.
    let stale = now - 43_200;
    let stale_sig = SignatureHash::Md5.hex(&[&stale.to_string(), &token]);
    for query in [
        signed(stale, &stale_sig, None),
        signed(ts, &sha512, Some("sha256")),
        signed(now, &md5.to_uppercase(), None),
        signed(
            now,
            &SignatureHash::Md5.hex(&[&now.to_string(), "0123456789abcdef0123456789abcdef"]),
            None,
        ),
        signed(now, &md5, Some("crc32")),
        signed(i64::MIN, &md5, None),
        signed(i64::MAX, &md5, None),
    ] {
        let res = yourls(&app, &query).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{query}");
    }
    // A revoked key's token stops working.
    let key_id = int_field(&made, "id");
    expect_status(
        app.delete(
            &format!("/api/v1/users/{ADMIN_ID}/keys/{key_id}"),
            ADMIN_KEY,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        yourls(&app, &signed(now, &md5, None)).await.status(),
        StatusCode::FORBIDDEN
    );

    // Without a secret the server makes no tokens and accepts no timed signature.
    let plain = spawn_app().await;
    let made = plain.create_key(ADMIN_ID, ADMIN_KEY, &json!({})).await;
    assert!(made.get("yourls_signature_token").is_none(), "{made}");
    assert_eq!(
        yourls(&plain, &signed(now, &md5, None)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn compatible_apis_share_the_rest_apis_rate_limit_budget() {
    let app = spawn_app_with(|c| c.rate_limits.writes.capacity = 3.0).await;
    let create = |i: u32| {
        format!("action=shorturl&url=https://example.com/{i}&format=json&signature={ADMIN_KEY}")
    };
    assert_eq!(yourls(&app, &create(1)).await.status(), StatusCode::OK);
    let shlink = app
        .client
        .post(app.url("/rest/v3/short-urls"))
        .header("x-api-key", ADMIN_KEY)
        .json(&json!({"longUrl": "https://example.com/2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(shlink.status(), StatusCode::OK);
    assert!(!header(&shlink, "ratelimit").is_empty());
    app.create_link_to(ADMIN_KEY, "https://example.com/3").await;
    // The budget of three writes is spent, whichever API asks next.
    let res = yourls(&app, &create(4)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!header(&res, "retry-after").is_empty());
    let res = app
        .client
        .post(app.url("/rest/v3/short-urls"))
        .header("x-api-key", ADMIN_KEY)
        .json(&json!({"longUrl": "https://example.com/5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    expect_problem(
        app.post_link(ADMIN_KEY, &json!({"url": "https://example.com/6"}))
            .await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    // A dashboard account signing in by name and password spends a budget of its own.
    set_admin_password(&app).await;
    let by_password = "action=shorturl&url=https://example.com/7&format=json\
        &username=admin%40localhost&password=a+long+password+1";
    assert_eq!(yourls(&app, by_password).await.status(), StatusCode::OK);
}

/// A Shlink call with the admin key: `(status, body)`.
async fn shlink(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, app.url(&format!("/rest/v3{path}")))
        .header("x-api-key", ADMIN_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts a Shlink problem document of `kind` with `status`.
fn assert_shlink_problem(got: &(StatusCode, Value), status: StatusCode, kind: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(
        body["type"],
        format!("https://shlink.io/api/error/{kind}"),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn shlink_answers_with_its_shapes_and_errors() {
    use reqwest::Method;
    let app = spawn_app().await;
    let health = app
        .client
        .get(app.url("/rest/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&health, "content-type"), "application/health+json");
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "pass");

    let (status, made) = shlink(
        &app,
        Method::POST,
        "/short-urls",
        Some(
            json!({"longUrl": "https://example.com/s", "customSlug": "sh-1", "tags": ["b", "a"],
            "validUntil": "2099-01-01T00:00:00+02:00", "maxVisits": 5, "crawlable": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["shortUrl"], app.url("/sh-1"));
    assert_eq!(made["tags"], json!(["a", "b"]));
    assert_eq!(
        made["meta"],
        json!({"validSince": null, "validUntil": "2098-12-31T22:00:00+00:00", "maxVisits": 5})
    );
    assert_eq!(
        made["visitsSummary"],
        json!({"total": 0, "nonBots": 0, "bots": 0})
    );
    assert_eq!(made["domain"], Value::Null);

    // Errors: Shlink's types, statuses and extra fields.
    let taken = shlink(
        &app,
        Method::POST,
        "/short-urls",
        Some(json!({"longUrl": "https://x.example/", "customSlug": "sh-1"})),
    )
    .await;
    assert_shlink_problem(&taken, StatusCode::BAD_REQUEST, "non-unique-slug");
    assert_eq!(taken.1["customSlug"], "sh-1");
    let bad = shlink(
        &app,
        Method::POST,
        "/short-urls",
        Some(json!({"longUrl": "https://x.example/", "maxVisits": "many"})),
    )
    .await;
    assert_shlink_problem(&bad, StatusCode::BAD_REQUEST, "invalid-data");
    assert_eq!(bad.1["invalidElements"], json!(["maxVisits"]));
    let later = shlink(
        &app,
        Method::POST,
        "/short-urls",
        Some(json!({"longUrl": "https://x.example/", "validSince": "2099-01-01T00:00:00+00:00"})),
    )
    .await;
    assert_shlink_problem(&later, StatusCode::BAD_REQUEST, "invalid-data");
    let missing = shlink(&app, Method::GET, "/short-urls/nope", None).await;
    assert_shlink_problem(&missing, StatusCode::NOT_FOUND, "short-url-not-found");
    let route = shlink(&app, Method::GET, "/mercure-info", None).await;
    assert_shlink_problem(&route, StatusCode::NOT_FOUND, "not-found");
    let no_key = app
        .client
        .get(app.url("/rest/v3/short-urls"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_key.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://shlink.io/api/error/missing-authentication"
    );
    let wrong = app
        .client
        .get(app.url("/rest/v3/tags"))
        .header("x-api-key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["type"],
        "https://shlink.io/api/error/invalid-api-key"
    );
    // A filter snip cannot apply is refused, never ignored.
    let dated = shlink(
        &app,
        Method::GET,
        "/short-urls?startDate=2024-01-01T00%3A00%3A00%2B00%3A00",
        None,
    )
    .await;
    assert_shlink_problem(&dated, StatusCode::BAD_REQUEST, "invalid-data");
    assert_eq!(dated.1["invalidElements"], json!(["startDate"]));

    // Lists page with Shlink's pagination; visits come from the click counts.
    app.clock.advance(chrono::TimeDelta::seconds(1));
    for i in 0..11 {
        shlink(
            &app,
            Method::POST,
            "/short-urls",
            Some(json!({"longUrl": format!("https://example.com/{i}")})),
        )
        .await;
    }
    let (_, page) = shlink(&app, Method::GET, "/short-urls?page=2", None).await;
    assert_eq!(
        page["shortUrls"]["pagination"],
        json!({"currentPage": 2, "pagesCount": 2, "itemsPerPage": 10, "itemsInCurrentPage": 2, "totalItems": 12})
    );
    let (_, oldest) = shlink(
        &app,
        Method::GET,
        "/short-urls?itemsPerPage=1&orderBy=dateCreated-ASC",
        None,
    )
    .await;
    assert_eq!(oldest["shortUrls"]["data"][0]["shortCode"], "sh-1");
    let person = app.visit_as_person("sh-1").await;
    assert_eq!(person.status(), StatusCode::FOUND);
    let bot = app
        .client
        .get(app.url("/sh-1"))
        .header("user-agent", "curl/8.0")
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status(), StatusCode::FOUND);
    let mut visits = Value::Null;
    for _ in 0..100 {
        visits = shlink(&app, Method::GET, "/short-urls/sh-1/visits", None)
            .await
            .1;
        if visits["visits"]["pagination"]["totalItems"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(visits["visits"]["pagination"]["totalItems"], 2, "{visits}");
    let (_, humans) = shlink(
        &app,
        Method::GET,
        "/short-urls/sh-1/visits?excludeBots=true",
        None,
    )
    .await;
    assert_eq!(
        humans["visits"]["data"].as_array().unwrap().len(),
        1,
        "{humans}"
    );
    assert_eq!(humans["visits"]["data"][0]["potentialBot"], false);
    let (_, one) = shlink(&app, Method::GET, "/short-urls/sh-1", None).await;
    assert_eq!(
        one["visitsSummary"],
        json!({"total": 2, "nonBots": 1, "bots": 1})
    );

    // Edit with nulls, then delete; the code then answers 410 to visitors.
    let (status, edited) = shlink(
        &app,
        Method::PATCH,
        "/short-urls/sh-1",
        Some(json!({"maxVisits": null, "validUntil": null, "title": "T"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        edited["meta"],
        json!({"validSince": null, "validUntil": null, "maxVisits": null})
    );
    assert_eq!(edited["title"], "T");
    let (_, tags) = shlink(&app, Method::GET, "/tags", None).await;
    assert_eq!(tags["tags"]["data"], json!(["a", "b"]));
    let (status, _) = shlink(&app, Method::DELETE, "/short-urls/sh-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.redirect("sh-1").await.status(), StatusCode::GONE);

    // Browsers: a preflight is answered, and every origin may read.
    let pre = app
        .client
        .request(Method::OPTIONS, app.url("/rest/v3/short-urls"))
        .header("origin", "https://app.shlink.io")
        .header("access-control-request-headers", "x-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&pre, "access-control-allow-origin"), "*");
    assert_eq!(header(&pre, "access-control-allow-headers"), "x-api-key");
}

#[tokio::test]
async fn export_streams_every_link_as_csv_and_json() {
    let app = spawn_app().await;
    let total = 1_203;
    for chunk in (0..total).collect::<Vec<_>>().chunks(600) {
        let items = chunk
            .iter()
            .map(|i| json!({"url": format!("https://example.com/{i}"), "title": format!("Link, \"{i}\""), "tags": ["t"]}))
            .collect();
        app.bulk(ADMIN_KEY, items).await;
    }
    let res = app.get("/api/v1/links/export?format=csv", ADMIN_KEY).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "text/csv; charset=utf-8");
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "code",
            "short_url",
            "url",
            "title",
            "tags",
            "clicks",
            "created_at",
            "expires_at",
            "max_clicks",
            "redirect_status"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total);
    let mut codes: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), total, "every link once");
    assert!(rows.iter().any(|r| &r[3] == "Link, \"7\""));

    let res = app.get("/api/v1/links/export?format=json", ADMIN_KEY).await;
    assert_eq!(header(&res, "content-type"), "application/json");
    let links: Vec<Value> = res.json().await.unwrap();
    assert_eq!(links.len(), total);
    assert_eq!(links[0]["tags"], json!(["t"]));

    // Another user's export holds only their links; without a key there is none.
    let (_, member_key) = app.create_user("m@example.com").await;
    let res = app
        .get("/api/v1/links/export?format=json", &member_key)
        .await;
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 0);
    expect_problem(
        app.get_anon("/api/v1/links/export").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let bad = app.get("/api/v1/links/export?format=xls", ADMIN_KEY).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// The folder the real clients are installed in (`.ci/run`), or `None` (skipped loudly)
/// on a laptop without them.
fn clients() -> Option<PathBuf> {
    let dir = std::env::var_os("SNIP_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients"));
    let ready = dir.join("venv/bin/python").is_file()
        && dir.join("node_modules/@shlinkio/shlink-js-sdk").is_dir();
    if ready {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the YOURLS and Shlink clients are not installed in {dir:?} (see .ci/run), and CI must run them"
        );
    }
    eprintln!("\n!!! SKIPPED: the YOURLS and Shlink clients are not installed (see .ci/run) !!!\n");
    None
}

/// Runs a client script to its end; fails the test with its output unless it succeeds.
/// The app's clock moves a second every 5 ms meanwhile, so the links the script creates
/// one after another have distinct creation times (lists are ordered by them).
async fn run_client(app: &TestApp, mut cmd: tokio::process::Command) {
    let clock = app.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            clock.advance(chrono::TimeDelta::seconds(1));
        }
    });
    let out = cmd.output().await.expect("run the client script");
    ticking.abort();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the client script failed:\n{printed}");
    assert!(printed.contains("all checks passed"), "{printed}");
}

#[tokio::test]
async fn the_yourls_python_client_works_unchanged() {
    let Some(dir) = clients() else { return };
    let app = spawn_app().await;
    let ro = app
        .create_key(ADMIN_ID, ADMIN_KEY, &json!({"scopes": ["links:read"]}))
        .await;
    let mut cmd = tokio::process::Command::new(dir.join("venv/bin/python"));
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/yourls_client.py"
    ))
    .arg(app.url("/yourls-api.php"))
    .arg(ADMIN_KEY)
    .arg(str_field(&ro, "key"));
    run_client(&app, cmd).await;
}

#[tokio::test]
async fn the_shlink_js_sdk_works_unchanged() {
    let Some(dir) = clients() else { return };
    let app = spawn_app().await;
    // Node finds packages beside the script: run a copy from the clients' folder.
    let script = dir.join(format!("shlink_client_{}.mjs", app.addr.port()));
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/shlink_client.mjs"
        ),
        &script,
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script).arg(&app.base).arg(ADMIN_KEY);
    run_client(&app, cmd).await;
    let _ = std::fs::remove_file(script);
}
