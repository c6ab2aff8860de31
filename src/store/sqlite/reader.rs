//! Redirect lookups on SQLite, read synchronously on threads of their own.
//!
//! A redirect that misses the caches reads one row by primary key, which SQLite does in a
//! few microseconds. Through sqlx, the same read costs far more: every query goes to the
//! connection's worker thread and back, through its statement cache and row decoding. So
//! redirect lookups skip sqlx: a few reader threads, each with its own read-only rusqlite
//! connection and its prepared statement, take the lookups waiting on one channel. A thread
//! takes everything waiting (up to [`MAX_BATCH`]) and reads it in one read transaction, so
//! under load one wake-up serves many lookups; alone, a lookup is read at once.
//!
//! rusqlite links the same `libsqlite3-sys` as sqlx, so both bindings share one SQLite.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi::ErrorCode};
use tokio::sync::oneshot;

use crate::domain::code::Code;
use crate::domain::link::RedirectStatus;
use crate::domain::target_url::TargetUrl;
use crate::store::{Gate, RedirectTarget, StoreError, StoreResult, sql};

/// Most lookups one thread reads in one transaction.
const MAX_BATCH: usize = 64;

/// A redirect lookup waiting for a reader thread.
struct Job {
    code: Code,
    reply: oneshot::Sender<StoreResult<Option<RedirectTarget>>>,
}

/// The reader threads' channel. Cheap to clone; the threads stop when the last clone goes.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    jobs: mpsc::Sender<Job>,
}

impl Reader {
    /// Opens `threads` read-only connections to the database file at `path` (which must
    /// exist, in WAL mode) and starts a thread for each.
    pub(super) fn open(path: &Path, threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        // One receiver for all threads: the thread holding the lock waits for the next job,
        // the others wait for the lock.
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let conn = connect(path)?;
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || serve(&conn, &queue))?;
        }
        Ok(Self { jobs })
    }

    /// What a redirect of `code` needs, read by one of the reader threads.
    pub(super) async fn lookup(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store is closed".into());
        let job = Job {
            code: code.clone(),
            reply,
        };
        if self.jobs.send(job).is_err() {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }
}

fn connect(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Fail now, not at the first redirect, if the file is not snip's database.
    conn.prepare(sql::REDIRECT_BY_CODE)?;
    Ok(conn)
}

/// A reader thread: waits for a lookup, takes every other one waiting, reads them all in one
/// transaction and answers each. Ends when the store is dropped.
fn serve(conn: &Connection, queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Prepared once for the thread's life (`connect` checked that they prepare); prepared
    // again at the next batch if that failed.
    let mut statements = Statements::prepare(conn);
    loop {
        {
            // A thread that panicked while holding the lock left nothing half-done in it.
            let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            let Ok(first) = queue.recv() else { return };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        if statements.is_err() {
            statements = Statements::prepare(conn);
        }
        let read = match &mut statements {
            Ok(statements) => read_batch(statements, &batch),
            Err(e) => Err(store_error(e)),
        };
        match read {
            Ok(found) => {
                for (job, target) in batch.drain(..).zip(found) {
                    let _ = job.reply.send(Ok(target));
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.copy()));
                }
            }
        }
    }
}

/// A reader thread's prepared statements.
struct Statements<'c> {
    begin: rusqlite::Statement<'c>,
    lookup: rusqlite::Statement<'c>,
    commit: rusqlite::Statement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            begin: conn.prepare("BEGIN")?,
            lookup: conn.prepare(sql::REDIRECT_BY_CODE)?,
            commit: conn.prepare("COMMIT")?,
        })
    }
}

/// Reads every job's code in one read transaction (one snapshot, one lock of the WAL).
fn read_batch(
    statements: &mut Statements<'_>,
    batch: &[Job],
) -> Result<Vec<Option<RedirectTarget>>, Failed> {
    statements.begin.execute([]).map_err(|e| store_error(&e))?;
    let found = lookups(&mut statements.lookup, batch);
    // A read transaction changes nothing: end it whether or not the reads went well.
    let ended = statements.commit.execute([]);
    let found = found.map_err(|e| store_error(&e))?;
    ended.map_err(|e| store_error(&e))?;
    Ok(found)
}

fn lookups(
    lookup: &mut rusqlite::Statement<'_>,
    batch: &[Job],
) -> rusqlite::Result<Vec<Option<RedirectTarget>>> {
    let mut found = Vec::with_capacity(batch.len());
    for job in batch {
        let target = lookup
            .query_row([job.code.as_str()], |row| {
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
            .optional()?;
        found.push(target);
    }
    Ok(found)
}

/// Why a batch failed, given to each of its lookups.
struct Failed {
    away: bool,
    why: String,
}

impl Failed {
    fn copy(&self) -> StoreError {
        if self.away {
            StoreError::Unavailable(self.why.clone())
        } else {
            StoreError::Other(anyhow::anyhow!("looking up links: {}", self.why))
        }
    }
}

/// A busy, locked or unreadable database is away for now (503), anything else a failure.
fn store_error(e: &rusqlite::Error) -> Failed {
    let away = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
        )
    );
    Failed {
        away,
        why: e.to_string(),
    }
}
