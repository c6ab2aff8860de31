//! `/api/v1/users`, their keys, their links, and `/api/v1/me`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::links::{CursorPage, ListParams, list_for, page_limit, rfc3339};
use crate::app::{AppState, Caller, users as uc};
use crate::domain::user::{Role, UserId, UserInput, UserPatch};
use crate::store::{KeyRecord, UserRecord};

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: UserId,
    /// E-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `admin` or `member`.
    pub role: Role,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email.as_str().to_owned(),
            name: u.name.clone(),
            role: u.role,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// Scopes.
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<&'static str>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last use (to within a minute).
    pub last_used_at: Option<String>,
}

impl From<&KeyRecord> for KeyView {
    fn from(k: &KeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scopes.names(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// A key just created: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyView {
    /// The key's record.
    #[serde(flatten)]
    pub record: KeyView,
    /// The API key. Store it now: it cannot be shown again.
    pub key: String,
    /// The key's YOURLS signature token, for time-limited signatures of the YOURLS API
    /// (only when the server has a signature secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yourls_signature_token: Option<String>,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// The user.
    #[serde(flatten)]
    pub user: UserView,
    /// The key used for this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyView>,
}

fn user_location(id: UserId) -> HeaderValue {
    HeaderValue::from_str(&format!("/api/v1/users/{id}")).unwrap_or(HeaderValue::from_static("/"))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "users", request_body = UserInput,
    responses((status = 201, body = UserView), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Response, ApiError> {
    let user = uc::create(&state, &caller, input).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, user_location(user.id))],
        Json(UserView::from(&user)),
    )
        .into_response())
}

/// Users listing parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserListParams {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Cursor from `next_cursor`.
    #[param(pattern = "^u[0-9]+$")]
    pub cursor: Option<String>,
}

/// List users by id (admin).
#[utoipa::path(get, path = "/api/v1/users", operation_id = "list_users", tag = "users", params(UserListParams),
    responses((status = 200, body = CursorPage<UserView>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<CursorPage<UserView>>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = match params.cursor {
        None => None,
        Some(c) => Some(
            c.strip_prefix('u')
                .and_then(|id| id.parse::<UserId>().ok())
                .ok_or_else(|| ApiError::bad_request("invalid cursor"))?,
        ),
    };
    let (users, has_more) = uc::list(&state, &caller, after, limit).await?;
    let next_cursor = users
        .last()
        .filter(|_| has_more)
        .map(|u| format!("u{}", u.id));
    Ok(Json(CursorPage {
        data: users.iter().map(UserView::from).collect(),
        next_cursor,
        has_more,
    }))
}

/// One user (self or admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "get_user", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&uc::get(&state, &caller, id).await?)))
}

/// Replace a user's fields (self or admin; only admins change roles).
#[utoipa::path(put, path = "/api/v1/users/{id}", operation_id = "replace_user", tag = "users", params(("id" = i64, Path)),
    request_body = UserInput,
    responses((status = 200, body = UserView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(
        &uc::replace(&state, &caller, id, input).await?,
    )))
}

/// Change some of a user's fields (merge patch).
#[utoipa::path(patch, path = "/api/v1/users/{id}", operation_id = "patch_user", tag = "users", params(("id" = i64, Path)),
    request_body(content = UserPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = UserView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(
        &uc::patch(&state, &caller, id, patch).await?,
    )))
}

/// Delete a user: their keys stop working and their links answer 410.
#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "delete_user", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> Result<StatusCode, ApiError> {
    uc::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's links, newest first (cursor or offset mode).
#[utoipa::path(get, path = "/api/v1/users/{id}/links", operation_id = "list_user_links", tag = "users",
    params(("id" = i64, Path), ListParams),
    responses((status = 200, body = super::links::LinkListPage), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn links(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let user = uc::get(&state, &caller, id).await?;
    list_for(&state, &caller, user.id, params).await
}

/// A request for a new key.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// A label, at most 100 printable characters.
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// Scopes, each held by the calling key; `links:read links:write` (cut down to what the
    /// calling key holds) when absent.
    #[schema(value_type = Option<Vec<ScopeName>>)]
    pub scopes: Option<Vec<String>>,
}

/// The name of a scope (for the API document; see docs/security.md).
#[derive(Debug, Serialize, ToSchema)]
pub enum ScopeName {
    /// List and read own links.
    #[serde(rename = "links:read")]
    LinksRead,
    /// Create, change and delete own links.
    #[serde(rename = "links:write")]
    LinksWrite,
    /// Change or delete one's own user and keys.
    #[serde(rename = "account:write")]
    AccountWrite,
    /// Manage every user and key (admins only).
    #[serde(rename = "users:admin")]
    UsersAdmin,
}

/// Create an API key; the key is in this response only.
#[utoipa::path(post, path = "/api/v1/users/{id}/keys", operation_id = "create_key", tag = "keys", params(("id" = i64, Path)),
    request_body = KeyInput,
    responses((status = 201, body = NewKeyView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(input): ApiJson<KeyInput>,
) -> Result<Response, ApiError> {
    let (record, key) = uc::create_key(&state, &caller, id, input.name, input.scopes).await?;
    let view = NewKeyView {
        record: KeyView::from(&record),
        key: key.expose().to_owned(),
        yourls_signature_token: state
            .settings
            .signature_secret
            .as_deref()
            .map(|secret| key.signature_token(secret)),
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(view),
    )
        .into_response())
}

/// List a user's live keys.
#[utoipa::path(get, path = "/api/v1/users/{id}/keys", operation_id = "list_keys", tag = "keys", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<KeyView>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = uc::list_keys(&state, &caller, id).await?;
    Ok(Json(keys.iter().map(KeyView::from).collect()))
}

/// Revoke a key at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}/keys/{key_id}", operation_id = "revoke_key", tag = "keys",
    params(("id" = i64, Path), ("key_id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, key_id)): ApiPath<(UserId, i64)>,
) -> Result<StatusCode, ApiError> {
    uc::revoke_key(&state, &caller, id, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller and the key in use.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "get_me", tag = "users",
    responses((status = 200, body = MeView), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn me(caller: Caller) -> Json<MeView> {
    Json(MeView {
        user: UserView::from(&caller.user),
        key: caller.key.as_ref().map(KeyView::from),
    })
}
