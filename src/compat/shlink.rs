//! A subset of Shlink's REST API v3 under `/rest/v3`, enough for the Shlink SDKs and web
//! client: short URLs (create, list, read, edit, delete), their visits, tags and health.
//! Keys go in `X-Api-Key`; errors are RFC 7807 documents with Shlink's `type` URLs.
//!
//! snip keeps click aggregates, not single visits: `/visits` lists one visit per click,
//! dated at the start of its hour (or day, for ranges over 31 days), without referrer,
//! user agent or location. Filters snip cannot apply are refused (`invalid-data`), never
//! ignored, so a client never takes a wrong list for a filtered one.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Charged, add_limit_headers, charge, short_url};
use crate::app::stats::{Interval, Range};
use crate::app::{AppError, AppState, Caller, links, stats, users};
use crate::domain::key::ApiKey;
use crate::domain::link::{LinkInput, LinkPatch};
use crate::store::{LinkOrder, LinkRecord, PageRequest, Taken};

/// The Shlink version `health` reports: the API whose shapes snip follows. Clients turn
/// features on by it, so it names a version without the features snip lacks.
pub const VERSION: &str = "3.7.0";

/// Short URLs per page when the client does not say.
pub const DEFAULT_ITEMS: u32 = 10;
/// Most short URLs in one page (also what "all", `-1`, means).
pub const MAX_ITEMS: u32 = 1_000;
/// Most visits in one page (also what "all", the default, means).
pub const MAX_VISITS: u64 = 5_000;

/// The routes of the Shlink API, with CORS for browser clients (keys travel in a header,
/// never in cookies, so any origin may call).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rest/health", get(health))
        .route("/rest/v3/health", get(health))
        .route("/rest/v3/short-urls", get(list).post(create))
        .route(
            "/rest/v3/short-urls/{code}",
            get(read).patch(edit).put(edit).delete(remove),
        )
        .route("/rest/v3/short-urls/{code}/visits", get(visits))
        .route("/rest/v3/tags", get(tags))
        .route("/rest/v3/{*rest}", axum::routing::any(unknown))
        .layer(axum::middleware::from_fn(cors))
}

/// Answers CORS preflights and lets every origin read the answers.
async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let origin = req.headers().contains_key(header::ORIGIN);
    if origin && req.method() == Method::OPTIONS {
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("x-api-key, content-type"));
        return (
            StatusCode::NO_CONTENT,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
                ),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, asked),
                (
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("1000"),
                ),
            ],
        )
            .into_response();
    }
    let mut res = next.run(req).await;
    if origin {
        res.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    res
}

/// A Shlink error: an RFC 7807 document whose `type` is a Shlink error URL.
fn problem(status: StatusCode, kind: &str, title: &str, detail: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": format!("https://shlink.io/api/error/{kind}"),
        "title": title,
        "detail": detail,
        "status": status.as_u16(),
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// `invalid-data` naming the fields at fault.
fn invalid(fields: &[&str], detail: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "invalid-data",
        "Invalid data",
        detail,
        json!({"invalidElements": fields}),
    )
}

fn not_found(code: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "short-url-not-found",
        "Short URL not found",
        &format!("No URL found with short code \"{code}\""),
        json!({"shortCode": code}),
    )
}

/// The Shlink name of a snip field.
fn shlink_field(field: &str) -> &str {
    match field.split('.').next().unwrap_or(field) {
        "url" => "longUrl",
        "alias" => "customSlug",
        "expires_at" => "validUntil",
        "max_clicks" => "maxVisits",
        other => other,
    }
}

/// The Shlink answer for a use case's failure.
fn failure(e: AppError, code: &str) -> Response {
    match e {
        AppError::NotFound => not_found(code),
        AppError::Validation(errors) => {
            let fields: Vec<&str> = errors.iter().map(|e| shlink_field(&e.field)).collect();
            let detail = errors
                .iter()
                .map(|e| format!("{}: {}", shlink_field(&e.field), e.message))
                .collect::<Vec<_>>()
                .join("; ");
            invalid(&fields, &format!("Provided data is not valid ({detail})"))
        }
        AppError::Conflict(Taken::Code) => problem(
            StatusCode::BAD_REQUEST,
            "non-unique-slug",
            "Invalid custom slug",
            &format!("Provided slug \"{code}\" is already in use."),
            json!({"customSlug": code}),
        ),
        AppError::MissingScope(scope) => problem(
            StatusCode::FORBIDDEN,
            "forbidden-operation",
            "Forbidden operation",
            &format!("This API key lacks the {} scope", scope.as_str()),
            json!({}),
        ),
        AppError::Busy(why) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            why,
            json!({}),
        ),
        e => {
            tracing::error!(error = ?e, "Shlink API call failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-server-error",
                "Internal server error",
                "The server failed; the error has been logged",
                json!({}),
            )
        }
    }
}

/// A time as Shlink writes it: ISO 8601 to the second, with a `+00:00` offset.
fn atom(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Authenticates by `X-Api-Key` and charges the request to its bucket. `Err` is the answer
/// to send: 401 for a missing or unknown key, 429 for a spent budget.
async fn admit(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    write: bool,
) -> Result<(Caller, Charged), Refused> {
    let ip = crate::http::client_ip::client_ip(peer.ip(), headers, &state.settings.trusted_proxies);
    let given = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let caller = match given.map(ApiKey::parse) {
        Some(Some(key)) => users::authenticate(state, &key)
            .await
            .map_err(|e| Box::new(failure(e, "")))?,
        _ => None,
    };
    let charged = charge(state, caller.as_ref(), ip, write).await;
    let refused = match (&caller, charged) {
        (_, Err((policy, d))) => {
            let mut res = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                &format!(
                    "Too many requests ({} policy); retry in {} s",
                    policy.as_str(),
                    crate::http::guard::retry_after_secs(&d)
                ),
                json!({}),
            );
            add_limit_headers(state, Some((policy, d)), res.headers_mut());
            res
        }
        (Some(caller), Ok(charged)) => return Ok((caller.clone(), charged)),
        (None, Ok(charged)) => {
            let mut res = if given.is_none() {
                problem(
                    StatusCode::UNAUTHORIZED,
                    "missing-authentication",
                    "Invalid authorization",
                    "Expected one of the following authentication headers, [\"X-Api-Key\"], but none were provided",
                    json!({"expectedHeaders": ["X-Api-Key"]}),
                )
            } else {
                problem(
                    StatusCode::UNAUTHORIZED,
                    "invalid-api-key",
                    "Invalid API key",
                    "Provided API key does not exist or is invalid.",
                    json!({}),
                )
            };
            add_limit_headers(state, charged, res.headers_mut());
            res
        }
    };
    Err(Box::new(refused))
}

/// Sends `body` as JSON with the rate-limit headers.
fn answer(state: &AppState, status: StatusCode, body: Value, charged: Charged) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    add_limit_headers(state, charged, res.headers_mut());
    res
}

/// All time, for click totals.
fn all_time(now: DateTime<Utc>) -> Range {
    Range {
        from: DateTime::UNIX_EPOCH,
        to: now + TimeDelta::hours(1),
        interval: Interval::Hour,
    }
}

/// Short URLs as Shlink shows them, with their click totals in one store call.
async fn views(
    state: &AppState,
    caller: &Caller,
    found: &[LinkRecord],
) -> Result<Vec<Value>, AppError> {
    let keys: Vec<_> = found.iter().map(|l| (l.code.clone(), l.owner_id)).collect();
    let sums = stats::sums_of(state, caller, &keys, all_time(state.clock.now())).await?;
    Ok(found
        .iter()
        .map(|l| {
            let s = sums.get(&l.code).copied().unwrap_or_default();
            let f = &l.fields;
            json!({
                "shortUrl": short_url(state, l.code.as_str()),
                "shortCode": l.code.as_str(),
                "longUrl": f.url.as_str(),
                "dateCreated": atom(l.created_at),
                "tags": f.tags,
                "meta": {
                    "validSince": null,
                    "validUntil": f.expires_at.map(atom),
                    "maxVisits": f.max_clicks,
                },
                "domain": null,
                "title": f.title,
                "crawlable": false,
                "forwardQuery": false,
                "visitsSummary": {"total": s.total, "nonBots": s.total - s.bots, "bots": s.bots},
                "visitsCount": s.total,
                "hasRedirectRules": false,
            })
        })
        .collect())
}

async fn view(state: &AppState, caller: &Caller, link: LinkRecord) -> Result<Value, AppError> {
    let mut v = views(state, caller, std::slice::from_ref(&link)).await?;
    Ok(v.pop().unwrap_or(Value::Null))
}

/// A date a client sent: ISO 8601 with an offset.
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether a `domain` names the one domain snip serves.
fn own_domain(state: &AppState, domain: &str) -> bool {
    let base = state.settings.base_url.as_str();
    let host = base.split_once("://").map_or(base, |(_, h)| h);
    domain.is_empty() || domain == "DEFAULT" || domain.eq_ignore_ascii_case(host)
}

/// `GET /rest/health` and `/rest/v3/health` (no key needed).
async fn health(State(state): State<AppState>) -> Response {
    let draining = state.draining.load(std::sync::atomic::Ordering::Acquire);
    let up = !draining
        && state.store_guard.breaker.state() == crate::resilience::breaker::BreakerState::Closed;
    let (status, word) = if up {
        (StatusCode::OK, "pass")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "fail")
    };
    let body = json!({
        "status": word,
        "version": VERSION,
        "links": {"about": "https://github.com/snip", "project": "snip"},
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/health+json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Anything else under `/rest/v3`.
async fn unknown() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "Requested route does not exist.",
        json!({}),
    )
}

/// A JSON body, or the Shlink answer for one that is not an object.
fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, Refused> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => refuse(problem(
            StatusCode::BAD_REQUEST,
            "malformed-request-body",
            "Malformed request body",
            "Provided request does not contain a valid JSON body.",
            json!({}),
        )),
    }
}

/// The body of `POST /short-urls`. Unknown fields are ignored, as Shlink does.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    long_url: Option<String>,
    custom_slug: Option<String>,
    title: Option<String>,
    tags: Option<Vec<String>>,
    valid_since: Option<String>,
    valid_until: Option<String>,
    max_visits: Option<i64>,
    #[serde(default)]
    find_if_exists: bool,
    domain: Option<String>,
}

/// Reads a typed body, naming the field at fault when a value has the wrong type.
fn typed<T: serde::de::DeserializeOwned>(
    map: serde_json::Map<String, Value>,
) -> Result<T, Refused> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let field = e
            .path()
            .iter()
            .next()
            .map(|s| s.to_string())
            .unwrap_or_default();
        Box::new(invalid(
            &[field.as_str()],
            &format!("Provided data is not valid: {}", e.inner()),
        ))
    })
}

/// Checks `validSince`: snip links are live from their creation, so only a past (or
/// present) start can be honoured.
fn check_valid_since(state: &AppState, since: Option<&str>) -> Result<(), Refused> {
    match since {
        None => Ok(()),
        Some(s) => match parse_date(s) {
            Some(t) if t <= state.clock.now() => Ok(()),
            Some(_) => refuse(invalid(
                &["validSince"],
                "Provided data is not valid: snip cannot delay a short URL (validSince in the future)",
            )),
            None => refuse(invalid(&["validSince"], "Provided data is not valid")),
        },
    }
}

/// Turns a Shlink date into the RFC 3339 text the use cases read.
fn until_of(until: Option<&str>) -> Result<Option<String>, Refused> {
    match until {
        None => Ok(None),
        Some(s) => parse_date(s)
            .map(|t| Some(crate::http::links::rfc3339(t)))
            .ok_or_else(|| Box::new(invalid(&["validUntil"], "Provided data is not valid"))),
    }
}

/// `POST /rest/v3/short-urls`: 200 with the new (or, with `findIfExists`, the existing)
/// short URL.
async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, true).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    match create_link(&state, &caller, &body).await {
        Ok(v) => answer(&state, StatusCode::OK, v, charged),
        Err(res) => *res,
    }
}

async fn create_link(state: &AppState, caller: &Caller, body: &Bytes) -> Result<Value, Refused> {
    let b: CreateBody = typed(body_object(body)?)?;
    let slug = b.custom_slug.clone().unwrap_or_default();
    let Some(long_url) = b.long_url.filter(|u| !u.trim().is_empty()) else {
        return refuse(invalid(&["longUrl"], "Provided data is not valid"));
    };
    if b.domain.as_deref().is_some_and(|d| !own_domain(state, d)) {
        return refuse(invalid(
            &["domain"],
            "Provided data is not valid: snip serves one domain",
        ));
    }
    check_valid_since(state, b.valid_since.as_deref())?;
    if b.find_if_exists {
        let found = links::find_by_url(state, caller, &long_url)
            .await
            .map_err(|e| Box::new(failure(e, &slug)))?;
        if let Some(link) = found.filter(|l| slug.is_empty() || l.code.as_str() == slug) {
            return view(state, caller, link)
                .await
                .map_err(|e| Box::new(failure(e, &slug)));
        }
    }
    let input = LinkInput {
        url: Some(long_url),
        alias: b.custom_slug,
        title: b.title,
        tags: b.tags,
        expires_at: until_of(b.valid_until.as_deref())?,
        max_clicks: b.max_visits,
        ..LinkInput::default()
    };
    let made = std::sync::Mutex::new(None);
    links::create(state, caller, input, None, |link: &LinkRecord| {
        *made.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.clone());
        crate::store::StoredResponse {
            status: StatusCode::OK.as_u16(),
            location: None,
            body: Vec::new(),
        }
    })
    .await
    .map_err(|e| Box::new(failure(e, &slug)))?;
    let link = made.into_inner().unwrap_or_else(|e| e.into_inner());
    match link {
        Some(link) => view(state, caller, link)
            .await
            .map_err(|e| Box::new(failure(e, &slug))),
        None => refuse(failure(
            AppError::Internal(anyhow::anyhow!("a created link was not rendered")),
            &slug,
        )),
    }
}

/// A Shlink error answer, boxed: it travels in `Err` through several helpers.
type Refused = Box<Response>;

fn refuse<T>(res: Response) -> Result<T, Refused> {
    Err(Box::new(res))
}

/// What a `GET /short-urls` asks for.
struct ListQuery {
    tag: Option<String>,
    q: Option<String>,
    order: LinkOrder,
    per_page: u32,
    page: u64,
}

/// The query of `GET /short-urls`, decoded as a form (`tags[]` repeats).
fn list_query(state: &AppState, raw: Option<&str>) -> Result<ListQuery, Refused> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| invalid(&["query"], "Provided data is not valid"))?;
    let mut page = 1u64;
    let mut per_page = DEFAULT_ITEMS;
    let (mut q, mut tags, mut order) = (None, Vec::new(), LinkOrder::Newest);
    for (k, v) in pairs {
        match k.as_str() {
            "page" => {
                page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=crate::http::links::MAX_PAGE).contains(p))
                    .ok_or_else(|| invalid(&["page"], "Provided data is not valid"))?;
            }
            "itemsPerPage" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| invalid(&["itemsPerPage"], "Provided data is not valid"))?;
                per_page = if n < 0 {
                    MAX_ITEMS
                } else {
                    u32::try_from(n).unwrap_or(MAX_ITEMS).clamp(1, MAX_ITEMS)
                };
            }
            "searchTerm" => q = Some(v).filter(|s| !s.is_empty()),
            "tags[]" | "tags" => tags.push(v),
            "tagsMode" if v == "any" || v == "all" => {}
            "orderBy" => {
                order = match v.as_str() {
                    "dateCreated-ASC" => LinkOrder::Oldest,
                    "visits-DESC" | "nonBotVisits-DESC" => LinkOrder::MostClicked,
                    "visits-ASC" | "nonBotVisits-ASC" => LinkOrder::LeastClicked,
                    "dateCreated-DESC" | "longUrl-ASC" | "longUrl-DESC" | "shortCode-ASC"
                    | "shortCode-DESC" | "title-ASC" | "title-DESC" => LinkOrder::Newest,
                    _ => return refuse(invalid(&["orderBy"], "Provided data is not valid")),
                };
            }
            "domain" if own_domain(state, &v) => {}
            "excludeMaxVisitsReached" | "excludePastValidUntil" if v == "false" => {}
            other => {
                let field = other.trim_end_matches("[]").to_owned();
                return refuse(invalid(
                    &[field.as_str()],
                    &format!("Provided data is not valid: snip cannot filter by {field}"),
                ));
            }
        }
    }
    if tags.len() > 1 {
        return refuse(invalid(
            &["tags"],
            "Provided data is not valid: snip filters by one tag at a time",
        ));
    }
    Ok(ListQuery {
        tag: tags.pop(),
        q,
        order,
        per_page,
        page,
    })
}

/// `GET /rest/v3/short-urls`.
async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, false).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let ListQuery {
        tag,
        q,
        order,
        per_page,
        page,
    } = match list_query(&state, raw.as_deref()) {
        Ok(x) => x,
        Err(res) => return *res,
    };
    let offset = (page - 1).saturating_mul(u64::from(per_page));
    let found = links::list(
        &state,
        &caller,
        caller.user.id,
        tag,
        q,
        order,
        per_page,
        PageRequest::Offset(offset),
    )
    .await;
    let found = match found {
        Ok(f) => f,
        Err(e) => return failure(e, ""),
    };
    let data = match views(&state, &caller, &found.links).await {
        Ok(d) => d,
        Err(e) => return failure(e, ""),
    };
    let total = found.total.unwrap_or(0);
    let body = json!({"shortUrls": {
        "data": data,
        "pagination": pagination(page, u64::from(per_page), data.len(), total),
    }});
    answer(&state, StatusCode::OK, body, charged)
}

/// Shlink's pagination object: at least one page, even when empty.
fn pagination(page: u64, per_page: u64, in_page: usize, total: u64) -> Value {
    json!({
        "currentPage": page,
        "pagesCount": total.div_ceil(per_page.max(1)).max(1),
        "itemsPerPage": per_page,
        "itemsInCurrentPage": in_page,
        "totalItems": total,
    })
}

/// `GET /rest/v3/short-urls/{code}`.
async fn read(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, false).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let found = match links::get(&state, &caller, &code).await {
        Ok(l) => view(&state, &caller, l).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(v) => answer(&state, StatusCode::OK, v, charged),
        Err(e) => failure(e, &code),
    }
}

/// A nullable field of an edit: absent, `null`, or a value.
fn edit_field(map: &serde_json::Map<String, Value>, key: &str) -> Option<Option<Value>> {
    map.get(key).map(|v| (!v.is_null()).then(|| v.clone()))
}

/// The merge patch of a Shlink edit body: present fields change, `null` clears.
fn patch_of(state: &AppState, map: serde_json::Map<String, Value>) -> Result<LinkPatch, Refused> {
    let text = |v: Value, field: &str| match v {
        Value::String(s) => Ok(s),
        _ => refuse(invalid(&[field], "Provided data is not valid")),
    };
    let mut patch = LinkPatch::default();
    if let Some(Some(url)) = edit_field(&map, "longUrl") {
        patch.url = Some(Some(text(url, "longUrl")?));
    }
    if let Some(title) = edit_field(&map, "title") {
        patch.title = Some(title.map(|t| text(t, "title")).transpose()?);
    }
    if let Some(tags) = edit_field(&map, "tags") {
        let tags: Option<Vec<String>> = tags
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| invalid(&["tags"], "Provided data is not valid"))?;
        patch.tags = Some(tags);
    }
    if let Some(until) = edit_field(&map, "validUntil") {
        let until = until.map(|u| text(u, "validUntil")).transpose()?;
        patch.expires_at = Some(until_of(until.as_deref())?);
    }
    if let Some(max) = edit_field(&map, "maxVisits") {
        let max = max
            .map(|m| {
                m.as_i64()
                    .ok_or_else(|| Box::new(invalid(&["maxVisits"], "Provided data is not valid")))
            })
            .transpose()?;
        patch.max_clicks = Some(max);
    }
    if let Some(Some(since)) = edit_field(&map, "validSince") {
        check_valid_since(state, Some(&text(since, "validSince")?))?;
    }
    Ok(patch)
}

/// `PATCH` (or `PUT`) `/rest/v3/short-urls/{code}`: 200 with the changed short URL.
async fn edit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
    body: Bytes,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, true).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let patch = match body_object(&body).and_then(|m| patch_of(&state, m)) {
        Ok(p) => p,
        Err(res) => return *res,
    };
    let changed = match links::patch(&state, &caller, &code, patch).await {
        Ok(l) => view(&state, &caller, l).await,
        Err(e) => Err(e),
    };
    match changed {
        Ok(v) => answer(&state, StatusCode::OK, v, charged),
        Err(e) => failure(e, &code),
    }
}

/// `DELETE /rest/v3/short-urls/{code}`: 204.
async fn remove(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, true).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    match links::delete(&state, &caller, &code).await {
        Ok(()) => {
            let mut res = StatusCode::NO_CONTENT.into_response();
            add_limit_headers(&state, charged, res.headers_mut());
            res
        }
        Err(e) => failure(e, &code),
    }
}

/// The query of `GET /short-urls/{code}/visits`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VisitsQuery {
    page: Option<u64>,
    items_per_page: Option<i64>,
    start_date: Option<String>,
    end_date: Option<String>,
    exclude_bots: Option<String>,
    domain: Option<String>,
}

/// `GET /rest/v3/short-urls/{code}/visits`: one visit per counted click, newest first,
/// dated at the start of its hour (its day when the range spans more than 31 days).
async fn visits(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, false).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let q: VisitsQuery = match serde_urlencoded::from_str(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return invalid(&["query"], &format!("Provided data is not valid: {e}")),
    };
    match visit_page(&state, &caller, &code, q).await {
        Ok(v) => answer(&state, StatusCode::OK, v, charged),
        Err(res) => *res,
    }
}

async fn visit_page(
    state: &AppState,
    caller: &Caller,
    code: &str,
    q: VisitsQuery,
) -> Result<Value, Refused> {
    if q.domain.as_deref().is_some_and(|d| !own_domain(state, d)) {
        return refuse(not_found(code));
    }
    let link = links::get(state, caller, code)
        .await
        .map_err(|e| Box::new(failure(e, code)))?;
    let date = |s: Option<&String>, field: &str| match s {
        None => Ok(None),
        Some(s) => parse_date(s)
            .map(Some)
            .ok_or_else(|| Box::new(invalid(&[field], "Provided data is not valid"))),
    };
    let now = state.clock.now();
    let to = date(q.end_date.as_ref(), "endDate")?
        .unwrap_or(now)
        .min(now + TimeDelta::hours(1));
    let from = date(q.start_date.as_ref(), "startDate")?
        .unwrap_or(link.created_at)
        .max(to - TimeDelta::days(stats::MAX_DAYS));
    let from = from.min(to - TimeDelta::hours(1));
    let interval = if to - from <= TimeDelta::days(stats::MAX_HOURLY_DAYS) {
        Interval::Hour
    } else {
        Interval::Day
    };
    let range = Range::new(now, Some(from), Some(to), Some(interval))
        .map_err(|e| Box::new(failure(e, code)))?;
    let buckets = stats::buckets(state, caller, (link.code.clone(), link.owner_id), range)
        .await
        .map_err(|e| Box::new(failure(e, code)))?;
    // Shlink reads the mere presence of `excludeBots` as true; an explicit false is false.
    let humans_only = q
        .exclude_bots
        .as_deref()
        .is_some_and(|v| v != "false" && v != "0");
    let page = q.page.unwrap_or(1).max(1);
    let per_page = match q.items_per_page {
        Some(n) if n > 0 => u64::try_from(n).unwrap_or(MAX_VISITS).min(MAX_VISITS),
        _ => MAX_VISITS,
    };
    let counts = |b: &(i64, i64, i64)| {
        let humans = u64::try_from(b.1 - b.2).unwrap_or(0);
        let bots = if humans_only {
            0
        } else {
            u64::try_from(b.2).unwrap_or(0)
        };
        (humans, bots)
    };
    let total: u64 = buckets
        .iter()
        .map(|b| {
            let (h, r) = counts(b);
            h + r
        })
        .sum();
    let per_page_shown = if q.items_per_page.is_some_and(|n| n > 0) {
        per_page
    } else {
        per_page.min(total.max(1))
    };
    let mut skip = (page - 1).saturating_mul(per_page);
    let mut data = Vec::new();
    let short = short_url(state, link.code.as_str());
    'buckets: for b in buckets.iter().rev() {
        let (humans, bots) = counts(b);
        for (n, bot) in [(humans, false), (bots, true)] {
            let taken = n.saturating_sub(skip);
            skip = skip.saturating_sub(n);
            for _ in 0..taken {
                if data.len() as u64 == per_page {
                    break 'buckets;
                }
                data.push(json!({
                    "referer": "",
                    "date": atom(crate::clock::from_millis(b.0)),
                    "userAgent": "",
                    "visitLocation": null,
                    "potentialBot": bot,
                    "visitedUrl": short,
                    "redirectUrl": link.fields.url.as_str(),
                }));
            }
        }
    }
    let in_page = data.len();
    Ok(json!({"visits": {
        "data": data,
        "pagination": pagination(page, per_page_shown, in_page, total),
    }}))
}

/// `GET /rest/v3/tags`: the caller's tags, in alphabetical order.
async fn tags(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (caller, charged) = match admit(&state, peer, &headers, false).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let found = match links::tags_of(&state, &caller, &[caller.user.id]).await {
        Ok(t) => t,
        Err(e) => return failure(e, ""),
    };
    let names: Vec<String> = found
        .get(&caller.user.id)
        .map(|t| t.iter().map(|t| t.tag.clone()).collect())
        .unwrap_or_default();
    let n = names.len();
    let body = json!({"tags": {
        "data": names,
        "pagination": pagination(1, n.max(1) as u64, n, n as u64),
    }});
    answer(&state, StatusCode::OK, body, charged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_at_least_one() {
        let p = pagination(1, 10, 0, 0);
        assert_eq!(p["pagesCount"], 1);
        let p = pagination(2, 10, 1, 11);
        assert_eq!(p["pagesCount"], 2);
        assert_eq!(p["itemsInCurrentPage"], 1);
    }

    #[test]
    fn times_have_an_offset_and_no_fraction() {
        let t = crate::clock::from_millis(1_700_000_000_123);
        assert_eq!(atom(t), "2023-11-14T22:13:20+00:00");
        assert_eq!(
            parse_date("2023-11-14T23:13:20+01:00"),
            Some(crate::clock::from_millis(1_700_000_000_000))
        );
    }

    #[test]
    fn snip_fields_get_shlink_names() {
        assert_eq!(shlink_field("url"), "longUrl");
        assert_eq!(shlink_field("alias"), "customSlug");
        assert_eq!(shlink_field("tags.3"), "tags");
        assert_eq!(shlink_field("max_clicks"), "maxVisits");
    }
}
