//! Admins only: the users, a new user (with a one-time sign-in link to send them), a
//! role change, a new sign-in link, and deleting a user. Members get 404 here.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::account::JustTheToken;
use super::auth::{IdPath, Posted};
use super::page::{self, FormErrors, Page, html};
use crate::app::sessions::{self, Session};
use crate::app::{AppError, AppState};
use crate::domain::user::{Role, UserInput, UserPatch};
use crate::store::UserRecord;

/// Users a page shows.
const PAGE_SIZE: u32 = 100;

/// A user as the table shows them.
pub struct UserRow {
    id: i64,
    email: String,
    name: String,
    admin: bool,
    me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Page,
    users: Vec<UserRow>,
    next_href: Option<String>,
    invite: Option<String>,
    invite_email: String,
    errors: FormErrors,
    form_email: String,
    form_name: String,
}

/// The table's query.
#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    after: Option<i64>,
}

/// What the page shows besides the table.
#[derive(Default)]
struct Extra {
    invite: Option<(String, String)>,
    errors: Vec<crate::domain::FieldError>,
    email: String,
    name: String,
}

async fn users_page(
    state: &AppState,
    session: &Session,
    after: Option<i64>,
    extra: Extra,
) -> Response {
    let caller = &session.caller;
    let (users, more) = match crate::app::users::list(state, caller, after, PAGE_SIZE).await {
        Ok(found) => found,
        Err(e) => return page::app_error(e),
    };
    let next_href = users
        .last()
        .filter(|_| more)
        .map(|u| format!("/app/users?after={}", u.id));
    let status = if extra.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (invite, invite_email) = extra.invite.unzip();
    html(
        status,
        &UsersPage {
            page: Page::signed_in("Users", "users", session),
            users: users
                .iter()
                .map(|u: &UserRecord| UserRow {
                    id: u.id,
                    email: u.email.as_str().to_owned(),
                    name: u.name.clone(),
                    admin: u.role == Role::Admin,
                    me: u.id == caller.user.id,
                })
                .collect(),
            next_href,
            invite,
            invite_email: invite_email.unwrap_or_default(),
            errors: FormErrors(extra.errors),
            form_email: extra.email,
            form_name: extra.name,
        },
    )
}

/// `GET /app/users`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<UsersQuery>,
) -> Response {
    if !session.caller.is_admin() {
        return page::not_found();
    }
    users_page(&state, &session, q.after, Extra::default()).await
}

/// The new-user form.
#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// The sign-in link of a token.
fn link(state: &AppState, token: &str) -> String {
    super::sign_in_url(&state.settings.base_url, token)
}

/// `POST /app/users`: creates a user and shows a sign-in link for them.
pub async fn create(
    State(state): State<AppState>,
    Posted { session, form }: Posted<NewUserForm>,
) -> Response {
    let input = UserInput {
        email: Some(form.email.trim().to_owned()),
        name: Some(form.name.clone()),
        role: Some(form.role.clone()).filter(|r| !r.is_empty()),
    };
    let caller = &session.caller;
    let failed = |errors| Extra {
        errors,
        email: form.email.clone(),
        name: form.name.clone(),
        ..Extra::default()
    };
    let user = match crate::app::users::create(&state, caller, input).await {
        Ok(user) => user,
        Err(AppError::Validation(errors)) => {
            return users_page(&state, &session, None, failed(errors)).await;
        }
        Err(AppError::Conflict(_)) => {
            let taken = vec![crate::domain::FieldError::new("email", "is already taken")];
            return users_page(&state, &session, None, failed(taken)).await;
        }
        Err(e) => return page::app_error(e),
    };
    invite_page(&state, &session, &user).await
}

async fn invite_page(state: &AppState, session: &Session, user: &UserRecord) -> Response {
    match sessions::invite(state, &session.caller, user.id).await {
        Ok(token) => {
            let extra = Extra {
                invite: Some((link(state, &token), user.email.as_str().to_owned())),
                ..Extra::default()
            };
            users_page(state, session, None, extra).await
        }
        Err(e) => page::app_error(e),
    }
}

/// `POST /app/users/{id}/sign-in-link`: a new one-time link for a user.
pub async fn new_link(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Posted { session, .. }: Posted<JustTheToken>,
) -> Response {
    match crate::app::users::get(&state, &session.caller, id).await {
        Ok(user) if session.caller.is_admin() => invite_page(&state, &session, &user).await,
        Ok(_) => page::not_found(),
        Err(e) => page::app_error(e),
    }
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /app/users/{id}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Posted { session, form }: Posted<RoleForm>,
) -> Response {
    if !session.caller.is_admin() {
        return page::not_found();
    }
    let patch = UserPatch {
        role: Some(form.role),
        ..UserPatch::default()
    };
    match crate::app::users::patch(&state, &session.caller, id, patch).await {
        Ok(_) => Redirect::to("/app/users").into_response(),
        Err(e) => page::app_error(e),
    }
}

#[derive(Template)]
#[template(path = "delete_user.html")]
struct DeletePage {
    page: Page,
    id: i64,
    email: String,
}

/// `GET /app/users/{id}/delete`: asks first.
pub async fn delete_page(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> Response {
    if !session.caller.is_admin() {
        return page::not_found();
    }
    match crate::app::users::get(&state, &session.caller, id).await {
        Ok(user) => html(
            StatusCode::OK,
            &DeletePage {
                page: Page::signed_in("Delete user", "users", &session),
                id: user.id,
                email: user.email.as_str().to_owned(),
            },
        ),
        Err(e) => page::app_error(e),
    }
}

/// `POST /app/users/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Posted { session, .. }: Posted<JustTheToken>,
) -> Response {
    if !session.caller.is_admin() || id == session.caller.user.id {
        return page::not_found();
    }
    match crate::app::users::delete(&state, &session.caller, id).await {
        Ok(()) => Redirect::to("/app/users").into_response(),
        Err(e) => page::app_error(e),
    }
}
