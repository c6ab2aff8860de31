//! Latency histograms with fixed buckets, lock-free to record; and a family of them keyed by
//! a bounded set of labels. They record with plain atomics (a request pays three additions);
//! prometheus-client writes them out at scrape time (see the `metrics` module).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

/// Upper bounds of the buckets, in seconds: 250 µs to 10 s.
pub const BUCKETS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum of observations, in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples.
    pub fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let buckets: [(f64, u64); BUCKETS.len()] =
            std::array::from_fn(|i| (BUCKETS[i], self.counts[i].load(Ordering::Relaxed)));
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, self.count(), &buckets, None)
    }
}

/// Histograms by label values. The label values must come from a bounded set (route
/// templates, operation names, status classes), never from raw input.
#[derive(Debug, Default)]
pub struct HistogramVec {
    /// Keyed by the label values joined with `SEP`.
    map: RwLock<HashMap<String, Arc<Histogram>>>,
}

/// Separates label values in a key (a character no label value contains).
const SEP: char = '\u{1f}';

impl HistogramVec {
    /// The histogram for `labels` (values in the order of the family's label names).
    pub fn with(&self, labels: &[&str]) -> Arc<Histogram> {
        let mut key = String::with_capacity(32);
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                key.push(SEP);
            }
            key.push_str(l);
        }
        if let Some(h) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return h.clone();
        }
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// Writes every histogram of the family, labelled with `names` and sorted by labels.
    pub fn encode(&self, names: &[&str], encoder: &mut MetricEncoder) -> std::fmt::Result {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (values, h) in entries {
            let labels: Vec<(&str, &str)> = names.iter().copied().zip(values.split(SEP)).collect();
            h.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, prometheus_text};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Registry;

    /// One histogram family, written out as a scrape would.
    #[derive(Debug)]
    struct Family(HistogramVec, &'static [&'static str]);

    impl Collector for Family {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut family =
                encoder.encode_descriptor("t", "Test.", None, MetricType::Histogram)?;
            self.0.encode(self.1, &mut family)
        }
    }

    fn scrape(v: HistogramVec, names: &'static [&'static str]) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Family(v, names)));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn buckets_are_cumulative_and_count_everything() {
        let v = HistogramVec::default();
        let h = v.with(&["x"]);
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let out = scrape(v, &["op"]);
        assert!(out.contains("# TYPE t histogram\n"), "{out}");
        assert!(
            out.contains("t_bucket{op=\"x\",le=\"0.00025\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("t_bucket{op=\"x\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{op=\"x\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{op=\"x\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("t_count{op=\"x\"} 3\n"), "{out}");
        assert!(out.contains("t_sum{op=\"x\"} 60.0031\n"), "{out}");
    }

    #[test]
    fn families_keep_one_histogram_per_label_set() {
        let v = HistogramVec::default();
        v.with(&["/{code}", "3xx"])
            .observe(Duration::from_millis(1));
        v.with(&["/{code}", "3xx"])
            .observe(Duration::from_millis(1));
        v.with(&["/healthz", "2xx"])
            .observe(Duration::from_millis(1));
        let out = scrape(v, &["route", "status"]);
        assert!(
            out.contains("t_count{route=\"/{code}\",status=\"3xx\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("t_count{route=\"/healthz\",status=\"2xx\"} 1\n"),
            "{out}"
        );
    }
}
