//! The connection loop. hyper serves each connection (HTTP/1.1, keep-alive). `GET /{code}`,
//! nearly all of a link service's traffic, is answered here without the router and its
//! middleware stack; a link this node holds fresh in L1 that needs nothing but a redirect is
//! answered straight from the cache (the hot path). Every other request goes through
//! [`super::router`] with all its layers. Both answer alike: same status and headers, same
//! rate limiting, problem details, request ids, metrics and click counting.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

use super::client_ip::client_ip;
use super::conn::{AcceptErrors, ConnectionLimits, HeadDeadline};
use super::error::ApiError;
use super::guard::{redirect_headers, redirect_token};
use super::leftover::Leftover;
use super::redirect::respond;
use crate::app::AppState;
use crate::app::redirect::{Client, Visit, follow_hot, hot_target, resolve};
use crate::domain::code::{Code, is_reserved};

const REQUEST_ID: &str = "x-request-id";

/// Serves `router` (with the hot path in front) on `listener` until `shutdown` is cancelled;
/// then stops accepting and returns once open connections have finished their requests.
/// At most `limits.max_connections` are open at once: the next is accepted when one
/// closes, and meanwhile clients wait in the listen backlog.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // With trace export on, every request goes through the router, which opens the spans.
    let hot = !crate::telemetry::tracing_enabled();
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_errors = AcceptErrors::new(Duration::from_secs(5));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    loop {
        let place = tokio::select! {
            place = open.clone().acquire_owned() => match place {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    accept_errors.record(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (stream, between) = HeadDeadline::new(stream, limits.header_read_timeout);
        let state = state.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            between.head_complete();
            let state = state.clone();
            let router = router.clone();
            async move {
                let (mut res, leftover) = 'answer: {
                    if hot {
                        // A panic is a bug: answered 500 and logged, as the router's layer
                        // does.
                        let answered = AssertUnwindSafe(redirect_get(&state, peer, &req))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|panic| Some(super::panic_response(panic)));
                        if let Some(res) = answered {
                            // A GET rarely has a body; only then is there anything to keep.
                            if req.body().is_end_stream() {
                                break 'answer (res, None);
                            }
                            let leftover = Leftover::new(req.headers());
                            leftover.keep(req.into_body());
                            break 'answer (res, Some(leftover));
                        }
                    }
                    let leftover = Leftover::new(req.headers());
                    let mut req = req.map(|body| Body::new(leftover.watch(body)));
                    req.extensions_mut().insert(ConnectInfo(peer));
                    match router.oneshot(req).await {
                        Ok(res) => (res, Some(leftover)),
                        Err(never) => match never {},
                    }
                };
                if let Some(leftover) = leftover {
                    leftover.settle(&mut res).await;
                }
                if state.draining.load(Ordering::Acquire) {
                    // Shutting down: the client should take its next request elsewhere.
                    res.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(res)
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `GET /{code}`: the redirect path, without the router. A link held fresh in L1 that needs
/// nothing but a redirect is answered from the cache (the hot path); any other code is
/// resolved as the router's handler would (store lookup, password form, 404, 410). `None`
/// hands the request to the router: not a `GET`, not a code (`/{code}+` previews, reserved
/// paths such as `/healthz`), or the path turned off.
async fn redirect_get(
    state: &AppState,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Response> {
    if req.method() != Method::GET || !state.settings.hot_path {
        return None;
    }
    let started = Instant::now();
    let path = req.uri().path().strip_prefix('/')?;
    if is_reserved(path) {
        return None;
    }
    let code = Code::from_path(path)?;
    let id = req
        .headers()
        .get(REQUEST_ID)
        .filter(|v| super::is_good_request_id(v))
        .cloned()
        .unwrap_or_else(super::new_request_id);
    let hot = hot_target(state, &code);
    let headers = req.headers();
    let ip = client_ip(peer.ip(), headers, &state.settings.trusted_proxies);
    let decision = match redirect_token(state, ip).await {
        Ok(d) => d,
        Err(refused) => {
            let refused = super::error::fill_problem(refused).await;
            return Some(finish(state, id, refused, started));
        }
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let client = Client {
        ip,
        user_agent: header(header::USER_AGENT),
        referer: header(header::REFERER),
    };
    let resolution = match hot {
        Some(target) => Ok(follow_hot(state, &target, &client)),
        None => {
            // Off the hot path, a request may log (the store failing, say): give it the
            // request span the router's trace layer would.
            let span = tracing::info_span!("request", method = "GET", path = %req.uri().path(),
                request_id = %id.to_str().unwrap_or(""));
            resolve(state, code.as_str(), Visit::Follow, &client)
                .instrument(span)
                .await
        }
    };
    state.http.redirect(super::metrics::outcome(&resolution));
    let mut res = match resolution {
        Ok(resolution) => respond(state, code.as_str(), Visit::Follow, resolution),
        Err(e) => ApiError::from(e).into_response(),
    };
    if let Some(d) = decision {
        redirect_headers(state, &d, res.headers_mut());
    }
    let res = super::error::fill_problem(res).await;
    Some(finish(state, id, res, started))
}

/// What every answer of the redirect path gets, as the router's layers give theirs: the
/// request id (the client's, or a new one) and the request's latency under the route
/// template.
fn finish(state: &AppState, id: HeaderValue, mut res: Response, started: Instant) -> Response {
    res.headers_mut().insert(REQUEST_ID, id);
    super::add_security_headers(&mut res, false);
    state.http.redirect_latency(res.status(), started.elapsed());
    res
}
