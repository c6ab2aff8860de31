//! Who may call which API route. Every route of `/api/v1` states here the scope a key needs
//! for it; [`check`] enforces the table after routing, so a route missing from it answers
//! 403 to every key (closed by default). Whose objects a key may touch (its own, or
//! everyone's for an admin) is decided by the use cases in `crate::app`.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::app::Caller;
use crate::domain::key::{Scope, Scopes};

/// What a route asks of the calling key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any valid key: reading the caller's own user record and keys.
    AnyKey,
    /// A key holding this scope.
    Scope(Scope),
}

/// One API route: its method, its path template (as the router matches it) and its need.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method (`GET` also covers `HEAD`).
    pub method: Method,
    /// The path template, e.g. `/api/v1/links/{code}`.
    pub path: &'static str,
    /// What the key must hold.
    pub need: Need,
}

const fn route(method: Method, path: &'static str, need: Need) -> Route {
    Route { method, path, need }
}

const READ: Need = Need::Scope(Scope::LinksRead);
const WRITE: Need = Need::Scope(Scope::LinksWrite);
const ACCOUNT: Need = Need::Scope(Scope::AccountWrite);
const ADMIN: Need = Need::Scope(Scope::UsersAdmin);

/// Every API route and what it needs. Only `GET` routes are open to a key without a write
/// scope, so a read-only key is read-only everywhere.
pub const API_ROUTES: &[Route] = &[
    route(Method::POST, "/api/v1/links", WRITE),
    route(Method::GET, "/api/v1/links", READ),
    route(Method::POST, "/api/v1/links/bulk", WRITE),
    route(Method::GET, "/api/v1/links/export", READ),
    route(Method::GET, "/api/v1/links/{code}", READ),
    route(Method::PUT, "/api/v1/links/{code}", WRITE),
    route(Method::PATCH, "/api/v1/links/{code}", WRITE),
    route(Method::DELETE, "/api/v1/links/{code}", WRITE),
    route(Method::GET, "/api/v1/links/{code}/stats", READ),
    route(Method::GET, "/api/v1/links/{code}/qr", READ),
    route(Method::POST, "/api/v1/users", ADMIN),
    route(Method::GET, "/api/v1/users", ADMIN),
    route(Method::GET, "/api/v1/users/{id}", Need::AnyKey),
    route(Method::PUT, "/api/v1/users/{id}", ACCOUNT),
    route(Method::PATCH, "/api/v1/users/{id}", ACCOUNT),
    route(Method::DELETE, "/api/v1/users/{id}", ACCOUNT),
    route(Method::GET, "/api/v1/users/{id}/links", READ),
    route(Method::POST, "/api/v1/users/{id}/keys", ACCOUNT),
    route(Method::GET, "/api/v1/users/{id}/keys", Need::AnyKey),
    route(Method::DELETE, "/api/v1/users/{id}/keys/{key_id}", ACCOUNT),
    route(Method::GET, "/api/v1/me", Need::AnyKey),
];

/// The need of the route `method` `path`; `None` for a route the table does not list.
pub fn need_of(method: &Method, path: &str) -> Option<Need> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    API_ROUTES
        .iter()
        .find(|r| r.method == *method && r.path == path)
        .map(|r| r.need)
}

/// Whether a key with `scopes` meets `need` (see [`Scopes::grants`]).
pub fn allows(scopes: &Scopes, need: Need) -> bool {
    match need {
        Need::AnyKey => true,
        Need::Scope(s) => scopes.grants(s),
    }
}

/// After routing: 401 without a key, 403 when the key lacks what the route needs (or the
/// route is not in [`API_ROUTES`]).
pub async fn check(req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>() else {
        return ApiError::unauthorized("an API key is required (Authorization: Bearer <key>)")
            .into_response();
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("");
    if need_of(req.method(), path).is_none() {
        let allowed: Vec<&str> = API_ROUTES
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method.as_str())
            .collect();
        if !allowed.is_empty() {
            return method_not_allowed(&allowed);
        }
    }
    match need_of(req.method(), path) {
        Some(need) if allows(&caller.scopes, need) => next.run(req).await,
        Some(Need::Scope(scope)) => ApiError::new(
            StatusCode::FORBIDDEN,
            "missing-scope",
            format!("this API key lacks the {} scope", scope.as_str()),
        )
        .into_response(),
        Some(Need::AnyKey) | None => {
            tracing::error!(path, method = %req.method(), "an API route states no scope");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "missing-scope",
                "this route is not open to API keys",
            )
            .into_response()
        }
    }
}

/// 405 with the methods the route table allows on the path.
fn method_not_allowed(allowed: &[&str]) -> Response {
    let mut methods = allowed.join(", ");
    if allowed.contains(&"GET") {
        methods.push_str(", HEAD");
    }
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "",
        "this method is not allowed on this resource",
    )
    .into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&methods) {
        res.headers_mut().insert(axum::http::header::ALLOW, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_routes_are_open_without_a_write_scope() {
        let read_only = Scopes::new(vec![Scope::LinksRead]);
        for r in API_ROUTES {
            if allows(&read_only, r.need) {
                assert_eq!(r.method, Method::GET, "{} {}", r.method, r.path);
            }
        }
    }

    #[test]
    fn every_route_is_listed_once() {
        for (i, a) in API_ROUTES.iter().enumerate() {
            for b in &API_ROUTES[i + 1..] {
                assert!(a.method != b.method || a.path != b.path, "{}", a.path);
            }
        }
        assert_eq!(need_of(&Method::HEAD, "/api/v1/me"), Some(Need::AnyKey));
        assert_eq!(need_of(&Method::GET, "/api/v1/nothing"), None);
    }

    #[test]
    fn admin_covers_account_but_not_links() {
        let admin = Scopes::new(vec![Scope::UsersAdmin]);
        assert!(allows(&admin, ACCOUNT));
        assert!(!allows(&admin, WRITE));
    }
}
