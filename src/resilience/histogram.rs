//! Latency histograms with fixed buckets, lock-free to record, rendered in the Prometheus
//! text format; and a family of them keyed by a bounded set of labels.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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

    /// Appends the `_bucket`, `_sum` and `_count` lines of `name` with `labels` (already
    /// formatted, `key="value",…`, or empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
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

    /// Renders every histogram of the family `name` with label `names`, sorted by labels.
    pub fn render(&self, out: &mut String, name: &str, names: &[&str]) {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (values, h) in entries {
            let labels = names
                .iter()
                .zip(values.split(SEP))
                .map(|(n, v)| format!("{n}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(",");
            h.render(out, name, &labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_everything() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "t", "op=\"x\"");
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
        let mut out = String::new();
        v.render(&mut out, "h", &["route", "status"]);
        assert!(
            out.contains("h_count{route=\"/{code}\",status=\"3xx\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("h_count{route=\"/healthz\",status=\"2xx\"} 1\n"),
            "{out}"
        );
    }
}
