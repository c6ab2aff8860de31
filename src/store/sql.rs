//! The SQL statements of users, API keys and links, each written once for both adapters.
//!
//! Placeholders are `$1`, `$2`, …: PostgreSQL's own, and valid in SQLite too, where sqlx binds
//! a `$NNN` parameter by its number. So one `&'static str` serves both backends, and each
//! connection prepares it once and keeps it in its statement cache.
//!
//! [`sql_store!`] expands the code that binds and runs these statements with one backend's
//! types, and implements `LinkStore` and `UserStore` with it. (Generic functions over
//! `sqlx::Database` would need a dozen trait bounds each; the macro keeps the code plain.)
//! Each adapter keeps only what differs: SQLite its group commit and its redirect lookups
//! on rusqlite, PostgreSQL its advisory lock on a first start, its batched lookups, and
//! what shards need (moving links, idempotency claims, scans).
//!
//! The statements are public so that tests can `EXPLAIN` the very text the store runs.

/// The columns of a link record; tags and click totals are folded in by sub-queries so a
/// page of links is one statement, whatever its size.
macro_rules! link_columns {
    () => {
        "code, url, owner_id, title, redirect_status, password_hash, \
         expires_at, max_clicks, created_at, updated_at, \
         (SELECT string_agg(tag, ',' ORDER BY tag) FROM link_tags t \
          WHERE t.code = links.code) AS tags, \
         (SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM clicks_by_hour c \
          WHERE c.code = links.code) AS clicks"
    };
}

/// What a redirect reads of a link, deleted or not.
macro_rules! redirect_columns {
    () => {
        "code, url, redirect_status, password_hash, expires_at, max_clicks, clicks_used, \
         deleted_at IS NOT NULL AS deleted"
    };
}

/// The columns of a user record.
macro_rules! user_columns {
    () => {
        "id, email, name, role, created_at, updated_at"
    };
}

/// The columns of an API key's record.
macro_rules! key_columns {
    () => {
        "id, user_id, name, prefix, scopes, created_at, last_used_at"
    };
}

/// A live link by its code.
pub const LINK_BY_CODE: &str = concat!(
    "SELECT ",
    link_columns!(),
    " FROM links WHERE code = $1 AND deleted_at IS NULL"
);

/// The start of a listing; its filters, order and limit are added per query.
pub const LINK_LISTING: &str = concat!("SELECT ", link_columns!(), " FROM links");

/// What a redirect of one code needs.
pub const REDIRECT_BY_CODE: &str = concat!(
    "SELECT ",
    redirect_columns!(),
    " FROM links WHERE code = $1"
);

/// What redirects of several codes need, the codes bound as one array (PostgreSQL's
/// `ANY`: one statement, prepared once, whatever the number of codes).
pub const REDIRECTS_BY_CODES: &str = concat!(
    "SELECT ",
    redirect_columns!(),
    " FROM links WHERE code = ANY($1)"
);

/// The clicks counted on one owner's live links.
pub const OWNER_CLICKS: &str = "SELECT CAST(COALESCE(SUM(c.clicks), 0) AS BIGINT) \
     FROM clicks_by_hour c JOIN links l ON l.code = c.code \
     WHERE l.owner_id = $1 AND l.deleted_at IS NULL";

/// A new link row; nothing when the code is taken (even by a deleted link).
pub const INSERT_LINK: &str = "INSERT INTO links (code, url, owner_id, title, redirect_status, \
     password_hash, expires_at, max_clicks, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (code) DO NOTHING";

/// The answer to a creation, saved under its idempotency key; a live record of the key is
/// left alone (no row changes).
pub const SAVE_IDEMPOTENCY: &str = "INSERT INTO idempotency_keys \
     (user_id, key, request_hash, state, status, location, response, created_at) \
     VALUES ($1, $2, $3, 'done', $4, $5, $6, $7) \
     ON CONFLICT (user_id, key) DO UPDATE SET \
     request_hash = excluded.request_hash, state = excluded.state, \
     status = excluded.status, location = excluded.location, \
     response = excluded.response, created_at = excluded.created_at \
     WHERE idempotency_keys.created_at < $8";

/// Counts one use of a live link, unless its click limit is reached.
pub const CONSUME_CLICK: &str = "UPDATE links SET clicks_used = clicks_used + 1 WHERE code = $1 \
     AND deleted_at IS NULL AND (max_clicks IS NULL OR clicks_used < max_clicks)";

/// Replaces a live link's fields (its tags apart).
pub const UPDATE_LINK: &str = "UPDATE links SET url = $1, title = $2, redirect_status = $3, \
     password_hash = $4, expires_at = $5, max_clicks = $6, updated_at = $7 \
     WHERE code = $8 AND deleted_at IS NULL";

/// Removes a link's tags.
pub const DELETE_TAGS: &str = "DELETE FROM link_tags WHERE code = $1";

/// Tombstones a live link.
pub const DELETE_LINK: &str =
    "UPDATE links SET deleted_at = $1, updated_at = $1 WHERE code = $2 AND deleted_at IS NULL";

/// Tombstones every live link of an owner.
pub const DELETE_LINKS_OF: &str = "UPDATE links SET deleted_at = $1, updated_at = $1 \
     WHERE owner_id = $2 AND deleted_at IS NULL RETURNING code";

/// An idempotency record newer than a limit.
pub const IDEMPOTENCY_BY_KEY: &str = "SELECT request_hash, state, status, location, response, \
     created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at >= $3";

/// Deletes idempotency records older than a limit.
pub const PURGE_IDEMPOTENCY: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";

/// Checks that the database answers.
pub const PING: &str = "SELECT 1";

/// The first user, only while there is none.
pub const INSERT_FIRST_ADMIN: &str = "INSERT INTO users (email, name, role, created_at, \
     updated_at) SELECT $1, $2, $3, $4, $4 WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING id";

/// A new user.
pub const INSERT_USER: &str = concat!(
    "INSERT INTO users (email, name, role, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $4) RETURNING ",
    user_columns!()
);

/// A live user by id.
pub const USER_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE id = $1 AND deleted_at IS NULL"
);

/// A live user by e-mail.
pub const USER_BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE email = $1 AND deleted_at IS NULL"
);

/// Live users by id; the ids and the closing parenthesis are added per query.
pub const USERS_BY_IDS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE deleted_at IS NULL AND id IN ("
);

/// Live users after an id, ascending.
pub const USERS_AFTER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2"
);

/// Counts live admins.
pub const COUNT_ADMINS: &str =
    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND deleted_at IS NULL";

/// Replaces a live user's fields.
pub const UPDATE_USER: &str = concat!(
    "UPDATE users SET email = $1, name = $2, role = $3, updated_at = $4 \
     WHERE id = $5 AND deleted_at IS NULL RETURNING ",
    user_columns!()
);

/// Tombstones a live user.
pub const DELETE_USER: &str =
    "UPDATE users SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL";

/// Revokes every live key of a user.
pub const REVOKE_KEYS_OF: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL";

/// A new API key.
pub const INSERT_KEY: &str = concat!(
    "INSERT INTO api_keys (user_id, name, prefix, hash, scopes, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    key_columns!()
);

/// A user's live keys, oldest first.
pub const KEYS_OF: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id"
);

/// Revokes one live key of a user.
pub const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = $1 \
     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL";

/// The live user and key of a key hash: how every API request is authenticated.
pub const KEY_BY_HASH: &str = "SELECT u.id, u.email, u.name, u.role, u.created_at, \
     u.updated_at, k.id AS key_id, k.name AS key_name, k.prefix, k.scopes, \
     k.created_at AS key_created_at, k.last_used_at \
     FROM api_keys k JOIN users u ON u.id = k.user_id \
     WHERE k.hash = $1 AND k.revoked_at IS NULL AND u.deleted_at IS NULL";

/// The hashes of every live key of a live user.
pub const LIVE_KEY_HASHES: &str = "SELECT k.hash FROM api_keys k JOIN users u ON u.id = k.user_id \
     WHERE k.revoked_at IS NULL AND u.deleted_at IS NULL";

/// Records a key's use, unless it was recorded since a given instant.
pub const TOUCH_KEY: &str = "UPDATE api_keys SET last_used_at = $1 \
     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)";

/// A live user's password hash (NULL when none is set).
pub const PASSWORD_OF: &str =
    "SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL";

/// Sets a live user's password hash.
pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $1, updated_at = $2 \
     WHERE id = $3 AND deleted_at IS NULL";

/// A new session or sign-in link.
pub const INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, user_id, kind, csrf, \
     created_at, seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)";

/// A session or sign-in link with its live user, by the token's hash.
pub const SESSION_BY_TOKEN: &str = "SELECT u.id, u.email, u.name, u.role, u.created_at, u.updated_at, \
     s.kind AS session_kind, s.csrf AS session_csrf, s.created_at AS session_created_at, \
     s.seen_at AS session_seen_at, s.expires_at AS session_expires_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND u.deleted_at IS NULL";

/// Records a session's use, unless it was recorded since a given instant.
pub const TOUCH_SESSION: &str =
    "UPDATE sessions SET seen_at = $1 WHERE token_hash = $2 AND seen_at < $3";

/// Ends one session, or uses up one sign-in link.
pub const END_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";

/// Ends every session and sign-in link of a user but one (`$2`, which may match none).
pub const END_SESSIONS_OF: &str = "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2";

/// Forgets sessions and sign-in links past their absolute expiry.
pub const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at < $1";

/// Expands, in a module `shared` of the adapter, the code that runs the statements above
/// with the adapter's backend, and implements `LinkStore` and `UserStore` for `$store`:
///
/// - `db`, `row`: sqlx's database and row types;
/// - `contains`: the dialect's substring-position function (`instr`, `strpos`);
/// - `read`, `write`: the pool fields reads and writes go to (the same field twice for one
///   pool); `pools`: the pools and their names, for metrics;
/// - `insert_link`, `get_redirect`: the adapter's own methods for those two operations;
/// - `lock_first_start`: the adapter's function that serialises `bootstrap_admin` between
///   nodes, called first in its transaction.
///
/// `shared` also holds the row mappers and statements the adapter's own code needs
/// (`save_link`, `insert_tags`, `page_query`, `redirect_from_row`, …).
macro_rules! sql_store {
    (
        $store:ident {
            db: $db:ident,
            row: $row:ty,
            contains: $contains:literal,
            read: $read:ident,
            write: $write:ident,
            pools: [$($pool_name:literal => $pool:ident),+ $(,)?],
            insert_link: $insert_link:ident,
            get_redirect: $get_redirect:ident,
            lock_first_start: $lock:ident $(,)?
        }
    ) => {
        /// The code both SQL adapters share, expanded with this backend's types (see
        /// `store::sql`).
        mod shared {
            use async_trait::async_trait;
            use std::collections::HashMap;

            use chrono::{DateTime, Utc};
            use sqlx::$db;

            use super::$store;
            use $crate::clock::to_millis;
            use $crate::domain::code::Code;
            use $crate::domain::user::{Email, UserDraft, UserId};
            use $crate::store::rows::on_unique;
            use $crate::store::{
                BATCH_CHUNK, ClickFact, ClickStats, ClickSums, ClickTotals, IdempotencyRecord, IdempotencySave,
                KeyRecord, LinkCursor, LinkFields, LinkOrder, LinkPage, LinkQuery, LinkRecord, LinkStore, NewKey,
                NewSession, PageRequest, PoolUsage, RedirectTarget, SessionRecord, StoreError,
                StoreResult, TagCount, Taken, UserRecord, UserStore, sql,
            };

            $crate::store::rows::row_mappers!($row);
            $crate::store::rows::click_statements!($db);

            type Connection = <$db as sqlx::Database>::Connection;

            /// A live link with its tags and click total.
            pub(super) async fn fetch_link<'e>(
                ex: impl sqlx::Executor<'e, Database = $db>,
                code: &str,
            ) -> StoreResult<Option<LinkRecord>> {
                let row = sqlx::query(sql::LINK_BY_CODE)
                    .bind(code)
                    .fetch_optional(ex)
                    .await?;
                Ok(row.as_ref().map(link_from_row).transpose()?)
            }

            /// Inserts the link row; `Ok(false)` when the code is taken.
            async fn insert_link_row(
                conn: &mut Connection,
                link: &LinkRecord,
            ) -> StoreResult<bool> {
                let f = &link.fields;
                let done = sqlx::query(sql::INSERT_LINK)
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
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Saves a new link with its tags on `conn`, inside the caller's transaction,
            /// and the answer under its idempotency key when there is one.
            pub(super) async fn save_link(
                conn: &mut Connection,
                link: &LinkRecord,
                idempotency: Option<&IdempotencySave>,
            ) -> StoreResult<()> {
                if let Some(idem) = idempotency {
                    let saved = sqlx::query(sql::SAVE_IDEMPOTENCY)
                        .bind(idem.user_id)
                        .bind(&idem.key)
                        .bind(&idem.request_hash)
                        .bind(i64::from(idem.response.status))
                        .bind(idem.response.location.as_deref())
                        .bind(&idem.response.body)
                        .bind(to_millis(link.created_at))
                        .bind(to_millis(idem.expired_before))
                        .execute(&mut *conn)
                        .await?;
                    if saved.rows_affected() == 0 {
                        return Err(StoreError::Conflict(Taken::IdempotencyKey));
                    }
                }
                if !insert_link_row(&mut *conn, link).await? {
                    return Err(StoreError::Conflict(Taken::Code));
                }
                insert_tags(&mut *conn, link.code.as_str(), &link.fields.tags).await
            }

            /// Adds `$, $, …)` for `ids` to a statement that ends with ` IN (`.
            fn push_ids(qb: &mut sqlx::QueryBuilder<$db>, ids: &[UserId]) {
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                list.push_unseparated(")");
            }

            /// The texts of codes, for binding.
            fn code_strings(codes: &[Code]) -> Vec<String> {
                codes.iter().map(|c| c.as_str().to_owned()).collect()
            }

            /// Adds the filters of a listing query (owner, tag, text) to a statement.
            fn push_filters(qb: &mut sqlx::QueryBuilder<$db>, query: &LinkQuery) {
                qb.push(" WHERE owner_id = ")
                    .push_bind(query.owner_id)
                    .push(" AND deleted_at IS NULL");
                if let Some(tag) = &query.tag {
                    qb.push(
                        " AND EXISTS (SELECT 1 FROM link_tags t \
                         WHERE t.code = links.code AND t.tag = ",
                    )
                    .push_bind(tag.clone())
                    .push(")");
                }
                if let Some(url) = &query.url {
                    qb.push(" AND url = ").push_bind(url.clone());
                }
                if let Some(q) = &query.q {
                    let q = q.to_ascii_lowercase();
                    qb.push(concat!(" AND (", $contains, "(lower(url), "))
                        .push_bind(q.clone())
                        .push(concat!(") > 0 OR ", $contains, "(lower(COALESCE(title, '')), "))
                        .push_bind(q.clone())
                        .push(concat!(") > 0 OR ", $contains, "(lower(code), "))
                        .push_bind(q)
                        .push(") > 0)");
                }
            }

            /// The statement for one page of a listing, after `prefix` (e.g. `EXPLAIN `):
            /// filters, keyset cursor, order, limit (one more than asked, to learn whether
            /// more follow) and offset.
            pub(super) fn page_query(prefix: &str, query: &LinkQuery) -> sqlx::QueryBuilder<$db> {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new(format!("{prefix}{}", sql::LINK_LISTING));
                push_filters(&mut qb, query);
                if query.order != LinkOrder::Newest {
                    qb.push(query.order.sql())
                        .push(" LIMIT ")
                        .push_bind(i64::from(query.limit) + 1);
                    if let PageRequest::Offset(offset) = query.page {
                        qb.push(" OFFSET ")
                            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
                    }
                    return qb;
                }
                if let PageRequest::After(Some(cursor)) = &query.page {
                    return after_cursor(prefix, query, cursor);
                }
                qb.push(query.order.sql())
                    .push(" LIMIT ")
                    .push_bind(i64::from(query.limit) + 1);
                if let PageRequest::Offset(offset) = query.page {
                    qb.push(" OFFSET ")
                        .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
                }
                qb
            }

            /// The page after `cursor`, newest first, as two index ranges: the links of the
            /// cursor's own time after its code, then the older ones, each read in index
            /// order and cut at the page size. (One condition `created_at <= c AND
            /// (created_at < c OR code > k)` would start every page at the first link of
            /// time `c`, so that links sharing one time cost a page each to step over.)
            fn after_cursor(
                prefix: &str,
                query: &LinkQuery,
                cursor: &LinkCursor,
            ) -> sqlx::QueryBuilder<$db> {
                let take = i64::from(query.limit) + 1;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "{prefix}SELECT * FROM (SELECT * FROM ({}",
                    sql::LINK_LISTING
                ));
                push_filters(&mut qb, query);
                qb.push(" AND created_at = ")
                    .push_bind(cursor.created_at)
                    .push(" AND code > ")
                    .push_bind(cursor.code.clone())
                    .push(" ORDER BY code ASC LIMIT ")
                    .push_bind(take)
                    .push(format!(") AS same_time UNION ALL SELECT * FROM ({}", sql::LINK_LISTING));
                push_filters(&mut qb, query);
                qb.push(" AND created_at < ")
                    .push_bind(cursor.created_at)
                    .push(LinkOrder::Newest.sql())
                    .push(" LIMIT ")
                    .push_bind(take)
                    .push(") AS older) AS page")
                    .push(LinkOrder::Newest.sql())
                    .push(" LIMIT ")
                    .push_bind(take);
                qb
            }

            /// Inserts a link's tags in one statement.
            pub(super) async fn insert_tags(
                conn: &mut Connection,
                code: &str,
                tags: &[String],
            ) -> StoreResult<()> {
                if tags.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO link_tags (code, tag) ");
                qb.push_values(tags, |mut b, tag| {
                    b.push_bind(code).push_bind(tag);
                });
                qb.build().execute(&mut *conn).await?;
                Ok(())
            }

            async fn insert_key<'e>(
                ex: impl sqlx::Executor<'e, Database = $db>,
                key: &NewKey,
                now: DateTime<Utc>,
            ) -> StoreResult<KeyRecord> {
                let row = sqlx::query(sql::INSERT_KEY)
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

            #[async_trait]
            impl LinkStore for $store {
                async fn insert_link(
                    &self,
                    link: &LinkRecord,
                    idempotency: Option<&IdempotencySave>,
                ) -> StoreResult<()> {
                    self.$insert_link(link, idempotency).await
                }

                async fn insert_links(
                    &self,
                    links: &[LinkRecord],
                ) -> StoreResult<Vec<StoreResult<()>>> {
                    let mut tx = self.$write.begin().await?;
                    let mut results = Vec::with_capacity(links.len());
                    for link in links {
                        if insert_link_row(&mut tx, link).await? {
                            insert_tags(&mut tx, link.code.as_str(), &link.fields.tags).await?;
                            results.push(Ok(()));
                        } else {
                            results.push(Err(StoreError::Conflict(Taken::Code)));
                        }
                    }
                    tx.commit().await?;
                    Ok(results)
                }

                async fn get_link(&self, code: &Code) -> StoreResult<Option<LinkRecord>> {
                    fetch_link(&self.$read, code.as_str()).await
                }

                async fn get_redirect(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
                    self.$get_redirect(code).await
                }

                async fn consume_click(&self, code: &Code) -> StoreResult<bool> {
                    let done = sqlx::query(sql::CONSUME_CLICK)
                        .bind(code.as_str())
                        .execute(&self.$write)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn update_link(
                    &self,
                    code: &Code,
                    fields: &LinkFields,
                    now: DateTime<Utc>,
                ) -> StoreResult<LinkRecord> {
                    let mut tx = self.$write.begin().await?;
                    let done = sqlx::query(sql::UPDATE_LINK)
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
                    sqlx::query(sql::DELETE_TAGS)
                        .bind(code.as_str())
                        .execute(&mut *tx)
                        .await?;
                    insert_tags(&mut tx, code.as_str(), &fields.tags).await?;
                    let link = fetch_link(&mut *tx, code.as_str())
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    tx.commit().await?;
                    Ok(link)
                }

                async fn delete_link(&self, code: &Code, now: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query(sql::DELETE_LINK)
                        .bind(to_millis(now))
                        .bind(code.as_str())
                        .execute(&self.$write)
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
                    let codes: Vec<String> = sqlx::query_scalar(sql::DELETE_LINKS_OF)
                        .bind(to_millis(now))
                        .bind(owner_id)
                        .fetch_all(&self.$write)
                        .await?;
                    Ok(codes.into_iter().map(Code::from_trusted).collect())
                }

                async fn list_links(&self, query: &LinkQuery) -> StoreResult<LinkPage> {
                    let mut qb = page_query("", query);
                    let rows = qb.build().fetch_all(&self.$read).await?;
                    let mut links = rows
                        .iter()
                        .map(link_from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    let has_more = links.len() > query.limit as usize;
                    links.truncate(query.limit as usize);

                    let total = if let PageRequest::Offset(_) = query.page {
                        let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM links");
                        push_filters(&mut qb, query);
                        let n: i64 = qb.build_query_scalar().fetch_one(&self.$read).await?;
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
                    let row = sqlx::query(sql::IDEMPOTENCY_BY_KEY)
                        .bind(user_id)
                        .bind(key)
                        .bind(to_millis(not_before))
                        .fetch_optional(&self.$write)
                        .await?;
                    Ok(row.as_ref().map(idempotency_from_row).transpose()?)
                }

                async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    let done = sqlx::query(sql::PURGE_IDEMPOTENCY)
                        .bind(to_millis(before))
                        .execute(&self.$write)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn apply_clicks(
                    &self,
                    batch_id: &str,
                    clicks: &[ClickFact],
                ) -> StoreResult<usize> {
                    if clicks.is_empty() {
                        return Ok(0);
                    }
                    let mut tx = self.$write.begin().await?;
                    let applied = apply_click_batch(&mut tx, batch_id, clicks).await?;
                    tx.commit().await?;
                    Ok(applied)
                }

                async fn apply_click_totals(
                    &self,
                    batch_id: &str,
                    totals: &ClickTotals,
                ) -> StoreResult<bool> {
                    if totals.is_empty() {
                        return Ok(false);
                    }
                    let mut tx = self.$write.begin().await?;
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
                    let mut conn = self.$read.acquire().await?;
                    let codes = [code.as_str().to_owned()];
                    let (from, to) = (to_millis(from), to_millis(to));
                    let series = click_series_on(&mut conn, &codes, from, to, bucket_ms).await?;
                    let dims = click_dims_on(&mut conn, &codes, from, to).await?;
                    let sums = click_sums_on(&mut conn, &codes, from, to).await?;
                    Ok(ClickStats {
                        series: series.into_iter().map(|(_, t, n, b)| (t, n, b)).collect(),
                        dims: dims.into_iter().map(|(_, d, v, n)| (d, v, n)).collect(),
                        unique_visitors: sums.first().map_or(0, |(_, s)| s.unique_visitors),
                    })
                }

                async fn click_sums(
                    &self,
                    codes: &[Code],
                    from: DateTime<Utc>,
                    to: DateTime<Utc>,
                ) -> StoreResult<HashMap<Code, ClickSums>> {
                    let mut conn = self.$read.acquire().await?;
                    let mut out = HashMap::new();
                    for chunk in codes.chunks(BATCH_CHUNK) {
                        let chunk = code_strings(chunk);
                        let rows = click_sums_on(&mut conn, &chunk, to_millis(from), to_millis(to))
                            .await?;
                        out.extend(rows.into_iter().map(|(c, s)| (Code::from_trusted(c), s)));
                    }
                    Ok(out)
                }

                async fn click_series(
                    &self,
                    codes: &[Code],
                    from: DateTime<Utc>,
                    to: DateTime<Utc>,
                    bucket_ms: i64,
                ) -> StoreResult<HashMap<Code, Vec<(i64, i64, i64)>>> {
                    let mut conn = self.$read.acquire().await?;
                    let mut out: HashMap<Code, Vec<(i64, i64, i64)>> = HashMap::new();
                    for chunk in codes.chunks(BATCH_CHUNK) {
                        let chunk = code_strings(chunk);
                        let (from, to) = (to_millis(from), to_millis(to));
                        for (c, t, n, b) in click_series_on(&mut conn, &chunk, from, to, bucket_ms).await? {
                            out.entry(Code::from_trusted(c)).or_default().push((t, n, b));
                        }
                    }
                    Ok(out)
                }

                async fn click_dims(
                    &self,
                    codes: &[Code],
                    from: DateTime<Utc>,
                    to: DateTime<Utc>,
                ) -> StoreResult<HashMap<Code, Vec<(String, String, i64)>>> {
                    let mut conn = self.$read.acquire().await?;
                    let mut out: HashMap<Code, Vec<(String, String, i64)>> = HashMap::new();
                    for chunk in codes.chunks(BATCH_CHUNK) {
                        let chunk = code_strings(chunk);
                        for (c, d, v, n) in click_dims_on(&mut conn, &chunk, to_millis(from), to_millis(to)).await? {
                            out.entry(Code::from_trusted(c)).or_default().push((d, v, n));
                        }
                    }
                    Ok(out)
                }

                async fn count_links(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, u64>> {
                    let mut out = HashMap::new();
                    for chunk in owners.chunks(BATCH_CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "SELECT owner_id, CAST(COUNT(*) AS BIGINT) FROM links \
                             WHERE deleted_at IS NULL AND owner_id IN (",
                        );
                        push_ids(&mut qb, chunk);
                        qb.push(" GROUP BY owner_id");
                        let rows: Vec<(UserId, i64)> =
                            qb.build_query_as().fetch_all(&self.$read).await?;
                        out.extend(rows.into_iter().map(|(o, n)| (o, u64::try_from(n).unwrap_or(0))));
                    }
                    Ok(out)
                }

                async fn owner_tags(
                    &self,
                    owners: &[UserId],
                ) -> StoreResult<HashMap<UserId, Vec<TagCount>>> {
                    let mut out: HashMap<UserId, Vec<TagCount>> = HashMap::new();
                    for chunk in owners.chunks(BATCH_CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "SELECT l.owner_id, t.tag, CAST(COUNT(*) AS BIGINT) FROM link_tags t \
                             JOIN links l ON l.code = t.code \
                             WHERE l.deleted_at IS NULL AND l.owner_id IN (",
                        );
                        push_ids(&mut qb, chunk);
                        qb.push(" GROUP BY l.owner_id, t.tag ORDER BY l.owner_id, t.tag");
                        let rows: Vec<(UserId, String, i64)> =
                            qb.build_query_as().fetch_all(&self.$read).await?;
                        for (owner, tag, n) in rows {
                            out.entry(owner).or_default().push(TagCount {
                                tag,
                                links: u64::try_from(n).unwrap_or(0),
                            });
                        }
                    }
                    Ok(out)
                }

                async fn owner_clicks(&self, owner: UserId) -> StoreResult<i64> {
                    Ok(sqlx::query_scalar(sql::OWNER_CLICKS)
                        .bind(owner)
                        .fetch_one(&self.$read)
                        .await?)
                }

                async fn daily_salt(&self, day_ms: i64, candidate: &str) -> StoreResult<String> {
                    let mut conn = self.$write.acquire().await?;
                    daily_salt_on(&mut conn, day_ms, candidate).await
                }

                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query(sql::PING).execute(&self.$read).await?;
                    Ok(())
                }

                fn pool_usage(&self) -> Vec<PoolUsage> {
                    vec![$(PoolUsage::of($pool_name, &self.$pool)),+]
                }
            }

            #[async_trait]
            impl UserStore for $store {
                async fn bootstrap_admin(
                    &self,
                    admin: &UserDraft,
                    key: &NewKey,
                    now: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let mut tx = self.$write.begin().await?;
                    $store::$lock(&mut tx).await?;
                    let id: Option<i64> = sqlx::query_scalar(sql::INSERT_FIRST_ADMIN)
                        .bind(admin.email.as_str())
                        .bind(&admin.name)
                        .bind(admin.role.as_str())
                        .bind(to_millis(now))
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(id) = id else { return Ok(false) };
                    let key = NewKey {
                        user_id: id,
                        ..key.clone()
                    };
                    insert_key(&mut *tx, &key, now).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn create_user(
                    &self,
                    user: &UserDraft,
                    now: DateTime<Utc>,
                ) -> StoreResult<UserRecord> {
                    let row = sqlx::query(sql::INSERT_USER)
                        .bind(user.email.as_str())
                        .bind(&user.name)
                        .bind(user.role.as_str())
                        .bind(to_millis(now))
                        .fetch_one(&self.$write)
                        .await
                        .map_err(|e| on_unique(e, Taken::Email))?;
                    Ok(user_from_row(&row)?)
                }

                async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
                    let row = sqlx::query(sql::USER_BY_ID)
                        .bind(id)
                        .fetch_optional(&self.$read)
                        .await?;
                    Ok(row.as_ref().map(user_from_row).transpose()?)
                }

                async fn get_users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
                    let mut out = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(BATCH_CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(sql::USERS_BY_IDS);
                        push_ids(&mut qb, chunk);
                        for row in qb.build().fetch_all(&self.$read).await? {
                            out.push(user_from_row(&row)?);
                        }
                    }
                    Ok(out)
                }

                async fn find_user_by_email(
                    &self,
                    email: &Email,
                ) -> StoreResult<Option<UserRecord>> {
                    let row = sqlx::query(sql::USER_BY_EMAIL)
                        .bind(email.as_str())
                        .fetch_optional(&self.$read)
                        .await?;
                    Ok(row.as_ref().map(user_from_row).transpose()?)
                }

                async fn list_users(
                    &self,
                    after: Option<UserId>,
                    limit: u32,
                ) -> StoreResult<(Vec<UserRecord>, bool)> {
                    let rows = sqlx::query(sql::USERS_AFTER)
                        .bind(after.unwrap_or(0))
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.$read)
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
                    let n: i64 = sqlx::query_scalar(sql::COUNT_ADMINS)
                        .fetch_one(&self.$read)
                        .await?;
                    Ok(n.max(0) as u64)
                }

                async fn update_user(
                    &self,
                    id: UserId,
                    user: &UserDraft,
                    now: DateTime<Utc>,
                ) -> StoreResult<UserRecord> {
                    let row = sqlx::query(sql::UPDATE_USER)
                        .bind(user.email.as_str())
                        .bind(&user.name)
                        .bind(user.role.as_str())
                        .bind(to_millis(now))
                        .bind(id)
                        .fetch_optional(&self.$write)
                        .await
                        .map_err(|e| on_unique(e, Taken::Email))?;
                    row.as_ref()
                        .map(user_from_row)
                        .transpose()?
                        .ok_or(StoreError::NotFound)
                }

                async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()> {
                    let mut tx = self.$write.begin().await?;
                    let done = sqlx::query(sql::DELETE_USER)
                        .bind(to_millis(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query(sql::REVOKE_KEYS_OF)
                        .bind(to_millis(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::END_SESSIONS_OF)
                        .bind(id)
                        .bind("")
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn create_key(
                    &self,
                    key: &NewKey,
                    now: DateTime<Utc>,
                ) -> StoreResult<KeyRecord> {
                    insert_key(&self.$write, key, now).await
                }

                async fn list_keys(&self, user_id: UserId) -> StoreResult<Vec<KeyRecord>> {
                    let rows = sqlx::query(sql::KEYS_OF)
                        .bind(user_id)
                        .fetch_all(&self.$read)
                        .await?;
                    Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
                }

                async fn revoke_key(
                    &self,
                    user_id: UserId,
                    key_id: i64,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let done = sqlx::query(sql::REVOKE_KEY)
                        .bind(to_millis(now))
                        .bind(key_id)
                        .bind(user_id)
                        .execute(&self.$write)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                async fn authenticate(
                    &self,
                    key_hash: &str,
                ) -> StoreResult<Option<(UserRecord, KeyRecord)>> {
                    let row = sqlx::query(sql::KEY_BY_HASH)
                        .bind(key_hash)
                        .fetch_optional(&self.$read)
                        .await?;
                    Ok(row.as_ref().map(caller_from_row).transpose()?)
                }

                async fn live_key_hashes(&self) -> StoreResult<Vec<String>> {
                    Ok(sqlx::query_scalar(sql::LIVE_KEY_HASHES)
                        .fetch_all(&self.$read)
                        .await?)
                }

                async fn touch_key(&self, key_id: i64, now: DateTime<Utc>) -> StoreResult<()> {
                    let now = to_millis(now);
                    sqlx::query(sql::TOUCH_KEY)
                        .bind(now)
                        .bind(key_id)
                        .bind(now - 60_000)
                        .execute(&self.$write)
                        .await?;
                    Ok(())
                }

                async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>> {
                    let hash: Option<Option<String>> = sqlx::query_scalar(sql::PASSWORD_OF)
                        .bind(id)
                        .fetch_optional(&self.$read)
                        .await?;
                    Ok(hash.flatten())
                }

                async fn set_password(
                    &self,
                    id: UserId,
                    hash: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let done = sqlx::query(sql::SET_PASSWORD)
                        .bind(hash)
                        .bind(to_millis(now))
                        .bind(id)
                        .execute(&self.$write)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                async fn create_session(
                    &self,
                    s: &NewSession,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    sqlx::query(sql::INSERT_SESSION)
                        .bind(&s.token_hash)
                        .bind(s.user_id)
                        .bind(s.kind.as_str())
                        .bind(&s.csrf)
                        .bind(to_millis(now))
                        .bind(to_millis(s.expires_at))
                        .execute(&self.$write)
                        .await?;
                    Ok(())
                }

                async fn session(
                    &self,
                    token_hash: &str,
                ) -> StoreResult<Option<(UserRecord, SessionRecord)>> {
                    let row = sqlx::query(sql::SESSION_BY_TOKEN)
                        .bind(token_hash)
                        .fetch_optional(&self.$read)
                        .await?;
                    Ok(row.as_ref().map(session_from_row).transpose()?)
                }

                async fn touch_session(
                    &self,
                    token_hash: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let now = to_millis(now);
                    sqlx::query(sql::TOUCH_SESSION)
                        .bind(now)
                        .bind(token_hash)
                        .bind(now - 60_000)
                        .execute(&self.$write)
                        .await?;
                    Ok(())
                }

                async fn end_session(&self, token_hash: &str) -> StoreResult<bool> {
                    let done = sqlx::query(sql::END_SESSION)
                        .bind(token_hash)
                        .execute(&self.$write)
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn end_sessions_of(&self, user_id: UserId, keep: &str) -> StoreResult<u64> {
                    let done = sqlx::query(sql::END_SESSIONS_OF)
                        .bind(user_id)
                        .bind(keep)
                        .execute(&self.$write)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    let done = sqlx::query(sql::PURGE_SESSIONS)
                        .bind(to_millis(before))
                        .execute(&self.$write)
                        .await?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

pub(crate) use sql_store;
