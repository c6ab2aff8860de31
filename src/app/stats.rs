//! Click statistics of a link: totals, people and bots apart, unique visitors, a time series
//! and the top values of each dimension.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::{AppError, AppState, Caller};
use crate::domain::FieldError;
use crate::domain::code::Code;
use crate::domain::key::Scope;
use crate::domain::user::UserId;
use crate::store::ClickSums;

/// Most values listed per dimension.
pub const TOP: usize = 10;
/// Longest range of an hourly series.
pub const MAX_HOURLY_DAYS: i64 = 31;
/// Longest range of any series.
pub const MAX_DAYS: i64 = 400;

/// The size of a series bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The range of a statistics request: aligned to its interval, within the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    /// Start (aligned to the interval).
    pub from: DateTime<Utc>,
    /// End, exclusive (aligned to the interval).
    pub to: DateTime<Utc>,
    /// Bucket size.
    pub interval: Interval,
}

impl Range {
    /// The range of `[from, to)`: `to` defaults to `now`, `from` to 7 days before `to`,
    /// the interval to hours for ranges up to 2 days. Fails (422) when `from` is not
    /// before `to` or the range is too long for its interval.
    pub fn new(
        now: DateTime<Utc>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        interval: Option<Interval>,
    ) -> Result<Self, AppError> {
        let to = to.unwrap_or(now);
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
        Ok(Self {
            from: crate::clock::from_millis(from_ms),
            to: crate::clock::from_millis(to_ms),
            interval,
        })
    }

    /// The bucket size in milliseconds.
    pub fn step(&self) -> i64 {
        self.interval.millis()
    }

    /// Every bucket of the range, empty ones too, from the non-empty buckets `filled`
    /// (`(start ms, clicks, bots)`, ascending); with the clicks and bots of the range.
    pub fn fill(&self, filled: &[(i64, i64, i64)]) -> (Vec<(DateTime<Utc>, i64)>, i64, i64) {
        let (mut total, mut bots) = (0, 0);
        let mut series = Vec::new();
        let mut filled = filled.iter().peekable();
        let (mut t, end) = (self.from.timestamp_millis(), self.to.timestamp_millis());
        let step = self.step();
        while t < end {
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
        (series, total, bots)
    }
}

/// The top [`TOP`] values of each of [`DIMENSIONS`], most clicks first, from
/// `(dimension, value, clicks)` rows.
pub fn top_values(dims: &[(String, String, i64)]) -> Vec<(String, Vec<(String, i64)>)> {
    DIMENSIONS
        .iter()
        .map(|dim| {
            let mut values: Vec<(String, i64)> = dims
                .iter()
                .filter(|(d, _, _)| d == dim)
                .map(|(_, v, n)| (v.clone(), *n))
                .collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            values.truncate(TOP);
            ((*dim).to_owned(), values)
        })
        .collect()
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
    let range = Range::new(state.clock.now(), from, to, interval)?;
    let raw = state
        .links
        .click_stats(&code, range.from, range.to, range.step())
        .await?;
    let (series, total, bots) = range.fill(&raw.series);
    Ok(LinkStats {
        code,
        from: range.from,
        to: range.to,
        interval: range.interval,
        total,
        humans: total - bots,
        bots,
        unique_visitors: raw.unique_visitors,
        series,
        top: top_values(&raw.dims),
    })
}

/// The codes of `links` (`(code, owner)` as the caller read them) whose statistics the
/// caller may see.
fn visible(caller: &Caller, links: &[(Code, UserId)]) -> Result<Vec<Code>, AppError> {
    caller.require(Scope::LinksRead)?;
    Ok(links
        .iter()
        .filter(|(_, owner)| caller.may_access(*owner))
        .map(|(code, _)| code.clone())
        .collect())
}

/// Click totals of many links over one range, in one store call. Links without clicks,
/// and links the caller may not see, are absent.
pub async fn sums_of(
    state: &AppState,
    caller: &Caller,
    links: &[(Code, UserId)],
    range: Range,
) -> Result<HashMap<Code, ClickSums>, AppError> {
    let codes = visible(caller, links)?;
    Ok(state.links.click_sums(&codes, range.from, range.to).await?)
}

/// The series of many links over one range (every bucket, empty ones too), in one store
/// call. Links the caller may not see are absent.
pub async fn series_of(
    state: &AppState,
    caller: &Caller,
    links: &[(Code, UserId)],
    range: Range,
) -> Result<HashMap<Code, Vec<(DateTime<Utc>, i64)>>, AppError> {
    let codes = visible(caller, links)?;
    let mut raw = state
        .links
        .click_series(&codes, range.from, range.to, range.step())
        .await?;
    Ok(codes
        .into_iter()
        .map(|code| {
            let filled = raw.remove(&code).unwrap_or_default();
            (code, range.fill(&filled).0)
        })
        .collect())
}

/// The top values of each dimension of many links over one range, in one store call.
/// Links the caller may not see are absent.
pub async fn top_of(
    state: &AppState,
    caller: &Caller,
    links: &[(Code, UserId)],
    range: Range,
) -> Result<HashMap<Code, Vec<(String, Vec<(String, i64)>)>>, AppError> {
    let codes = visible(caller, links)?;
    let mut raw = state.links.click_dims(&codes, range.from, range.to).await?;
    Ok(codes
        .into_iter()
        .map(|code| {
            let dims = raw.remove(&code).unwrap_or_default();
            (code, top_values(&dims))
        })
        .collect())
}

/// The non-empty buckets of one link over `range`, oldest first: `(start ms, all clicks,
/// bot clicks)`. Fails with `NotFound` when the caller may not see the link.
pub async fn buckets(
    state: &AppState,
    caller: &Caller,
    link: (Code, UserId),
    range: Range,
) -> Result<Vec<(i64, i64, i64)>, AppError> {
    let codes = visible(caller, std::slice::from_ref(&link))?;
    let Some(code) = codes.into_iter().next() else {
        return Err(AppError::NotFound);
    };
    let mut raw = state
        .links
        .click_series(
            std::slice::from_ref(&code),
            range.from,
            range.to,
            range.step(),
        )
        .await?;
    Ok(raw.remove(&code).unwrap_or_default())
}
