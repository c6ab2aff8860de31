//! `/api/v1/links/{code}/qr`: the QR code of a link's short URL, as SVG or PNG.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, Problem};
use super::extract::{ApiPath, ApiQuery};
use crate::app::{AppState, Caller};
use crate::domain::FieldError;
use crate::qr::{self, Format};

/// QR code parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QrParams {
    /// `svg` (default) or `png`.
    #[param(pattern = "^(svg|png)$")]
    pub format: Option<String>,
    /// Side of the image in pixels, 64 to 2048 (default 256).
    #[param(minimum = 64, maximum = 2048)]
    pub size: Option<u32>,
}

/// Checks the parameters: the format and the size.
pub fn parse_params(
    format: Option<&str>,
    size: Option<u32>,
) -> Result<(Format, u32), Vec<FieldError>> {
    let mut errors = Vec::new();
    let format = match format.map(Format::parse) {
        None => Some(Format::Svg),
        Some(Some(f)) => Some(f),
        Some(None) => {
            errors.push(FieldError::new("format", "must be svg or png"));
            None
        }
    };
    let size = size.unwrap_or(qr::DEFAULT_SIZE);
    if !(qr::MIN_SIZE..=qr::MAX_SIZE).contains(&size) {
        errors.push(FieldError::new(
            "size",
            format!("must be between {} and {}", qr::MIN_SIZE, qr::MAX_SIZE),
        ));
    }
    match format {
        Some(f) if errors.is_empty() => Ok((f, size)),
        _ => Err(errors),
    }
}

/// The image answer: cacheable by the browser for a day (a link's short URL never changes).
/// With `download`, the browser saves it as `{code}.{ext}`.
pub fn image(short_url: &str, format: Format, size: u32, download: Option<&str>) -> Response {
    let body = match qr::render(short_url, format, size) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "rendering a QR code failed");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "",
                "the QR code could not be made",
            )
            .into_response();
        }
    };
    let mut res = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response();
    if let Some(name) = download
        && let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{name}.{}\"",
            format.extension()
        ))
    {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// A link's QR code.
#[utoipa::path(get, path = "/api/v1/links/{code}/qr", operation_id = "get_link_qr", tag = "links",
    params(("code" = String, Path, description = "The link's code"), QrParams),
    responses(
        (status = 200, description = "The image", content(
            (Vec<u8> = "image/svg+xml"), (Vec<u8> = "image/png"))),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn qr(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiQuery(params): ApiQuery<QrParams>,
) -> Result<Response, ApiError> {
    let (format, size) =
        parse_params(params.format.as_deref(), params.size).map_err(ApiError::validation)?;
    let link = crate::app::links::get(&state, &caller, &code).await?;
    let short_url = format!("{}/{}", state.settings.base_url, link.code);
    Ok(image(&short_url, format, size, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert_eq!(parse_params(None, None).unwrap(), (Format::Svg, 256));
        assert_eq!(
            parse_params(Some("png"), Some(64)).unwrap(),
            (Format::Png, 64)
        );
        assert_eq!(
            parse_params(Some("svg"), Some(2048)).unwrap(),
            (Format::Svg, 2048)
        );
        let bad = parse_params(Some("gif"), Some(63)).unwrap_err();
        let fields: Vec<_> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["format", "size"]);
        assert!(parse_params(None, Some(2049)).is_err());
    }
}
