//! The connection loop. hyper serves each connection (HTTP/1.1, keep-alive). A `GET /{code}`
//! of a link this node holds fresh in L1 and that needs nothing but a redirect is answered
//! here, straight from the cache: the hot path, without the router and its middleware stack.
//! Every other request, and every hot-path candidate that turns out to need more (a miss,
//! a password, a click limit, an expired link), goes through [`super::router`] with all its
//! layers. Both paths answer alike: same status and headers, same rate limiting, metrics and
//! click counting.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::client_ip::client_ip;
use super::guard::{redirect_headers, redirect_token};
use super::redirect::respond;
use crate::app::AppState;
use crate::app::redirect::{Client, Visit, follow_hot, hot_target};
use crate::domain::code::Code;

const REQUEST_ID: &str = "x-request-id";

/// Serves `router` (with the hot path in front) on `listener` until `shutdown` is cancelled;
/// then stops accepting and returns once open connections have finished their requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // With trace export on, every request goes through the router, which opens the spans.
    let hot = !crate::telemetry::tracing_enabled();
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            let router = router.clone();
            async move {
                if hot && let Some(res) = hot_redirect(&state, peer, &req).await {
                    return Ok::<_, Infallible>(res);
                }
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                router.oneshot(req).await
            }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The hot path; `None` when the request must go through the router.
async fn hot_redirect(
    state: &AppState,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Response> {
    if req.method() != Method::GET || !state.settings.hot_path {
        return None;
    }
    let started = Instant::now();
    let code = Code::from_path(req.uri().path().strip_prefix('/')?)?;
    let target = hot_target(state, &code).await?;
    let headers = req.headers();
    let ip = client_ip(peer.ip(), headers, &state.settings.trusted_proxies);
    let decision = match redirect_token(state, ip).await {
        Ok(d) => d,
        Err(refused) => {
            let refused = super::error::fill_problem(refused).await;
            return Some(finish(state, req, refused, started));
        }
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let client = Client {
        ip,
        user_agent: header(header::USER_AGENT),
        referer: header(header::REFERER),
    };
    let resolution = follow_hot(state, code, &target, &client).await;
    state.http.redirect(&Ok(resolution.clone()));
    let mut res = respond("", Visit::Follow, resolution);
    if let Some(d) = decision {
        redirect_headers(state, &d, res.headers_mut());
    }
    Some(finish(state, req, res, started))
}

/// What every answer of the hot path gets, as the router's layers give theirs: the request
/// id (the client's, or a new one) and the request's latency under the route template.
fn finish(
    state: &AppState,
    req: &Request<Incoming>,
    mut res: Response,
    started: Instant,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .cloned()
        .unwrap_or_else(super::new_request_id);
    res.headers_mut().insert(REQUEST_ID, id);
    let class = if res.status().is_redirection() {
        "3xx"
    } else {
        "4xx"
    };
    state
        .http
        .requests
        .with(&["/{code}", class])
        .observe(started.elapsed());
    res
}
