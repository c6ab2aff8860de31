//! A client that loads a dashboard of 100 links with their owner and click totals, the
//! GraphQL way (one request) or the REST way (the list, the owner, and each link's
//! statistics), again and again for a bounded time; prints one line:
//! `dashboards requests p50_ms p99_ms` (latency of a whole dashboard). For
//! `bench/graphql.sh`.
//!
//! ```sh
//! cargo run --release --example dashboard_client -- http://127.0.0.1:8080 KEY graphql 5
//! cargo run --release --example dashboard_client -- http://127.0.0.1:8080 KEY rest 5
//! cargo run --release --example dashboard_client -- http://127.0.0.1:8080 KEY rest6 5
//! ```
//!
//! `rest` makes the 100 statistics calls one after another; `rest6` six at a time, as a
//! browser does over its six connections to one host.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

const QUERY: &str = "{ links(first: 100) { edges { node { owner { email } \
     stats { total humans uniqueVisitors } tags } } } }";

async fn get(client: &reqwest::Client, url: String, key: &str) -> anyhow::Result<Value> {
    let res = client.get(&url).bearer_auth(key).send().await?;
    if !res.status().is_success() {
        bail!("{url}: {}", res.status());
    }
    Ok(res.json().await?)
}

/// One dashboard; returns the number of requests it took.
async fn dashboard(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    mode: &str,
) -> anyhow::Result<usize> {
    if mode == "graphql" {
        let res = client
            .post(format!("{base}/graphql"))
            .bearer_auth(key)
            .json(&json!({ "query": QUERY }))
            .send()
            .await?;
        let body: Value = res.json().await?;
        let edges = body["data"]["links"]["edges"]
            .as_array()
            .context("no links")?;
        if body.get("errors").is_some() || edges.len() != 100 {
            bail!("unexpected answer: {body}");
        }
        return Ok(1);
    }
    let list = get(client, format!("{base}/api/v1/links?limit=100"), key).await?;
    let me = get(client, format!("{base}/api/v1/me"), key).await?;
    let codes: Vec<String> = list["data"]
        .as_array()
        .context("no data")?
        .iter()
        .map(|l| l["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    if codes.len() != 100 || !me["email"].is_string() {
        bail!("unexpected listing");
    }
    let parallel = if mode == "rest6" { 6 } else { 1 };
    let stats: Vec<anyhow::Result<Value>> = futures::stream::iter(codes)
        .map(|code| get(client, format!("{base}/api/v1/links/{code}/stats"), key))
        .buffer_unordered(parallel)
        .collect()
        .await;
    for s in stats {
        let s = s?;
        if !s["total"].is_i64() {
            bail!("unexpected statistics: {s}");
        }
    }
    Ok(102)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, key, mode, seconds] = args.as_slice() else {
        bail!("usage: dashboard_client BASE_URL KEY graphql|rest|rest6 SECONDS");
    };
    let seconds: u64 = seconds.parse().context("SECONDS")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .build()?;
    // One dashboard to warm connections and caches.
    dashboard(&client, base, key, mode).await?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut requests = 0;
    while Instant::now() < end {
        let t = Instant::now();
        requests += dashboard(&client, base, key, mode).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "{} {} {:.3} {:.3}",
        latencies.len(),
        requests,
        at(0.5),
        at(0.99)
    );
    Ok(())
}
