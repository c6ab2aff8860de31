//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the docs page.
//! Swagger UI's assets are compiled into the binary (`vendored`), so `/docs` works offline.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{error, export, health, links, qr, stats, users};
use crate::app::AppState;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "snip", description = "A self-hosted URL-shortening service."),
    paths(
        links::create, links::create_bulk, links::list, links::get, links::replace,
        links::patch, links::delete, export::export, stats::stats, qr::qr,
        users::create, users::list, users::get, users::replace, users::patch, users::delete,
        users::links, users::create_key, users::list_keys, users::revoke_key, users::me,
        health::healthz, health::readyz,
    ),
    components(schemas(error::Problem, crate::domain::FieldError)),
    modifiers(&BearerAuth, &Problems),
    tags(
        (name = "links", description = "Short links"),
        (name = "users", description = "Users"),
        (name = "keys", description = "API keys"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: snip_ followed by 32 characters"))
                    .build(),
            ),
        );
    }
}

/// Documents the errors every API operation can answer, as the one format they come in
/// (`application/problem+json`): 401, 403, 429 and 503 everywhere; 400, 413, 415 and 422
/// where there is a body; 404 where the path names an object; 400 and 422 where there are
/// query parameters; 409 on writes. The handlers' own annotations give the successes and
/// what is particular to them.
struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let operations = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (operation, write) in operations {
                let Some(op) = operation.as_mut() else {
                    continue;
                };
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
                let in_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
                let mut statuses = vec![401, 403, 429, 503];
                if op.request_body.is_some() {
                    statuses.extend([400, 413, 415, 422]);
                }
                if in_path {
                    statuses.push(404);
                }
                if in_query || params.iter().any(|p| p.parameter_in == ParameterIn::Header) {
                    statuses.extend([400, 422]);
                }
                if write {
                    statuses.push(409);
                }
                let responses = &mut op.responses.responses;
                for status in statuses {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem_response(status).into());
                }
                for (status, response) in responses.iter_mut() {
                    if status.as_str() >= "400"
                        && let utoipa::openapi::RefOr::T(r) = response
                    {
                        let description = r.description.clone();
                        *r = problem_response_described(description);
                    }
                }
            }
        }
    }
}

fn problem_response(status: u16) -> utoipa::openapi::Response {
    let description = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    problem_response_described(description.to_owned())
}

fn problem_response_described(description: String) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            error::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// `/openapi.json` and `/docs`.
pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}

#[cfg(test)]
mod tests {
    use super::ApiDoc;
    use crate::http::access::API_ROUTES;
    use std::collections::BTreeSet;
    use utoipa::OpenApi;

    /// The route table that decides each route's scope lists exactly the API operations
    /// the document describes: a route added to one and not the other fails here.
    #[test]
    fn the_access_table_and_the_document_list_the_same_routes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let table: BTreeSet<_> = API_ROUTES
            .iter()
            .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, table);
    }
}
