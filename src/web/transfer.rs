//! Links in and out as CSV: import a file (header row; columns `url`, `alias`, `tags`,
//! `title` in any order, only `url` needed) through the bulk use case, with a result per
//! row; export all of one's links.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::{self, form_token_ok};
use super::page::{self, FormErrors, Page, html};
use crate::app::links::MAX_BULK;
use crate::app::sessions::Session;
use crate::app::{AppError, AppState};
use crate::domain::link::LinkInput;
use crate::store::Taken;

/// The outcome of one row.
pub struct RowResult {
    row: usize,
    url: String,
    code: Option<String>,
    error: String,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    page: Page,
    max: usize,
    error: String,
    results: Vec<RowResult>,
    created: usize,
    failed: usize,
}

fn import_page(session: &Session, error: String, results: Vec<RowResult>) -> Response {
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let created = results.iter().filter(|r| r.code.is_some()).count();
    html(
        status,
        &ImportPage {
            page: Page::signed_in("Import and export", "import", session),
            max: MAX_BULK,
            error,
            failed: results.len() - created,
            created,
            results,
        },
    )
}

/// `GET /app/import`.
pub async fn import_form(session: Session) -> Response {
    import_page(&session, String::new(), Vec::new())
}

/// A CSV row read: its URL (for the table) and the link to create, or why it cannot be.
type ReadRow = (String, Result<LinkInput, String>);

/// Reads a CSV file of links. Fails as a whole only when the file has no `url` column or
/// too many rows.
pub fn read_csv(bytes: &[u8]) -> Result<Vec<ReadRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| format!("the first row cannot be read: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(url_at) = column("url") else {
        return Err("the first row must name the columns, with at least url".into());
    };
    let (alias_at, tags_at, title_at) = (column("alias"), column("tags"), column("title"));
    let mut rows = Vec::new();
    for record in reader.records() {
        if rows.len() == MAX_BULK {
            return Err(format!("the file has more than {MAX_BULK} links"));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.push((String::new(), Err(format!("cannot be read: {e}"))));
                continue;
            }
        };
        let cell = |at: Option<usize>| {
            at.and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let url = cell(Some(url_at)).unwrap_or_default();
        let tags: Vec<String> = cell(tags_at)
            .map(|t| {
                t.split([' ', ','])
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let input = LinkInput {
            url: Some(url.clone()),
            alias: cell(alias_at),
            title: cell(title_at),
            tags: (!tags.is_empty()).then_some(tags),
            ..LinkInput::default()
        };
        rows.push((url, Ok(input)));
    }
    if rows.is_empty() {
        return Err("the file has no links after its first row".into());
    }
    Ok(rows)
}

/// Why one link was not created, for a person.
fn why(e: &AppError) -> String {
    match e {
        AppError::Validation(errors) => FormErrors(errors.clone()).others(&[]),
        AppError::Conflict(Taken::Code) => "alias: is already taken".into(),
        e => e.to_string(),
    }
}

/// `POST /app/import`: creates the file's links; shows a result per row.
pub async fn import(
    State(state): State<AppState>,
    session: Session,
    mut multipart: Multipart,
) -> Response {
    let mut token = String::new();
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return import_page(&session, "The upload was cut short.".into(), Vec::new());
                };
                match name.as_str() {
                    "csrf" => token = String::from_utf8_lossy(&bytes).into_owned(),
                    "file" => file = Some(bytes),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(_) => {
                return import_page(&session, "The upload could not be read.".into(), Vec::new());
            }
        }
    }
    if !form_token_ok(&session, &token) {
        return auth::refused();
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return import_page(&session, "Choose a CSV file.".into(), Vec::new());
    };
    let rows = match read_csv(&file) {
        Ok(rows) => rows,
        Err(why) => {
            return import_page(
                &session,
                format!("This file cannot be imported: {why}."),
                Vec::new(),
            );
        }
    };
    let inputs: Vec<LinkInput> = rows
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let mut created = if inputs.is_empty() {
        Vec::new()
    } else {
        match crate::app::links::create_bulk(&state, &session.caller, inputs).await {
            Ok(r) => r,
            Err(e) => return page::app_error(e),
        }
    }
    .into_iter();
    let results = rows
        .into_iter()
        .enumerate()
        .map(|(i, (url, read))| {
            let outcome = match read {
                Err(e) => Err(e),
                Ok(_) => match created.next() {
                    Some(Ok(link)) => Ok(link.code.to_string()),
                    Some(Err(e)) => Err(why(&e)),
                    None => Err("not created".into()),
                },
            };
            RowResult {
                row: i + 2,
                url,
                error: outcome.as_ref().err().cloned().unwrap_or_default(),
                code: outcome.ok(),
            }
        })
        .collect();
    import_page(&session, String::new(), results)
}

/// `GET /app/export.csv`: every live link of the signed-in person, newest first, in the
/// API's export format.
pub async fn export(State(state): State<AppState>, session: Session) -> Response {
    crate::http::export::stream(
        &state,
        &session.caller,
        crate::http::export::Format::Csv,
        "snip-links.csv",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_and_only_url_is_needed() {
        let rows =
            read_csv(b"Title,URL\nHello,https://a.example/\n,https://b.example/x\n").unwrap();
        assert_eq!(rows.len(), 2);
        let first = rows[0].1.as_ref().unwrap();
        assert_eq!(first.url.as_deref(), Some("https://a.example/"));
        assert_eq!(first.title.as_deref(), Some("Hello"));
        assert_eq!(rows[1].1.as_ref().unwrap().title, None);
    }

    #[test]
    fn tags_split_on_spaces_and_commas_inside_quotes() {
        let rows = read_csv(b"url,alias,tags\nhttps://a.example/,my-alias,\"x y,z\"\n").unwrap();
        let input = rows[0].1.as_ref().unwrap();
        assert_eq!(input.alias.as_deref(), Some("my-alias"));
        assert_eq!(input.tags.as_deref().unwrap(), ["x", "y", "z"]);
    }

    #[test]
    fn a_file_without_url_or_rows_or_with_too_many_is_refused() {
        assert!(read_csv(b"link,title\nhttps://a.example/,x\n").is_err());
        assert!(read_csv(b"url\n").is_err());
        let mut big = String::from("url\n");
        for i in 0..=MAX_BULK {
            big.push_str(&format!("https://a.example/{i}\n"));
        }
        assert!(read_csv(big.as_bytes()).is_err());
    }
}
