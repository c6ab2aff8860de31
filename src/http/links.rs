//! `/api/v1/links`: create (single, bulk), list, read, replace, patch, delete.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, JsonBody, from_value, json_error};
use crate::app::links::{self as uc, Idempotency};
use crate::app::{AppState, Caller};
use crate::domain::link::{LinkInput, LinkPatch};
use crate::domain::user::UserId;
use crate::store::{LinkCursor, LinkPage, LinkRecord, PageRequest, StoredResponse};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;
/// Largest page number in offset mode.
pub const MAX_PAGE: u64 = 1_000_000_000;

/// A link as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    /// The short code.
    pub code: String,
    /// The full short URL.
    pub short_url: String,
    /// Destination.
    pub url: String,
    /// Title.
    pub title: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Owner's user id.
    pub owner_id: UserId,
    /// 301, 302, 307 or 308.
    pub redirect_status: u16,
    /// RFC 3339 expiry.
    pub expires_at: Option<String>,
    /// Click limit.
    pub max_clicks: Option<i64>,
    /// Whether a password protects the link.
    pub has_password: bool,
    /// Redirects counted.
    pub clicks: i64,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// Formats a time the one way the API shows times: RFC 3339, UTC, milliseconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl LinkView {
    /// The view of a stored link.
    pub fn new(link: &LinkRecord, base_url: &str) -> Self {
        let f = &link.fields;
        Self {
            code: link.code.to_string(),
            short_url: format!("{base_url}/{}", link.code),
            url: f.url.as_str().to_owned(),
            title: f.title.clone(),
            tags: f.tags.clone(),
            owner_id: link.owner_id,
            redirect_status: f.redirect_status.code(),
            expires_at: f.expires_at.map(rfc3339),
            max_clicks: f.max_clicks,
            has_password: f.password_hash.is_some(),
            clicks: link.clicks,
            created_at: rfc3339(link.created_at),
            updated_at: rfc3339(link.updated_at),
        }
    }
}

fn location(code: &str) -> String {
    format!("/api/v1/links/{code}")
}

/// The response for a created link, as sent and as stored for idempotent replay.
pub fn created_response(link: &LinkRecord, base_url: &str) -> StoredResponse {
    StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        location: Some(location(link.code.as_str())),
        body: serde_json::to_vec(&LinkView::new(link, base_url)).unwrap_or_default(),
    }
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut res = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body,
        )
            .into_response();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            res.headers_mut().insert(header::LOCATION, loc);
        }
        res
    }
}

/// Reads a valid `Idempotency-Key` header: 1–255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// Create a short link.
#[utoipa::path(post, path = "/api/v1/links", operation_id = "create_link", tag = "links",
    request_body = LinkInput,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "1–255 visible ASCII characters. Makes retries safe: the same key and body within 24 h return the first response")),
    responses(
        (status = 201, body = LinkView, description = "Created", headers(("Location" = String))),
        (status = 409, body = Problem, description = "Alias taken"),
        (status = 422, body = Problem, description = "Invalid fields, or Idempotency-Key reused with another body"),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<StoredResponse, ApiError> {
    let key = idempotency_key(&headers)?;
    // The request hash is over canonical JSON (keys sorted), so formatting does not matter.
    let idempotency = key.map(|key| Idempotency {
        key,
        request_hash: hex::encode(Sha256::digest(body.to_string().as_bytes())),
    });
    let input: LinkInput = from_value(body)?;
    let base = state.settings.base_url.clone();
    let render = move |link: &LinkRecord| created_response(link, &base);
    Ok(uc::create(&state, &caller, input, idempotency, render).await?)
}

/// A bulk create request (described for the API document; [`parse_bulk`] reads it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// 1 to 1,000 objects, each a link as `POST /api/v1/links` takes it. An item that is not
    /// an object fails the request (422); an object that is not a valid link fails alone,
    /// with its own 422 in the results.
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 1000)]
    pub links: Vec<serde_json::Value>,
}

/// Why a bulk body was refused while it was read.
enum BulkError {
    /// Not JSON, or JSON of the wrong shape.
    Json(serde_json::Error),
    /// More than [`uc::MAX_BULK`] items: the parse stopped at the first one too many.
    TooMany,
}

/// Reads a bulk body `{"links": [...]}`, counting items as they are parsed: the parse stops
/// at item 1,001, so a body of millions of tiny items costs no more than its bytes.
fn parse_bulk(bytes: &[u8]) -> Result<Vec<serde_json::Value>, BulkError> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;

    struct Body<'a>(&'a Cell<bool>);
    struct Items<'a>(&'a Cell<bool>);

    impl<'de> DeserializeSeed<'de> for Items<'_> {
        type Value = Vec<serde_json::Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Items<'_> {
        type Value = Vec<serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {} links", uc::MAX_BULK)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == uc::MAX_BULK {
                    self.0.set(true);
                    return Err(A::Error::custom("too many items"));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    impl<'de> DeserializeSeed<'de> for Body<'_> {
        type Value = Vec<serde_json::Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Body<'_> {
        type Value = Vec<serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object with a `links` list")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut links = None;
            while let Some(key) = map.next_key::<String>()? {
                if key != "links" {
                    return Err(A::Error::unknown_field(&key, &["links"]));
                }
                if links.is_some() {
                    return Err(A::Error::duplicate_field("links"));
                }
                links = Some(map.next_value_seed(Items(self.0))?);
            }
            links.ok_or_else(|| A::Error::missing_field("links"))
        }
    }

    let too_many = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Body(&too_many)
        .deserialize(&mut de)
        .and_then(|links| de.end().map(|()| links));
    match parsed {
        Ok(links) => Ok(links),
        Err(_) if too_many.get() => Err(BulkError::TooMany),
        Err(e) => Err(BulkError::Json(e)),
    }
}

/// One item's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItem {
    /// Position in the request.
    pub index: usize,
    /// 201, or the error's status.
    pub status: u16,
    /// The created link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkView>,
    /// Why the item failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// The bulk response.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    /// One result per item, in request order.
    pub results: Vec<BulkItem>,
}

/// Create up to 1,000 links; each item succeeds or fails on its own.
#[utoipa::path(post, path = "/api/v1/links/bulk", operation_id = "create_links_in_bulk", tag = "links",
    request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_bulk(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<BulkResponse>, ApiError> {
    let links = match parse_bulk(&body) {
        Ok(links) => links,
        Err(BulkError::TooMany) => return Err(uc::too_many_items().into()),
        Err(BulkError::Json(e)) => return Err(json_error(e)),
    };
    drop(body);
    // Every item must be an object; an object of the wrong shape fails alone, like an item
    // with invalid values.
    if let Some(i) = links.iter().position(|v| !v.is_object()) {
        return Err(ApiError::validation(vec![crate::domain::FieldError::new(
            format!("links[{i}]"),
            "must be a JSON object",
        )]));
    }
    let mut inputs = Vec::with_capacity(links.len());
    let mut shape_errors = Vec::with_capacity(links.len());
    for v in links {
        match from_value::<LinkInput>(v) {
            Ok(input) => {
                inputs.push(input);
                shape_errors.push(None);
            }
            Err(e) => {
                inputs.push(LinkInput::default());
                shape_errors.push(Some(e));
            }
        }
    }
    let outcomes = uc::create_bulk(&state, &caller, inputs).await?;
    let base = &state.settings.base_url;
    let results = outcomes
        .into_iter()
        .zip(&shape_errors)
        .enumerate()
        .map(|(index, (outcome, shape))| match (shape, outcome) {
            (Some(err), _) => BulkItem {
                index,
                status: err.status().as_u16(),
                link: None,
                error: Some(Problem::from(err)),
            },
            (None, Ok(link)) => BulkItem {
                index,
                status: 201,
                link: Some(LinkView::new(&link, base)),
                error: None,
            },
            (None, Err(e)) => {
                let err = ApiError::from(e);
                BulkItem {
                    index,
                    status: err.status().as_u16(),
                    link: None,
                    error: Some(Problem::from(&err)),
                }
            }
        })
        .collect();
    Ok(Json(BulkResponse { results }))
}

/// Listing parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor from `next_cursor` (cursor mode; not with `page`).
    #[param(pattern = "^([0-9a-f]{2})+$")]
    pub cursor: Option<String>,
    /// 1-based page number (offset mode; not with `cursor`).
    #[param(minimum = 1, maximum = 1_000_000_000)]
    pub page: Option<u64>,
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Only links whose url, title or code contains this text.
    pub q: Option<String>,
}

/// A page in cursor mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
    /// Whether more items follow.
    pub has_more: bool,
}

/// A page of links: cursor mode, or offset mode when `page` is given.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LinkListPage {
    /// Cursor mode.
    Cursor(CursorPage<LinkView>),
    /// Offset mode.
    Offset(OffsetPage<LinkView>),
}

/// A page in offset mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct OffsetPage<T> {
    /// The items.
    pub data: Vec<T>,
    /// This page's number (1-based).
    pub page: u64,
    /// Page size.
    pub limit: u32,
    /// Matching items in all.
    pub total: u64,
}

fn encode_cursor(c: &LinkCursor) -> String {
    c.encode()
}

fn decode_cursor(s: &str) -> Result<LinkCursor, ApiError> {
    LinkCursor::decode(s).ok_or_else(|| ApiError::bad_request("invalid cursor"))
}

/// Checks `limit`, defaulting to 20.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::validation(vec![crate::domain::FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )])),
    }
}

/// Lists `owner`'s links in either pagination mode; shared by `/links` and `/users/{id}/links`.
pub async fn list_for(
    state: &AppState,
    caller: &Caller,
    owner: UserId,
    params: ListParams,
) -> Result<Response, ApiError> {
    let limit = page_limit(params.limit)?;
    let page = match (params.page, params.cursor) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("use either page or cursor, not both"));
        }
        (Some(p), None) if !(1..=MAX_PAGE).contains(&p) => {
            return Err(ApiError::validation(vec![crate::domain::FieldError::new(
                "page",
                format!("pages are numbered from 1 to {MAX_PAGE}"),
            )]));
        }
        (Some(p), None) => PageRequest::Offset((p - 1).saturating_mul(u64::from(limit))),
        (None, Some(c)) => PageRequest::After(Some(decode_cursor(&c)?)),
        (None, None) => PageRequest::After(None),
    };
    let offset_mode = matches!(page, PageRequest::Offset(_));
    let LinkPage {
        links,
        has_more,
        total,
    } = uc::list(
        state,
        caller,
        owner,
        params.tag.filter(|t| !t.is_empty()),
        params.q.filter(|q| !q.is_empty()),
        crate::store::LinkOrder::Newest,
        limit,
        page,
    )
    .await?;
    let base = &state.settings.base_url;
    let next_cursor = links.last().filter(|_| has_more).map(|l| {
        encode_cursor(&LinkCursor {
            created_at: crate::clock::to_millis(l.created_at),
            code: l.code.to_string(),
        })
    });
    let data: Vec<LinkView> = links.iter().map(|l| LinkView::new(l, base)).collect();
    Ok(if offset_mode {
        Json(OffsetPage {
            data,
            page: params.page.unwrap_or(1),
            limit,
            total: total.unwrap_or(0),
        })
        .into_response()
    } else {
        Json(CursorPage {
            data,
            next_cursor,
            has_more,
        })
        .into_response()
    })
}

/// List the caller's links, newest first.
#[utoipa::path(get, path = "/api/v1/links", operation_id = "list_links", tag = "links", params(ListParams),
    responses((status = 200, body = LinkListPage, description = "Cursor mode; with `page`, offset mode")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let owner = caller.user.id;
    list_for(&state, &caller, owner, params).await
}

/// One link, with its click total.
#[utoipa::path(get, path = "/api/v1/links/{code}", operation_id = "get_link", tag = "links",
    params(("code" = String, Path)),
    responses((status = 200, body = LinkView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<LinkView>, ApiError> {
    let link = uc::get(&state, &caller, &code).await?;
    Ok(Json(LinkView::new(&link, &state.settings.base_url)))
}

/// Replace every mutable field of a link.
#[utoipa::path(put, path = "/api/v1/links/{code}", operation_id = "replace_link", tag = "links",
    params(("code" = String, Path)), request_body = LinkInput,
    responses((status = 200, body = LinkView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiJson(input): ApiJson<LinkInput>,
) -> Result<Json<LinkView>, ApiError> {
    let link = uc::replace(&state, &caller, &code, input).await?;
    Ok(Json(LinkView::new(&link, &state.settings.base_url)))
}

/// Change some fields of a link (JSON merge patch: null clears).
#[utoipa::path(patch, path = "/api/v1/links/{code}", operation_id = "patch_link", tag = "links",
    params(("code" = String, Path)), request_body(content = LinkPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = LinkView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiJson(patch): ApiJson<LinkPatch>,
) -> Result<Json<LinkView>, ApiError> {
    let link = uc::patch(&state, &caller, &code, patch).await?;
    Ok(Json(LinkView::new(&link, &state.settings.base_url)))
}

/// Delete a link; its code answers 410 from then on and is never reused.
#[utoipa::path(delete, path = "/api/v1/links/{code}", operation_id = "delete_link", tag = "links",
    params(("code" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    uc::delete(&state, &caller, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = LinkCursor {
            created_at: 1_700_000_000_123,
            code: "aB3_x-9".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for bad in ["", "zz", "41", &hex::encode("x.y")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::client_input_cases())]

        /// Any text is a cursor or a 400, never a panic.
        #[test]
        fn any_text_decodes_or_is_refused(s in "\\PC*") {
            let _ = decode_cursor(&s);
        }

        /// Hex of any bytes, the shape a tampered cursor has, likewise.
        #[test]
        fn any_hex_decodes_or_is_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = decode_cursor(&hex::encode(&bytes));
            let _ = decode_cursor(&hex::encode_upper(&bytes));
        }

        /// Every cursor the server hands out reads back as itself.
        #[test]
        fn cursors_round_trip(created_at: i64, code in "[A-Za-z0-9_-]{1,64}") {
            let c = LinkCursor { created_at, code };
            proptest::prop_assert_eq!(decode_cursor(&encode_cursor(&c)).ok(), Some(c));
        }
    }
}
