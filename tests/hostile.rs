//! The whole process under hostile input: its memory is read from `/proc` while it takes an
//! oversized bulk body, hundreds of concurrent wrong passwords and hundreds of slow
//! connections. It must stay under the bounds docs/security.md states, answer `/healthz`
//! within a second throughout, and give the memory back afterwards (all but the one argon2
//! block each password thread keeps for its next check).

mod common;

use std::time::{Duration, Instant};

use common::process::Snip;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const MIB: u64 = 1024 * 1024;
const KEY: &str = "snip_HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH";
/// Password checks at once in this test; each takes about 19 MiB.
const PERMITS: u64 = 2;
const ARGON2: u64 = snip::app::password_gate::ARGON2_MEMORY_BYTES as u64;

/// `/healthz` answers 200 within a second.
async fn healthy(snip: &Snip) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = client.get(snip.url("/healthz")).send().await;
    let resp = resp.unwrap_or_else(|e| panic!("/healthz failed: {e}"));
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Resident memory after the allocator has had a moment to give freed memory back.
async fn settled_rss(snip: &Snip) -> u64 {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    snip.memory("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_and_health_answers_under_hostile_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "password_checks = {PERMITS}\n\
         [rate_limits.passwords]\ncapacity = 100000.0\nrefill_per_sec = 1000.0\n\
         [rate_limits.link_passwords]\ncapacity = 100000.0\nrefill_per_sec = 1000.0\n\
         [rate_limits.anonymous]\ncapacity = 100000.0\nrefill_per_sec = 1000.0\n\
         [rate_limits.redirects]\ncapacity = 100000.0\nrefill_per_sec = 1000.0\n"
    );
    let snip = Snip::on_sqlite(dir.path(), KEY, &config);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let link = snip
        .post_json(
            &client,
            "/api/v1/links",
            KEY,
            &json!({ "url": "https://example.com/p", "password": "right" }),
        )
        .await;
    let code = link["code"].as_str().unwrap().to_owned();
    healthy(&snip).await;
    let idle = settled_rss(&snip).await;

    // 1. The largest bulk body accepted, of tiny items: refused at item 1,001.
    let body = format!("{{\"links\":[{}{{}}]}}", "{},".repeat(1_300_000));
    assert!(body.len() < 4 * MIB as usize);
    let resp = client
        .post(snip.url("/api/v1/links/bulk"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let peak = snip.memory("VmHWM");
    eprintln!(
        "idle {} MiB; peak after the bulk body {} MiB",
        idle / MIB,
        peak / MIB
    );
    assert!(
        peak < idle + 64 * MIB,
        "the bulk body took {} MiB over idle",
        (peak - idle) / MIB
    );
    healthy(&snip).await;

    // 2. 200 concurrent wrong passwords: at most PERMITS argon2 computations at once.
    let statuses = wrong_passwords(&snip, &client, &code).await;
    let peak = snip.memory("VmHWM");
    let bound = idle + PERMITS * ARGON2 + 64 * MIB;
    eprintln!("peak after the passwords {} MiB; {statuses:?}", peak / MIB);
    assert!(
        peak < bound,
        "passwords took {} MiB over idle (bound {} MiB)",
        (peak - idle) / MIB,
        (bound - idle) / MIB
    );

    // 3. 500 slow connections, each half a request head: /healthz still answers.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = tokio::net::TcpStream::connect(&snip.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    for _ in 0..3 {
        healthy(&snip).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = snip.memory("VmHWM");
    assert!(
        peak < bound,
        "slow connections took {} MiB over idle",
        (peak - idle) / MIB
    );
    drop(slow);

    // Afterwards the memory goes back, except what the password threads keep for their next
    // check (one argon2 block each); a second wave of guesses does not add to it.
    let kept = idle + PERMITS * ARGON2 + 32 * MIB;
    for wave in 1..=2 {
        healthy(&snip).await;
        let after = settled_rss(&snip).await;
        eprintln!("resident after wave {wave}: {} MiB", after / MIB);
        assert!(
            after < kept,
            "{} MiB still held over idle after wave {wave}",
            (after.saturating_sub(idle)) / MIB
        );
        if wave == 1 {
            wrong_passwords(&snip, &client, &code).await;
        }
    }
}

/// Sends 200 concurrent wrong passwords; all are 401 or 503 and at least PERMITS are 401.
async fn wrong_passwords(
    snip: &Snip,
    client: &reqwest::Client,
    code: &str,
) -> std::collections::BTreeMap<u16, u64> {
    let mut guesses = Vec::new();
    for _ in 0..200 {
        let (client, url) = (client.clone(), snip.url(&format!("/{code}")));
        guesses.push(tokio::spawn(async move {
            let resp = client.post(url).form(&[("password", "wrong")]).send().await;
            resp.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    healthy(snip).await;
    let mut statuses = std::collections::BTreeMap::new();
    for g in guesses {
        *statuses.entry(g.await.unwrap()).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().all(|s| [401, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&401).is_some_and(|n| *n >= PERMITS),
        "{statuses:?}"
    );
    statuses
}
