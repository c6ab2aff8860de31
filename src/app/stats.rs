//! Click statistics of a link: totals, people and bots apart, unique visitors, a time series
//! and the top values of each dimension.

use chrono::{DateTime, TimeDelta, Utc};

use super::{AppError, AppState, Caller};
use crate::domain::FieldError;
use crate::domain::code::Code;
use crate::domain::key::Scope;

/// Most values listed per dimension.
pub const TOP: usize = 10;
/// Longest range of an hourly series.
pub const MAX_HOURLY_DAYS: i64 = 31;
/// Longest range of any series.
pub const MAX_DAYS: i64 = 400;

/// The size of a series bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Interval {
    /// Parses `hour` or `day`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// A link's statistics.
#[derive(Debug, Clone)]
pub struct LinkStats {
    /// The link.
    pub code: Code,
    /// Start of the range (aligned to the interval).
    pub from: DateTime<Utc>,
    /// End of the range, exclusive (aligned to the interval).
    pub to: DateTime<Utc>,
    /// Bucket size.
    pub interval: Interval,
    /// People and bots.
    pub total: i64,
    /// People.
    pub humans: i64,
    /// Bots, unfurlers, HEAD requests.
    pub bots: i64,
    /// Distinct visitors per day, summed over the days.
    pub unique_visitors: i64,
    /// Every bucket of the range, empty ones too: `(start, clicks)`.
    pub series: Vec<(DateTime<Utc>, i64)>,
    /// Top values per dimension, most clicks first: `(dimension, [(value, clicks)])`.
    pub top: Vec<(String, Vec<(String, i64)>)>,
}

/// The dimensions reported, in order.
pub const DIMENSIONS: [&str; 5] = ["referrer", "browser", "os", "device", "country"];

fn align_down(ms: i64, step: i64) -> i64 {
    ms - ms.rem_euclid(step)
}

/// Statistics of one of the caller's links over `[from, to)`.
pub async fn link_stats(
    state: &AppState,
    caller: &Caller,
    code: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    interval: Option<Interval>,
) -> Result<LinkStats, AppError> {
    caller.require(Scope::LinksRead)?;
    let code = Code::from_path(code).ok_or(AppError::NotFound)?;
    match state.links.get_link(&code).await? {
        Some(link) if caller.may_access(link.owner_id) => {}
        _ => return Err(AppError::NotFound),
    }
    let to = to.unwrap_or_else(|| state.clock.now());
    let from = from.unwrap_or(to - TimeDelta::days(7));
    if from >= to {
        return Err(AppError::Validation(vec![FieldError::new(
            "from",
            "must be before to",
        )]));
    }
    let days = (to - from).num_days();
    let interval = interval.unwrap_or(if days <= 2 {
        Interval::Hour
    } else {
        Interval::Day
    });
    let limit = if interval == Interval::Hour {
        MAX_HOURLY_DAYS
    } else {
        MAX_DAYS
    };
    if days > limit {
        return Err(AppError::Validation(vec![FieldError::new(
            "from",
            format!(
                "the range may span at most {limit} days at interval {}",
                interval.as_str()
            ),
        )]));
    }
    let step = interval.millis();
    let from_ms = align_down(from.timestamp_millis(), step);
    let to_ms = align_down(to.timestamp_millis() - 1, step) + step;
    let from = crate::clock::from_millis(from_ms);
    let to = crate::clock::from_millis(to_ms);
    let raw = state.links.click_stats(&code, from, to, step).await?;

    let (mut total, mut bots) = (0, 0);
    let mut series = Vec::new();
    let mut filled = raw.series.iter().peekable();
    let mut t = from_ms;
    while t < to_ms {
        let mut n = 0;
        while let Some((bucket, clicks, b)) = filled.peek() {
            if *bucket > t {
                break;
            }
            if *bucket == t {
                n += clicks;
                total += clicks;
                bots += b;
            }
            filled.next();
        }
        series.push((crate::clock::from_millis(t), n));
        t += step;
    }
    let top = DIMENSIONS
        .iter()
        .map(|dim| {
            let mut values: Vec<(String, i64)> = raw
                .dims
                .iter()
                .filter(|(d, _, _)| d == dim)
                .map(|(_, v, n)| (v.clone(), *n))
                .collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            values.truncate(TOP);
            ((*dim).to_owned(), values)
        })
        .collect();
    Ok(LinkStats {
        code,
        from,
        to,
        interval,
        total,
        humans: total - bots,
        bots,
        unique_visitors: raw.unique_visitors,
        series,
        top,
    })
}
