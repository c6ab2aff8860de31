//! The YOURLS API at `/yourls-api.php`: actions `shorturl`, `expand`, `url-stats`, `stats`,
//! `db-stats` and `version`, in the formats `xml` (the default, as in YOURLS), `json`,
//! `jsonp` and `simple`. Parameters come from the query string or a form body, as YOURLS
//! reads them. The answers follow YOURLS 1.8: field names, `statusCode`/`errorCode`, and
//! HTTP 200 for "URL already exists" and "keyword taken", which clients such as the
//! `yourls` Python package turn into their specific errors.
//!
//! Authentication: `signature` is a snip API key; `timestamp` and `signature` a
//! time-limited signature made with the key's signature token (when the server has a
//! `yourls_signature_secret`); `username` and `password` are a dashboard account's e-mail
//! and password. Scopes and rate limits apply as in REST.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use super::{add_limit_headers, charge, short_url};
use crate::app::sessions::{self, SignInError};
use crate::app::{AppError, AppState, Caller, links, users};
use crate::domain::key::ApiKey;
use crate::domain::link::LinkInput;
use crate::store::{LinkOrder, LinkRecord, PageRequest, StoredResponse, Taken};

/// Where the API is served.
pub const PATH: &str = "/yourls-api.php";

/// The YOURLS version snip answers to `action=version`: the API it follows.
pub const VERSION: &str = "1.8.2";

/// Most links one `action=stats` returns.
pub const MAX_STATS_LIMIT: u32 = 1_000;

/// The routes of the YOURLS API.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(api).post(api))
}

/// A value in an answer. Answers keep their keys in YOURLS's order, in JSON and in XML.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A string.
    Str(String),
    /// A number.
    Int(i64),
    /// An object, keys in order.
    Obj(Vec<(String, Out)>),
}

impl From<&str> for Out {
    fn from(s: &str) -> Self {
        Out::Str(s.to_owned())
    }
}

impl From<String> for Out {
    fn from(s: String) -> Self {
        Out::Str(s)
    }
}

impl From<i64> for Out {
    fn from(n: i64) -> Self {
        Out::Int(n)
    }
}

impl serde::Serialize for Out {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Out::Str(v) => s.serialize_str(v),
            Out::Int(n) => s.serialize_i64(*n),
            Out::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Builds an [`Out::Obj`] from `key => value` pairs.
macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {
        Out::Obj(vec![$(($k.to_string(), Out::from($v))),*])
    };
}

/// Writes `out` as XML elements into `buf`, escaping text.
fn write_xml(fields: &[(String, Out)], buf: &mut String) {
    for (k, v) in fields {
        buf.push('<');
        buf.push_str(k);
        buf.push('>');
        match v {
            Out::Str(s) => {
                for c in s.chars() {
                    match c {
                        '&' => buf.push_str("&amp;"),
                        '<' => buf.push_str("&lt;"),
                        '>' => buf.push_str("&gt;"),
                        c if c.is_control() && c != '\n' && c != '\t' => {}
                        c => buf.push(c),
                    }
                }
            }
            Out::Int(n) => buf.push_str(&n.to_string()),
            Out::Obj(inner) => write_xml(inner, buf),
        }
        buf.push_str("</");
        buf.push_str(k);
        buf.push('>');
    }
}

/// One answer: its HTTP status, its fields and its text for `format=simple`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The fields, in order.
    pub fields: Vec<(String, Out)>,
    /// What `format=simple` prints.
    pub simple: String,
}

impl Answer {
    fn new(status: StatusCode, fields: Out, simple: impl Into<String>) -> Self {
        let Out::Obj(fields) = fields else {
            unreachable!("answers are objects")
        };
        Self {
            status,
            fields,
            simple: simple.into(),
        }
    }

    /// An error answer with only a message and an `errorCode` (YOURLS's own shape for
    /// refused calls).
    fn error(status: StatusCode, message: &str) -> Self {
        Self::new(
            status,
            obj! {"message" => message, "errorCode" => status.as_str()},
            message,
        )
    }
}

/// The text YOURLS prints instead of statistics in `format=simple`.
const NEED_FORMAT: &str = "Need either XML or JSON format for stats";

/// Whether a JSONP callback name is safe to echo: letters, digits, `_`, `$` and `.` only.
fn safe_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
}

/// Renders `answer` in `format`. A `callback` is echoed in the fields, as YOURLS does.
pub fn render(mut answer: Answer, format: &str, callback: Option<&str>) -> Response {
    if let Some(cb) = callback {
        answer.fields.push(("callback".into(), cb.into()));
    }
    let (content_type, body) = match format {
        "json" => (
            "application/json; charset=utf-8",
            serde_json::to_string(&Out::Obj(answer.fields)).unwrap_or_default(),
        ),
        "jsonp" => {
            let json = serde_json::to_string(&Out::Obj(answer.fields)).unwrap_or_default();
            (
                "application/javascript; charset=utf-8",
                format!("{}({json})", callback.unwrap_or("")),
            )
        }
        "xml" => {
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root>");
            write_xml(&answer.fields, &mut xml);
            xml.push_str("</root>\n");
            ("application/xml; charset=utf-8", xml)
        }
        _ => ("text/plain; charset=utf-8", answer.simple),
    };
    (
        answer.status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// The parameters of a request: the query string's, then a form body's over them (as PHP's
/// `$_REQUEST`).
async fn params_of(state: &AppState, req: Request) -> Result<HashMap<String, String>, Answer> {
    let mut params: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let unreadable = || Answer::error(StatusCode::BAD_REQUEST, "The request body cannot be read");
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|_| unreadable())?;
        while let Some(field) = form.next_field().await.map_err(|_| unreadable())? {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field.text().await.map_err(|_| unreadable())?;
            params.insert(name, value);
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            Answer::error(
                e.status(),
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "The request body is too large"
                } else {
                    "The request body cannot be read"
                },
            )
        })?;
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&body).map_err(|_| unreadable())?;
        params.extend(form);
    }
    Ok(params)
}

/// Who is calling: `Ok(caller)`, or the answer for missing or wrong credentials.
async fn authenticate(
    state: &AppState,
    params: &HashMap<String, String>,
    ip: IpAddr,
) -> Result<Caller, Answer> {
    let given = |k: &str| params.get(k).filter(|v| !v.is_empty());
    let refused = |message: &str| {
        let mut answer = Answer::new(
            StatusCode::FORBIDDEN,
            obj! {"message" => message, "errorCode" => "403"},
            message,
        );
        // YOURLS always names the callback here; `render` adds a given one.
        if !params.contains_key("callback") && !params.contains_key("jsonp") {
            answer.fields.push(("callback".into(), "".into()));
        }
        answer
    };
    let login_tried = params.contains_key("username") || params.contains_key("password");
    let wrong = if login_tried {
        "Invalid username or password"
    } else {
        "Please log in"
    };
    if params.contains_key("timestamp") {
        // A time-limited signature: a hash of the timestamp and the key's signature token.
        let (Some(timestamp), Some(signature)) = (given("timestamp"), given("signature")) else {
            return Err(refused(wrong));
        };
        // Checking tries every live key, so each try spends a token of the client's
        // anonymous budget first: a client whose tries are spent gets no scan.
        if charge(state, None, ip, false).await.is_err() {
            return Err(too_many());
        }
        let hash = given("hash").map(String::as_str);
        let found = users::authenticate_signed(state, timestamp, signature, hash)
            .await
            .map_err(internal)?;
        return found.ok_or_else(|| refused(wrong));
    }
    if let Some(signature) = given("signature") {
        let found = match ApiKey::parse(signature) {
            Some(key) => users::authenticate(state, &key).await.map_err(internal)?,
            None => None,
        };
        return found.ok_or_else(|| refused(wrong));
    }
    if let (Some(user), Some(password)) = (given("username"), given("password")) {
        let bucket = crate::ratelimit::bucket_of(ip).to_string();
        return match sessions::check_password(state, user, password, &bucket).await {
            Ok(user) => Ok(Caller::signed_in(user)),
            Err(SignInError::Wrong) => Err(refused(wrong)),
            Err(SignInError::Limited(_, _)) => Err(too_many()),
            Err(SignInError::App(e)) => Err(internal(e)),
        };
    }
    Err(refused(wrong))
}

fn too_many() -> Answer {
    Answer::error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")
}

/// The answer for a failure that is not the client's: logged, never shown.
fn internal(e: AppError) -> Answer {
    match e {
        AppError::Busy(why) => Answer::error(StatusCode::SERVICE_UNAVAILABLE, why),
        e => {
            tracing::error!(error = ?e, "YOURLS API call failed");
            Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error saving url to database",
            )
        }
    }
}

/// `GET|POST /yourls-api.php`.
pub async fn api(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let ip = crate::http::client_ip::client_ip(
        peer.ip(),
        req.headers(),
        &state.settings.trusted_proxies,
    );
    let params = match params_of(&state, req).await {
        Ok(p) => p,
        Err(answer) => return render(answer, "json", None),
    };
    let format = params.get("format").map_or("xml", String::as_str);
    let callback = params
        .get("callback")
        .or_else(|| params.get("jsonp"))
        .map(String::as_str);
    if format == "jsonp" && !callback.is_some_and(safe_callback) {
        let answer = Answer::new(
            StatusCode::BAD_REQUEST,
            obj! {"errorCode" => "400", "error" => "Invalid callback parameter"},
            "Invalid callback parameter",
        );
        return render(answer, "json", None);
    }
    let (answer, charged) = match authenticate(&state, &params, ip).await {
        Ok(caller) => {
            let write = params.get("action").is_some_and(|a| a == "shorturl");
            match charge(&state, Some(&caller), ip, write).await {
                Ok(charged) => (act(&state, &caller, &params, ip).await, charged),
                Err(refused) => (too_many(), Some(refused)),
            }
        }
        // Failed credentials are charged to the client's address, so guessing is slow.
        Err(answer) => match charge(&state, None, ip, false).await {
            Ok(charged) => (answer, charged),
            Err(refused) => (too_many(), Some(refused)),
        },
    };
    let mut res = render(answer, format, callback);
    add_limit_headers(&state, charged, res.headers_mut());
    res
}

/// Runs the `action` of an authenticated request.
async fn act(
    state: &AppState,
    caller: &Caller,
    params: &HashMap<String, String>,
    ip: IpAddr,
) -> Answer {
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let done = match param("action") {
        "shorturl" => {
            shorten(
                state,
                caller,
                param("url"),
                param("keyword"),
                param("title"),
                ip,
            )
            .await
        }
        "expand" => expand(state, caller, param("shorturl")).await,
        "url-stats" => url_stats(state, caller, param("shorturl")).await,
        "stats" => {
            stats(
                state,
                caller,
                param("filter"),
                param("limit"),
                param("start"),
            )
            .await
        }
        "db-stats" => db_stats(state, caller).await,
        "version" => Ok(version(param("db") == "1")),
        _ => Ok(Answer::error(
            StatusCode::BAD_REQUEST,
            "Unknown or missing \"action\" parameter",
        )),
    };
    done.unwrap_or_else(|e| match e {
        AppError::MissingScope(scope) => Answer::error(
            StatusCode::FORBIDDEN,
            &format!("This API key lacks the {} scope", scope.as_str()),
        ),
        e => internal(e),
    })
}

/// A time as YOURLS shows it: `YYYY-MM-DD HH:MM:SS` (UTC).
fn yourls_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A long URL shortened for a message: at most 60 characters, as YOURLS trims it.
fn trimmed(url: &str) -> String {
    if url.chars().count() <= 60 {
        url.to_owned()
    } else {
        format!("{}[...]", url.chars().take(55).collect::<String>())
    }
}

/// A link's title as YOURLS shows it: the URL when it has none.
fn title_of(link: &LinkRecord) -> String {
    link.fields
        .title
        .clone()
        .unwrap_or_else(|| link.fields.url.as_str().to_owned())
}

/// The `url` object of a created or existing link. snip does not keep the address a link
/// was created from: `ip` is the caller's for a new link and empty for an old one.
fn url_object(link: &LinkRecord, ip: &str, with_clicks: bool) -> Out {
    let mut fields = vec![
        ("keyword".to_string(), Out::from(link.code.as_str())),
        ("url".into(), link.fields.url.as_str().into()),
        ("title".into(), title_of(link).into()),
        ("date".into(), yourls_time(link.created_at).into()),
        ("ip".into(), ip.into()),
    ];
    if with_clicks {
        fields.push(("clicks".into(), link.clicks.into()));
    }
    Out::Obj(fields)
}

/// `action=shorturl`.
async fn shorten(
    state: &AppState,
    caller: &Caller,
    url: &str,
    keyword: &str,
    title: &str,
    ip: IpAddr,
) -> Result<Answer, AppError> {
    caller.require(crate::domain::key::Scope::LinksWrite)?;
    let url = url.trim();
    let fail = |status: StatusCode, code: &str, message: String| {
        Answer::new(
            status,
            obj! {
                "status" => "fail",
                "code" => code,
                "message" => message,
                "errorCode" => status.as_str(),
                "statusCode" => status.as_str(),
            },
            "",
        )
    };
    if url.is_empty() {
        return Ok(fail(
            StatusCode::BAD_REQUEST,
            "error:nourl",
            "Missing or malformed URL".into(),
        ));
    }
    // As YOURLS with unique URLs (its default): a URL shortened before answers with the
    // existing link.
    if let Some(link) = links::find_by_url(state, caller, url).await? {
        let short = short_url(state, link.code.as_str());
        return Ok(Answer::new(
            StatusCode::OK,
            obj! {
                "status" => "fail",
                "code" => "error:url",
                "url" => url_object(&link, "", true),
                "message" => format!("{} already exists in database", trimmed(link.fields.url.as_str())),
                "title" => title_of(&link),
                "shorturl" => short.clone(),
                "statusCode" => "200",
            },
            // YOURLS prints the existing short URL here.
            short,
        ));
    }
    let input = LinkInput {
        url: Some(url.to_owned()),
        alias: (!keyword.is_empty()).then(|| keyword.to_owned()),
        title: (!title.is_empty()).then(|| title.to_owned()),
        ..LinkInput::default()
    };
    // The use case renders the answer it stores; keep the link to answer in YOURLS's shape.
    let made = std::sync::Mutex::new(None);
    let created = links::create(state, caller, input, None, |link: &LinkRecord| {
        *made.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.clone());
        StoredResponse {
            status: StatusCode::CREATED.as_u16(),
            location: None,
            body: Vec::new(),
        }
    })
    .await;
    match created {
        Ok(_) => {}
        Err(AppError::Conflict(Taken::Code)) => {
            return Ok(Answer::new(
                StatusCode::OK,
                obj! {
                    "status" => "fail",
                    "code" => "error:keyword",
                    "message" => format!("Short URL {keyword} already exists in database or is reserved"),
                    "statusCode" => "200",
                },
                "",
            ));
        }
        Err(AppError::Validation(errors)) => {
            let Some(e) = errors.first() else {
                return Err(AppError::Validation(errors));
            };
            let (code, message) = match e.field.as_str() {
                "url" if e.message.contains("own host") => {
                    ("error:noloop", "URL is a short URL".to_owned())
                }
                "url" => (
                    "error:nourl",
                    format!("Missing or malformed URL: the URL {}", e.message),
                ),
                "alias" => (
                    "error:keyword",
                    format!("Short URL {keyword} is not valid: it {}", e.message),
                ),
                field => ("error:invalid", format!("{field} {}", e.message)),
            };
            return Ok(fail(StatusCode::BAD_REQUEST, code, message));
        }
        Err(e) => return Err(e),
    }
    let link = made
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a created link was not rendered")))?;
    let short = short_url(state, link.code.as_str());
    Ok(Answer::new(
        StatusCode::OK,
        obj! {
            "url" => url_object(&link, &ip.to_string(), false),
            "status" => "success",
            "message" => format!("{} added to database", trimmed(link.fields.url.as_str())),
            "title" => title_of(&link),
            "shorturl" => short.clone(),
            "statusCode" => "200",
        },
        short,
    ))
}

/// The code a `shorturl` parameter names: a bare keyword, or a short URL of this service.
fn code_of<'a>(state: &AppState, shorturl: &'a str) -> &'a str {
    let base = state.settings.base_url.as_str();
    let rest = shorturl
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .or_else(|| {
            // The same short URL with the other scheme, or without one.
            let host = base.split_once("://").map_or(base, |(_, h)| h);
            shorturl
                .split_once("://")
                .map_or(shorturl, |(_, r)| r)
                .strip_prefix(host)
                .and_then(|r| r.strip_prefix('/'))
        })
        .unwrap_or(shorturl);
    rest.trim_end_matches('/')
}

/// The link a `shorturl` parameter names, if the caller may read it.
async fn lookup(
    state: &AppState,
    caller: &Caller,
    shorturl: &str,
) -> Result<Option<LinkRecord>, AppError> {
    match links::get(state, caller, code_of(state, shorturl)).await {
        Ok(link) => Ok(Some(link)),
        Err(AppError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `action=expand`.
async fn expand(state: &AppState, caller: &Caller, shorturl: &str) -> Result<Answer, AppError> {
    let Some(link) = lookup(state, caller, shorturl).await? else {
        return Ok(Answer::new(
            StatusCode::NOT_FOUND,
            obj! {
                "keyword" => code_of(state, shorturl),
                "message" => "Error: short URL not found",
                "errorCode" => "404",
            },
            "not found",
        ));
    };
    let long = link.fields.url.as_str().to_owned();
    Ok(Answer::new(
        StatusCode::OK,
        obj! {
            "keyword" => link.code.as_str(),
            "shorturl" => short_url(state, link.code.as_str()),
            "longurl" => long.clone(),
            "title" => title_of(&link),
            "message" => "success",
            "statusCode" => "200",
        },
        long,
    ))
}

/// A link as `url-stats` and `stats` show it.
fn link_object(state: &AppState, link: &LinkRecord) -> Out {
    obj! {
        "shorturl" => short_url(state, link.code.as_str()),
        "url" => link.fields.url.as_str(),
        "title" => title_of(link),
        "timestamp" => yourls_time(link.created_at),
        "ip" => "",
        "clicks" => link.clicks,
    }
}

/// `action=url-stats`.
async fn url_stats(state: &AppState, caller: &Caller, shorturl: &str) -> Result<Answer, AppError> {
    let Some(link) = lookup(state, caller, shorturl).await? else {
        return Ok(Answer::new(
            StatusCode::NOT_FOUND,
            obj! {"statusCode" => "404", "message" => "Error: short URL not found"},
            NEED_FORMAT,
        ));
    };
    Ok(Answer::new(
        StatusCode::OK,
        obj! {
            "statusCode" => "200",
            "message" => "success",
            "link" => link_object(state, &link),
        },
        NEED_FORMAT,
    ))
}

/// The caller's totals, as `db-stats` and `stats` show them.
async fn totals(state: &AppState, caller: &Caller) -> Result<Out, AppError> {
    let links = links::counts_of(state, caller, &[caller.user.id]).await?;
    let clicks = links::click_total(state, caller).await?;
    let count = links.get(&caller.user.id).copied().unwrap_or(0);
    Ok(obj! {
        "total_links" => i64::try_from(count).unwrap_or(i64::MAX),
        "total_clicks" => clicks,
    })
}

/// `action=stats`: the caller's links by `filter` (`top`, `bottom`, `last`, `rand`), at
/// most `limit` from `start`, and the caller's totals.
async fn stats(
    state: &AppState,
    caller: &Caller,
    filter: &str,
    limit: &str,
    start: &str,
) -> Result<Answer, AppError> {
    let limit = limit
        .trim()
        .parse::<i64>()
        .unwrap_or(0)
        .clamp(0, i64::from(MAX_STATS_LIMIT));
    let start = start.trim().parse::<u64>().unwrap_or(0);
    let totals = totals(state, caller).await?;
    let mut fields = Vec::new();
    if limit > 0 {
        let order = match filter {
            "bottom" => LinkOrder::LeastClicked,
            "last" => LinkOrder::Newest,
            "rand" | "random" => LinkOrder::Newest,
            _ => LinkOrder::MostClicked,
        };
        let limit = u32::try_from(limit).unwrap_or(MAX_STATS_LIMIT);
        let mut offset = start;
        if matches!(filter, "rand" | "random") {
            // A random window of the caller's links: snip has no random order in SQL.
            let count = match &totals {
                Out::Obj(f) => match f.first() {
                    Some((_, Out::Int(n))) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                },
                _ => 0,
            };
            let room = count.saturating_sub(u64::from(limit));
            offset = if room == 0 {
                0
            } else {
                rand::random_range(0..=room)
            };
        }
        let page = links::list(
            state,
            caller,
            caller.user.id,
            None,
            None,
            order,
            limit,
            PageRequest::Offset(offset),
        )
        .await?;
        if !page.links.is_empty() {
            let list = page
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("link_{}", i + 1), link_object(state, l)))
                .collect();
            fields.push(("links".to_string(), Out::Obj(list)));
        }
    }
    fields.push(("stats".into(), totals));
    fields.push(("statusCode".into(), "200".into()));
    fields.push(("message".into(), "success".into()));
    Ok(Answer {
        status: StatusCode::OK,
        fields,
        simple: NEED_FORMAT.into(),
    })
}

/// `action=db-stats`: the caller's number of links and clicks.
async fn db_stats(state: &AppState, caller: &Caller) -> Result<Answer, AppError> {
    Ok(Answer::new(
        StatusCode::OK,
        obj! {
            "db-stats" => totals(state, caller).await?,
            "statusCode" => "200",
            "message" => "success",
        },
        NEED_FORMAT,
    ))
}

/// `action=version`.
fn version(with_db: bool) -> Answer {
    let mut fields = vec![("version".to_string(), Out::from(VERSION))];
    if with_db {
        fields.push((
            "db_version".into(),
            format!("snip {}", env!("CARGO_PKG_VERSION")).into(),
        ));
    }
    Answer {
        status: StatusCode::OK,
        fields,
        simple: VERSION.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_keeps_order_nests_objects_and_escapes_text() {
        let answer = Answer::new(
            StatusCode::OK,
            obj! {"b" => "x & <y>", "a" => obj! {"link_1" => 5}},
            "",
        );
        let res = render(answer, "xml", None);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/xml; charset=utf-8"
        );
        let mut xml = String::new();
        write_xml(
            &[
                ("b".into(), "x & <y>".into()),
                ("a".into(), obj! {"link_1" => 5}),
            ],
            &mut xml,
        );
        assert_eq!(xml, "<b>x &amp; &lt;y&gt;</b><a><link_1>5</link_1></a>");
    }

    #[test]
    fn json_keeps_the_order_of_fields() {
        let out = obj! {"z" => "1", "a" => 2, "m" => obj! {"y" => "3"}};
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"z":"1","a":2,"m":{"y":"3"}}"#
        );
    }

    #[test]
    fn only_plain_callback_names_are_echoed() {
        assert!(safe_callback("jQuery_123.cb$"));
        assert!(!safe_callback(""));
        assert!(!safe_callback("alert(1)"));
        assert!(!safe_callback("a;b"));
    }

    #[test]
    fn long_urls_are_trimmed_as_yourls_trims_them() {
        assert_eq!(trimmed("https://a.example/"), "https://a.example/");
        let long = format!("https://a.example/{}", "x".repeat(80));
        let t = trimmed(&long);
        assert!(t.ends_with("[...]"));
        assert_eq!(t.chars().count(), 60);
    }
}
