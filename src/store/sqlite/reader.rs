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
//!
//! A read on the request's thread never waits for a lock: its connection's busy timeout is
//! zero. A database that is busy (WAL recovery, say) sends the lookup off the runtime's
//! threads, where it may wait up to [`BUSY_WAIT`].

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi::ErrorCode};

use crate::domain::code::Code;
use crate::domain::link::RedirectStatus;
use crate::domain::target_url::TargetUrl;
use crate::store::{Gate, RedirectTarget, StoreError, StoreResult, sql};

/// Longest a lookup off the runtime's threads waits for a busy database (below the store's
/// timeout, so that the caller hears back).
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// One lookup connection; `None` once the store is closed.
type Slot = Mutex<Option<Connection>>;

/// The read-only connections. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    connections: Arc<[Slot]>,
    /// Where the next lookup starts looking for a free connection.
    next: Arc<AtomicUsize>,
}

impl Reader {
    /// Opens `connections` read-only connections to the database file at `path` (which
    /// must exist, in WAL mode).
    pub(super) fn open(path: &Path, connections: usize) -> anyhow::Result<Self> {
        let connections = (0..connections.max(1))
            .map(|_| connect(path).map(|c| Mutex::new(Some(c))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Closes every connection (so that the writer's close can checkpoint the WAL and
    /// remove it); later lookups answer that the store is closed.
    pub(super) fn close(&self) {
        for slot in self.connections.iter() {
            lock(slot).take();
        }
    }

    /// What a redirect of `code` needs.
    pub(super) async fn lookup(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let n = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in (0..n).map(|k| (start + k) % n) {
            let guard = match self.connections[i].try_lock() {
                Ok(guard) => guard,
                // A thread that panicked while reading left nothing half-done.
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            match read(guard.as_ref(), code.as_str()) {
                Err(e) if is_busy(&e) => break,
                answer => return answer.map_err(|e| failure(&e)),
            }
        }
        // Every connection is in use on another thread, or the database is busy: wait off
        // the runtime's threads.
        let (connections, code) = (Arc::clone(&self.connections), code.clone());
        tokio::task::spawn_blocking(move || {
            let guard = lock(&connections[start % n]);
            let conn = guard.as_ref();
            if let Some(conn) = conn {
                conn.busy_timeout(BUSY_WAIT).map_err(|e| failure(&e))?;
            }
            let answer = read(conn, code.as_str()).map_err(|e| failure(&e));
            if let Some(conn) = conn {
                conn.busy_timeout(Duration::ZERO).map_err(|e| failure(&e))?;
            }
            answer
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("looking up a link: {e}")))?
    }
}

/// A connection's lock, whoever held it before (a panic leaves nothing half-done).
fn lock(slot: &Slot) -> MutexGuard<'_, Option<Connection>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

fn connect(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::ZERO)?;
    // Prepared now: a file that is not snip's database fails here, not at the first redirect.
    conn.prepare_cached(sql::REDIRECT_BY_CODE)?;
    Ok(conn)
}

/// One link's redirect, by its code; a closed store fails as unreadable.
fn read(conn: Option<&Connection>, code: &str) -> rusqlite::Result<Option<RedirectTarget>> {
    let conn = conn.ok_or(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
        Some("the store is closed".into()),
    ))?;
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

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
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
