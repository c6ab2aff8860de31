//! The links screens: the table (search, tag, pages), create, edit, delete, and one link
//! with its statistics and QR code. Each calls the use case the API calls.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Deserialize;

use super::account::JustTheToken;
use super::auth::{Posted, encode_component};
use super::page::{self, FormErrors, Page, html};
use crate::app::sessions::Session;
use crate::app::stats::{DIMENSIONS, Interval};
use crate::app::{AppError, AppState};
use crate::domain::FieldError;
use crate::domain::link::{LinkInput, LinkPatch};
use crate::store::{LinkCursor, LinkOrder, LinkRecord, PageRequest, StoredResponse, Taken};

/// Links a page of the table shows.
pub const PAGE_SIZE: u32 = 25;

/// One row of the table.
pub struct Row {
    code: String,
    short_url: String,
    url: String,
    title: String,
    tags: Vec<String>,
    clicks: i64,
    created: String,
}

#[derive(Template)]
#[template(path = "links.html")]
struct LinksPage {
    page: Page,
    q: String,
    tag: String,
    by_clicks: bool,
    rows: Vec<Row>,
    first_page: bool,
    first_href: String,
    next_href: Option<String>,
}

/// The table's query: filters, order (`sort=clicks` for most clicked) and page (a cursor
/// newest first, a page number most clicked first).
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    tag: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    page: Option<u64>,
}

fn short_url(state: &AppState, code: &str) -> String {
    format!("{}/{code}", state.settings.base_url)
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// `GET /app/links`: the signed-in person's links, newest or most clicked first.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let q = query.q.unwrap_or_default().trim().to_owned();
    let tag = query.tag.unwrap_or_default().trim().to_owned();
    let by_clicks = query.sort.as_deref() == Some("clicks");
    let (order, page_request, first_page) = if by_clicks {
        let page = query.page.unwrap_or(1).max(1);
        let offset = (page - 1).saturating_mul(u64::from(PAGE_SIZE));
        (
            LinkOrder::MostClicked,
            PageRequest::Offset(offset),
            page == 1,
        )
    } else {
        let cursor = query.cursor.as_deref().and_then(LinkCursor::decode);
        let first = cursor.is_none();
        (LinkOrder::Newest, PageRequest::After(cursor), first)
    };
    let caller = &session.caller;
    let found = crate::app::links::list(
        &state,
        caller,
        caller.user.id,
        (!tag.is_empty()).then(|| tag.clone()),
        (!q.is_empty()).then(|| q.clone()),
        order,
        PAGE_SIZE,
        page_request,
    )
    .await;
    let found = match found {
        Ok(p) => p,
        Err(e) => return page::app_error(e),
    };
    let sort = if by_clicks { "clicks" } else { "newest" };
    let filters = format!(
        "q={}&tag={}&sort={sort}",
        encode_component(&q),
        encode_component(&tag)
    );
    let next_href = found.links.last().filter(|_| found.has_more).map(|l| {
        if by_clicks {
            format!(
                "/app/links?{filters}&page={}",
                query.page.unwrap_or(1).max(1) + 1
            )
        } else {
            let c = LinkCursor {
                created_at: l.created_at.timestamp_millis(),
                code: l.code.to_string(),
            };
            format!("/app/links?{filters}&cursor={}", c.encode())
        }
    });
    let rows = found
        .links
        .iter()
        .map(|l| Row {
            code: l.code.to_string(),
            short_url: short_url(&state, l.code.as_str()),
            url: l.fields.url.as_str().to_owned(),
            title: l.fields.title.clone().unwrap_or_default(),
            tags: l.fields.tags.clone(),
            clicks: l.clicks,
            created: when(l.created_at),
        })
        .collect();
    html(
        StatusCode::OK,
        &LinksPage {
            page: Page::signed_in("Links", "links", &session),
            q,
            tag,
            by_clicks,
            rows,
            first_page,
            first_href: format!("/app/links?{filters}"),
            next_href,
        },
    )
}

/// What the link form holds, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    expires_at: String,
    #[serde(default)]
    max_clicks: String,
    #[serde(default)]
    redirect_status: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    clear_password: Option<String>,
    /// Not a form field: whether the link has a password now (edit only).
    #[serde(skip)]
    has_password: bool,
}

impl LinkForm {
    /// The form of a stored link.
    fn of(link: &LinkRecord) -> Self {
        let f = &link.fields;
        Self {
            url: f.url.as_str().to_owned(),
            title: f.title.clone().unwrap_or_default(),
            tags: f.tags.join(", "),
            expires_at: f.expires_at.map(local_input).unwrap_or_default(),
            max_clicks: f.max_clicks.map(|n| n.to_string()).unwrap_or_default(),
            redirect_status: f.redirect_status.code().to_string(),
            has_password: f.password_hash.is_some(),
            ..Self::default()
        }
    }

    fn tag_list(&self) -> Option<Vec<String>> {
        let tags: Vec<String> = self
            .tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        (!tags.is_empty()).then_some(tags)
    }

    /// The typed fields the API's JSON would carry; numbers that are not numbers and
    /// times that are not times are field errors here already.
    fn parsed(&self) -> Result<Parsed, Vec<FieldError>> {
        let mut errors = Vec::new();
        let max_clicks = match self.max_clicks.trim() {
            "" => None,
            n => n.parse::<i64>().map(Some).unwrap_or_else(|_| {
                errors.push(FieldError::new("max_clicks", "must be a whole number"));
                None
            }),
        };
        let redirect_status = match self.redirect_status.trim() {
            "" => None,
            n => n.parse::<i64>().map(Some).unwrap_or_else(|_| {
                errors.push(FieldError::new(
                    "redirect_status",
                    "must be 301, 302, 307 or 308",
                ));
                None
            }),
        };
        let expires_at = match self.expires_at.trim() {
            "" => None,
            t => match parse_local_input(t) {
                Some(at) => Some(crate::http::links::rfc3339(at)),
                None => {
                    errors.push(FieldError::new("expires_at", "must be a date and time"));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Parsed {
                max_clicks,
                redirect_status,
                expires_at,
            })
        } else {
            Err(errors)
        }
    }
}

struct Parsed {
    max_clicks: Option<i64>,
    redirect_status: Option<i64>,
    expires_at: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A time as a `datetime-local` input shows it (UTC, to the minute).
fn local_input(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// A `datetime-local` value (`2026-12-31T10:00`, seconds optional), read as UTC.
fn parse_local_input(s: &str) -> Option<DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
}

/// An option of the redirect select.
pub struct StatusOption {
    value: &'static str,
    name: &'static str,
    selected: bool,
}

fn status_options(current: &str) -> Vec<StatusOption> {
    let current = if current.is_empty() { "302" } else { current };
    [
        ("302", "302 Found (temporary, default)"),
        ("307", "307 Temporary Redirect"),
        ("301", "301 Moved Permanently"),
        ("308", "308 Permanent Redirect"),
    ]
    .into_iter()
    .map(|(value, name)| StatusOption {
        value,
        name,
        selected: value == current,
    })
    .collect()
}

#[derive(Template)]
#[template(path = "link_form.html")]
struct FormPage<'a> {
    page: Page,
    editing: Option<String>,
    action: String,
    form: &'a LinkForm,
    statuses: Vec<StatusOption>,
    errors: FormErrors,
    shown: &'a [&'a str],
}

/// The fields the form shows, so errors about others are listed at the top.
const SHOWN: &[&str] = &[
    "url",
    "alias",
    "title",
    "tags",
    "expires_at",
    "max_clicks",
    "redirect_status",
    "password",
];

fn form_page(
    session: &Session,
    editing: Option<&str>,
    form: &LinkForm,
    errors: Vec<FieldError>,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (title, section, action) = match editing {
        Some(code) => (
            format!("Edit {code}"),
            "links",
            format!("/app/links/{code}"),
        ),
        None => ("New link".to_owned(), "new", "/app/links".to_owned()),
    };
    html(
        status,
        &FormPage {
            page: Page::signed_in(title, section, session),
            editing: editing.map(str::to_owned),
            action,
            form,
            statuses: status_options(&form.redirect_status),
            errors: FormErrors(errors),
            shown: SHOWN,
        },
    )
}

/// `GET /app/links/new`.
pub async fn new_page(session: Session) -> Response {
    form_page(&session, None, &LinkForm::default(), Vec::new())
}

/// The field errors of a failed create or edit; other failures stay errors.
fn form_errors(e: AppError) -> Result<Vec<FieldError>, AppError> {
    match e {
        AppError::Validation(errors) => Ok(errors),
        AppError::Conflict(Taken::Code) => Ok(vec![FieldError::new("alias", "is already taken")]),
        e => Err(e),
    }
}

/// `POST /app/links`: creates a link, then shows it.
pub async fn create(
    State(state): State<AppState>,
    Posted { session, form }: Posted<LinkForm>,
) -> Response {
    let parsed = match form.parsed() {
        Ok(p) => p,
        Err(errors) => return form_page(&session, None, &form, errors),
    };
    let input = LinkInput {
        url: Some(form.url.trim().to_owned()),
        alias: non_empty(&form.alias),
        title: non_empty(&form.title),
        tags: form.tag_list(),
        expires_at: parsed.expires_at,
        max_clicks: parsed.max_clicks,
        redirect_status: parsed.redirect_status,
        password: (!form.password.is_empty()).then(|| form.password.clone()),
    };
    let render = |l: &LinkRecord| StoredResponse {
        status: 201,
        location: None,
        body: l.code.as_str().as_bytes().to_vec(),
    };
    match crate::app::links::create(&state, &session.caller, input, None, render).await {
        Ok(done) => {
            let code = String::from_utf8_lossy(&done.body).into_owned();
            Redirect::to(&format!("/app/links/{code}?created=1")).into_response()
        }
        Err(e) => match form_errors(e) {
            Ok(errors) => form_page(&session, None, &form, errors),
            Err(e) => page::app_error(e),
        },
    }
}

/// `GET /app/links/{code}/edit`.
pub async fn edit_page(
    State(state): State<AppState>,
    session: Session,
    Path(code): Path<String>,
) -> Response {
    match crate::app::links::get(&state, &session.caller, &code).await {
        Ok(link) => form_page(
            &session,
            Some(link.code.as_str()),
            &LinkForm::of(&link),
            Vec::new(),
        ),
        Err(e) => page::app_error(e),
    }
}

/// `POST /app/links/{code}`: saves the edit form. Fields left as they were are not sent,
/// so an expiry already past may stay; an empty field clears it; an empty password keeps
/// the password unless "remove" is ticked.
pub async fn update(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Posted { session, mut form }: Posted<LinkForm>,
) -> Response {
    let current = match crate::app::links::get(&state, &session.caller, &code).await {
        Ok(link) => link,
        Err(e) => return page::app_error(e),
    };
    let before = LinkForm::of(&current);
    form.has_password = before.has_password;
    let parsed = match form.parsed() {
        Ok(p) => p,
        Err(errors) => return form_page(&session, Some(&code), &form, errors),
    };
    let changed = |now: &str, was: &str| now.trim() != was.trim();
    let patch = LinkPatch {
        url: Some(Some(form.url.trim().to_owned())),
        title: Some(non_empty(&form.title)),
        tags: Some(form.tag_list()),
        expires_at: changed(&form.expires_at, &before.expires_at).then_some(parsed.expires_at),
        max_clicks: Some(parsed.max_clicks),
        redirect_status: Some(parsed.redirect_status),
        password: if form.clear_password.is_some() {
            Some(None)
        } else if form.password.is_empty() {
            None
        } else {
            Some(Some(form.password.clone()))
        },
    };
    match crate::app::links::patch(&state, &session.caller, &code, patch).await {
        Ok(link) => Redirect::to(&format!("/app/links/{}?saved=1", link.code)).into_response(),
        Err(e) => match form_errors(e) {
            Ok(errors) => form_page(&session, Some(&code), &form, errors),
            Err(e) => page::app_error(e),
        },
    }
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    page: Page,
    code: String,
    url: String,
}

/// `GET /app/links/{code}/delete`: asks first.
pub async fn delete_page(
    State(state): State<AppState>,
    session: Session,
    Path(code): Path<String>,
) -> Response {
    match crate::app::links::get(&state, &session.caller, &code).await {
        Ok(link) => html(
            StatusCode::OK,
            &DeletePage {
                page: Page::signed_in(format!("Delete {}", link.code), "links", &session),
                code: link.code.to_string(),
                url: link.fields.url.as_str().to_owned(),
            },
        ),
        Err(e) => page::app_error(e),
    }
}

/// `POST /app/links/{code}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Posted { session, .. }: Posted<JustTheToken>,
) -> Response {
    match crate::app::links::delete(&state, &session.caller, &code).await {
        Ok(()) => {
            Redirect::to(&format!("/app/links?deleted={}", encode_component(&code))).into_response()
        }
        Err(e) => page::app_error(e),
    }
}

/// One value of a top list.
pub struct TopValue {
    value: String,
    clicks: i64,
}

/// A top list of the stats page.
pub struct TopList {
    name: &'static str,
    column: &'static str,
    values: Vec<TopValue>,
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage {
    page: Page,
    code: String,
    short_url: String,
    url: String,
    title: String,
    tags: Vec<String>,
    details: String,
    from: String,
    to: String,
    interval: &'static str,
    stats_error: String,
    total: i64,
    humans: i64,
    bots: i64,
    unique: i64,
    chart: String,
    top: Vec<TopList>,
}

/// The stats range of the link page: whole UTC days, both ends included.
#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    created: Option<String>,
    saved: Option<String>,
}

fn day(s: Option<&str>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
}

/// What a link does besides redirecting, in a sentence.
fn details(link: &LinkRecord) -> String {
    let f = &link.fields;
    let mut parts = vec![
        format!("Created {} UTC", when(link.created_at)),
        format!("redirects with {}", f.redirect_status.code()),
    ];
    if let Some(at) = f.expires_at {
        parts.push(format!("expires {} UTC", when(at)));
    }
    if let Some(n) = f.max_clicks {
        parts.push(format!("gone after {n} clicks"));
    }
    if f.password_hash.is_some() {
        parts.push("password protected".into());
    }
    parts.join(" · ")
}

/// `GET /app/links/{code}`: the link, its QR code and its clicks over a range.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(code): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let link = match crate::app::links::get(&state, &session.caller, &code).await {
        Ok(link) => link,
        Err(e) => return page::app_error(e),
    };
    let today = state.clock.now().date_naive();
    let to_day = day(q.to.as_deref()).unwrap_or(today);
    let from_day = day(q.from.as_deref()).unwrap_or(to_day - TimeDelta::days(6));
    let interval = q
        .interval
        .as_deref()
        .and_then(Interval::parse)
        .unwrap_or(Interval::Day);
    let from = from_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let to = (to_day + TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let stats =
        crate::app::stats::link_stats(&state, &session.caller, &code, from, to, Some(interval))
            .await;
    let (stats, stats_error) = match stats {
        Ok(s) => (Some(s), String::new()),
        Err(AppError::Validation(errors)) => (None, FormErrors(errors).others(&[])),
        Err(e) => return page::app_error(e),
    };
    let label = if interval == Interval::Hour {
        "%b %d %H:00"
    } else {
        "%b %d"
    };
    let total = stats.as_ref().map_or(0, |s| s.total);
    let chart = super::chart::bars(
        stats.as_ref().map_or(&[][..], |s| &s.series[..]),
        label,
        &format!(
            "Clicks per {} from {from_day} to {to_day}: {total} in all",
            interval.as_str()
        ),
    );
    let names = [
        ("referrer", "Referrers", "Host"),
        ("browser", "Browsers", "Browser"),
        ("os", "Operating systems", "System"),
        ("device", "Devices", "Device"),
        ("country", "Countries", "Country"),
    ];
    debug_assert_eq!(names.map(|n| n.0), DIMENSIONS);
    let top = names
        .iter()
        .map(|(dim, name, column)| TopList {
            name,
            column,
            values: stats
                .as_ref()
                .and_then(|s| s.top.iter().find(|(d, _)| d == dim))
                .map(|(_, values)| {
                    values
                        .iter()
                        .map(|(value, clicks)| TopValue {
                            value: value.clone(),
                            clicks: *clicks,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let notice = if q.created.is_some() {
        Some("Link created.".to_owned())
    } else {
        q.saved.map(|_| "Saved.".to_owned())
    };
    html(
        StatusCode::OK,
        &LinkPage {
            page: Page::signed_in(link.code.to_string(), "links", &session).with_notice(notice),
            short_url: short_url(&state, link.code.as_str()),
            code: link.code.to_string(),
            url: link.fields.url.as_str().to_owned(),
            title: link.fields.title.clone().unwrap_or_default(),
            tags: link.fields.tags.clone(),
            details: details(&link),
            from: from_day.to_string(),
            to: to_day.to_string(),
            interval: interval.as_str(),
            stats_error,
            total,
            humans: stats.as_ref().map_or(0, |s| s.humans),
            bots: stats.as_ref().map_or(0, |s| s.bots),
            unique: stats.as_ref().map_or(0, |s| s.unique_visitors),
            chart,
            top,
        },
    )
}

/// The QR image query.
#[derive(Debug, Deserialize)]
pub struct QrQuery {
    format: Option<String>,
    size: Option<u32>,
    download: Option<String>,
}

/// `GET /app/links/{code}/qr`: the link's QR code, as the API gives it.
pub async fn qr(
    State(state): State<AppState>,
    session: Session,
    Path(code): Path<String>,
    Query(q): Query<QrQuery>,
) -> Response {
    let (format, size) = match crate::http::qr::parse_params(q.format.as_deref(), q.size) {
        Ok(p) => p,
        Err(errors) => {
            return page::error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not a QR code size or format",
                &FormErrors(errors).others(&[]),
            );
        }
    };
    match crate::app::links::get(&state, &session.caller, &code).await {
        Ok(link) => crate::http::qr::image(
            &short_url(&state, link.code.as_str()),
            format,
            size,
            q.download.is_some().then_some(link.code.as_str()),
        ),
        Err(e) => page::app_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_inputs_read_as_utc_and_round_trip() {
        let t = parse_local_input("2026-12-31T10:05").unwrap();
        assert_eq!(crate::http::links::rfc3339(t), "2026-12-31T10:05:00.000Z");
        assert_eq!(local_input(t), "2026-12-31T10:05");
        assert!(parse_local_input("2026-12-31T10:05:30").is_some());
        assert!(parse_local_input("tomorrow").is_none());
    }

    #[test]
    fn form_numbers_that_are_not_numbers_are_field_errors() {
        let form = LinkForm {
            max_clicks: "ten".into(),
            redirect_status: "3O1".into(),
            expires_at: "soon".into(),
            ..LinkForm::default()
        };
        let errors = form.parsed().err().unwrap();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["max_clicks", "redirect_status", "expires_at"]);
        let ok = LinkForm {
            max_clicks: " 5 ".into(),
            tags: "a, b,,c ".into(),
            ..LinkForm::default()
        };
        assert_eq!(ok.parsed().ok().unwrap().max_clicks, Some(5));
        assert_eq!(ok.tag_list().unwrap(), ["a", "b", "c"]);
    }
}
