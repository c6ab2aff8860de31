//! The web dashboard end to end: a real headless Chromium drives the real server over
//! WebDriver (the browser flows), and plain HTTP checks what a browser cannot show (status
//! codes, cookies, refusals).

mod common;

use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use common::browser::{Browser, TARGET_HOST};
use common::*;
use reqwest::StatusCode;

/// A page of the test's own for short links to point to, and a page on another site that
/// posts a form to snip. Returns its port.
async fn target_site(snip_base: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route(
            "/landing",
            get(|| async { Html("<!doctype html><title>Target</title><h1>Target reached</h1>") }),
        )
        .route(
            "/evil",
            get(move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
                let action = format!("{snip_base}/app/links/{}/delete", q.0["code"]);
                async move {
                    Html(format!(
                        "<!doctype html><title>Evil</title><form id=f method=post action=\"{action}\">\
                         <input name=csrf value=guess></form>\
                         <script>document.getElementById('f').submit()</script>"
                    ))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The code of a link page's URL (`…/app/links/{code}?…`).
fn code_of(url: &str) -> String {
    let rest = url.split("/app/links/").nth(1).expect("a link page");
    rest.split(['?', '/']).next().unwrap().to_owned()
}

/// Decodes a QR code PNG back to its text.
fn decode_qr(png: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("a readable QR code").1
}

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_manages_a_link_and_sees_its_click() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    let port = target_site(app.base.clone()).await;
    let target = format!("http://{TARGET_HOST}:{port}/landing");

    // The one-time link printed at first start: set a password, and be signed in.
    b.goto(&app.sign_in_link).await;
    assert!(b.text().await.contains("Welcome, admin@localhost"));
    b.assert_accessible("welcome").await;
    b.screenshots("welcome").await;
    b.fill("#password", PASSWORD).await;
    b.fill("#confirm", PASSWORD).await;
    b.submit("button[type=submit]").await;
    assert!(b.url().await.ends_with("/app/links"), "{}", b.url().await);
    assert!(b.text().await.contains("No links here yet"));

    // A bad URL is refused next to its field, with the API's own message.
    b.goto(&app.url("/app/links/new")).await;
    b.fill("#url", "ftp://files.example/x").await;
    b.submit("form.panel button[type=submit]").await;
    let error = b.text_of("#url-error").await;
    assert!(error.contains("http"), "{error}");
    b.assert_accessible("new link with errors").await;
    b.screenshots("new-link-errors").await;

    // Create a link to the target page.
    b.fill("#url", &target).await;
    b.fill("#title", "Launch notes").await;
    b.fill("#tags", "docs, launch").await;
    b.submit("form.panel button[type=submit]").await;
    let url = b.url().await;
    assert!(url.contains("created=1"), "{url}");
    let code = code_of(&url);
    let short = format!("{}/{code}", app.base);
    assert!(b.text().await.contains(&short));

    // Find it by search; another search does not.
    b.goto(&app.url("/app/links")).await;
    b.fill("#q", "Launch").await;
    b.submit("form.filters button").await;
    assert!(b.text().await.contains(&code));
    b.assert_accessible("links").await;
    b.screenshots("links").await;
    b.goto(&app.url("/app/links?q=nothing-like-this")).await;
    assert!(!b.text().await.contains(&code));

    // Follow the short URL in the browser: it lands on the target.
    b.goto(&short).await;
    assert!(b.url().await.starts_with(&target), "{}", b.url().await);
    assert!(b.text().await.contains("Target reached"));

    // The link's page then counts that click.
    let page = app.url(&format!("/app/links/{code}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        b.goto(&page).await;
        let total = b.text_of("#total-clicks").await;
        if total == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the click never showed: {total}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.assert_accessible("link stats").await;
    b.screenshots("link").await;

    // The QR code downloads as a PNG that reads back as the short URL.
    let (status, png) = b
        .fetch_bytes(&format!(
            "/app/links/{code}/qr?format=png&size=512&download=1"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(decode_qr(&png), short);

    // Edit.
    b.goto(&app.url(&format!("/app/links/{code}/edit"))).await;
    b.assert_accessible("edit").await;
    b.screenshots("edit").await;
    b.fill("#title", "Launch notes, final").await;
    b.submit("form.panel button[type=submit]").await;
    assert!(b.url().await.contains("saved=1"));
    assert!(b.text().await.contains("Launch notes, final"));

    // A form posted from another site is refused and changes nothing.
    b.goto(&format!("http://{TARGET_HOST}:{port}/evil?code={code}"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = b.text().await;
    assert!(
        text.contains("This form was refused") || b.url().await.contains("/app/sign-in"),
        "{text}"
    );
    expect_status(
        app.get(&format!("/api/v1/links/{code}"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;

    // Delete (after confirming): the short URL then answers 410.
    b.goto(&app.url(&format!("/app/links/{code}/delete"))).await;
    b.assert_accessible("delete").await;
    b.screenshots("delete").await;
    b.submit("button.danger").await;
    assert!(b.url().await.contains("/app/links"));
    let (status, _) = b.fetch_bytes(&format!("/{code}")).await;
    assert_eq!(status, 410);

    // The account page; then sign out, and the dashboard asks to sign in again.
    b.goto(&app.url("/app/account")).await;
    b.assert_accessible("account").await;
    b.screenshots("account").await;
    b.submit("header form button[type=submit]").await;
    assert!(b.url().await.contains("/app/sign-in"), "{}", b.url().await);
    b.goto(&app.url("/app/links")).await;
    assert!(
        b.url().await.contains("/app/sign-in?next="),
        "{}",
        b.url().await
    );
    b.assert_accessible("sign in").await;
    b.screenshots("sign-in").await;

    // The landing page and an error page pass the same checks.
    b.goto(&app.base).await;
    b.assert_accessible("landing").await;
    b.screenshots("landing").await;
    b.goto(&app.url("/app/nothing-here")).await;
    assert!(b.text().await.contains("Not found"));
    b.assert_accessible("not found").await;
    b.screenshots("not-found").await;
    b.goto(&app.url("/app/links")).await;

    // Signing in with the password set earlier goes back where the person was going.
    b.fill("#email", "admin@localhost").await;
    b.fill("#password", PASSWORD).await;
    b.submit("main button[type=submit]").await;
    assert!(b.url().await.ends_with("/app/links"), "{}", b.url().await);
    b.close().await;
}

/// Signs in over plain HTTP; returns the session cookie (`snip_session=…`).
async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/app/sign-in"))
        .form(&[
            ("email", email),
            ("password", password),
            ("next", "/app/links"),
        ])
        .send()
        .await
        .unwrap()
}

fn cookie_of(res: &reqwest::Response) -> String {
    let set = header(res, "set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(set.contains("Path=/app"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

/// Posts `password` twice to the test app's one-time link.
async fn set_password_by_link(app: &TestApp, password: &str) -> reqwest::Response {
    app.client
        .post(&app.sign_in_link)
        .form(&[("password", password), ("confirm", password)])
        .send()
        .await
        .unwrap()
}

/// `GET path` with the session `cookie`.
async fn page(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// Posts the sign-out form of the session `cookie` to `app`, with its form token.
async fn sign_out(app: &TestApp, cookie: &str) -> reqwest::Response {
    let token = form_token(app, cookie).await;
    app.client
        .post(app.url("/app/sign-out"))
        .header("cookie", cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap()
}

/// The one-time link of a test app: sets `PASSWORD` and returns the session cookie.
async fn use_link(app: &TestApp) -> String {
    let res = set_password_by_link(app, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    cookie_of(&res)
}

/// The form token of a signed-in page.
async fn form_token(app: &TestApp, cookie: &str) -> String {
    let html = page(app, "/app/account", cookie)
        .await
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn a_sign_in_link_works_once_and_only_the_right_password_signs_in() {
    let app = spawn_app().await;
    // Looking at the link does not use it up.
    let look = app.client.get(&app.sign_in_link).send().await.unwrap();
    assert_eq!(look.status(), StatusCode::OK);
    // A short password is refused next to its field, and the link still works.
    let short = set_password_by_link(&app, "short").await;
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("at least 10 characters")
    );
    let cookie = use_link(&app).await;
    // Used once: gone.
    let again = set_password_by_link(&app, PASSWORD).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    // The session opens the dashboard.
    let links = page(&app, "/app/links", &cookie).await;
    assert_eq!(links.status(), StatusCode::OK);

    let wrong = sign_in(&app, "admin@localhost", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let unknown = sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let right = sign_in(&app, "Admin@Localhost", PASSWORD).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&right, "location"), "/app/links");
    cookie_of(&right);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_client() {
    let app = spawn_app_with(|c| c.rate_limits.passwords.capacity = 3.0).await;
    for _ in 0..3 {
        let res = sign_in(&app, "admin@localhost", "wrong password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = sign_in(&app, "admin@localhost", "wrong password").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!header(&res, "retry-after").is_empty());
}

#[tokio::test]
async fn a_form_without_the_token_or_from_another_origin_changes_nothing() {
    let app = spawn_app().await;
    let cookie = use_link(&app).await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/keep")
        .await;
    let delete = |token: &'static str, origin: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url(&format!("/app/links/{code}/delete")))
            .header("cookie", &cookie)
            .form(&[("csrf", token)]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let no_token = delete("", None).await.unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong = delete(
        "0000000000000000000000000000000000000000000000000000000000000000",
        None,
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let token = form_token(&app, &cookie).await;
    let other_origin = app
        .client
        .post(app.url(&format!("/app/links/{code}/delete")))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), StatusCode::FORBIDDEN);
    expect_status(app.redirect(&code).await, StatusCode::FOUND).await;
    // With the token, from snip's own origin: deleted.
    let ok = app
        .client
        .post(app.url(&format!("/app/links/{code}/delete")))
        .header("cookie", &cookie)
        .header("origin", app.base.as_str())
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    expect_status(app.redirect(&code).await, StatusCode::GONE).await;
}

#[tokio::test]
async fn a_session_never_authorizes_the_json_api_and_ends_at_sign_out() {
    let app = spawn_app().await;
    let cookie = use_link(&app).await;
    let me = page(&app, "/api/v1/me", &cookie).await;
    expect_problem(me, StatusCode::UNAUTHORIZED).await;
    let out = sign_out(&app, &cookie).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    let after = page(&app, "/app/links", &cookie).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert!(header(&after, "location").starts_with("/app/sign-in?next="));
}

#[tokio::test]
async fn a_session_ends_after_a_day_unused() {
    let app = spawn_app().await;
    let cookie = use_link(&app).await;
    let get = || {
        app.client
            .get(app.url("/app/links"))
            .header("cookie", &cookie)
            .send()
    };
    // Each use is recorded in the background; give it a moment.
    let pause = || tokio::time::sleep(Duration::from_millis(300));
    app.clock.advance(chrono::TimeDelta::hours(23));
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    pause().await;
    // Used 23 hours ago is not idle; 25 hours after the last use it is.
    app.clock.advance(chrono::TimeDelta::hours(23));
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    pause().await;
    app.clock.advance(chrono::TimeDelta::hours(25));
    assert_eq!(get().await.unwrap().status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_qr_route_draws_the_short_url_for_its_owner_only() {
    let app = spawn_app().await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/qr")
        .await;
    let res = app
        .get(
            &format!("/api/v1/links/{code}/qr?format=png&size=300"),
            &app.admin_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "image/png");
    assert!(header(&res, "cache-control").contains("max-age"));
    let png = res.bytes().await.unwrap();
    assert_eq!(decode_qr(&png), format!("{}/{code}", app.base));
    let svg = app
        .get(&format!("/api/v1/links/{code}/qr"), &app.admin_key)
        .await;
    assert_eq!(header(&svg, "content-type"), "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let bad = app
        .get(
            &format!("/api/v1/links/{code}/qr?format=gif&size=9"),
            &app.admin_key,
        )
        .await;
    let problem = expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(has_field_error(&problem, "format") && has_field_error(&problem, "size"));
    let (_, member_key) = app.create_user("qr-member@example.com").await;
    let other = app
        .get(&format!("/api/v1/links/{code}/qr"), &member_key)
        .await;
    expect_problem(other, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_landing_page_links_to_the_dashboard_and_can_be_turned_off() {
    let app = spawn_app().await;
    let page = expect_text(app.get_anon("/").await, StatusCode::OK).await;
    assert!(page.contains("href=\"/app/links\""), "{page}");
    let off = spawn_app_with(|c| c.dashboard.landing = "none".into()).await;
    expect_status(off.get_anon("/").await, StatusCode::NOT_FOUND).await;
    let away = spawn_app_with(|c| c.dashboard.landing = "https://www.example.com/".into()).await;
    let res = away.get_anon("/").await;
    assert_eq!(header(&res, "location"), "https://www.example.com/");
    // Assets are served under their content hash, cacheable for a year; others are 404.
    let css = page
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with(".css")))
        .expect("a stylesheet link")
        .to_owned();
    let res = app.get_anon(&css).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "cache-control").contains("immutable"));
    expect_status(
        app.get_anon("/app/assets/style.0000000000000000.css").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

/// Signs in through the one-time link in the browser.
async fn browser_sign_in(b: &Browser, link: &str) {
    b.goto(link).await;
    b.fill("#password", PASSWORD).await;
    b.fill("#confirm", PASSWORD).await;
    b.submit("button[type=submit]").await;
    assert!(b.url().await.ends_with("/app/links"), "{}", b.url().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_imports_links_manages_keys_and_adds_a_member() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    browser_sign_in(&b, &app.sign_in_link).await;

    // Import a CSV file of 50 links, one of them bad: a result per row.
    let mut csv = String::from("url,alias,tags,title\n");
    for i in 0..49 {
        csv.push_str(&format!(
            "https://example.com/import/{i},imp-{i},\"csv bulk\",Imported {i}\n"
        ));
    }
    csv.push_str("ftp://example.com/bad,imp-bad,,Bad\n");
    let file = app.dir.path().join("links.csv");
    std::fs::write(&file, csv).unwrap();
    b.goto(&app.url("/app/import")).await;
    b.assert_accessible("import").await;
    b.fill("#file", file.to_str().unwrap()).await;
    b.click("form.panel button[type=submit]").await;
    let text = b.wait_for_text_here("49 created, 1 failed").await;
    assert!(text.contains("imp-48"), "{text}");
    b.assert_accessible("import results").await;
    b.screenshots("import").await;
    let list = app
        .get("/api/v1/links?tag=bulk&limit=100", &app.admin_key)
        .await;
    let list = expect_json(list, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 49);

    // Export: every link, with a header row.
    let (status, body) = b.fetch_bytes("/app/export.csv").await;
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with(
        "code,short_url,url,title,tags,clicks,created_at,expires_at,max_clicks,redirect_status\n"
    ));
    assert_eq!(body.lines().count(), 50);
    assert!(body.contains("imp-7,"), "{body}");

    // Create an API key: shown once, and it works; revoke it, and it stops.
    b.goto(&app.url("/app/keys")).await;
    b.assert_accessible("keys").await;
    b.fill("#name", "ci script").await;
    b.click("form.panel button[type=submit]").await;
    b.wait_for_text_here("shown only this once").await;
    let key = b.text_of("#new-key").await;
    assert!(key.starts_with("snip_"), "{key}");
    b.screenshots("keys").await;
    expect_status(app.get("/api/v1/me", &key).await, StatusCode::OK).await;
    b.goto(&app.url("/app/keys")).await;
    assert!(!b.text().await.contains(&key), "a key is shown only once");
    b.js("window.confirm = () => true;").await;
    b.click("button[aria-label='Revoke ci script']").await;
    b.wait_until_gone("ci script").await;
    expect_problem(app.get("/api/v1/me", &key).await, StatusCode::UNAUTHORIZED).await;

    // Add a member: the page shows a sign-in link to send them.
    b.goto(&app.url("/app/users")).await;
    b.assert_accessible("users").await;
    b.fill("#email", "member@example.com").await;
    b.fill("#user-name", "Mia Member").await;
    b.click("form.panel button[type=submit]").await;
    b.wait_for_text_here("Sign-in link for member@example.com")
        .await;
    let invite = b.text_of("#invite-link").await;
    b.screenshots("users").await;
    // Deleting a user asks first.
    b.click_link("Delete").await;
    b.wait_for_text_here("Delete member@example.com?").await;
    b.assert_accessible("delete user").await;
    b.screenshots("delete-user").await;
    b.submit("header form button[type=submit]").await;

    // The member signs in and sees none of the admin's links, nor the users page.
    browser_sign_in(&b, &invite).await;
    assert!(b.text().await.contains("No links here yet"));
    b.goto(&app.url("/app/links/imp-1")).await;
    assert!(b.text().await.contains("Not found"));
    b.goto(&app.url("/app/users")).await;
    assert!(b.text().await.contains("Not found"));
    assert!(!b.text().await.contains("Users\n"));
    b.close().await;
}

#[tokio::test]
async fn the_links_table_sorts_by_most_clicked_with_page_numbers() {
    let app = spawn_app().await;
    let cookie = use_link(&app).await;
    let mut codes = Vec::new();
    for t in ["one", "two", "three"] {
        let url = format!("https://example.com/{t}");
        codes.push(app.create_link_to(&app.admin_key, &url).await);
    }
    for (code, clicks) in [(&codes[0], 1), (&codes[1], 3)] {
        for _ in 0..clicks {
            expect_status(app.redirect(code).await, StatusCode::FOUND).await;
        }
    }
    // Clicks reach the totals within a fifth of a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = page(&app, "/app/links?sort=clicks", &cookie)
            .await
            .text()
            .await
            .unwrap();
        let at = |c: &str| {
            body.find(&format!(">{c}</a>"))
                .expect("every link is listed")
        };
        if at(&codes[1]) < at(&codes[0]) && at(&codes[0]) < at(&codes[2]) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never sorted by clicks:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("Most clicked first"));
    // Newest first is still the default.
    let newest = page(&app, "/app/links", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(newest.contains("<caption class=\"hint\">Newest first"));
}

#[tokio::test]
async fn a_session_made_on_one_node_is_good_on_another() {
    let a = spawn_app().await;
    let db = format!("sqlite://{}/snip.db", a.dir.path().display());
    let b = spawn_app_with(move |c| c.database_url = db).await;
    let cookie = use_link(&a).await;
    let on_b = page(&b, "/app/links", &cookie).await;
    assert_eq!(on_b.status(), StatusCode::OK);
    // Signing out on one node ends the session on the other.
    let out = sign_out(&b, &cookie).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page(&a, "/app/links", &cookie).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_signed_in_person_has_a_budget_of_pages() {
    let app = spawn_app_with(|c| c.rate_limits.reads.capacity = 3.0).await;
    let cookie = use_link(&app).await;
    for _ in 0..3 {
        assert_eq!(
            page(&app, "/app/links", &cookie).await.status(),
            StatusCode::OK
        );
    }
    let spent = page(&app, "/app/links", &cookie).await;
    assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!header(&spent, "retry-after").is_empty());
    // Their API keys keep budgets of their own.
    expect_status(app.get("/api/v1/me", &app.admin_key).await, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_explorer_runs_offline_under_its_content_security_policy() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    app.create_link(
        &app.admin_key,
        &serde_json::json!({"url": "https://example.com/explored", "alias": "explored"}),
    )
    .await;
    // GraphiQL loads from snip alone, reads the schema by introspection (no key needed) and
    // shows its default query.
    b.goto(&app.url("/graphql")).await;
    b.wait_for_text_here("pageInfo").await;
    // The documentation pane lists the schema's root types once introspection answered.
    b.js("[...document.querySelectorAll('.graphiql-sidebar button')]
            .find(x => (x.getAttribute('aria-label') || '').includes('Documentation')).click();")
        .await;
    let docs = b.wait_for_text_here("Root Types").await;
    assert!(docs.contains("Mutation"), "{docs}");
    // Run the default query without a key: the answer comes back through GraphiQL's own
    // fetcher (so the page's policy allows its requests), as an `unauthorized` error.
    b.click(".graphiql-execute-button").await;
    b.wait_for_text_here("unauthorized").await;
    // With the key in the Headers tab, the same query shows the admin's link.
    let headers = format!("{{\"Authorization\": \"Bearer {}\"}}", app.admin_key);
    b.js(
        "[...document.querySelectorAll('.graphiql-editor-tools button')]
            .find(x => x.textContent.trim() === 'Headers').click();",
    )
    .await;
    // The tab opens once React has rendered it: then the one visible editor of the tools
    // section is the headers editor.
    let mut set = serde_json::json!(false);
    for _ in 0..100 {
        set = b
            .js(&format!(
                "const tools = document.querySelector('.graphiql-editor-tool');
                 if (!tools || tools.getAttribute('aria-label') !== 'Headers') return false;
                 const editors = [...tools.querySelectorAll('.graphiql-editor')]
                   .filter(e => !e.classList.contains('hidden'));
                 const cm = editors.length === 1 && editors[0].querySelector('.CodeMirror');
                 if (!cm) return false;
                 cm.CodeMirror.setValue({headers:?});
                 return true;"
            ))
            .await;
        if set == serde_json::json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(set, serde_json::json!(true), "no headers editor");
    b.click(".graphiql-execute-button").await;
    b.wait_for_text_here("https://example.com/explored").await;
    b.screenshot("graphql-explorer").await;
}
