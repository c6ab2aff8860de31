//! Clicks over time as an SVG bar chart, drawn on the server (no script needed).

use std::fmt::Write;

use chrono::{DateTime, Utc};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
/// Room for the axis labels.
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// The chart of `series` (bucket start, clicks), one bar a bucket; `label_format` writes
/// the times under the first and last bars (e.g. `%b %d`).
pub fn bars(series: &[(DateTime<Utc>, i64)], label_format: &str, description: &str) -> String {
    let most = series.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let n = series.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        escape(description)
    );
    let base = TOP + plot_h;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{most}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        LEFT - 4.0,
        TOP + 10.0,
        LEFT - 4.0
    );
    for (i, (at, clicks)) in series.iter().enumerate() {
        let h = plot_h * (*clicks as f64) / (most as f64);
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\">\
             <title>{}: {clicks}</title></rect>",
            base - h,
            at.format(label_format)
        );
    }
    if let (Some((first, _)), Some((last, _))) = (series.first(), series.last()) {
        let _ = write!(
            svg,
            "<text x=\"{LEFT}\" y=\"{HEIGHT}\">{}</text>\
             <text x=\"{WIDTH}\" y=\"{HEIGHT}\" text-anchor=\"end\">{}</text>",
            first.format(label_format),
            last.format(label_format)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Escapes text for an XML attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_a_bucket_the_tallest_full_height() {
        let t = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 1, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        };
        let svg = bars(&[(t(1), 2), (t(2), 0), (t(3), 4)], "%b %d", "a \"chart\"");
        assert_eq!(svg.matches("<rect").count(), 3);
        let full = HEIGHT - BOTTOM - TOP;
        assert!(svg.contains(&format!("height=\"{full:.1}\"")), "{svg}");
        assert!(
            svg.contains(&format!("height=\"{:.1}\"", full / 2.0)),
            "{svg}"
        );
        assert!(svg.contains("Jan 01") && svg.contains("Jan 03"));
        assert!(svg.contains("aria-label=\"a &quot;chart&quot;\""));
    }
}
