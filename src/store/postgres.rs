//! PostgreSQL: the store for more than one node, and the building block of shards.
//!
//! One pool; every write commits with `synchronous_commit = on` (set per connection), so
//! an acknowledged link survives a power loss of the database server. Concurrency is
//! PostgreSQL's own: unique constraints settle races, and conditional updates (`max_clicks`)
//! are atomic under row locks.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Postgres, QueryBuilder, Row};

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
     (SELECT string_agg(tag, ',' ORDER BY tag) FROM link_tags t WHERE t.code = links.code) AS tags, \
     (SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM clicks_by_hour c \
      WHERE c.code = links.code) AS clicks"
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
        Ok(Self { pool })
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
        for table in LINK_TABLES_DELETE {
            sqlx::query(table)
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?;
        }
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
            insert_tags(&mut *dst, code.as_str(), &tags).await?;
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
        for table in LINK_TABLES_DELETE {
            sqlx::query(table)
                .bind(code.as_str())
                .execute(&mut *src)
                .await?;
        }
        src.commit().await?;
        Ok(true)
    }

    /// PostgreSQL's plan for the statement that lists one page of `query`, as text: how
    /// tests check that listings use their indexes.
    pub async fn explain_listing(&self, query: &LinkQuery) -> anyhow::Result<String> {
        let mut qb = page_query("EXPLAIN ", query);
        let rows: Vec<String> = qb.build_query_scalar().fetch_all(&self.pool).await?;
        Ok(rows.join("\n"))
    }
}

super::rows::row_mappers!(PgRow);
super::rows::click_statements!(Postgres);
super::rows::listing_builders!(Postgres, PgExecutor, "strpos");

async fn fetch_link<'e>(ex: impl PgExecutor<'e>, code: &str) -> StoreResult<Option<LinkRecord>> {
    let sql = concat!(
        "SELECT ",
        link_columns!(),
        " FROM links WHERE code = $1 AND deleted_at IS NULL"
    );
    let row = sqlx::query(sql).bind(code).fetch_optional(ex).await?;
    Ok(row.as_ref().map(link_from_row).transpose()?)
}

/// Inserts the link row; `Ok(false)` when the code is taken.
async fn insert_link_row<'e>(ex: impl PgExecutor<'e>, link: &LinkRecord) -> StoreResult<bool> {
    let f = &link.fields;
    let done = sqlx::query(
        "INSERT INTO links (code, url, owner_id, title, redirect_status, password_hash, \
         expires_at, max_clicks, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (code) DO NOTHING",
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

#[async_trait]
impl LinkStore for PgStore {
    async fn insert_link(
        &self,
        link: &LinkRecord,
        idempotency: Option<&IdempotencySave>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idempotency {
            let saved = sqlx::query(
                "INSERT INTO idempotency_keys \
                 (user_id, key, request_hash, state, status, location, response, created_at) \
                 VALUES ($1, $2, $3, 'done', $4, $5, $6, $7) \
                 ON CONFLICT (user_id, key) DO UPDATE SET \
                 request_hash = excluded.request_hash, state = excluded.state, \
                 status = excluded.status, location = excluded.location, \
                 response = excluded.response, created_at = excluded.created_at \
                 WHERE idempotency_keys.created_at < $8",
            )
            .bind(idem.user_id)
            .bind(&idem.key)
            .bind(&idem.request_hash)
            .bind(i64::from(idem.response.status))
            .bind(idem.response.location.as_deref())
            .bind(&idem.response.body)
            .bind(to_millis(link.created_at))
            .bind(to_millis(idem.expired_before))
            .execute(&mut *tx)
            .await?;
            if saved.rows_affected() == 0 {
                return Err(StoreError::Conflict(Taken::IdempotencyKey));
            }
        }
        if !insert_link_row(&mut *tx, link).await? {
            return Err(StoreError::Conflict(Taken::Code));
        }
        insert_tags(&mut *tx, link.code.as_str(), &link.fields.tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_links(&self, links: &[LinkRecord]) -> StoreResult<Vec<StoreResult<()>>> {
        let mut tx = self.pool.begin().await?;
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
        fetch_link(&self.pool, code.as_str()).await
    }

    async fn get_redirect(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let row = sqlx::query(
            "SELECT url, redirect_status, password_hash, expires_at, max_clicks, \
             clicks_used, deleted_at IS NOT NULL AS deleted FROM links WHERE code = $1",
        )
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(redirect_from_row).transpose()?)
    }

    async fn consume_click(&self, code: &Code) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE links SET clicks_used = clicks_used + 1 WHERE code = $1 \
             AND deleted_at IS NULL AND (max_clicks IS NULL OR clicks_used < max_clicks)",
        )
        .bind(code.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_link(
        &self,
        code: &Code,
        fields: &LinkFields,
        now: DateTime<Utc>,
    ) -> StoreResult<LinkRecord> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE links SET url = $1, title = $2, redirect_status = $3, password_hash = $4, \
             expires_at = $5, max_clicks = $6, updated_at = $7 \
             WHERE code = $8 AND deleted_at IS NULL",
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
        sqlx::query("DELETE FROM link_tags WHERE code = $1")
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
            "UPDATE links SET deleted_at = $1, updated_at = $2 WHERE code = $3 AND deleted_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(code.as_str())
        .execute(&self.pool)
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
            "UPDATE links SET deleted_at = $1, updated_at = $2 \
             WHERE owner_id = $3 AND deleted_at IS NULL RETURNING code",
        )
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(codes.into_iter().map(Code::from_trusted).collect())
    }

    async fn list_links(&self, query: &LinkQuery) -> StoreResult<LinkPage> {
        let mut qb = page_query("", query);
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut links = rows
            .iter()
            .map(link_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = links.len() > query.limit as usize;
        links.truncate(query.limit as usize);

        let total = if let PageRequest::Offset(_) = query.page {
            let mut qb = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM links");
            push_filters(&mut qb, query);
            let n: i64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
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
             FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(user_id)
        .bind(key)
        .bind(to_millis(not_before))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(idempotency_from_row).transpose()?)
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(to_millis(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn apply_clicks(&self, batch_id: &str, clicks: &[ClickFact]) -> StoreResult<usize> {
        if clicks.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let applied = apply_click_batch(&mut tx, batch_id, clicks).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn apply_click_totals(&self, batch_id: &str, totals: &ClickTotals) -> StoreResult<bool> {
        if totals.is_empty() {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
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
        let mut conn = self.pool.acquire().await?;
        click_stats_on(&mut conn, code, to_millis(from), to_millis(to), bucket_ms).await
    }

    async fn daily_salt(&self, day_ms: i64, candidate: &str) -> StoreResult<String> {
        let mut conn = self.pool.acquire().await?;
        daily_salt_on(&mut conn, day_ms, candidate).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        vec![PoolUsage::of("postgres", &self.pool)]
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn bootstrap_admin(
        &self,
        admin: &UserDraft,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (email, name, role, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING id",
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
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            user_columns!()
        );
        let row = sqlx::query(sql)
            .bind(user.email.as_str())
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(to_millis(now))
            .bind(to_millis(now))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| super::rows::on_unique(e, Taken::Email))?;
        Ok(user_from_row(&row)?)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1 AND deleted_at IS NULL"
        );
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1 AND deleted_at IS NULL"
        );
        let row = sqlx::query(sql)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
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
            " FROM users WHERE deleted_at IS NULL AND id > $1 \
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sql)
            .bind(after.unwrap_or(0))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
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
            .fetch_one(&self.pool)
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
            "UPDATE users SET email = $1, name = $2, role = $3, updated_at = $4 \
             WHERE id = $5 AND deleted_at IS NULL RETURNING ",
            user_columns!()
        );
        let row = sqlx::query(sql)
            .bind(user.email.as_str())
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(to_millis(now))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| super::rows::on_unique(e, Taken::Email))?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET deleted_at = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_key(&self, key: &NewKey, now: DateTime<Utc>) -> StoreResult<KeyRecord> {
        insert_key(&self.pool, key, now).await
    }

    async fn list_keys(&self, user_id: UserId) -> StoreResult<Vec<KeyRecord>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id"
        );
        let rows = sqlx::query(sql).bind(user_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_key(
        &self,
        user_id: UserId,
        key_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(key_id)
        .bind(user_id)
        .execute(&self.pool)
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
             WHERE k.hash = $1 AND k.revoked_at IS NULL AND u.deleted_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(caller_from_row).transpose()?)
    }

    async fn touch_key(&self, key_id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        let now = to_millis(now);
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(key_id)
        .bind(now - 60_000)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

async fn insert_key<'e>(
    ex: impl PgExecutor<'e>,
    key: &NewKey,
    now: DateTime<Utc>,
) -> StoreResult<KeyRecord> {
    let sql = concat!(
        "INSERT INTO api_keys (user_id, name, prefix, hash, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
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
