//! GraphQL at `/graphql`, beside the REST API: the same use cases (`crate::app`), API keys,
//! scopes and error names, for clients that want nested data in one round trip. REST stays
//! the primary, cacheable API.
//!
//! - `query.rs`, `mutation.rs`: the roots; `types.rs`: the objects; `loaders.rs`: batch
//!   loading, so a page of N links costs a fixed number of store calls.
//! - `cost.rs`: depth and complexity are checked before anything runs, and the request is
//!   charged to the caller's bucket by its complexity.
//! - `explorer.rs`: GraphiQL, served from the binary.

pub mod cost;
pub mod error;
pub mod explorer;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod types;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::JsonBody;

/// The schema type.
pub type SnipSchema = Schema<query::Query, mutation::Mutation, EmptySubscription>;

/// Where GraphQL is served.
pub const PATH: &str = "/graphql";

pub use crate::config::GraphqlLimits as Limits;

/// Builds the schema with `limits`. Introspection stays on: the schema is public.
pub fn schema(limits: &Limits) -> SnipSchema {
    // The depth limit is the cost extension's: it holds schema reading to a rule of its
    // own, which explorers' introspection queries need.
    Schema::build(query::Query, mutation::Mutation, EmptySubscription)
        .limit_complexity(limits.max_complexity)
        .extension(cost::CostLimit {
            max_depth: limits.max_depth,
        })
        .finish()
}

/// The routes of GraphQL: the endpoint, the explorer and its files, and the schema. A
/// request that takes longer than the request timeout is answered 503, as in the API.
pub fn routes(state: &AppState) -> Router<AppState> {
    let timeout = state.settings.request_timeout;
    let schema = Arc::new(schema(&state.settings.graphql));
    Router::new()
        .route(PATH, get(by_get).post(by_post))
        .route("/graphql/schema.graphql", get(schema_sdl))
        .route("/graphql/assets/{name}", get(explorer::asset))
        .layer(Extension(schema))
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::http::deadline(timeout, req, next)
        }))
}

/// `GET /graphql/schema.graphql`: the schema in SDL.
async fn schema_sdl(Extension(schema): Extension<Arc<SnipSchema>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        schema.sdl(),
    )
        .into_response()
}

/// `GET /graphql`: a query in the query string, or the explorer when there is none.
async fn by_get(
    State(state): State<AppState>,
    Extension(schema): Extension<Arc<SnipSchema>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return explorer::page();
    };
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!("not a GraphQL request: {e}")).into_response();
        }
    };
    run(&state, &schema, peer.ip(), &headers, request, true).await
}

/// `POST /graphql`: a JSON body `{query, operationName?, variables?}`.
async fn by_post(
    State(state): State<AppState>,
    Extension(schema): Extension<Arc<SnipSchema>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!(
                "the body must be a JSON object {{\"query\": ..., \"variables\": ...}}: {e}"
            ))
            .into_response();
        }
    };
    run(&state, &schema, peer.ip(), &headers, request, false).await
}

/// Authenticates, executes and answers one request.
async fn run(
    state: &AppState,
    schema: &SnipSchema,
    peer: IpAddr,
    headers: &HeaderMap,
    request: async_graphql::Request,
    via_get: bool,
) -> Response {
    let limits = &state.settings.graphql;
    if request.query.len() > limits.max_query_bytes {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
            format!("the query may be at most {} bytes", limits.max_query_bytes),
        )
        .into_response();
    }
    let ip = crate::http::client_ip::client_ip(peer, headers, &state.settings.trusted_proxies);
    let now = crate::clock::to_millis(state.clock.now());
    let caller = match crate::http::guard::caller_of(state, headers, ip, now).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let charge = Arc::new(cost::Charge {
        state: state.clone(),
        bucket: crate::http::guard::bucket_key(caller.as_ref(), ip),
        anonymous: caller.is_none(),
        via_get,
        decision: Default::default(),
        refused_get_mutation: Default::default(),
    });
    let batch = Arc::new(loaders::Batch::new(state.clone(), caller.clone()));
    let request = request
        .data(batch.clone())
        .data(types::RequestData {
            state: state.clone(),
            caller,
        })
        .data(charge.clone());
    let response = loaders::drive(schema.execute(request), &batch).await;

    let decision = *charge.decision.lock().unwrap_or_else(|e| e.into_inner());
    let status = if charge
        .refused_get_mutation
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        StatusCode::METHOD_NOT_ALLOWED
    } else if decision.is_some_and(|(_, d)| !d.allowed) {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    let body = serde_json::to_vec(&response).unwrap_or_default();
    let mut res = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some((policy, d)) = decision {
        if !d.allowed {
            let retry = crate::http::guard::retry_after_secs(&d);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        }
        crate::http::guard::add_headers(state, policy, &d, res.headers_mut());
    }
    res
}
