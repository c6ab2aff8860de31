//! Redirect lookups on SQLite, read synchronously with rusqlite.
//!
//! A redirect that misses the caches reads one row by primary key, which SQLite does in a
//! few microseconds. Through sqlx the same read costs far more: every query goes to the
//! connection's worker thread and back, through its statement cache and row decoding. So
//! redirect lookups skip sqlx: the request's own thread reads the row on a read-only
//! rusqlite connection of a small pool, with a prepared statement. That blocks the thread no
//! longer than parsing a request does (a page not in the OS's cache costs one disk read).
//! When every connection is busy on another thread, the lookup waits for one off the
//! runtime's threads.
//!
//! rusqlite links the same `libsqlite3-sys` as sqlx, so both bindings share one SQLite.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi::ErrorCode};

use crate::domain::code::Code;
use crate::domain::link::RedirectStatus;
use crate::domain::target_url::TargetUrl;
use crate::store::{Gate, RedirectTarget, StoreError, StoreResult, sql};

/// The read-only connections. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    connections: Arc<[Mutex<Connection>]>,
    /// Where the next lookup starts looking for a free connection.
    next: Arc<AtomicUsize>,
}

impl Reader {
    /// Opens `connections` read-only connections to the database file at `path` (which
    /// must exist, in WAL mode).
    pub(super) fn open(path: &Path, connections: usize) -> anyhow::Result<Self> {
        let connections = (0..connections.max(1))
            .map(|_| connect(path).map(Mutex::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// What a redirect of `code` needs.
    pub(super) async fn lookup(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let n = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in (0..n).map(|k| (start + k) % n) {
            if let Ok(conn) = self.connections[i].try_lock() {
                return read(&conn, code.as_str()).map_err(|e| failure(&e));
            }
        }
        // Every connection is in use on another thread: wait for one off the runtime.
        let (connections, code) = (Arc::clone(&self.connections), code.clone());
        tokio::task::spawn_blocking(move || {
            // A thread that panicked while reading left nothing half-done in the connection.
            let conn = connections[start % n]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            read(&conn, code.as_str()).map_err(|e| failure(&e))
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("looking up a link: {e}")))?
    }
}

fn connect(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Prepared now: a file that is not snip's database fails here, not at the first redirect.
    conn.prepare_cached(sql::REDIRECT_BY_CODE)?;
    Ok(conn)
}

/// One link's redirect, by its code.
fn read(conn: &Connection, code: &str) -> rusqlite::Result<Option<RedirectTarget>> {
    conn.prepare_cached(sql::REDIRECT_BY_CODE)?
        .query_row([code], |row| {
            Ok(RedirectTarget::new(
                TargetUrl::from_trusted(row.get("url")?),
                RedirectStatus::from_code(row.get("redirect_status")?).unwrap_or_default(),
                row.get("deleted")?,
                Gate {
                    password_hash: row.get("password_hash")?,
                    expires_at: row
                        .get::<_, Option<i64>>("expires_at")?
                        .map(crate::clock::from_millis),
                    max_clicks: row.get("max_clicks")?,
                    clicks_used: row.get("clicks_used")?,
                },
            ))
        })
        .optional()
}

/// A busy, locked or unreadable database is away for now (503), anything else a failure.
fn failure(e: &rusqlite::Error) -> StoreError {
    let away = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
        )
    );
    if away {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Other(anyhow::anyhow!("looking up a link: {e}"))
    }
}
