//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the docs page.
//! Swagger UI's assets are compiled into the binary (`vendored`), so `/docs` works offline.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{error, health, links, users};
use crate::app::AppState;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "snip", description = "A self-hosted URL-shortening service."),
    paths(
        links::create, links::create_bulk, links::list, links::get, links::replace,
        links::patch, links::delete, links::stats,
        users::create, users::list, users::get, users::replace, users::patch, users::delete,
        users::links, users::create_key, users::list_keys, users::revoke_key, users::me,
        health::healthz, health::readyz,
    ),
    components(schemas(error::Problem, crate::domain::FieldError)),
    modifiers(&BearerAuth),
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
