//! The embedded default store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so they are serialised in the process
//! (no SQLITE_BUSY between our own writers, and `max_clicks` counting is exact), and every
//! commit is durable (`synchronous=FULL`). Reads use a separate pool and never wait for
//! writers, which WAL allows. Redirect lookups, the one read on the hot path, skip sqlx and
//! read on rusqlite connections of their own (`reader.rs`).

mod reader;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use super::{IdempotencySave, LinkRecord, RedirectTarget, StoreError, StoreResult, sql};
use crate::domain::code::Code;

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Creations waiting for the group commit.
    inserts: mpsc::Sender<InsertJob>,
    /// The redirect lookups' connections; none for an in-memory database, which exists only
    /// on the writer's connection.
    reader: Option<reader::Reader>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename().to_owned();
        // The writer's page cache (32 MiB, taken as pages are used) holds the hot part of the
        // click aggregates, which every batch of clicks updates.
        // A connection to a local file cannot go stale: no ping before each use, which
        // would cost a round trip to SQLite's thread per query.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone().pragma("cache_size", "-32768"))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // An in-memory database exists once per connection: share the writer.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let read = if in_memory {
            write.clone()
        } else {
            let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(readers as u32)
                .connect_with(options)
                .await?
        };
        let (inserts, jobs) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(group_commit(write.clone(), jobs));
        // One lookup connection per thread that serves requests, and one more.
        let reader = if in_memory {
            None
        } else {
            let n = std::thread::available_parallelism().map_or(2, |n| n.get() + 1);
            Some(tokio::task::spawn_blocking(move || reader::Reader::open(&path, n)).await??)
        };
        Ok(Self {
            read,
            write,
            inserts,
            reader,
        })
    }

    /// Closes the lookup connections, then both pools, waiting for connections to be
    /// returned (the last one checkpoints the WAL).
    pub async fn close(&self) {
        if let Some(reader) = &self.reader {
            reader.close();
        }
        self.write.close().await;
        self.read.close().await;
    }

    /// Group commit: concurrent creations share one transaction, hence one fsync (see
    /// `group_commit`).
    async fn insert_grouped(
        &self,
        link: &LinkRecord,
        idempotency: Option<&IdempotencySave>,
    ) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let job = InsertJob {
            link: link.clone(),
            idempotency: idempotency.cloned(),
            reply,
        };
        ask(&self.inserts, job, answer).await
    }

    /// A redirect lookup, on a lookup connection (or, in memory, on the writer's).
    async fn lookup(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        if let Some(reader) = &self.reader {
            return reader.lookup(code).await;
        }
        let row = sqlx::query(sql::REDIRECT_BY_CODE)
            .bind(code.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(shared::redirect_from_row).transpose()?)
    }

    /// Nothing to do: the one writer connection already serialises first starts.
    async fn no_lock(_: &mut sqlx::Transaction<'_, Sqlite>) -> StoreResult<()> {
        Ok(())
    }
}

super::sql::sql_store!(SqliteStore {
    db: Sqlite,
    row: sqlx::sqlite::SqliteRow,
    contains: "instr",
    read: read,
    write: write,
    pools: ["write" => write, "read" => read],
    insert_link: insert_grouped,
    get_redirect: lookup,
    lock_first_start: no_lock,
});

/// A link to insert, waiting for the group commit.
#[derive(Debug)]
struct InsertJob {
    link: LinkRecord,
    idempotency: Option<IdempotencySave>,
    reply: oneshot::Sender<StoreResult<()>>,
}

/// Most creations committed together.
const MAX_GROUP: usize = 256;

/// The group committer: takes every insertion waiting (up to [`MAX_GROUP`]), applies each
/// under a savepoint of one transaction (a conflict rolls back only its own), commits once
/// (`synchronous=FULL`: durable before anyone hears back), then answers each caller. Under
/// load, one fsync serves many creations; alone, a creation commits at once.
async fn group_commit(write: SqlitePool, mut jobs: mpsc::Receiver<InsertJob>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
        match insert_group(&write, &group).await {
            Ok(results) => {
                for (job, result) in group.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                for job in group.drain(..) {
                    let _ = job.reply.send(Err(shared(&e, "inserting links")));
                }
            }
        }
    }
}

/// Hands `job` to the group commit and waits for the answer it sends back.
async fn ask<J, T>(
    to: &mpsc::Sender<J>,
    job: J,
    answer: oneshot::Receiver<StoreResult<T>>,
) -> StoreResult<T> {
    let closed = || StoreError::Unavailable("the store is closed".into());
    if to.send(job).await.is_err() {
        return Err(closed());
    }
    answer.await.unwrap_or_else(|_| Err(closed()))
}

/// A copy of an error that several callers share.
fn shared(e: &StoreError, doing: &str) -> StoreError {
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        other => StoreError::Other(anyhow::anyhow!("{doing}: {other}")),
    }
}

/// One transaction for the group; the outer error is the transaction's own (nothing was
/// written), the inner ones each job's.
async fn insert_group(
    write: &SqlitePool,
    group: &[InsertJob],
) -> StoreResult<Vec<StoreResult<()>>> {
    let mut tx = write.begin().await?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
        let result = shared::save_link(&mut tx, &job.link, job.idempotency.as_ref()).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO job").execute(&mut *tx).await?;
        }
        sqlx::query("RELEASE job").execute(&mut *tx).await?;
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}
