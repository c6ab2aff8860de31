//! What every dashboard page has (the header, the navigation, the form token), the error
//! pages, and turning a rendered template into a response.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppError;
use crate::app::sessions::Session;
use crate::domain::FieldError;
use crate::domain::user::Role;

/// The `Content-Security-Policy` of dashboard pages: styles, scripts and images from snip
/// only (QR codes and charts included), forms posted to snip only, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The frame of a page.
pub struct Page {
    /// The page's title.
    pub title: String,
    /// Which navigation entry is current (`links`, `new`, `account`, …).
    pub section: &'static str,
    /// Who is signed in, when someone is.
    pub email: Option<String>,
    /// Whether they are an admin.
    pub admin: bool,
    /// The form token forms must carry (empty when signed out).
    pub csrf: String,
    /// The stylesheet's path.
    pub css: &'static str,
    /// The script's path.
    pub js: &'static str,
    /// A message to show at the top.
    pub notice: Option<String>,
}

impl Page {
    /// The frame of a page for a signed-in person.
    pub fn signed_in(title: impl Into<String>, section: &'static str, session: &Session) -> Self {
        Self {
            title: title.into(),
            section,
            email: Some(session.caller.user.email.as_str().to_owned()),
            admin: session.caller.user.role == Role::Admin,
            csrf: session.csrf.clone(),
            css: super::assets::css(),
            js: super::assets::js(),
            notice: None,
        }
    }

    /// The frame of a page for nobody in particular.
    pub fn public(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            section: "",
            email: None,
            admin: false,
            csrf: String::new(),
            css: super::assets::css(),
            js: super::assets::js(),
            notice: None,
        }
    }

    /// With `section` the current navigation entry.
    pub fn with_section(mut self, section: &'static str) -> Self {
        self.section = section;
        self
    }

    /// With a message at the top.
    pub fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    /// `aria-current="page"` for the current entry, empty for the others.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// Field errors as a form shows them: each next to its field.
#[derive(Debug, Default)]
pub struct FormErrors(pub Vec<FieldError>);

impl FormErrors {
    /// The messages about `field` (or its parts, such as `tags.2`), joined.
    pub fn of(&self, field: &str) -> String {
        self.0
            .iter()
            .filter(|e| is_about(e, field))
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether `field` has an error (for `aria-invalid`).
    pub fn has(&self, field: &str) -> bool {
        !self.of(field).is_empty()
    }

    /// Messages about fields the form does not show, joined.
    pub fn others(&self, shown: &[&str]) -> String {
        self.0
            .iter()
            .filter(|e| !shown.iter().any(|f| is_about(e, f)))
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `e` is about `field` or one of its parts (`tags.2`, `tags[2]`).
fn is_about(e: &FieldError, field: &str) -> bool {
    e.field
        .strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// A rendered page with `status`.
pub fn html(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                // Not `no-referrer`: with it, browsers send `Origin: null` with forms, and
                // the origin check could not tell the dashboard's own forms from others.
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Page,
    heading: &'a str,
    message: &'a str,
}

/// An error page.
pub fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    html(
        status,
        &ErrorPage {
            page: Page::public(heading),
            heading,
            message,
        },
    )
}

/// The page of a path that names nothing.
pub fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here, or it is not yours to see.",
    )
}

/// The page of a use case's failure (field errors are shown by the forms themselves).
pub fn app_error(e: AppError) -> Response {
    match e {
        AppError::NotFound => not_found(),
        AppError::Validation(errors) => error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check the form",
            &FormErrors(errors).others(&[]),
        ),
        AppError::Conflict(taken) => error_page(
            StatusCode::CONFLICT,
            "Already taken",
            &format!("That {taken} is already taken."),
        ),
        AppError::MissingScope(_) | AppError::Forbidden(_) => error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your account may not do this.",
        ),
        AppError::StateConflict(_, why) => error_page(StatusCode::CONFLICT, "Not possible", why),
        AppError::Busy(why) => error_page(StatusCode::SERVICE_UNAVAILABLE, "Busy", why),
        AppError::TooManyItems(n) => error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too many",
            &format!("At most {n} at once."),
        ),
        e @ (AppError::IdempotencyMismatch | AppError::IdempotencyInFlight) => {
            error_page(StatusCode::CONFLICT, "Conflict", &e.to_string())
        }
        e @ (AppError::Store(_) | AppError::Internal(_)) => {
            tracing::error!(error = %e, "a dashboard page failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server failed; the error has been logged. Try again shortly.",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing {
    page: Page,
}

/// `GET /`: what snip is, and the way in.
pub fn landing() -> Response {
    html(
        StatusCode::OK,
        &Landing {
            page: Page::public("snip"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_shown_next_to_their_field() {
        let e = FormErrors(vec![
            FieldError::new("url", "must be http or https"),
            FieldError::new("tags.2", "is too long"),
            FieldError::new("title", "is too long"),
        ]);
        assert_eq!(e.of("url"), "must be http or https");
        assert_eq!(e.of("tags"), "is too long");
        assert!(e.has("title"));
        assert!(!e.has("alias"));
        assert_eq!(e.others(&["url", "tags"]), "title: is too long");
    }
}
