//! The `snip` command line: first start prints the admin key once, `snip keys create` makes
//! working keys, and configuration is layered file < environment < flags.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::process::Snip;
use serde_json::{Value, json};

/// Starts `snip serve` without a bootstrap key, stops it, and returns the key it printed on
/// standard error, if it printed one.
fn first_start_key(dir: &std::path::Path, db: &str) -> Option<String> {
    let mut cmd = Snip::command(dir, db, "");
    cmd.stderr(Stdio::piped());
    let mut snip = Snip::spawn(cmd);
    let stderr = snip.take_stderr().expect("stderr");
    snip.terminate();
    assert!(snip.wait().success());
    BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .map(|l| l.trim().to_owned())
        .find(|l| l.starts_with("snip_") && l.len() == 37)
}

async fn me(snip: &Snip, key: &str) -> Value {
    let res = reqwest::Client::new()
        .get(snip.url("/api/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn create_link(snip: &Snip, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(snip.url("/api/v1/links"))
        .bearer_auth(key)
        .json(&json!({"url": "https://example.com/"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_a_working_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let key = first_start_key(dir.path(), &db).expect("no key printed at first start");
    assert_eq!(
        first_start_key(dir.path(), &db),
        None,
        "a key was printed again"
    );

    let snip = Snip::spawn(Snip::command(dir.path(), &db, ""));
    let me = me(&snip, &key).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["email"], "admin@localhost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_makes_keys_for_a_new_or_existing_user() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let keys_create = |email: &str, scopes: &str| {
        Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(["keys", "create", "--email", email, "--scopes", scopes])
            .args(["--database", &db])
            .output()
            .unwrap()
    };
    let key_of = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let reader = key_of(keys_create("alice@example.com", "links:read"));
    let writer = key_of(keys_create("alice@example.com", "links:read,links:write"));
    assert_ne!(reader, writer);
    assert!(
        !keys_create("bob@example.com", "users:admin")
            .status
            .success(),
        "a member got users:admin"
    );

    let snip = Snip::start(
        dir.path(),
        &db,
        "snip_YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY",
        "",
        &[],
    );
    let (r, w) = (me(&snip, &reader).await, me(&snip, &writer).await);
    assert_eq!(r["email"], "alice@example.com");
    assert_eq!(r["id"], w["id"], "both keys belong to one user");
    assert_eq!(r["key"]["scopes"], json!(["links:read"]));
    assert_eq!(create_link(&snip, &reader).await.status(), 403);
    assert_eq!(create_link(&snip, &writer).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_the_environment_which_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let key = "snip_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
    let config = "base_url = \"http://from-file.example\"\n";
    let cases = [
        (None, None, "http://from-file.example/"),
        (
            Some("http://from-env.example"),
            None,
            "http://from-env.example/",
        ),
        (
            Some("http://from-env.example"),
            Some("http://from-flag.example"),
            "http://from-flag.example/",
        ),
    ];
    for (env, flag, expected) in cases {
        let mut cmd = Snip::command(dir.path(), &db, config);
        cmd.env("SNIP_BOOTSTRAP_ADMIN_KEY", key);
        if let Some(e) = env {
            cmd.env("SNIP_BASE_URL", e);
        }
        if let Some(f) = flag {
            cmd.args(["--base-url", f]);
        }
        let snip = Snip::spawn(cmd);
        let link: Value = create_link(&snip, key).await.json().await.unwrap();
        let short = link["short_url"].as_str().unwrap();
        assert!(
            short.starts_with(expected),
            "{short} should start with {expected}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_admin_restores_access_when_no_admin_key_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let first = "snip_RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR";
    {
        // The only admin revokes its only key: nobody can manage users any more.
        let snip = Snip::start(dir.path(), &db, first, "", &[]);
        let id = me(&snip, first).await["key"]["id"].as_i64().unwrap();
        let res = reqwest::Client::new()
            .delete(snip.url(&format!("/api/v1/users/1/keys/{id}")))
            .bearer_auth(first)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["keys", "create", "--email", "admin@localhost", "--admin"])
        .args(["--database", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // A new admin made from the shell, too.
    let out = Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["keys", "create", "--email", "ops@example.com", "--admin"])
        .args(["--database", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ops = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let snip = Snip::start(dir.path(), &db, first, "", &[]);
    for key in [&key, &ops] {
        let me = me(&snip, key).await;
        assert_eq!(me["role"], "admin");
        let scopes = me["key"]["scopes"].as_array().unwrap().len();
        assert_eq!(scopes, 4, "{me}");
        let users = reqwest::Client::new()
            .get(snip.url("/api/v1/users"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(users.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_a_sign_in_link_and_set_password_works_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let mut cmd = Snip::command(dir.path(), &db, "");
    cmd.stderr(Stdio::piped());
    let mut snip = Snip::spawn(cmd);
    let stderr = snip.take_stderr().expect("stderr");
    snip.terminate();
    assert!(snip.wait().success());
    let printed: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        printed.iter().any(|l| l.contains("/app/welcome/")),
        "no sign-in link printed: {printed:?}"
    );

    let set_password = |email: &str, password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(["users", "set-password", "--email", email, "--database", &db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = set_password("admin@localhost", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let nobody = set_password("nobody@example.com", "long enough password");
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user"));
    let ok = set_password("admin@localhost", "long enough password");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let snip = Snip::spawn(Snip::command(dir.path(), &db, ""));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = |password: &'static str| {
        client
            .post(snip.url("/app/sign-in"))
            .form(&[("email", "admin@localhost"), ("password", password)])
            .send()
    };
    assert_eq!(sign_in("long enough password").await.unwrap().status(), 303);
    assert_eq!(sign_in("another password").await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_only_for_a_ready_node() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let snip = Snip::spawn(Snip::command(dir.path(), &db, ""));
    let check = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(args)
            .env_remove("SNIP_CONFIG")
            .output()
            .unwrap()
    };
    let ready = check(&["healthcheck", "--url", &snip.url("/readyz")]);
    assert!(ready.status.success(), "{ready:?}");
    assert!(String::from_utf8_lossy(&ready.stdout).ends_with(": 200\n"));
    // Without --url it asks the configured listen address (0.0.0.0 becomes 127.0.0.1).
    let port = snip.url("").rsplit(':').next().unwrap().to_owned();
    let config = dir.path().join("listen.toml");
    std::fs::write(&config, format!("listen = \"0.0.0.0:{port}\"\n")).unwrap();
    let by_config = check(&["--config", config.to_str().unwrap(), "healthcheck"]);
    assert!(by_config.status.success(), "{by_config:?}");
    // A node that is not there, or a page that is not 200.
    let gone = check(&["healthcheck", "--url", "http://127.0.0.1:1/readyz"]);
    assert!(!gone.status.success());
    let missing = check(&["healthcheck", "--url", &snip.url("/no-such-page")]);
    assert!(!missing.status.success());
}
