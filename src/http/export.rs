//! `GET /api/v1/links/export`: all of the caller's links as CSV or JSON, streamed a page at
//! a time, so a million links take no more memory than one page. The CSV's columns are the
//! ones `snip import --from csv` reads back.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::error::{ApiError, Problem};
use super::extract::ApiQuery;
use super::links::{LinkView, rfc3339};
use crate::app::{AppState, Caller};
use crate::store::LinkRecord;

/// The columns of an exported CSV file, in order.
pub const CSV_COLUMNS: [&str; 10] = [
    "code",
    "short_url",
    "url",
    "title",
    "tags",
    "clicks",
    "created_at",
    "expires_at",
    "max_clicks",
    "redirect_status",
];

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row ([`CSV_COLUMNS`]); tags are separated by
    /// spaces.
    Csv,
    /// A JSON array of links, each as `GET /api/v1/links/{code}` shows it.
    Json,
}

/// Export parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `csv` (default) or `json`.
    pub format: Option<Format>,
}

/// The CSV rows of `links` (with the header row first when `header` is set).
pub fn csv_rows(links: &[LinkRecord], base_url: &str, header: bool) -> std::io::Result<Bytes> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(links.len() * 128));
    let mut ok = !header || out.write_record(CSV_COLUMNS).is_ok();
    for l in links {
        let f = &l.fields;
        ok &= out
            .write_record([
                l.code.as_str(),
                &format!("{base_url}/{}", l.code),
                f.url.as_str(),
                f.title.as_deref().unwrap_or(""),
                &f.tags.join(" "),
                &l.clicks.to_string(),
                &rfc3339(l.created_at),
                &f.expires_at.map(rfc3339).unwrap_or_default(),
                &f.max_clicks.map(|m| m.to_string()).unwrap_or_default(),
                &f.redirect_status.code().to_string(),
            ])
            .is_ok();
    }
    match out.into_inner() {
        Ok(bytes) if ok => Ok(bytes.into()),
        _ => Err(std::io::Error::other("writing CSV failed")),
    }
}

/// The JSON array elements of `links`, each after a comma but the very first.
pub fn json_items(links: &[LinkRecord], base_url: &str, first: bool) -> Bytes {
    let mut out = Vec::with_capacity(links.len() * 256);
    for (i, l) in links.iter().enumerate() {
        if !(first && i == 0) {
            out.push(b',');
        }
        // A view of plain strings and numbers always serializes.
        let _ = serde_json::to_writer(&mut out, &LinkView::new(l, base_url));
        out.push(b'\n');
    }
    out.into()
}

/// A streamed export of the caller's links in `format`. The status is sent before the
/// links are read: a store failure half-way aborts the transfer, so a client never takes a
/// cut file for a whole one.
pub fn stream(state: &AppState, caller: &Caller, format: Format, filename: &str) -> Response {
    let base = state.settings.base_url.clone();
    let pages = crate::app::links::export(state.clone(), caller.clone(), caller.user.id)
        .map_err(|e| {
            tracing::error!(error = ?e, "export failed; the transfer is cut off");
            std::io::Error::other("export failed")
        })
        .enumerate()
        .map(move |(i, page)| {
            let links = page?;
            match format {
                Format::Csv => csv_rows(&links, &base, false),
                Format::Json => Ok(json_items(&links, &base, i == 0)),
            }
        });
    let (head, tail, content_type) = match format {
        Format::Csv => (
            csv_rows(&[], "", true).unwrap_or_default(),
            Bytes::new(),
            "text/csv; charset=utf-8",
        ),
        Format::Json => (
            Bytes::from_static(b"[\n"),
            Bytes::from_static(b"]\n"),
            "application/json",
        ),
    };
    let body = futures_util::stream::once(async move { Ok(head) })
        .chain(pages)
        .chain(futures_util::stream::once(async move { Ok(tail) }));
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Export all of the caller's links.
#[utoipa::path(get, path = "/api/v1/links/export", operation_id = "export_links", tag = "links",
    params(ExportParams),
    responses(
        (status = 200, description = "All live links, newest first, streamed",
            content(("text/csv"), ("application/json"))),
        (status = 401, body = Problem, description = "No key")),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    caller
        .require(crate::domain::key::Scope::LinksRead)
        .map_err(ApiError::from)?;
    let format = params.format.unwrap_or(Format::Csv);
    let name = match format {
        Format::Csv => "snip-links.csv",
        Format::Json => "snip-links.json",
    };
    Ok(stream(&state, &caller, format, name))
}
