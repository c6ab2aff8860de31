//! Request extractors that turn every kind of bad input into a problem response:
//! JSON bodies (415/400/413/422), query strings (400), path parameters (404) and the
//! API key (401).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::{AppState, Caller};

/// A JSON body. Accepts `application/json` and any `application/*+json` type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(bytes) = JsonBody::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The bytes of a JSON body, for handlers that parse it their own way: the content type
/// is checked (415) and the body read within its limit (413), as for [`ApiJson`].
#[derive(Debug)]
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json(ct) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "", "the request body is too large")
            } else {
                ApiError::bad_request(format!("could not read the body: {r}"))
            }
        })?;
        Ok(JsonBody(bytes))
    }
}

/// Parses JSON: syntax errors are 400, JSON of the wrong shape is 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of the API is an object; serde would also read a struct from an array.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            // Not JSON at all is a 400; JSON that is not an object is a 422.
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(json_error)?;
            return Err(not_an_object());
        }
        None => {
            return Err(ApiError::bad_request(
                "the body is empty; expected a JSON object",
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(json_error)?;
    Ok(value)
}

/// Reads a JSON value already parsed into a type, naming the field of a mismatch (422).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(not_an_object());
    }
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn not_an_object() -> ApiError {
    ApiError::validation(vec![crate::domain::FieldError::new(
        "body",
        "must be a JSON object",
    )])
}

/// A serde error with the path of the field it is about (`max_clicks`, `links[3].url`).
fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data if path != "." => {
            ApiError::validation(vec![crate::domain::FieldError::new(
                path,
                inner.to_string(),
            )])
        }
        _ => json_error(inner),
    }
}

/// Maps a serde_json error to 400 (not JSON) or 422 (JSON of the wrong shape).
pub fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
        Category::Data => ApiError::validation(vec![crate::domain::FieldError::new(
            field_of(&e),
            e.to_string(),
        )]),
    }
}

/// The field a top-level serde message is about: the unknown or missing field it names
/// (`unknown field `x``), else the whole body.
fn field_of(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let named = msg.starts_with("unknown field") || msg.starts_with("missing field");
    match msg.split('`').nth(1) {
        Some(field) if named => field.to_owned(),
        _ => "body".to_owned(),
    }
}

/// A query string; malformed ones are 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters; ones that cannot be parsed name nothing that exists, so they are 404.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_| ApiError::not_found())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// The caller that [`super::guard::api`] authenticated; without one, 401.
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::unauthorized("an API key is required (Authorization: Bearer <key>)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }
}
