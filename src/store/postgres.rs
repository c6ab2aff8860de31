//! PostgreSQL: the store for more than one node, and the building block of shards.
//!
//! One pool; every write commits with `synchronous_commit = on` (set per connection), so
//! an acknowledged link survives a power loss of the database server. Concurrency is
//! PostgreSQL's own: unique constraints settle races, and conditional updates (`max_clicks`)
//! are atomic under row locks. Redirect lookups that arrive together are read together
//! (`batch_lookups`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{IdempotencySave, LinkQuery, LinkRecord, RedirectTarget, StoreError, StoreResult, sql};
use crate::clock::to_millis;
use crate::domain::code::Code;

/// Everything stored under one code, child tables first.
const LINK_TABLES_DELETE: [&str; 5] = [
    "DELETE FROM link_tags WHERE code = $1",
    "DELETE FROM clicks_by_hour WHERE code = $1",
    "DELETE FROM clicks_by_dim WHERE code = $1",
    "DELETE FROM visitors WHERE code = $1",
    "DELETE FROM links WHERE code = $1",
];

/// Serialises concurrent first starts of several nodes (`pg_advisory_xact_lock` key).
const BOOTSTRAP_LOCK: i64 = 0x736e_6970_0001;

/// Longest wait for a connection from the pool (a new one included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The PostgreSQL store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Redirect lookups waiting to be read together.
    lookups: mpsc::Sender<LookupJob>,
}

impl PgStore {
    /// Connects to the database at `url` and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Well below the store timeout: with the database down, a request gets its 503
            // within about a second, not after the query timeout.
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let (lookups, jobs) = mpsc::channel(4 * MAX_LOOKUPS);
        tokio::spawn(batch_lookups(pool.clone(), jobs));
        Ok(Self { pool, lookups })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Claims an idempotency key as in flight (when the link goes to another database);
    /// `false` when a live record holds it.
    pub async fn claim_idempotency(
        &self,
        idem: &IdempotencySave,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at) \
             VALUES ($1, $2, $3, 'in_flight', $4) \
             ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             state = excluded.state, status = NULL, location = NULL, response = NULL, \
             created_at = excluded.created_at WHERE idempotency_keys.created_at < $5",
        )
        .bind(idem.user_id)
        .bind(&idem.key)
        .bind(&idem.request_hash)
        .bind(to_millis(now))
        .bind(to_millis(idem.expired_before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores the response of a claimed idempotency key.
    pub async fn complete_idempotency(&self, idem: &IdempotencySave) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, location = $4, \
             response = $5 WHERE user_id = $1 AND key = $2",
        )
        .bind(idem.user_id)
        .bind(&idem.key)
        .bind(i64::from(idem.response.status))
        .bind(idem.response.location.as_deref())
        .bind(&idem.response.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up a claimed idempotency key whose request failed.
    pub async fn release_idempotency(&self, idem: &IdempotencySave) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'in_flight'",
        )
        .bind(idem.user_id)
        .bind(&idem.key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes every trace of `code` here (not a tombstone): undoes an insert that lost a
    /// race with the same code on another shard.
    pub async fn remove_link(&self, code: &Code) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        delete_every_row(&mut tx, code).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether any link (live or deleted) has `code` here.
    pub async fn has_code(&self, code: &Code) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM links WHERE code = $1")
            .bind(code.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Up to `limit` codes (live and deleted) after `after`, in code order: for scanning a
    /// shard during a rebalance.
    pub async fn codes_after(&self, after: &str, limit: i64) -> StoreResult<Vec<Code>> {
        let codes: Vec<String> =
            sqlx::query_scalar("SELECT code FROM links WHERE code > $1 ORDER BY code LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(codes.into_iter().map(Code::from_trusted).collect())
    }

    /// Moves the link `code` (row, tags and click counts) from this database to `target`.
    /// The row is locked here while it is copied, so a concurrent change waits and then
    /// finds it gone (and looks for it on its new shard). Safe to repeat after a crash: a
    /// copy already on the target wins, and this one is removed. `false` when there was
    /// nothing to move.
    pub async fn move_link_to(&self, code: &Code, target: &PgStore) -> StoreResult<bool> {
        let mut src = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT code, url, owner_id, title, redirect_status, password_hash, expires_at, \
             max_clicks, clicks_used, created_at, updated_at, deleted_at \
             FROM links WHERE code = $1 FOR UPDATE",
        )
        .bind(code.as_str())
        .fetch_optional(&mut *src)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let tags: Vec<String> = sqlx::query_scalar("SELECT tag FROM link_tags WHERE code = $1")
            .bind(code.as_str())
            .fetch_all(&mut *src)
            .await?;
        let clicks: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT hour, clicks, bots FROM clicks_by_hour WHERE code = $1")
                .bind(code.as_str())
                .fetch_all(&mut *src)
                .await?;
        let dims: Vec<(i64, String, String, i64)> =
            sqlx::query_as("SELECT day, dim, value, clicks FROM clicks_by_dim WHERE code = $1")
                .bind(code.as_str())
                .fetch_all(&mut *src)
                .await?;
        let visitors: Vec<(i64, String)> =
            sqlx::query_as("SELECT day, visitor FROM visitors WHERE code = $1")
                .bind(code.as_str())
                .fetch_all(&mut *src)
                .await?;

        let mut dst = target.pool.begin().await?;
        let get = |name: &str| -> Result<Option<i64>, sqlx::Error> { row.try_get(name) };
        let copied = sqlx::query(
            "INSERT INTO links (code, url, owner_id, title, redirect_status, password_hash, \
             expires_at, max_clicks, clicks_used, created_at, updated_at, deleted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(code.as_str())
        .bind(row.try_get::<String, _>("url")?)
        .bind(row.try_get::<i64, _>("owner_id")?)
        .bind(row.try_get::<Option<String>, _>("title")?)
        .bind(row.try_get::<i64, _>("redirect_status")?)
        .bind(row.try_get::<Option<String>, _>("password_hash")?)
        .bind(get("expires_at")?)
        .bind(get("max_clicks")?)
        .bind(row.try_get::<i64, _>("clicks_used")?)
        .bind(row.try_get::<i64, _>("created_at")?)
        .bind(row.try_get::<i64, _>("updated_at")?)
        .bind(get("deleted_at")?)
        .execute(&mut *dst)
        .await?;
        if copied.rows_affected() == 0 {
            // Already there: a copy from an interrupted move (same link), or, rarely, another
            // link created with this code meanwhile. Only the same link lets this one go.
            let same: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM links WHERE code = $1 AND created_at = $2 AND owner_id = $3",
            )
            .bind(code.as_str())
            .bind(row.try_get::<i64, _>("created_at")?)
            .bind(row.try_get::<i64, _>("owner_id")?)
            .fetch_optional(&mut *dst)
            .await?;
            if same.is_none() {
                tracing::warn!(%code, "code taken on its new shard by another link; not moved");
                return Ok(false);
            }
        } else {
            shared::insert_tags(&mut dst, code.as_str(), &tags).await?;
            for (hour, n, bots) in &clicks {
                sqlx::query(
                    "INSERT INTO clicks_by_hour (code, hour, clicks, bots) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (code, hour) DO UPDATE SET \
                     clicks = clicks_by_hour.clicks + excluded.clicks, \
                     bots = clicks_by_hour.bots + excluded.bots",
                )
                .bind(code.as_str())
                .bind(hour)
                .bind(n)
                .bind(bots)
                .execute(&mut *dst)
                .await?;
            }
            for (day, dim, value, n) in &dims {
                sqlx::query(
                    "INSERT INTO clicks_by_dim (code, day, dim, value, clicks) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code, day, dim, value) \
                     DO UPDATE SET clicks = clicks_by_dim.clicks + excluded.clicks",
                )
                .bind(code.as_str())
                .bind(day)
                .bind(dim)
                .bind(value)
                .bind(n)
                .execute(&mut *dst)
                .await?;
            }
            for (day, visitor) in &visitors {
                sqlx::query(
                    "INSERT INTO visitors (code, day, visitor) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(code.as_str())
                .bind(day)
                .bind(visitor)
                .execute(&mut *dst)
                .await?;
            }
        }
        dst.commit().await?;
        delete_every_row(&mut src, code).await?;
        src.commit().await?;
        Ok(true)
    }

    /// PostgreSQL's plan for the statement that lists one page of `query`, as text: how
    /// tests check that listings use their indexes.
    pub async fn explain_listing(&self, query: &LinkQuery) -> anyhow::Result<String> {
        let mut qb = shared::page_query("EXPLAIN ", query);
        let rows: Vec<String> = qb.build_query_scalar().fetch_all(&self.pool).await?;
        Ok(rows.join("\n"))
    }

    /// A creation in one transaction: the link, its tags and the idempotency record.
    async fn insert_in_transaction(
        &self,
        link: &LinkRecord,
        idempotency: Option<&IdempotencySave>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        shared::save_link(&mut tx, link, idempotency).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The redirect of one code, read with the other lookups waiting (`batch_lookups`).
    async fn lookup(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store is closed".into());
        let job = LookupJob {
            code: code.clone(),
            reply,
        };
        if self.lookups.send(job).await.is_err() {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Serialises concurrent first starts of several nodes, until the transaction ends.
    async fn lock_first_start(tx: &mut sqlx::Transaction<'_, Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Deletes every row stored under `code`, in the caller's transaction.
async fn delete_every_row(conn: &mut PgConnection, code: &Code) -> StoreResult<()> {
    for statement in LINK_TABLES_DELETE {
        sqlx::query(statement)
            .bind(code.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

super::sql::sql_store!(PgStore {
    db: Postgres,
    row: sqlx::postgres::PgRow,
    contains: "strpos",
    read: pool,
    write: pool,
    pools: ["postgres" => pool],
    insert_link: insert_in_transaction,
    get_redirect: lookup,
    lock_first_start: lock_first_start,
});

/// A redirect lookup waiting for its batch.
#[derive(Debug)]
struct LookupJob {
    code: Code,
    reply: oneshot::Sender<StoreResult<Option<RedirectTarget>>>,
}

/// Most codes read by one query.
const MAX_LOOKUPS: usize = 64;
/// Most lookup queries at once: while they run, the next lookups gather into one batch.
const LOOKUP_QUERIES: usize = 4;

/// The lookup batcher: takes every redirect lookup waiting (up to [`MAX_LOOKUPS`]) and
/// reads them with one `code = ANY($1)` query. Each statement costs PostgreSQL a round
/// trip, a parse-bind-execute and an executor start, whatever its rows; under load those,
/// not the index search, are most of a lookup. Alone, a lookup is sent at once. At most
/// [`LOOKUP_QUERIES`] queries run at a time.
async fn batch_lookups(pool: PgPool, mut jobs: mpsc::Receiver<LookupJob>) {
    let queries = Arc::new(Semaphore::new(LOOKUP_QUERIES));
    loop {
        let Ok(permit) = queries.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_LOOKUPS);
        if jobs.recv_many(&mut batch, MAX_LOOKUPS).await == 0 {
            return;
        }
        // Callers that gave up (timed out) need no answer.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // One retry here for a batch that met a passing fault: every caller would
            // otherwise count the same fault against the store's circuit breaker.
            let mut found = lookup_batch(&pool, &batch).await;
            if matches!(found, Err(StoreError::Unavailable(_))) {
                found = lookup_batch(&pool, &batch).await;
            }
            match found {
                Ok(found) => {
                    for job in batch {
                        // A code asked twice in one batch gets its answer twice.
                        let target = found.get(job.code.as_str()).cloned();
                        let _ = job.reply.send(Ok(target));
                    }
                }
                Err(e) => {
                    for job in batch {
                        let _ = job.reply.send(Err(copy(&e)));
                    }
                }
            }
        });
    }
}

/// Longest a batch's query may take: a hung connection must not hold a lookup permit.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

async fn lookup_batch(
    pool: &PgPool,
    batch: &[LookupJob],
) -> StoreResult<HashMap<String, RedirectTarget>> {
    let codes: Vec<&str> = batch.iter().map(|j| j.code.as_str()).collect();
    let query = sqlx::query(sql::REDIRECTS_BY_CODES)
        .bind(&codes)
        .fetch_all(pool);
    let rows = tokio::time::timeout(LOOKUP_TIMEOUT, query)
        .await
        .map_err(|_| StoreError::Unavailable("looking up links took too long".into()))??;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let code: String = row.try_get("code")?;
        found.insert(code, shared::redirect_from_row(row)?);
    }
    Ok(found)
}

/// The error of a batch, for each of its lookups.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        other => StoreError::Other(anyhow::anyhow!("looking up links: {other}")),
    }
}
