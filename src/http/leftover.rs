//! What a handler leaves of a request body. An answer given before the body is read (a 401
//! for a bad key, a 415, a 429…) would otherwise end the keep-alive connection, and a
//! client that writes its body after the head would see the connection reset. So the
//! connection loop reads and discards what is left, up to [`MAX_DISCARD`], before the
//! answer goes out; a larger rest is not read, and the answer says `Connection: close`
//! (the socket then closes cleanly, see `conn::HeadDeadline`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

/// The most of an unread body that is read to keep the connection open.
pub const MAX_DISCARD: u64 = 64 * 1024;

/// How long the rest of a body may take to arrive before the connection is given up.
const DISCARD_WAIT: Duration = Duration::from_secs(2);

/// Where a dropped, unfinished body is left for the connection loop.
#[derive(Clone)]
pub struct Leftover {
    rest: Arc<Mutex<Option<Incoming>>>,
    /// The request said `Expect: 100-continue`: its client has not sent the body, and
    /// will not once the answer is final.
    waits_for_continue: bool,
}

impl Leftover {
    /// Nothing left yet, of a request with these headers.
    pub fn new(request: &HeaderMap) -> Self {
        Self {
            rest: Arc::default(),
            waits_for_continue: request
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
        }
    }

    /// Wraps a request body so that, if it is dropped unfinished, its rest is kept here.
    pub fn watch(&self, body: Incoming) -> Watched {
        Watched {
            body: Some(body),
            left: self.clone(),
        }
    }

    /// Keeps `body` as left unread as a whole (the redirect path, which reads none,
    /// answered).
    pub fn keep(&self, body: Incoming) {
        if let Ok(mut rest) = self.rest.lock() {
            *rest = Some(body);
        }
    }

    /// Reads and discards what a handler left of the body (up to [`MAX_DISCARD`], within
    /// [`DISCARD_WAIT`]); when that is not possible, marks `res` to close the connection.
    pub async fn settle(&self, res: &mut Response) {
        let rest = self.rest.lock().ok().and_then(|mut left| left.take());
        let Some(rest) = rest else { return };
        // A body of unknown length is read too, as far as MAX_DISCARD.
        let small = rest.size_hint().upper().is_none_or(|n| n <= MAX_DISCARD);
        let read = !self.waits_for_continue
            && small
            && tokio::time::timeout(DISCARD_WAIT, discard(rest))
                .await
                .unwrap_or(false);
        if !read {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// Reads `body` to its end; false if it fails or passes [`MAX_DISCARD`] bytes.
async fn discard(mut body: Incoming) -> bool {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if seen > MAX_DISCARD {
                        return false;
                    }
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// A request body that hands its unread rest to a [`Leftover`] when dropped.
pub struct Watched {
    body: Option<Incoming>,
    left: Leftover,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.body {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|b| !b.is_end_stream()) {
            self.left.keep(body);
        }
    }
}
