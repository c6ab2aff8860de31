//! Authorization as an attacker would try it. The scope matrix is generated from the route
//! table the server enforces (`snip::http::access::API_ROUTES`), which a unit test keeps
//! equal to the OpenAPI document, so a new route cannot escape it: every route × five
//! callers × three objects, with the status `docs/api.md` promises and nothing changed in
//! the store after a refused request.

mod common;

use common::*;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use snip::domain::key::Scope;
use snip::http::access::{API_ROUTES, Need, Route};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    NoKey,
    /// A's key with `links:read` only.
    ReadOnly,
    /// A's key with `links:read links:write account:write`.
    ReadWrite,
    /// B's key (B is another member), with every scope a member may hold.
    Other,
    /// The bootstrap admin.
    Admin,
}

/// Whose object the path names, seen from the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Object {
    Own,
    Someone,
    Missing,
}

/// The users, keys and links each case starts from.
struct Fixture {
    app: TestApp,
    a: Party,
    b: Party,
    admin: Party,
    a_read_key: String,
}

/// A user, a key of theirs with every scope they may hold, one more key, and one link.
struct Party {
    id: i64,
    email: String,
    key: String,
    spare_key_id: i64,
    code: String,
}

const MEMBER_SCOPES: [&str; 3] = ["links:read", "links:write", "account:write"];

async fn party(app: &TestApp, email: &str) -> Party {
    let user = app
        .create_user_json(&json!({ "email": email, "name": email }))
        .await;
    let id = int_field(&user, "id");
    let key = app
        .create_key(id, ADMIN_KEY, &json!({ "scopes": MEMBER_SCOPES }))
        .await;
    let key = str_field(&key, "key");
    let spare = app
        .create_key(id, ADMIN_KEY, &json!({ "scopes": ["links:read"] }))
        .await;
    let code = app
        .create_link_to(&key, &format!("https://example.com/{email}"))
        .await;
    Party {
        id,
        email: email.to_owned(),
        key,
        spare_key_id: int_field(&spare, "id"),
        code,
    }
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let a = party(&app, "a@example.com").await;
    let b = party(&app, "b@example.com").await;
    let spare = app
        .create_key(
            common::ADMIN_ID,
            ADMIN_KEY,
            &json!({ "scopes": ["links:read"] }),
        )
        .await;
    let admin_code = app
        .create_link_to(ADMIN_KEY, "https://admin.example/")
        .await;
    let admin = Party {
        id: common::ADMIN_ID,
        email: "admin@localhost".into(),
        key: ADMIN_KEY.into(),
        spare_key_id: int_field(&spare, "id"),
        code: admin_code,
    };
    let a_read = app
        .create_key(a.id, ADMIN_KEY, &json!({ "scopes": ["links:read"] }))
        .await;
    Fixture {
        a_read_key: str_field(&a_read, "key"),
        app,
        a,
        b,
        admin,
    }
}

impl Fixture {
    fn key(&self, who: Who) -> Option<&str> {
        match who {
            Who::NoKey => None,
            Who::ReadOnly => Some(&self.a_read_key),
            Who::ReadWrite => Some(&self.a.key),
            Who::Other => Some(&self.b.key),
            Who::Admin => Some(&self.admin.key),
        }
    }

    /// The caller's own party, and the party whose objects are "someone else's".
    fn parties(&self, who: Who) -> (&Party, &Party) {
        match who {
            Who::Admin => (&self.admin, &self.a),
            Who::Other => (&self.b, &self.a),
            _ => (&self.a, &self.b),
        }
    }

    /// The route's path with its placeholders filled for `object`.
    fn path(&self, route: &Route, who: Who, object: Object) -> String {
        let (own, someone) = self.parties(who);
        let (id, code, key_id) = match object {
            Object::Own => (own.id, own.code.clone(), own.spare_key_id),
            Object::Someone => (someone.id, someone.code.clone(), someone.spare_key_id),
            Object::Missing => (9_999, "nosuchcode".to_owned(), 9_999),
        };
        route
            .path
            .replace("{id}", &id.to_string())
            .replace("{code}", &code)
            .replace("{key_id}", &key_id.to_string())
    }

    /// A valid body for the route (so that an allowed request succeeds).
    fn body(&self, route: &Route, who: Who, object: Object) -> Option<Value> {
        let (own, someone) = self.parties(who);
        let user = if object == Object::Someone {
            someone
        } else {
            own
        };
        match (route.method.as_str(), route.path) {
            ("POST", "/api/v1/links") => Some(json!({ "url": "https://new.example/" })),
            ("POST", "/api/v1/links/bulk") => {
                Some(json!({ "links": [{ "url": "https://bulk.example/" }] }))
            }
            ("PUT", "/api/v1/links/{code}") => Some(json!({ "url": "https://put.example/" })),
            ("PATCH", "/api/v1/links/{code}") => Some(json!({ "title": "patched" })),
            ("POST", "/api/v1/users") => Some(json!({ "email": "new@example.com", "name": "New" })),
            ("PUT", "/api/v1/users/{id}") => {
                Some(json!({ "email": user.email, "name": "Renamed" }))
            }
            ("PATCH", "/api/v1/users/{id}") => Some(json!({ "name": "Patched" })),
            ("POST", "/api/v1/users/{id}/keys") => Some(json!({ "scopes": ["links:read"] })),
            _ => None,
        }
    }

    /// Users, keys and links as the admin sees them (times of key use left out).
    async fn snapshot(&self) -> Value {
        let users = expect_json(
            self.app.get("/api/v1/users?limit=100", ADMIN_KEY).await,
            StatusCode::OK,
        )
        .await;
        let mut all = vec![users.clone()];
        for user in items(&users) {
            let id = int_field(&user, "id");
            let mut keys = expect_json(
                self.app
                    .get(&format!("/api/v1/users/{id}/keys"), ADMIN_KEY)
                    .await,
                StatusCode::OK,
            )
            .await;
            for k in keys.as_array_mut().into_iter().flatten() {
                k.as_object_mut().map(|o| o.remove("last_used_at"));
            }
            let links = expect_json(
                self.app
                    .get(&format!("/api/v1/users/{id}/links?limit=100"), ADMIN_KEY)
                    .await,
                StatusCode::OK,
            )
            .await;
            all.push(keys);
            all.push(links);
        }
        Value::Array(all)
    }
}

/// The scope each route needs as docs/api.md states it, written apart from the server's
/// table so that a change to the table shows here. A route this does not know fails the
/// test: add it with its documented scope.
fn documented_need(route: &Route) -> Need {
    use Scope::*;
    match (route.method.as_str(), route.path) {
        (
            "GET",
            "/api/v1/links"
            | "/api/v1/links/export"
            | "/api/v1/links/{code}"
            | "/api/v1/links/{code}/stats"
            | "/api/v1/links/{code}/qr",
        ) => Need::Scope(LinksRead),
        ("GET", "/api/v1/users/{id}/links") => Need::Scope(LinksRead),
        ("POST" | "PUT" | "PATCH" | "DELETE", p) if p.starts_with("/api/v1/links") => {
            Need::Scope(LinksWrite)
        }
        (_, "/api/v1/users") => Need::Scope(UsersAdmin),
        ("GET", "/api/v1/users/{id}" | "/api/v1/users/{id}/keys" | "/api/v1/me") => Need::AnyKey,
        (
            "PUT" | "PATCH" | "DELETE" | "POST",
            "/api/v1/users/{id}" | "/api/v1/users/{id}/keys" | "/api/v1/users/{id}/keys/{key_id}",
        ) => Need::Scope(AccountWrite),
        (m, p) => panic!("{m} {p} is not in docs/api.md's scope table: add it to this test"),
    }
}

/// Whether `who`'s key meets `need`.
fn holds(who: Who, need: Need) -> bool {
    let scopes: &[Scope] = match who {
        Who::NoKey => return false,
        Who::ReadOnly => &[Scope::LinksRead],
        Who::ReadWrite | Who::Other => &[Scope::LinksRead, Scope::LinksWrite, Scope::AccountWrite],
        Who::Admin => &Scope::ALL,
    };
    match need {
        Need::AnyKey => true,
        Need::Scope(s) => scopes.contains(&s) || (s == Scope::AccountWrite && who == Who::Admin),
    }
}

/// What `docs/api.md` promises: 401 without a key, 403 without the scope, 404 for a missing
/// object or someone else's (unless an admin asks), else success. The one exception: the
/// last admin cannot delete itself (409).
fn expected(route: &Route, who: Who, object: Object) -> StatusCode {
    if who == Who::NoKey {
        return StatusCode::UNAUTHORIZED;
    }
    if !holds(who, documented_need(route)) {
        return StatusCode::FORBIDDEN;
    }
    if object == Object::Missing || (object == Object::Someone && who != Who::Admin) {
        return StatusCode::NOT_FOUND;
    }
    if who == Who::Admin
        && object == Object::Own
        && route.method == Method::DELETE
        && route.path == "/api/v1/users/{id}"
    {
        return StatusCode::CONFLICT;
    }
    match (route.method.as_str(), route.path) {
        ("POST", "/api/v1/links/bulk") => StatusCode::OK,
        ("POST", _) => StatusCode::CREATED,
        ("DELETE", _) => StatusCode::NO_CONTENT,
        _ => StatusCode::OK,
    }
}

async fn run_case(route: &'static Route, who: Who, object: Object) -> Result<(), String> {
    let f = fixture().await;
    let before = f.snapshot().await;
    let path = f.path(route, who, object);
    let method = Method::from_bytes(route.method.as_str().as_bytes()).expect("method");
    let mut req = f.app.request(method, &path, f.key(who));
    if let Some(body) = f.body(route, who, object) {
        req = req.json(&body);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let got = resp.status();
    let ctype = header(&resp, "content-type");
    let text = resp.text().await.unwrap_or_default();
    let want = expected(route, who, object);
    let case = format!("{} {path} as {who:?} on {object:?}", route.method);
    if got != want {
        return Err(format!("{case}: got {got}, want {want}; body {text}"));
    }
    if got.is_client_error() {
        if !ctype.starts_with("application/problem+json") {
            return Err(format!("{case}: {got} is not a problem document"));
        }
        if f.snapshot().await != before {
            return Err(format!("{case}: refused with {got}, yet the store changed"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_every_caller_it_should_and_changes_nothing() {
    let mut cases = Vec::new();
    for route in API_ROUTES {
        let objects: &[Object] = if route.path.contains('{') {
            &[Object::Own, Object::Someone, Object::Missing]
        } else {
            &[Object::Own]
        };
        for who in [
            Who::NoKey,
            Who::ReadOnly,
            Who::ReadWrite,
            Who::Other,
            Who::Admin,
        ] {
            for &object in objects {
                cases.push((route, who, object));
            }
        }
    }
    let total = cases.len();
    let failures: Vec<String> = futures::stream::iter(cases)
        .map(|(route, who, object)| run_case(route, who, object))
        .buffer_unordered(8)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(total > 200, "only {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_read_only_key_cannot_escalate_or_touch_the_account() {
    let app = spawn_app().await;
    let (id, _) = app.create_user("ro@example.com").await;
    let ro = app
        .create_key(id, ADMIN_KEY, &json!({ "scopes": ["links:read"] }))
        .await;
    let ro = str_field(&ro, "key");
    let keys = format!("/api/v1/users/{id}/keys");
    // Neither a new key (with or without scopes), nor changes to the user or their keys.
    for body in [
        json!({}),
        json!({ "scopes": ["links:read"] }),
        json!({ "scopes": ["links:read", "links:write"] }),
    ] {
        expect_problem(
            app.post_json(&keys, &ro, &body).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let user = format!("/api/v1/users/{id}");
    expect_problem(
        app.patch_json(&user, &ro, &json!({ "name": "x" })).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(app.delete(&user, &ro).await, StatusCode::FORBIDDEN).await;
    let listed = expect_json(app.get(&keys, &ro).await, StatusCode::OK).await;
    let first = int_field(&items(&listed)[0], "id");
    expect_problem(
        app.delete(&format!("{keys}/{first}"), &ro).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Still there, still a member, still able to read.
    expect_status(app.get(&user, ADMIN_KEY).await, StatusCode::OK).await;
    assert_eq!(items(&listed).len(), 2);
    expect_status(app.get("/api/v1/links", &ro).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_key_never_mints_a_scope_it_does_not_hold() {
    let app = spawn_app().await;
    let (id, _) = app.create_user("m@example.com").await;
    let narrow = app
        .create_key(
            id,
            ADMIN_KEY,
            &json!({ "scopes": ["links:read", "account:write"] }),
        )
        .await;
    let narrow = str_field(&narrow, "key");
    let keys = format!("/api/v1/users/{id}/keys");
    for scopes in [json!(["links:write"]), json!(["users:admin"])] {
        let problem = expect_problem(
            app.post_json(&keys, &narrow, &json!({ "scopes": scopes }))
                .await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("scope"),
            "{problem}"
        );
    }
    // A subset is fine; without scopes the default is cut to what the caller holds.
    let sub = app
        .create_key(id, &narrow, &json!({ "scopes": ["links:read"] }))
        .await;
    assert_eq!(scopes_of(&sub["scopes"]), vec!["links:read"]);
    let default = app.create_key(id, &narrow, &json!({})).await;
    assert_eq!(scopes_of(&default["scopes"]), vec!["links:read"]);
    // The admin's default for a member stays links:read links:write.
    let by_admin = app.create_key(id, ADMIN_KEY, &json!({})).await;
    assert_eq!(
        scopes_of(&by_admin["scopes"]),
        vec!["links:read", "links:write"]
    );
}

#[tokio::test]
async fn live_keys_per_user_are_capped() {
    let app = spawn_app_with(|c| c.max_keys_per_user = 3).await;
    let (id, key) = app.create_user("k@example.com").await;
    let keys = format!("/api/v1/users/{id}/keys");
    // The user holds one key; two more fit.
    let mut made = Vec::new();
    for _ in 0..2 {
        let k = app
            .create_key(id, &key, &json!({ "scopes": ["links:read"] }))
            .await;
        made.push(int_field(&k, "id"));
    }
    let problem = expect_problem(
        app.post_json(&keys, &key, &json!({ "scopes": ["links:read"] }))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(problem["type"], "/docs/problems#too-many-keys");
    // The admin is held to it too; revoking one makes room.
    expect_status(
        app.post_json(&keys, ADMIN_KEY, &json!({})).await,
        StatusCode::CONFLICT,
    )
    .await;
    expect_status(
        app.delete(&format!("{keys}/{}", made[0]), &key).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.create_key(id, &key, &json!({ "scopes": ["links:read"] }))
        .await;
}

#[tokio::test]
async fn the_last_admin_can_be_neither_deleted_nor_demoted() {
    let app = spawn_app().await;
    let me = format!("/api/v1/users/{}", common::ADMIN_ID);
    let problem = expect_problem(app.delete(&me, ADMIN_KEY).await, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/docs/problems#last-admin");
    let problem = expect_problem(
        app.patch_json(&me, ADMIN_KEY, &json!({ "role": "member" }))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(problem["type"], "/docs/problems#last-admin");
    expect_status(app.get("/api/v1/me", ADMIN_KEY).await, StatusCode::OK).await;

    // With a second admin, the first may go.
    let (other, _) = app.create_user("second@example.com").await;
    let other_path = format!("/api/v1/users/{other}");
    expect_status(
        app.patch_json(&other_path, ADMIN_KEY, &json!({ "role": "admin" }))
            .await,
        StatusCode::OK,
    )
    .await;
    let second_key = app
        .create_key(
            other,
            ADMIN_KEY,
            &json!({ "scopes": ["users:admin", "links:read"] }),
        )
        .await;
    let second_key = str_field(&second_key, "key");
    expect_status(app.delete(&me, ADMIN_KEY).await, StatusCode::NO_CONTENT).await;
    // Now the second is the last.
    expect_status(
        app.delete(&other_path, &second_key).await,
        StatusCode::CONFLICT,
    )
    .await;
}
