//! `/metrics`, in the Prometheus text format. The counters live in the components that count
//! (cache, limiter, click queue, breakers, pools, the HTTP edge) as plain atomics; at scrape
//! time a [`Scrape`] reads them and prometheus-client writes the text. Nothing is global, so
//! every app in a test process reports only its own.
//!
//! Recording stays hand-written (plain atomics) because it is on every request: the
//! library's histogram family would cost about 5 % of a hot redirect. The measurement is in
//! docs/benchmarks/history.md ("Metrics").

mod requests;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use requests::{HttpMetrics, RedirectOutcome, status_class};

use crate::cache::RedirectCache;
use crate::clicks::ClickQueue;
use crate::clicks::nats::Nats;
use crate::ratelimit::Limiter;
use crate::redis_conn::RedisConn;
use crate::resilience::Breaker;
use crate::store::LinkStore;
use crate::store::guarded::Guard;

/// The `Content-Type` of [`Scrape::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Handles on everything that counts, read at each scrape.
pub struct Scrape {
    /// The redirect cache.
    pub cache: Arc<RedirectCache>,
    /// Rate limits.
    pub limiter: Arc<Limiter>,
    /// The click queue.
    pub clicks: ClickQueue,
    /// Redis, when configured.
    pub redis: Option<RedisConn>,
    /// NATS, when configured.
    pub nats: Option<Arc<Nats>>,
    /// Link storage, for its pools.
    pub links: Arc<dyn LinkStore>,
    /// The store's breaker and call latencies.
    pub store_guard: Arc<Guard>,
    /// The HTTP edge's counters.
    pub http: Arc<HttpMetrics>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Scrape {
    /// Every metric, in the Prometheus text format (version 0.0.4).
    pub fn render(self) -> String {
        // A registry per scrape: it only holds the handles above, and scrapes are rare.
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(4096);
        // Writing to a String does not fail, and the collector fails only when writing does.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let cache = self.cache.stats();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        counters(
            &mut enc,
            "snip_cache_requests",
            "Redirect cache lookups by level and result.",
            [
                ("l1", "hit", get(&cache.l1_hits)),
                ("l1", "negative_hit", get(&cache.l1_negative_hits)),
                ("l1", "miss", get(&cache.l1_misses)),
                ("l2", "hit", get(&cache.l2_hits)),
                ("l2", "miss", get(&cache.l2_misses)),
                ("l2", "error", get(&cache.l2_errors)),
                ("store", "load", get(&cache.store_loads)),
            ]
            .map(|(level, result, n)| ([("level", level), ("result", result)], n)),
        )?;
        counter(
            &mut enc,
            "snip_cache_invalidations",
            "Codes dropped from this node's L1.",
            get(&cache.invalidations),
        )?;
        gauge(
            &mut enc,
            "snip_cache_entries",
            "Entries in this node's L1 (found links and unknown codes).",
            self.cache.l1_len(),
        )?;

        counters(
            &mut enc,
            "snip_rate_limited",
            "Requests refused by a rate limit, by policy.",
            self.limiter
                .limited()
                .into_iter()
                .map(|(policy, n)| ([("policy", policy.as_str())], n)),
        )?;
        counter(
            &mut enc,
            "snip_rate_limit_fallback",
            "Rate-limit decisions made locally because Redis failed.",
            self.limiter.fallbacks(),
        )?;

        let clicks = self.clicks.stats();
        counters(
            &mut enc,
            "snip_click_events",
            "Click events by fate.",
            [
                ("queued", get(&clicks.queued)),
                ("dropped", get(&clicks.dropped)),
                ("published", get(&clicks.published)),
                ("spilled", get(&clicks.spilled)),
                ("written", get(&clicks.written)),
                ("redelivered", get(&clicks.redelivered)),
            ]
            .map(|(state, n)| ([("state", state)], n)),
        )?;
        counter(
            &mut enc,
            "snip_click_batches",
            "Batches of clicks written to the store, one transaction each.",
            get(&clicks.batches),
        )?;
        gauge(
            &mut enc,
            "snip_click_queue_depth",
            "Click events waiting in this node's queue.",
            self.clicks.depth() as u64,
        )?;
        if let Some(redis) = &self.redis {
            gauge(
                &mut enc,
                "snip_redis_up",
                "Whether the last Redis call succeeded.",
                u64::from(redis.is_up()),
            )?;
        }

        let mut family = enc.encode_descriptor(
            "snip_http_request_duration_seconds",
            "HTTP requests by route template and status class.",
            None,
            MetricType::Histogram,
        )?;
        self.http
            .requests
            .encode(&["route", "status"], &mut family)?;
        counters(
            &mut enc,
            "snip_redirects",
            "Redirect requests by outcome.",
            self.http
                .redirects()
                .map(|(outcome, n)| ([("outcome", outcome.as_str())], n)),
        )?;
        counter(
            &mut enc,
            "snip_cache_stale_served",
            "Redirects answered from an expired cache entry because the store was down.",
            get(&cache.stale_served),
        )?;

        let guard = &self.store_guard;
        let mut family = enc.encode_descriptor(
            "snip_store_call_duration_seconds",
            "Store calls by operation and outcome (ok, error, unavailable).",
            None,
            MetricType::Histogram,
        )?;
        guard.latency.encode(&["op", "outcome"], &mut family)?;
        let pools = self.links.pool_usage();
        gauges(
            &mut enc,
            "snip_store_pool_connections",
            "Store connections by pool and state.",
            pools.iter().flat_map(|u| {
                [
                    ("idle", u.idle),
                    ("busy", u.size.saturating_sub(u.idle)),
                    ("max", u.max),
                ]
                .map(|(state, n)| ([("pool", u.pool.as_str()), ("state", state)], u64::from(n)))
            }),
        )?;

        let breakers: Vec<&Breaker> = [Some(&guard.breaker)]
            .into_iter()
            .chain([
                self.redis.as_ref().map(RedisConn::breaker),
                self.nats.as_deref().map(Nats::breaker),
            ])
            .flatten()
            .collect();
        gauges(
            &mut enc,
            "snip_circuit_state",
            "Circuit breaker per dependency: 0 closed, 1 open, 2 half-open.",
            breakers
                .iter()
                .map(|b| ([("dependency", b.name())], u64::from(b.state().as_gauge()))),
        )?;
        counters(
            &mut enc,
            "snip_circuit_rejected",
            "Calls refused at once because a dependency's circuit was open.",
            breakers
                .iter()
                .map(|b| ([("dependency", b.name())], get(&b.rejected))),
        )
    }
}

/// A counter without labels. `name` lacks the `_total` the encoder appends.
fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, n: u64) -> std::fmt::Result {
    let c = ConstCounter::new(n);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

/// A counter family, one sample per label set.
fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    samples
        .into_iter()
        .try_for_each(|(labels, n)| sample(&mut family, &labels, ConstCounter::new(n)))
}

/// A gauge without labels.
fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, n: u64) -> std::fmt::Result {
    let g = ConstGauge::new(n);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A gauge family, one sample per label set.
fn gauges<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    samples
        .into_iter()
        .try_for_each(|(labels, n)| sample(&mut family, &labels, ConstGauge::new(n)))
}

fn sample(
    family: &mut MetricEncoder,
    labels: &impl EncodeLabelSet,
    metric: impl EncodeMetric,
) -> std::fmt::Result {
    metric.encode(family.encode_family(labels)?)
}
