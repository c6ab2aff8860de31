//! One's own API keys: list, create (the key is shown once), revoke.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::account::JustTheToken;
use super::auth::{IdPath, Posted};
use super::page::{self, Page, html};
use crate::app::sessions::Session;
use crate::app::{AppError, AppState};
use crate::domain::key::Scope;
use crate::store::KeyRecord;

/// A key as the table shows it.
pub struct KeyRow {
    id: i64,
    name: String,
    prefix: String,
    scopes: String,
    last_used: String,
}

/// A scope checkbox.
pub struct ScopeBox {
    name: &'static str,
    help: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    page: Page,
    keys: Vec<KeyRow>,
    scopes: Vec<ScopeBox>,
    new_key: Option<String>,
    /// The new key's YOURLS signature token, when the server makes them.
    new_token: Option<String>,
    error: String,
}

fn scope_boxes(session: &Session) -> Vec<ScopeBox> {
    Scope::ALL
        .into_iter()
        .filter(|s| session.caller.scopes.contains(*s))
        .map(|s| ScopeBox {
            name: s.as_str(),
            help: match s {
                Scope::LinksRead => "read your links and their stats",
                Scope::LinksWrite => "create, change and delete your links",
                Scope::AccountWrite => "change your user record and keys",
                Scope::UsersAdmin => "manage every user and link",
            },
            checked: matches!(s, Scope::LinksRead | Scope::LinksWrite),
        })
        .collect()
}

fn row(k: &KeyRecord) -> KeyRow {
    KeyRow {
        id: k.id,
        name: if k.name.is_empty() {
            "(no name)".into()
        } else {
            k.name.clone()
        },
        prefix: k.prefix.clone(),
        scopes: k.scopes.names().join(", "),
        last_used: k
            .last_used_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into()),
    }
}

async fn keys_page(
    state: &AppState,
    session: &Session,
    new_key: Option<String>,
    error: String,
) -> Response {
    let caller = &session.caller;
    match crate::app::users::list_keys(state, caller, caller.user.id).await {
        Ok(keys) => html(
            if error.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            &KeysPage {
                page: Page::signed_in("API keys", "keys", session),
                keys: keys.iter().map(row).collect(),
                scopes: scope_boxes(session),
                new_token: new_key
                    .as_deref()
                    .and_then(crate::domain::key::ApiKey::parse)
                    .zip(state.settings.signature_secret.as_deref())
                    .map(|(key, secret)| key.signature_token(secret)),
                new_key,
                error,
            },
        ),
        Err(e) => page::app_error(e),
    }
}

/// `GET /app/keys`.
pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    keys_page(&state, &session, None, String::new()).await
}

/// `POST /app/keys`: creates a key and shows it once (in the page, never in a URL).
pub async fn create(
    State(state): State<AppState>,
    // Repeated `scope` fields: read the pairs rather than a struct.
    Posted {
        session,
        form: pairs,
    }: Posted<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    if scopes.is_empty() {
        return keys_page(&state, &session, None, "Choose at least one scope.".into()).await;
    }
    let name = field("name").trim().to_owned();
    let caller = &session.caller;
    match crate::app::users::create_key(&state, caller, caller.user.id, Some(name), Some(scopes))
        .await
    {
        Ok((_, key)) => {
            keys_page(
                &state,
                &session,
                Some(key.expose().to_owned()),
                String::new(),
            )
            .await
        }
        Err(AppError::Validation(errors)) => {
            let why = super::page::FormErrors(errors).others(&[]);
            keys_page(&state, &session, None, why).await
        }
        Err(AppError::StateConflict(_, why) | AppError::Forbidden(why)) => {
            keys_page(&state, &session, None, why.to_owned()).await
        }
        Err(e) => page::app_error(e),
    }
}

/// `POST /app/keys/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Posted { session, .. }: Posted<JustTheToken>,
) -> Response {
    let caller = &session.caller;
    match crate::app::users::revoke_key(&state, caller, caller.user.id, id).await {
        Ok(()) => Redirect::to("/app/keys").into_response(),
        Err(e) => page::app_error(e),
    }
}
