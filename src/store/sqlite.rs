//! The embedded default store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so they are serialised in the process
//! (no SQLITE_BUSY between our own writers, and `max_clicks` counting is exact), and every
//! commit is durable (`synchronous=FULL`). Reads use a separate pool and never wait for
//! writers, which WAL allows.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{IdempotencySave, LinkRecord, RedirectTarget, StoreError, StoreResult, sql};
use crate::domain::code::Code;

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Creations waiting for the group commit.
    inserts: mpsc::Sender<InsertJob>,
    /// Redirect lookups waiting to be batched.
    lookups: mpsc::Sender<LookupJob>,
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
        let read = if url.contains(":memory:") || url.contains("mode=memory") {
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
        let (lookups, jobs) = mpsc::channel(4 * MAX_LOOKUPS);
        tokio::spawn(batch_lookups(read.clone(), jobs));
        Ok(Self {
            read,
            write,
            inserts,
            lookups,
        })
    }

    /// Closes both pools, waiting for connections to be returned.
    pub async fn close(&self) {
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

    /// Lookup batching: concurrent lookups share one query (see `batch_lookups`).
    async fn lookup_batched(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let (reply, answer) = oneshot::channel();
        let job = LookupJob {
            code: code.clone(),
            reply,
        };
        ask(&self.lookups, job, answer).await
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
    get_redirect: lookup_batched,
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

/// Hands `job` to a background task (the group commit, the lookup batcher) and waits for
/// the answer it sends back.
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

/// A redirect lookup waiting for its batch.
#[derive(Debug)]
struct LookupJob {
    code: Code,
    reply: oneshot::Sender<StoreResult<Option<RedirectTarget>>>,
}

/// Most codes looked up by one query.
const MAX_LOOKUPS: usize = 64;
/// Most lookup queries at once: while they run, the next lookups gather into one batch.
const LOOKUP_QUERIES: usize = 2;

/// The lookup batcher: takes every redirect lookup waiting (up to [`MAX_LOOKUPS`]) and reads
/// them with one `WHERE code IN (...)` query on a reader connection. A query costs two
/// thread hand-offs (to SQLite's worker thread and back) whatever its size, and under load
/// those hand-offs, not the B-tree search, are most of a lookup; alone, a lookup is sent at
/// once. At most [`LOOKUP_QUERIES`] batches run at a time.
async fn batch_lookups(read: SqlitePool, mut jobs: mpsc::Receiver<LookupJob>) {
    let queries = Arc::new(Semaphore::new(LOOKUP_QUERIES));
    loop {
        let Ok(permit) = queries.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_LOOKUPS);
        if jobs.recv_many(&mut batch, MAX_LOOKUPS).await == 0 {
            return;
        }
        let read = read.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match lookup_batch(&read, &batch).await {
                Ok(found) => {
                    for job in batch {
                        // A code asked twice in one batch gets its answer twice.
                        let target = found.get(job.code.as_str()).cloned();
                        let _ = job.reply.send(Ok(target));
                    }
                }
                Err(e) => {
                    for job in batch {
                        let _ = job.reply.send(Err(shared(&e, "looking up links")));
                    }
                }
            }
        });
    }
}

async fn lookup_batch(
    read: &SqlitePool,
    batch: &[LookupJob],
) -> StoreResult<HashMap<String, RedirectTarget>> {
    let mut qb = QueryBuilder::<Sqlite>::new(sql::REDIRECTS_BY_CODES);
    let mut codes = qb.separated(", ");
    for job in batch {
        codes.push_bind(job.code.as_str());
    }
    qb.push(")");
    let rows = qb.build().fetch_all(read).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let code: String = sqlx::Row::try_get(row, "code")?;
        found.insert(code, shared::redirect_from_row(row)?);
    }
    Ok(found)
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
