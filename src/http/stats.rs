//! `/api/v1/links/{code}/stats`: a link's click statistics over a time range.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::extract::{ApiPath, ApiQuery};
use super::links::rfc3339;
use crate::app::{AppState, Caller};

/// Statistics parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// RFC 3339 start (default: 7 days before `to`).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339 end, exclusive (default: now).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `hour` or `day` (default: hour for ranges up to 2 days).
    #[param(pattern = "^(hour|day)$")]
    pub interval: Option<String>,
}

/// One value of a dimension.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    /// The value (a host, browser, OS, device class or country code).
    pub value: String,
    /// Clicks by people.
    pub clicks: i64,
}

/// One bucket of the series.
#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    /// Bucket start, RFC 3339.
    pub t: String,
    /// Clicks (people and bots).
    pub clicks: i64,
}

/// A link's statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    /// The link.
    pub code: String,
    /// Start (aligned to the interval).
    pub from: String,
    /// End, exclusive.
    pub to: String,
    /// `hour` or `day`.
    pub interval: &'static str,
    /// People and bots.
    pub total: i64,
    /// People.
    pub humans: i64,
    /// Bots, link unfurlers and HEAD requests.
    pub bots: i64,
    /// Distinct visitors per day, summed over the days.
    pub unique_visitors: i64,
    /// Every bucket of the range.
    pub series: Vec<Point>,
    /// Top referring hosts (`direct` without a referrer).
    pub referrers: Vec<Count>,
    /// Top browsers.
    pub browsers: Vec<Count>,
    /// Top operating systems.
    pub os: Vec<Count>,
    /// Device classes.
    pub devices: Vec<Count>,
    /// Countries (`unknown` without a GeoIP database).
    pub countries: Vec<Count>,
}

/// Reads an optional RFC 3339 time of the query parameter `field`.
fn parse_time(
    field: &str,
    v: Option<String>,
) -> Result<Option<DateTime<Utc>>, crate::domain::FieldError> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| crate::domain::FieldError::new(field, "must be an RFC 3339 date-time"))
    })
    .transpose()
}

/// Click statistics: totals, people and bots, unique visitors, series and top values.
#[utoipa::path(get, path = "/api/v1/links/{code}/stats", operation_id = "get_link_stats", tag = "links",
    params(("code" = String, Path), StatsParams),
    responses((status = 200, body = StatsView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<Json<StatsView>, ApiError> {
    use crate::app::stats::{Interval, link_stats};
    let from = parse_time("from", params.from);
    let to = parse_time("to", params.to);
    let interval = match params.interval.as_deref() {
        None => Ok(None),
        Some(i) => Interval::parse(i)
            .map(Some)
            .ok_or_else(|| crate::domain::FieldError::new("interval", "must be hour or day")),
    };
    let (from, to, interval) = match (from, to, interval) {
        (Ok(f), Ok(t), Ok(i)) => (f, t, i),
        (f, t, i) => {
            return Err(ApiError::validation(
                [f.err(), t.err(), i.err()].into_iter().flatten().collect(),
            ));
        }
    };
    let s = link_stats(&state, &caller, &code, from, to, interval).await?;
    let mut top = s.top.into_iter().map(|(_, values)| {
        values
            .into_iter()
            .map(|(value, clicks)| Count { value, clicks })
            .collect::<Vec<_>>()
    });
    let mut next = || top.next().unwrap_or_default();
    Ok(Json(StatsView {
        code: s.code.to_string(),
        from: rfc3339(s.from),
        to: rfc3339(s.to),
        interval: s.interval.as_str(),
        total: s.total,
        humans: s.humans,
        bots: s.bots,
        unique_visitors: s.unique_visitors,
        series: s
            .series
            .into_iter()
            .map(|(t, clicks)| Point {
                t: rfc3339(t),
                clicks,
            })
            .collect(),
        referrers: next(),
        browsers: next(),
        os: next(),
        devices: next(),
        countries: next(),
    }))
}
