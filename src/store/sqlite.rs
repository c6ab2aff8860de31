//! The embedded default store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so they are serialised in the process
//! (no SQLITE_BUSY between our own writers, and `max_clicks` counting is exact), and every
//! commit is durable (`synchronous=FULL`). Reads use a separate pool and never wait for
//! writers, which WAL allows.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteExecutor};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{
    ClickFact, ClickStats, ClickTotals, IdempotencyRecord, IdempotencySave, KeyRecord, LinkFields,
    LinkPage, LinkQuery, LinkRecord, LinkStore, NewKey, PageRequest, PoolUsage, RedirectTarget,
    StoreError, StoreResult, Taken, UserRecord, UserStore,
};
use crate::clock::to_millis;
use crate::domain::code::Code;
use crate::domain::user::{Email, UserDraft, UserId};

/// The columns of a link record; tags and click totals are folded in by sub-queries so a
/// page of links is one statement, whatever its size.
macro_rules! link_columns {
    () => {
        "code, url, owner_id, title, redirect_status, password_hash, \
     expires_at, max_clicks, created_at, updated_at, \
     (SELECT group_concat(tag, ',') FROM link_tags t WHERE t.code = links.code) AS tags, \
     (SELECT COALESCE(SUM(clicks), 0) FROM clicks_by_hour c WHERE c.code = links.code) AS clicks"
    };
}

macro_rules! user_columns {
    () => {
        "id, email, name, role, created_at, updated_at"
    };
}
macro_rules! key_columns {
    () => {
        "id, user_id, name, prefix, scopes, created_at, last_used_at"
    };
}

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
}

super::rows::row_mappers!(SqliteRow);
super::rows::click_statements!(Sqlite);
super::rows::listing_builders!(Sqlite, SqliteExecutor, "instr");

async fn fetch_link<'e>(
    ex: impl SqliteExecutor<'e>,
    code: &str,
) -> StoreResult<Option<LinkRecord>> {
    let sql = concat!(
        "SELECT ",
        link_columns!(),
        " FROM links WHERE code = ? AND deleted_at IS NULL"
    );
    let row = sqlx::query(sql).bind(code).fetch_optional(ex).await?;
    Ok(row.as_ref().map(link_from_row).transpose()?)
}

/// Inserts the link row; `Ok(false)` when the code is taken.
async fn insert_link_row<'e>(ex: impl SqliteExecutor<'e>, link: &LinkRecord) -> StoreResult<bool> {
    let f = &link.fields;
    let done = sqlx::query(
        "INSERT INTO links (code, url, owner_id, title, redirect_status, password_hash, \
         expires_at, max_clicks, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO NOTHING",
    )
    .bind(link.code.as_str())
    .bind(f.url.as_str())
    .bind(link.owner_id)
    .bind(f.title.as_deref())
    .bind(i64::from(f.redirect_status.code()))
    .bind(f.password_hash.as_deref())
    .bind(f.expires_at.map(to_millis))
    .bind(f.max_clicks)
    .bind(to_millis(link.created_at))
    .bind(to_millis(link.updated_at))
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

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
) -> StoreResult<std::collections::HashMap<String, RedirectTarget>> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT code, url, redirect_status, password_hash, expires_at, max_clicks, \
         clicks_used, deleted_at IS NOT NULL AS deleted FROM links WHERE code IN (",
    );
    let mut codes = qb.separated(", ");
    for job in batch {
        codes.push_bind(job.code.as_str());
    }
    qb.push(")");
    let rows = qb.build().fetch_all(read).await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let code: String = sqlx::Row::try_get(row, "code")?;
        found.insert(code, redirect_from_row(row)?);
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
        let result = insert_one(&mut tx, &job.link, job.idempotency.as_ref()).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO job").execute(&mut *tx).await?;
        }
        sqlx::query("RELEASE job").execute(&mut *tx).await?;
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

async fn insert_one(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    link: &LinkRecord,
    idempotency: Option<&IdempotencySave>,
) -> StoreResult<()> {
    if let Some(idem) = idempotency {
        let saved = sqlx::query(
            "INSERT INTO idempotency_keys \
                 (user_id, key, request_hash, state, status, location, response, created_at) \
                 VALUES (?, ?, ?, 'done', ?, ?, ?, ?) \
                 ON CONFLICT (user_id, key) DO UPDATE SET \
                 request_hash = excluded.request_hash, state = excluded.state, \
                 status = excluded.status, location = excluded.location, \
                 response = excluded.response, created_at = excluded.created_at \
                 WHERE idempotency_keys.created_at < ?",
        )
        .bind(idem.user_id)
        .bind(&idem.key)
        .bind(&idem.request_hash)
        .bind(i64::from(idem.response.status))
        .bind(idem.response.location.as_deref())
        .bind(&idem.response.body)
        .bind(to_millis(link.created_at))
        .bind(to_millis(idem.expired_before))
        .execute(&mut **tx)
        .await?;
        if saved.rows_affected() == 0 {
            return Err(StoreError::Conflict(Taken::IdempotencyKey));
        }
    }
    if !insert_link_row(&mut **tx, link).await? {
        return Err(StoreError::Conflict(Taken::Code));
    }
    insert_tags(&mut **tx, link.code.as_str(), &link.fields.tags).await?;
    Ok(())
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn insert_link(
        &self,
        link: &LinkRecord,
        idempotency: Option<&IdempotencySave>,
    ) -> StoreResult<()> {
        // Group commit: concurrent creations share one transaction, hence one fsync.
        let (reply, answer) = oneshot::channel();
        let job = InsertJob {
            link: link.clone(),
            idempotency: idempotency.cloned(),
            reply,
        };
        ask(&self.inserts, job, answer).await
    }

    async fn insert_links(&self, links: &[LinkRecord]) -> StoreResult<Vec<StoreResult<()>>> {
        let mut tx = self.write.begin().await?;
        let mut results = Vec::with_capacity(links.len());
        for link in links {
            if insert_link_row(&mut *tx, link).await? {
                insert_tags(&mut *tx, link.code.as_str(), &link.fields.tags).await?;
                results.push(Ok(()));
            } else {
                results.push(Err(StoreError::Conflict(Taken::Code)));
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn get_link(&self, code: &Code) -> StoreResult<Option<LinkRecord>> {
        fetch_link(&self.read, code.as_str()).await
    }

    async fn get_redirect(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        // Lookup batching: concurrent lookups share one query (see `batch_lookups`).
        let (reply, answer) = oneshot::channel();
        let job = LookupJob {
            code: code.clone(),
            reply,
        };
        ask(&self.lookups, job, answer).await
    }

    async fn consume_click(&self, code: &Code) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE links SET clicks_used = clicks_used + 1 WHERE code = ? \
             AND deleted_at IS NULL AND (max_clicks IS NULL OR clicks_used < max_clicks)",
        )
        .bind(code.as_str())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_link(
        &self,
        code: &Code,
        fields: &LinkFields,
        now: DateTime<Utc>,
    ) -> StoreResult<LinkRecord> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE links SET url = ?, title = ?, redirect_status = ?, password_hash = ?, \
             expires_at = ?, max_clicks = ?, updated_at = ? \
             WHERE code = ? AND deleted_at IS NULL",
        )
        .bind(fields.url.as_str())
        .bind(fields.title.as_deref())
        .bind(i64::from(fields.redirect_status.code()))
        .bind(fields.password_hash.as_deref())
        .bind(fields.expires_at.map(to_millis))
        .bind(fields.max_clicks)
        .bind(to_millis(now))
        .bind(code.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM link_tags WHERE code = ?")
            .bind(code.as_str())
            .execute(&mut *tx)
            .await?;
        insert_tags(&mut *tx, code.as_str(), &fields.tags).await?;
        let link = fetch_link(&mut *tx, code.as_str())
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(link)
    }

    async fn delete_link(&self, code: &Code, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE links SET deleted_at = ?, updated_at = ? WHERE code = ? AND deleted_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(code.as_str())
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_links_of(
        &self,
        owner_id: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Code>> {
        let codes: Vec<String> = sqlx::query_scalar(
            "UPDATE links SET deleted_at = ?, updated_at = ? \
             WHERE owner_id = ? AND deleted_at IS NULL RETURNING code",
        )
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(owner_id)
        .fetch_all(&self.write)
        .await?;
        Ok(codes.into_iter().map(Code::from_trusted).collect())
    }

    async fn list_links(&self, query: &LinkQuery) -> StoreResult<LinkPage> {
        let mut qb = page_query("", query);
        let rows = qb.build().fetch_all(&self.read).await?;
        let mut links = rows
            .iter()
            .map(link_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = links.len() > query.limit as usize;
        links.truncate(query.limit as usize);

        let total = if let PageRequest::Offset(_) = query.page {
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM links");
            push_filters(&mut qb, query);
            let n: i64 = qb.build_query_scalar().fetch_one(&self.read).await?;
            Some(u64::try_from(n).unwrap_or(0))
        } else {
            None
        };
        Ok(LinkPage {
            links,
            has_more,
            total,
        })
    }

    async fn get_idempotency(
        &self,
        user_id: UserId,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let row = sqlx::query(
            "SELECT request_hash, state, status, location, response, created_at \
             FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at >= ?",
        )
        .bind(user_id)
        .bind(key)
        .bind(to_millis(not_before))
        .fetch_optional(&self.write)
        .await?;
        Ok(row.as_ref().map(idempotency_from_row).transpose()?)
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(to_millis(before))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    async fn apply_clicks(&self, batch_id: &str, clicks: &[ClickFact]) -> StoreResult<usize> {
        if clicks.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write.begin().await?;
        let applied = apply_click_batch(&mut tx, batch_id, clicks).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn apply_click_totals(&self, batch_id: &str, totals: &ClickTotals) -> StoreResult<bool> {
        if totals.is_empty() {
            return Ok(false);
        }
        let mut tx = self.write.begin().await?;
        let applied = apply_click_totals_on(&mut tx, batch_id, totals).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn click_stats(
        &self,
        code: &Code,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_ms: i64,
    ) -> StoreResult<ClickStats> {
        let mut conn = self.read.acquire().await?;
        click_stats_on(&mut conn, code, to_millis(from), to_millis(to), bucket_ms).await
    }

    async fn daily_salt(&self, day_ms: i64, candidate: &str) -> StoreResult<String> {
        let mut conn = self.write.acquire().await?;
        daily_salt_on(&mut conn, day_ms, candidate).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        vec![
            PoolUsage::of("write", &self.write),
            PoolUsage::of("read", &self.read),
        ]
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn bootstrap_admin(
        &self,
        admin: &UserDraft,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (email, name, role, created_at, updated_at) \
             SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING id",
        )
        .bind(admin.email.as_str())
        .bind(&admin.name)
        .bind(admin.role.as_str())
        .bind(to_millis(now))
        .bind(to_millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(false) };
        insert_key(
            &mut *tx,
            &NewKey {
                user_id: id,
                ..key.clone()
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_user(&self, user: &UserDraft, now: DateTime<Utc>) -> StoreResult<UserRecord> {
        let sql = concat!(
            "INSERT INTO users (email, name, role, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING ",
            user_columns!()
        );
        let row = sqlx::query(sql)
            .bind(user.email.as_str())
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(to_millis(now))
            .bind(to_millis(now))
            .fetch_one(&self.write)
            .await
            .map_err(|e| super::rows::on_unique(e, Taken::Email))?;
        Ok(user_from_row(&row)?)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ? AND deleted_at IS NULL"
        );
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.read).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = ? AND deleted_at IS NULL"
        );
        let row = sqlx::query(sql)
            .bind(email.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn list_users(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<(Vec<UserRecord>, bool)> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE deleted_at IS NULL AND id > ? \
             ORDER BY id LIMIT ?"
        );
        let rows = sqlx::query(sql)
            .bind(after.unwrap_or(0))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.read)
            .await?;
        let mut users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = users.len() > limit as usize;
        users.truncate(limit as usize);
        Ok((users, more))
    }

    async fn count_admins(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(super::rows::COUNT_ADMINS)
            .fetch_one(&self.read)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn update_user(
        &self,
        id: UserId,
        user: &UserDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord> {
        let sql = concat!(
            "UPDATE users SET email = ?, name = ?, role = ?, updated_at = ? \
             WHERE id = ? AND deleted_at IS NULL RETURNING ",
            user_columns!()
        );
        let row = sqlx::query(sql)
            .bind(user.email.as_str())
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(to_millis(now))
            .bind(id)
            .fetch_optional(&self.write)
            .await
            .map_err(|e| super::rows::on_unique(e, Taken::Email))?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(to_millis(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_key(&self, key: &NewKey, now: DateTime<Utc>) -> StoreResult<KeyRecord> {
        insert_key(&self.write, key, now).await
    }

    async fn list_keys(&self, user_id: UserId) -> StoreResult<Vec<KeyRecord>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY id"
        );
        let rows = sqlx::query(sql).bind(user_id).fetch_all(&self.read).await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_key(
        &self,
        user_id: UserId,
        key_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(key_id)
        .bind(user_id)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn authenticate(&self, key_hash: &str) -> StoreResult<Option<(UserRecord, KeyRecord)>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.created_at, u.updated_at, \
             k.id AS key_id, k.name AS key_name, k.prefix, k.scopes, \
             k.created_at AS key_created_at, k.last_used_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.hash = ? AND k.revoked_at IS NULL AND u.deleted_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(caller_from_row).transpose()?)
    }

    async fn touch_key(&self, key_id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        let now = to_millis(now);
        sqlx::query(
            "UPDATE api_keys SET last_used_at = ? \
             WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(now)
        .bind(key_id)
        .bind(now - 60_000)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}

async fn insert_key<'e>(
    ex: impl SqliteExecutor<'e>,
    key: &NewKey,
    now: DateTime<Utc>,
) -> StoreResult<KeyRecord> {
    let sql = concat!(
        "INSERT INTO api_keys (user_id, name, prefix, hash, scopes, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
        key_columns!()
    );
    let row = sqlx::query(sql)
        .bind(key.user_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(key.scopes.to_stored())
        .bind(to_millis(now))
        .fetch_one(ex)
        .await?;
    Ok(key_from_row(&row)?)
}
