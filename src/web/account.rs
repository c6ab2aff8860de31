//! Signing in and out, the one-time sign-in link, and one's own password.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Posted};
use super::page::{self, FormErrors, Page, html};
use crate::app::sessions::{self, Opened, Session, SignInError};
use crate::app::{AppError, AppState};
use crate::domain::FieldError;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    page: Page,
    next: String,
    email: String,
    error: String,
}

/// The query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /app/sign-in`.
pub async fn sign_in_page(Query(q): Query<NextQuery>) -> Response {
    html(
        StatusCode::OK,
        &SignInPage {
            page: Page::public("Sign in").with_section("sign-in"),
            next: auth::safe_next(q.next.as_deref()),
            email: String::new(),
            error: String::new(),
        },
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /app/sign-in`: opens a session, or shows the form again with why not.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let ip =
        crate::http::client_ip::client_ip(peer.ip(), &headers, &state.settings.trusted_proxies);
    let bucket = crate::ratelimit::bucket_of(ip).to_string();
    let next = auth::safe_next(form.next.as_deref());
    let again = |status: StatusCode, error: &str| {
        html(
            status,
            &SignInPage {
                page: Page::public("Sign in").with_section("sign-in"),
                next: next.clone(),
                email: form.email.clone(),
                error: error.to_owned(),
            },
        )
    };
    match sessions::sign_in(&state, &form.email, &form.password, &bucket).await {
        Ok(opened) => signed_in(&state, &opened, &next),
        Err(SignInError::Wrong) => again(
            StatusCode::UNAUTHORIZED,
            "That e-mail and password do not match an account.",
        ),
        Err(SignInError::Limited(_, decision)) => {
            let mut res = again(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts. Wait a minute, then try again.",
            );
            res.headers_mut().insert(
                header::RETRY_AFTER,
                (decision.retry_after.ceil().max(1.0) as u64).into(),
            );
            res
        }
        Err(SignInError::App(e)) => page::app_error(e),
    }
}

/// Keeps the new session in a cookie and goes on to `next`.
fn signed_in(state: &AppState, opened: &Opened, next: &str) -> Response {
    let mut res = Redirect::to(next).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, auth::keep(state, opened));
    res
}

/// A form that carries only its form token (checked by [`Posted`]).
#[derive(Debug, Deserialize)]
pub struct JustTheToken {}

/// `POST /app/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    Posted { session, .. }: Posted<JustTheToken>,
) -> Response {
    if let Err(e) = sessions::sign_out(&state, &session).await {
        return page::app_error(e);
    }
    signed_out(&state)
}

/// Forgets the cookie and shows the sign-in page.
fn signed_out(state: &AppState) -> Response {
    let mut res = Redirect::to("/app/sign-in").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, auth::forget(state));
    res
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    page: Page,
    email: String,
    token: String,
    errors: FormErrors,
}

/// `GET /app/welcome/{token}`: the set-password form of a valid sign-in link. Looking does
/// not use the link up (mail scanners open links too).
pub async fn welcome_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match sessions::link_user(&state, &token).await {
        Ok(user) => html(
            StatusCode::OK,
            &WelcomePage {
                page: Page::public("Welcome"),
                email: user.email.as_str().to_owned(),
                token,
                errors: FormErrors::default(),
            },
        ),
        Err(AppError::NotFound) => expired_link(),
        Err(e) => page::app_error(e),
    }
}

fn expired_link() -> Response {
    page::error_page(
        StatusCode::NOT_FOUND,
        "This link has expired",
        "A sign-in link works once, for 15 minutes. Ask an admin for a new one, or set a password with snip users set-password.",
    )
}

/// The set-password form.
#[derive(Debug, Deserialize)]
pub struct WelcomeForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /app/welcome/{token}`: sets the password, uses up the link and signs in.
pub async fn welcome(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<WelcomeForm>,
) -> Response {
    let user = match sessions::link_user(&state, &token).await {
        Ok(user) => user,
        Err(AppError::NotFound) => return expired_link(),
        Err(e) => return page::app_error(e),
    };
    let again = |errors: Vec<FieldError>| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &WelcomePage {
                page: Page::public("Welcome"),
                email: user.email.as_str().to_owned(),
                token: token.clone(),
                errors: FormErrors(errors),
            },
        )
    };
    if form.password != form.confirm {
        return again(vec![FieldError::new(
            "confirm",
            "does not match the password",
        )]);
    }
    match sessions::redeem_link(&state, &token, &form.password).await {
        Ok(opened) => signed_in(&state, &opened, "/app/links"),
        Err(AppError::Validation(errors)) => again(errors),
        Err(AppError::NotFound) => expired_link(),
        Err(e) => page::app_error(e),
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: Page,
    errors: FormErrors,
}

/// The query of pages that show a message after a change.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// `GET /app/account`.
pub async fn account_page(session: Session, Query(q): Query<DoneQuery>) -> Response {
    let notice = q
        .done
        .filter(|d| d == "password")
        .map(|_| "Your password is changed; your other sessions have ended.".to_owned());
    html(
        StatusCode::OK,
        &AccountPage {
            page: Page::signed_in("Account", "account", &session).with_notice(notice),
            errors: FormErrors::default(),
        },
    )
}

/// The change-password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
}

/// `POST /app/account`: changes one's password.
pub async fn change_password(
    State(state): State<AppState>,
    Posted { session, form }: Posted<PasswordForm>,
) -> Response {
    match sessions::change_password(&state, &session, &form.current, &form.password).await {
        Ok(()) => Redirect::to("/app/account?done=password").into_response(),
        Err(AppError::Validation(errors)) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &AccountPage {
                page: Page::signed_in("Account", "account", &session),
                errors: FormErrors(errors),
            },
        ),
        Err(e) => page::app_error(e),
    }
}

/// `POST /app/account/sign-out-everywhere`.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    Posted { session, .. }: Posted<JustTheToken>,
) -> Response {
    if let Err(e) = sessions::sign_out_everywhere(&state, &session).await {
        return page::app_error(e);
    }
    signed_out(&state)
}
