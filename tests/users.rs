//! Users, API keys and `/api/v1/me` against docs/api.md: what an admin may do, what a
//! member may do to themselves, and that everything else is refused.

mod common;

use chrono::Duration;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn user_path(id: i64) -> String {
    format!("/api/v1/users/{id}")
}

fn keys_path(id: i64) -> String {
    format!("/api/v1/users/{id}/keys")
}

fn assert_user_shape(user: &Value) {
    for field in ["id", "email", "name", "role", "created_at", "updated_at"] {
        assert!(user.get(field).is_some(), "user lacks {field:?}: {user}");
    }
    assert!(is_millis_time(&str_field(user, "created_at")), "{user}");
    assert!(is_millis_time(&str_field(user, "updated_at")), "{user}");
}

/// The listed keys of a user, asserting that none of them shows the secret.
async fn list_keys(app: &TestApp, user_id: i64, as_key: &str) -> Vec<Value> {
    let body = expect_json(app.get(&keys_path(user_id), as_key).await, StatusCode::OK).await;
    let keys = items(&body);
    for k in &keys {
        assert!(k.get("key").is_none(), "a listed key shows its secret: {k}");
        assert!(!k.to_string().contains("snip_"), "a listed key leaks: {k}");
    }
    keys
}

#[tokio::test]
async fn the_bootstrap_admin_is_user_1() {
    let app = spawn_app().await;
    let me = expect_json(app.get("/api/v1/me", ADMIN_KEY).await, StatusCode::OK).await;
    assert_user_shape(&me);
    assert_eq!(me["id"], ADMIN_ID);
    assert_eq!(me["email"], "admin@localhost");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["key"]["prefix"], "AAAAAAAA");
    assert!(scopes_of(&me["key"]["scopes"]).contains(&"users:admin".to_string()));
}

#[tokio::test]
async fn admin_creates_users_and_a_taken_email_is_409() {
    let app = spawn_app().await;
    let user = app
        .create_user_json(&json!({ "email": "ann@example.com", "name": "Ann" }))
        .await;
    assert_user_shape(&user);
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann");
    assert_eq!(user["role"], "member");
    assert_eq!(user["created_at"], app.now_str());
    assert_ne!(user["id"], ADMIN_ID);

    let admin = app
        .create_user_json(&json!({ "email": "boss@example.com", "role": "admin" }))
        .await;
    assert_eq!(admin["role"], "admin");

    let resp = app
        .post_json(
            "/api/v1/users",
            ADMIN_KEY,
            &json!({ "email": "ann@example.com", "name": "Other Ann" }),
        )
        .await;
    expect_problem(resp, StatusCode::CONFLICT).await;

    for (body, field) in [
        (json!({ "name": "No Email" }), "email"),
        (json!({ "email": "not-an-email" }), "email"),
        (json!({ "email": "x@example.com", "role": "owner" }), "role"),
    ] {
        let resp = app.post_json("/api/v1/users", ADMIN_KEY, &body).await;
        expect_field_error(resp, field).await;
    }
    let all = app
        .walk_cursor("/api/v1/users?limit=100", ADMIN_KEY, 5)
        .await;
    assert_eq!(all.len(), 3, "{all:?}");
}

#[tokio::test]
async fn admin_walks_the_user_list_by_cursor() {
    let app = spawn_app().await;
    let mut expected = vec![ADMIN_ID];
    for i in 0..9 {
        let (id, _) = app.create_user(&format!("user{i}@example.com")).await;
        expected.push(id);
    }
    let first = expect_json(
        app.get("/api/v1/users?limit=3", ADMIN_KEY).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&first).len(), 3);
    assert_eq!(first["has_more"], true);

    let all = app
        .walk_cursor("/api/v1/users?limit=3", ADMIN_KEY, 10)
        .await;
    let ids: Vec<i64> = all.iter().map(|u| int_field(u, "id")).collect();
    assert_eq!(ids, expected, "ids ascending, each once");
    for u in &all {
        assert_user_shape(u);
    }

    expect_problem(
        app.get("/api/v1/users?cursor=not-a-real-cursor", ADMIN_KEY)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn admin_reads_replaces_and_patches_a_user() {
    let app = spawn_app().await;
    let (id, _) = app.create_user("carl@example.com").await;
    let path = user_path(id);
    let got = expect_json(app.get(&path, ADMIN_KEY).await, StatusCode::OK).await;
    assert_eq!(got["email"], "carl@example.com");
    let created_at = got["created_at"].clone();

    app.clock.advance(Duration::minutes(3));
    let put = expect_json(
        app.put_json(
            &path,
            ADMIN_KEY,
            &json!({ "email": "carl2@example.com", "name": "Carl", "role": "admin" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(put["id"], id);
    assert_eq!(put["email"], "carl2@example.com");
    assert_eq!(put["name"], "Carl");
    assert_eq!(put["role"], "admin");
    assert_eq!(put["created_at"], created_at);
    assert_eq!(put["updated_at"], app.now_str());

    app.clock.advance(Duration::minutes(1));
    let patched = expect_json(
        app.patch_json(
            &path,
            ADMIN_KEY,
            &json!({ "name": "Carl P", "role": "member" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["email"], "carl2@example.com");
    assert_eq!(patched["name"], "Carl P");
    assert_eq!(patched["role"], "member");
    assert_eq!(patched["updated_at"], app.now_str());

    let got = expect_json(app.get(&path, ADMIN_KEY).await, StatusCode::OK).await;
    assert_eq!(got, patched);

    // An email taken by another user is a conflict on update too.
    let resp = app
        .patch_json(&path, ADMIN_KEY, &json!({ "email": "admin@localhost" }))
        .await;
    expect_problem(resp, StatusCode::CONFLICT).await;
    expect_problem(
        app.get(&user_path(9999), ADMIN_KEY).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_revokes_their_keys_and_retires_their_links() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("dora@example.com").await;
    let second = app.create_key(id, &key, &json!({ "name": "second" })).await;
    let second = str_field(&second, "key");
    let link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/d", "alias": "doras" }),
        )
        .await;
    let code = str_field(&link, "code");
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);

    expect_status(
        app.delete(&user_path(id), ADMIN_KEY).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    for k in [&key, &second] {
        expect_problem(app.get("/api/v1/me", k).await, StatusCode::UNAUTHORIZED).await;
        expect_problem(app.get("/api/v1/links", k).await, StatusCode::UNAUTHORIZED).await;
    }
    expect_problem(app.redirect(&code).await, StatusCode::GONE).await;
    expect_problem(
        app.get(&user_path(id), ADMIN_KEY).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let users = app
        .walk_cursor("/api/v1/users?limit=100", ADMIN_KEY, 5)
        .await;
    assert!(
        users.iter().all(|u| u["id"] != id),
        "deleted user listed: {users:?}"
    );
    // The deleted user's alias stays retired.
    let resp = app
        .post_link(
            ADMIN_KEY,
            &json!({ "url": "https://example.com/x", "alias": "doras" }),
        )
        .await;
    expect_problem(resp, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_member_reads_and_updates_themselves() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("eve@example.com").await;
    let path = user_path(id);

    let own = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(own["email"], "eve@example.com");
    assert_eq!(own["role"], "member");

    let patched = expect_json(
        app.patch_json(&path, &key, &json!({ "name": "Eve E." }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["name"], "Eve E.");
    assert_eq!(patched["email"], "eve@example.com");

    let put = expect_json(
        app.put_json(
            &path,
            &key,
            &json!({ "email": "eve2@example.com", "name": "Eve" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(put["email"], "eve2@example.com");
    assert_eq!(put["name"], "Eve");
    assert_eq!(put["role"], "member");

    let me = expect_json(app.get("/api/v1/me", &key).await, StatusCode::OK).await;
    assert_user_shape(&me);
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], "eve2@example.com");
    assert_eq!(me["role"], "member");
    assert_eq!(me["key"]["prefix"], key[5..13]);
    assert_eq!(
        scopes_of(&me["key"]["scopes"]),
        vec!["account:write", "links:read", "links:write"]
    );
    assert!(me["key"].get("key").is_none(), "{me}");
}

#[tokio::test]
async fn a_member_cannot_make_themselves_admin() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("mal@example.com").await;
    let path = user_path(id);
    let refused = [StatusCode::FORBIDDEN, StatusCode::UNPROCESSABLE_ENTITY];
    expect_problem_in(
        app.patch_json(&path, &key, &json!({ "role": "admin" }))
            .await,
        &refused,
    )
    .await;
    expect_problem_in(
        app.put_json(
            &path,
            &key,
            &json!({ "email": "mal@example.com", "name": "Mal", "role": "admin" }),
        )
        .await,
        &refused,
    )
    .await;
    let me = expect_json(app.get("/api/v1/me", &key).await, StatusCode::OK).await;
    assert_eq!(me["role"], "member");
    let got = expect_json(app.get(&path, ADMIN_KEY).await, StatusCode::OK).await;
    assert_eq!(got["role"], "member");
    // Still no way into the admin endpoints.
    expect_problem(app.get("/api/v1/users", &key).await, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn a_member_cannot_touch_other_users_or_admin_endpoints() {
    let app = spawn_app().await;
    let (_, key_a) = app.create_user("a@example.com").await;
    let (id_b, key_b) = app.create_user("b@example.com").await;
    let b_keys = list_keys(&app, id_b, &key_b).await;
    let b_key_id = id_segment(&b_keys[0]["id"]);

    for id in [id_b, ADMIN_ID, 9999] {
        let path = user_path(id);
        expect_problem(app.get(&path, &key_a).await, StatusCode::NOT_FOUND).await;
        expect_problem(
            app.put_json(
                &path,
                &key_a,
                &json!({ "email": "x@example.com", "name": "x" }),
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_problem(
            app.patch_json(&path, &key_a, &json!({ "name": "x" })).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_problem(app.delete(&path, &key_a).await, StatusCode::NOT_FOUND).await;
        expect_problem(app.get(&keys_path(id), &key_a).await, StatusCode::NOT_FOUND).await;
        expect_problem(
            app.post_json(&keys_path(id), &key_a, &json!({})).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_problem(
            app.get(&format!("/api/v1/users/{id}/links"), &key_a).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    expect_problem(
        app.delete(&format!("{}/{b_key_id}", keys_path(id_b)), &key_a)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The admin endpoints need users:admin.
    expect_problem(
        app.get("/api/v1/users", &key_a).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(
        app.post_json(
            "/api/v1/users",
            &key_a,
            &json!({ "email": "c@example.com" }),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;

    // B is unchanged and B's key still works.
    let b = expect_json(app.get("/api/v1/me", &key_b).await, StatusCode::OK).await;
    assert_eq!(b["email"], "b@example.com");
    assert_eq!(b["name"], "b@example.com");
    assert_eq!(list_keys(&app, id_b, &key_b).await.len(), 1);
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secret_and_revoked_at_once() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("kim@example.com").await;
    app.clock.advance(Duration::seconds(10));

    let created = app.create_key(id, &key, &json!({ "name": "laptop" })).await;
    for field in [
        "id",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "key",
    ] {
        assert!(
            created.get(field).is_some(),
            "key lacks {field:?}: {created}"
        );
    }
    let secret = str_field(&created, "key");
    assert!(is_api_key(&secret), "{secret}");
    assert_ne!(secret, key);
    assert_eq!(created["name"], "laptop");
    assert_eq!(created["prefix"], secret[5..13]);
    assert_eq!(created["created_at"], app.now_str());
    assert_eq!(
        scopes_of(&created["scopes"]),
        vec!["links:read".to_string(), "links:write".to_string()]
    );

    let me = expect_json(app.get("/api/v1/me", &secret).await, StatusCode::OK).await;
    assert_eq!(me["id"], id);
    assert_eq!(me["key"]["id"], created["id"]);

    let listed = list_keys(&app, id, &key).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let entry = listed
        .iter()
        .find(|k| k["id"] == created["id"])
        .expect("the new key is listed");
    assert_eq!(entry["prefix"], created["prefix"]);
    assert_eq!(entry["name"], "laptop");
    // The admin sees the same list.
    assert_eq!(list_keys(&app, id, ADMIN_KEY).await.len(), 2);

    let key_id = id_segment(&created["id"]);
    expect_status(
        app.delete(&format!("{}/{key_id}", keys_path(id)), &key)
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let resp = app.get("/api/v1/me", &secret).await;
    assert!(header(&resp, "www-authenticate").starts_with("Bearer"));
    expect_problem(resp, StatusCode::UNAUTHORIZED).await;
    // The other key is unaffected.
    expect_json(app.get("/api/v1/me", &key).await, StatusCode::OK).await;
    // Another user's key id under this user's path is not found.
    let (other_id, other_key) = app.create_user("other@example.com").await;
    let other_keys = list_keys(&app, other_id, &other_key).await;
    let other_key_id = id_segment(&other_keys[0]["id"]);
    expect_problem(
        app.delete(&format!("{}/{other_key_id}", keys_path(id)), &key)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_json(app.get("/api/v1/me", &other_key).await, StatusCode::OK).await;
}

#[tokio::test]
async fn only_an_admin_key_may_hold_users_admin() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("max@example.com").await;
    let refused = [StatusCode::FORBIDDEN, StatusCode::UNPROCESSABLE_ENTITY];

    let resp = app
        .post_json(&keys_path(id), &key, &json!({ "scopes": ["users:admin"] }))
        .await;
    expect_problem_in(resp, &refused).await;
    let resp = app
        .post_json(
            &keys_path(id),
            &key,
            &json!({ "scopes": ["links:read", "users:admin"] }),
        )
        .await;
    expect_problem_in(resp, &refused).await;
    // Not even the admin can give a member's key the admin scope.
    let resp = app
        .post_json(
            &keys_path(id),
            ADMIN_KEY,
            &json!({ "scopes": ["users:admin"] }),
        )
        .await;
    expect_problem_in(resp, &refused).await;
    assert_eq!(list_keys(&app, id, &key).await.len(), 1);

    let resp = app
        .post_json(
            &keys_path(id),
            &key,
            &json!({ "scopes": ["links:everything"] }),
        )
        .await;
    expect_field_error(resp, "scopes").await;

    // An admin's own key may hold it, and it works.
    let admin_key = app
        .create_key(ADMIN_ID, ADMIN_KEY, &json!({ "scopes": ["users:admin"] }))
        .await;
    assert_eq!(
        scopes_of(&admin_key["scopes"]),
        vec!["users:admin".to_string()]
    );
    let admin_key = str_field(&admin_key, "key");
    expect_json(app.get("/api/v1/users", &admin_key).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_users_links_are_listed_for_them_and_the_admin() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("lu@example.com").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(
            app.create_link_to(&key, &format!("https://example.com/{i}"))
                .await,
        );
        app.clock.advance(Duration::seconds(1));
    }
    mine.reverse(); // newest first
    app.create_link_to(ADMIN_KEY, "https://example.com/admins")
        .await;

    let path = format!("/api/v1/users/{id}/links?limit=2");
    for as_key in [key.as_str(), ADMIN_KEY] {
        let first = expect_json(app.get(&path, as_key).await, StatusCode::OK).await;
        assert_eq!(first["has_more"], true, "{first}");
        assert!(first["next_cursor"].is_string(), "{first}");
        let all = app.walk_cursor(&path, as_key, 5).await;
        assert_eq!(codes(&all), mine);
        assert!(all.iter().all(|l| l["owner_id"] == id));
    }
    let admins = expect_json(app.get("/api/v1/links", ADMIN_KEY).await, StatusCode::OK).await;
    assert_eq!(items(&admins).len(), 1, "{admins}");
    expect_problem(
        app.get("/api/v1/users/9999/links", ADMIN_KEY).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn user_endpoints_without_a_key_are_401() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/me"),
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/users/1"),
        (Method::GET, "/api/v1/users/1/keys"),
        (Method::DELETE, "/api/v1/users/1"),
    ] {
        let resp = app.send(method, path, None).await;
        expect_problem(resp, StatusCode::UNAUTHORIZED).await;
    }
    let resp = app
        .send_json(
            Method::POST,
            "/api/v1/users",
            None,
            &json!({ "email": "x@example.com" }),
        )
        .await;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_keys_last_used_at_is_set_when_the_key_is_used() {
    let app = spawn_app().await;
    let (id, key) = app.create_user("lu@example.com").await;
    // Listed with the admin's key, so that listing does not use the member's key.
    let last_used = || async {
        let keys = list_keys(&app, id, ADMIN_KEY).await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        keys[0]["last_used_at"].clone()
    };
    // Creating the key was done with the admin's key: this one is unused.
    assert_eq!(last_used().await, Value::Null);

    // The use is recorded in the background: wait for it (bounded).
    let wait_for = |at: String| async move {
        for _ in 0..200 {
            if last_used().await == Value::String(at.clone()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("last_used_at is {} instead of {at}", last_used().await);
    };
    app.clock.advance(Duration::seconds(5));
    expect_json(app.get("/api/v1/me", &key).await, StatusCode::OK).await;
    wait_for(app.now_str()).await;

    // A later use moves it on.
    app.clock.advance(Duration::hours(1));
    expect_json(app.get("/api/v1/me", &key).await, StatusCode::OK).await;
    wait_for(app.now_str()).await;
}
