//! The web dashboard for people, under `/app`: server-rendered pages (templates in
//! `templates/`, checked at compile time), a small script that only enhances them, and
//! sessions in the store. Every page calls the same use cases in `crate::app` as the API.
//!
//! - `auth.rs`: the session cookie, the form token (CSRF) and the origin check.
//! - `account.rs`: sign-in, the one-time link, sign-out, password change.
//! - `links.rs`: the links table, create, edit, delete, one link's stats and QR code.
//! - `transfer.rs`: CSV import and export. `keys.rs`: one's API keys. `users.rs`: admins'
//!   user management.
//! - `assets.rs`: the stylesheet and script, named by a hash of their content.
//! - `page.rs`: what every page shows (header, navigation) and error pages.

pub mod account;
pub mod assets;
pub mod auth;
pub mod chart;
pub mod keys;
pub mod links;
pub mod page;
pub mod transfer;
pub mod users;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::config::Landing;

/// Where the dashboard lives.
pub const PREFIX: &str = "/app";

/// The start of a one-time sign-in link's path; the token follows.
pub const WELCOME_PATH: &str = crate::app::sessions::SIGN_IN_PATH;

/// The full one-time sign-in link of `token`, under snip's base URL.
pub fn sign_in_url(base_url: &str, token: &str) -> String {
    format!("{base_url}{WELCOME_PATH}{token}")
}

/// The dashboard's routes, and `GET /`.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/app", get(|| async { Redirect::to("/app/links") }))
        .route("/app/", get(|| async { Redirect::to("/app/links") }))
        .route("/app/assets/{name}", get(assets::serve))
        .route(
            "/app/sign-in",
            get(account::sign_in_page).post(account::sign_in),
        )
        .route("/app/sign-out", post(account::sign_out))
        .route(
            "/app/welcome/{token}",
            get(account::welcome_page).post(account::welcome),
        )
        .route(
            "/app/account",
            get(account::account_page).post(account::change_password),
        )
        .route(
            "/app/account/sign-out-everywhere",
            post(account::sign_out_everywhere),
        )
        .route("/app/links", get(links::list).post(links::create))
        .route("/app/links/new", get(links::new_page))
        .route("/app/links/{code}", get(links::show).post(links::update))
        .route("/app/links/{code}/edit", get(links::edit_page))
        .route(
            "/app/links/{code}/delete",
            get(links::delete_page).post(links::delete),
        )
        .route("/app/links/{code}/qr", get(links::qr))
        .route(
            "/app/import",
            get(transfer::import_form)
                .post(transfer::import)
                .layer(DefaultBodyLimit::max(crate::http::bulk_body_limit(
                    state.settings.url_policy.max_len,
                    state.settings.body_limit,
                ))),
        )
        .route("/app/export.csv", get(transfer::export))
        .route("/app/keys", get(keys::list).post(keys::create))
        .route("/app/keys/{id}/revoke", post(keys::revoke))
        .route("/app/users", get(users::list).post(users::create))
        .route("/app/users/{id}/role", post(users::set_role))
        .route("/app/users/{id}/sign-in-link", post(users::new_link))
        .route(
            "/app/users/{id}/delete",
            get(users::delete_page).post(users::delete),
        )
        .route("/app/{*rest}", get(|| async { page::not_found() }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::same_origin_posts,
        ))
}

/// `GET /`: the landing page, a redirect, or 404, as configured.
async fn landing(State(state): State<AppState>) -> Response {
    match &state.settings.landing {
        Landing::Page => page::landing().into_response(),
        Landing::None => crate::http::error::ApiError::not_found().into_response(),
        Landing::Redirect(url) => Redirect::to(url).into_response(),
    }
}
