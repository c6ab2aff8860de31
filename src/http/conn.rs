//! Limits on client connections, so that slow or idle clients cannot hold the server's
//! sockets: a cap on open connections, a deadline for each request head, and an idle
//! timeout between requests.
//!
//! hyper's `header_read_timeout` starts when a connection waits for a request, so it serves
//! as the idle timeout. [`HeadDeadline`] adds the shorter deadline for a head that has
//! begun: from its first byte, the whole head must arrive within `header_read_timeout`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Connection limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest time from a request head's first byte to its last.
    pub header_read_timeout: Duration,
    /// Longest wait for the next request on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits from the configuration; the connection cap defaults to three quarters of
    /// the process's file-descriptor limit (the rest stays for the store, Redis, files).
    pub fn from_config(c: &crate::config::ConnectionConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs.max(1)),
            max_connections: c
                .max
                .unwrap_or_else(|| (open_files_limit() * 3 / 4).max(64))
                .max(1),
        }
    }
}

/// The soft limit on open files of this process (from `/proc/self/limits` on Linux; 1,024
/// where it cannot be read).
pub fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// Whether the connection waits for the first byte of a request head. Set when a
/// response is written; cleared when a head is complete (the service is called).
#[derive(Debug, Clone)]
pub struct BetweenRequests(Arc<AtomicBool>);

impl BetweenRequests {
    /// The service has a whole request head: stop the head deadline.
    pub fn head_complete(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A connection's byte stream with a deadline on request heads: once a head's first byte
/// arrives, reading fails with `TimedOut` unless the whole head arrives in time.
pub struct HeadDeadline<S> {
    inner: S,
    between: Arc<AtomicBool>,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// While closing: until when, and how much was discarded.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<S> HeadDeadline<S> {
    /// Wraps `inner`, allowing `limit` for each request head.
    pub fn new(inner: S, limit: Duration) -> (Self, BetweenRequests) {
        let between = Arc::new(AtomicBool::new(true));
        let io = Self {
            inner,
            between: between.clone(),
            limit,
            deadline: None,
            linger: None,
        };
        (io, BetweenRequests(between))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.between.load(Ordering::Relaxed) {
            this.deadline = None;
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request head took too long",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got_bytes = buf.filled().len() > before;
        if got_bytes && this.deadline.is_none() && this.between.load(Ordering::Relaxed) {
            let mut sleep = Box::pin(tokio::time::sleep_until(Instant::now() + this.limit));
            // Registers the waker, so a head that stalls is woken at the deadline.
            let _ = sleep.as_mut().poll(cx);
            this.deadline = Some(sleep);
        }
        read
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            // A response is going out: what is read next belongs to the next request.
            this.between.store(true, Ordering::Relaxed);
            this.deadline = None;
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.between.store(true, Ordering::Relaxed);
            this.deadline = None;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Closes cleanly (a "lingering close"): sends FIN, then reads and discards what the
    /// client still sends until it closes too, for at most [`LINGER`] and [`LINGER_BYTES`].
    /// Closing a socket with unread bytes would reset the connection, and the reset can
    /// destroy an answer the client has not read yet.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let (until, discarded) = match &mut this.linger {
            Some(linger) => linger,
            None => {
                std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                this.linger
                    .insert((Box::pin(tokio::time::sleep(LINGER)), 0))
            }
        };
        let mut scratch = [0u8; 4096];
        loop {
            if until.as_mut().poll(cx).is_ready() || *discarded > LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *discarded += buf.filled().len();
                }
                // The client closed, or the connection failed: nothing more to wait for.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Longest wait, after this side closes, for the client to close.
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes read and discarded while waiting for the client to close.
const LINGER_BYTES: usize = 1024 * 1024;

/// Logs failed accepts at most once per interval, with how many were not logged.
#[derive(Debug)]
pub struct AcceptErrors {
    every: Duration,
    last: Option<Instant>,
    quiet: u64,
}

impl AcceptErrors {
    /// A log that speaks at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            quiet: 0,
        }
    }

    /// Records a failed accept; logs it unless one was logged within the interval.
    pub fn record(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + self.every) {
            self.quiet += 1;
            return;
        }
        tracing::warn!(error = %e, not_logged_since_last = self.quiet, "accepting a connection failed");
        self.last = Some(now);
        self.quiet = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_started_head_must_finish_in_time_and_a_response_rearms() {
        let (client, server) = tokio::io::duplex(1024);
        let (mut io, between) = HeadDeadline::new(server, Duration::from_secs(10));
        let (mut rx, mut tx) = tokio::io::split(client);
        // Nothing sent yet: no deadline runs (idle time is hyper's to bound).
        tx.write_all(b"GET / HT").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), 8);
        between.head_complete();
        tokio::time::sleep(Duration::from_secs(30)).await;
        // The head completed: a slow body or handler is not cut.
        tx.write_all(b"x").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        // A response goes out; the next head starts and stalls.
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let _ = rx.read(&mut buf).await.unwrap();
        tx.write_all(b"GET /").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 5);
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
