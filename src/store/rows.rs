//! What the SQL adapters share besides their statements (those are in `sql.rs`): turning
//! rows into records ([`row_mappers!`]; column names and types are the same in every
//! dialect's schema), the analytics statements ([`click_statements!`]) and the mapping of
//! sqlx errors. Each adapter expands the macros with its own types, so the adapters cannot
//! drift apart here.

/// Defines `link_from_row`, `redirect_from_row`, `user_from_row`, `key_from_row`,
/// `caller_from_row`, `session_from_row` and `idempotency_from_row` for a `sqlx` row type.
macro_rules! row_mappers {
    ($row:ty) => {
        fn opt_time(ms: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
            ms.map($crate::clock::from_millis)
        }

        fn status_from_db(s: i64) -> $crate::domain::link::RedirectStatus {
            $crate::domain::link::RedirectStatus::from_code(s).unwrap_or_default()
        }

        fn link_from_row(row: &$row) -> Result<$crate::store::LinkRecord, sqlx::Error> {
            use sqlx::Row;
            // Tags come folded into one comma-separated column; tags never contain commas.
            let mut tags: Vec<String> = row
                .try_get::<Option<String>, _>("tags")?
                .map(|t| t.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            tags.sort();
            Ok($crate::store::LinkRecord {
                code: $crate::domain::code::Code::from_trusted(row.try_get("code")?),
                owner_id: row.try_get("owner_id")?,
                fields: $crate::store::LinkFields {
                    url: $crate::domain::target_url::TargetUrl::from_trusted(row.try_get("url")?),
                    title: row.try_get("title")?,
                    tags,
                    expires_at: opt_time(row.try_get("expires_at")?),
                    max_clicks: row.try_get("max_clicks")?,
                    redirect_status: status_from_db(row.try_get("redirect_status")?),
                    password_hash: row.try_get("password_hash")?,
                },
                clicks: row.try_get("clicks")?,
                created_at: $crate::clock::from_millis(row.try_get("created_at")?),
                updated_at: $crate::clock::from_millis(row.try_get("updated_at")?),
            })
        }

        pub(super) fn redirect_from_row(
            row: &$row,
        ) -> Result<$crate::store::RedirectTarget, sqlx::Error> {
            use sqlx::Row;
            Ok($crate::store::RedirectTarget::new(
                $crate::domain::target_url::TargetUrl::from_trusted(row.try_get("url")?),
                status_from_db(row.try_get("redirect_status")?),
                row.try_get("deleted")?,
                $crate::store::Gate {
                    password_hash: row.try_get("password_hash")?,
                    expires_at: opt_time(row.try_get("expires_at")?),
                    max_clicks: row.try_get("max_clicks")?,
                    clicks_used: row.try_get("clicks_used")?,
                },
            ))
        }

        fn user_from_row(row: &$row) -> Result<$crate::store::UserRecord, sqlx::Error> {
            use sqlx::Row;
            let role: String = row.try_get("role")?;
            Ok($crate::store::UserRecord {
                id: row.try_get("id")?,
                email: $crate::domain::user::Email::from_trusted(row.try_get("email")?),
                name: row.try_get("name")?,
                role: $crate::domain::user::Role::parse(&role)
                    .unwrap_or($crate::domain::user::Role::Member),
                created_at: $crate::clock::from_millis(row.try_get("created_at")?),
                updated_at: $crate::clock::from_millis(row.try_get("updated_at")?),
            })
        }

        /// A key's columns, named with `prefix` (`""` for the api_keys table itself,
        /// `"key_"` in the users join of `authenticate`).
        fn key_columns_from_row(
            row: &$row,
            id: &str,
            name: &str,
            created_at: &str,
            user_id: i64,
        ) -> Result<$crate::store::KeyRecord, sqlx::Error> {
            use sqlx::Row;
            let scopes: String = row.try_get("scopes")?;
            Ok($crate::store::KeyRecord {
                id: row.try_get(id)?,
                user_id,
                name: row.try_get(name)?,
                prefix: row.try_get("prefix")?,
                scopes: $crate::domain::key::Scopes::from_stored(&scopes),
                created_at: $crate::clock::from_millis(row.try_get(created_at)?),
                last_used_at: opt_time(row.try_get("last_used_at")?),
            })
        }

        fn key_from_row(row: &$row) -> Result<$crate::store::KeyRecord, sqlx::Error> {
            use sqlx::Row;
            key_columns_from_row(row, "id", "name", "created_at", row.try_get("user_id")?)
        }

        fn caller_from_row(
            row: &$row,
        ) -> Result<($crate::store::UserRecord, $crate::store::KeyRecord), sqlx::Error> {
            let user = user_from_row(row)?;
            let key = key_columns_from_row(row, "key_id", "key_name", "key_created_at", user.id)?;
            Ok((user, key))
        }

        fn session_from_row(
            row: &$row,
        ) -> Result<($crate::store::UserRecord, $crate::store::SessionRecord), sqlx::Error> {
            use sqlx::Row;
            let user = user_from_row(row)?;
            let kind: String = row.try_get("session_kind")?;
            let session = $crate::store::SessionRecord {
                kind: $crate::store::SessionKind::parse(&kind),
                csrf: row.try_get("session_csrf")?,
                created_at: $crate::clock::from_millis(row.try_get("session_created_at")?),
                seen_at: $crate::clock::from_millis(row.try_get("session_seen_at")?),
                expires_at: $crate::clock::from_millis(row.try_get("session_expires_at")?),
            };
            Ok((user, session))
        }

        fn idempotency_from_row(
            row: &$row,
        ) -> Result<$crate::store::IdempotencyRecord, sqlx::Error> {
            use sqlx::Row;
            let state: String = row.try_get("state")?;
            let response = if state == "done" {
                let status: i64 = row.try_get("status")?;
                Some($crate::store::StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    location: row.try_get("location")?,
                    body: row.try_get("response")?,
                })
            } else {
                None
            };
            Ok($crate::store::IdempotencyRecord {
                request_hash: row.try_get("request_hash")?,
                response,
                created_at: $crate::clock::from_millis(row.try_get("created_at")?),
            })
        }
    };
}

pub(crate) use row_mappers;

/// Start of the UTC day of a millisecond instant.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(86_400_000)
}

/// Defines `apply_click_batch`, `apply_click_totals_on`, `click_sums_on`, `click_series_on`,
/// `click_dims_on` and `daily_salt_on`: the analytics
/// statements, on one connection of the backend `$db`.
macro_rules! click_statements {
    ($db:ty) => {
        /// Records `batch_id` on `conn`; `false` if it was recorded before (the batch was
        /// applied, and a retry must change nothing).
        async fn claim_click_batch(
            conn: &mut <$db as sqlx::Database>::Connection,
            batch_id: &str,
            at: i64,
        ) -> $crate::store::StoreResult<bool> {
            let new_batch: Option<String> =
                sqlx::QueryBuilder::<$db>::new("INSERT INTO click_events (event_id, at) VALUES (")
                    .push_bind(batch_id.to_owned())
                    .push(", ")
                    .push_bind(at)
                    .push(") ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
                    .build_query_scalar()
                    .fetch_optional(&mut *conn)
                    .await?;
            // Ids are kept a week: far longer than any retry or redelivery.
            sqlx::QueryBuilder::<$db>::new("DELETE FROM click_events WHERE at < ")
                .push_bind(at - 7 * 86_400_000)
                .build()
                .execute(&mut *conn)
                .await?;
            Ok(new_batch.is_some())
        }

        /// Applies a batch of clicks on `conn` (inside the caller's transaction): nothing if
        /// a batch with `batch_id` was applied before; of the rest, every fact that carries
        /// an event id not seen before, and every fact without one.
        async fn apply_click_batch(
            conn: &mut <$db as sqlx::Database>::Connection,
            batch_id: &str,
            facts: &[$crate::store::ClickFact],
        ) -> $crate::store::StoreResult<usize> {
            use std::collections::HashSet;
            use $crate::clock::to_millis;

            let Some(last) = facts.iter().map(|f| to_millis(f.at)).max() else {
                return Ok(0);
            };
            if !claim_click_batch(&mut *conn, batch_id, last).await? {
                return Ok(0);
            }
            // Events with ids of their own (from the stream, where one may be redelivered in
            // another batch) count only if not seen before.
            let with_ids: Vec<(&str, i64)> = facts
                .iter()
                .filter_map(|f| f.event_id.as_deref().map(|id| (id, to_millis(f.at))))
                .collect();
            let mut fresh: HashSet<String> = HashSet::new();
            for chunk in with_ids.chunks(500) {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("INSERT INTO click_events (event_id, at) ");
                qb.push_values(chunk, |mut b, (id, at)| {
                    b.push_bind(id.to_string()).push_bind(*at);
                });
                qb.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
                fresh.extend(ids);
            }
            let mut totals = $crate::store::ClickTotals::default();
            for f in facts {
                // `remove` also drops a second copy of one event within the batch.
                if f.event_id.as_ref().is_some_and(|id| !fresh.remove(id)) {
                    continue;
                }
                totals.add(f);
            }
            write_click_totals(&mut *conn, &totals).await?;
            Ok(totals.clicks as usize)
        }

        /// Writes added-up clicks on `conn`, a few hundred rows a statement.
        async fn write_click_totals(
            conn: &mut <$db as sqlx::Database>::Connection,
            totals: &$crate::store::ClickTotals,
        ) -> $crate::store::StoreResult<()> {
            // In key order: concurrent batches (several workers on PostgreSQL) then lock
            // shared rows in the same order and cannot deadlock, and the B-trees are walked
            // once from one end to the other.
            let mut hours: Vec<_> = totals.hour_rows().collect();
            hours.sort_unstable();
            for chunk in hours.chunks(300) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO clicks_by_hour (code, hour, clicks, bots) ",
                );
                qb.push_values(chunk, |mut b, (code, hour, n, bots)| {
                    b.push_bind(code.as_str())
                        .push_bind(*hour)
                        .push_bind(*n)
                        .push_bind(*bots);
                });
                qb.push(
                    " ON CONFLICT (code, hour) DO UPDATE SET \
                     clicks = clicks_by_hour.clicks + excluded.clicks, \
                     bots = clicks_by_hour.bots + excluded.bots",
                );
                qb.build().execute(&mut *conn).await?;
            }
            let mut dims: Vec<_> = totals.dim_rows().collect();
            dims.sort_unstable();
            for chunk in dims.chunks(200) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO clicks_by_dim (code, day, dim, value, clicks) ",
                );
                qb.push_values(chunk, |mut b, (code, day, dim, value, n)| {
                    b.push_bind(code.as_str())
                        .push_bind(*day)
                        .push_bind(*dim)
                        .push_bind(*value)
                        .push_bind(*n);
                });
                qb.push(
                    " ON CONFLICT (code, day, dim, value) DO UPDATE SET \
                     clicks = clicks_by_dim.clicks + excluded.clicks",
                );
                qb.build().execute(&mut *conn).await?;
            }
            let mut visitors: Vec<_> = totals.visitor_rows().collect();
            visitors.sort_unstable();
            for chunk in visitors.chunks(300) {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("INSERT INTO visitors (code, day, visitor) ");
                qb.push_values(chunk, |mut b, (code, day, v)| {
                    b.push_bind(code.as_str()).push_bind(*day).push_bind(*v);
                });
                qb.push(" ON CONFLICT (code, day, visitor) DO NOTHING");
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Applies added-up clicks on `conn` unless `batch_id` was applied before.
        async fn apply_click_totals_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            batch_id: &str,
            totals: &$crate::store::ClickTotals,
        ) -> $crate::store::StoreResult<bool> {
            if totals.is_empty() || !claim_click_batch(&mut *conn, batch_id, totals.last_at).await?
            {
                return Ok(false);
            }
            write_click_totals(&mut *conn, totals).await?;
            Ok(true)
        }

        /// Adds ` code IN ($, $, …)` for `codes` to a statement.
        fn push_codes(qb: &mut sqlx::QueryBuilder<$db>, codes: &[String]) {
            qb.push(" code IN (");
            let mut list = qb.separated(", ");
            for c in codes {
                list.push_bind(c.clone());
            }
            list.push_unseparated(")");
        }

        /// Click totals of `codes` over `[from, to)` on `conn`, in one statement: hours give
        /// the clicks, the days the range touches give the visitors.
        async fn click_sums_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            codes: &[String],
            from: i64,
            to: i64,
        ) -> $crate::store::StoreResult<Vec<(String, $crate::store::ClickSums)>> {
            use $crate::store::rows::day_of;
            let (first_day, end_day) = (day_of(from), day_of(to - 1) + 86_400_000);
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "SELECT code, CAST(SUM(clicks) AS BIGINT), CAST(SUM(bots) AS BIGINT), \
                 CAST(0 AS BIGINT) FROM clicks_by_hour WHERE",
            );
            push_codes(&mut qb, codes);
            qb.push(" AND hour >= ").push_bind(from);
            qb.push(" AND hour < ").push_bind(to);
            qb.push(
                " GROUP BY code UNION ALL SELECT code, CAST(0 AS BIGINT), CAST(0 AS BIGINT), \
                 CAST(COUNT(*) AS BIGINT) FROM visitors WHERE",
            );
            push_codes(&mut qb, codes);
            qb.push(" AND day >= ").push_bind(first_day);
            qb.push(" AND day < ").push_bind(end_day);
            qb.push(" GROUP BY code");
            let rows: Vec<(String, i64, i64, i64)> =
                qb.build_query_as().fetch_all(&mut *conn).await?;
            let mut sums: std::collections::HashMap<String, $crate::store::ClickSums> =
                std::collections::HashMap::new();
            for (code, clicks, bots, visitors) in rows {
                let s = sums.entry(code).or_default();
                s.total += clicks;
                s.bots += bots;
                s.unique_visitors += visitors;
            }
            Ok(sums.into_iter().collect())
        }

        /// The series of `codes` over `[from, to)` in buckets of `bucket_ms` on `conn`:
        /// `(code, bucket start, clicks, bots)`, by code and bucket.
        async fn click_series_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            codes: &[String],
            from: i64,
            to: i64,
            bucket_ms: i64,
        ) -> $crate::store::StoreResult<Vec<(String, i64, i64, i64)>> {
            let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT code, hour - (hour % ");
            qb.push_bind(bucket_ms).push(
                ") AS t, CAST(SUM(clicks) AS BIGINT) AS n, CAST(SUM(bots) AS BIGINT) AS b \
                 FROM clicks_by_hour WHERE",
            );
            push_codes(&mut qb, codes);
            qb.push(" AND hour >= ").push_bind(from);
            qb.push(" AND hour < ").push_bind(to);
            qb.push(" GROUP BY code, t ORDER BY code, t");
            Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
        }

        /// Clicks of people per dimension value of `codes`, over the days `[from, to)`
        /// touches, on `conn`: `(code, dimension, value, clicks)`.
        async fn click_dims_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            codes: &[String],
            from: i64,
            to: i64,
        ) -> $crate::store::StoreResult<Vec<(String, String, String, i64)>> {
            use $crate::store::rows::day_of;
            let (first_day, end_day) = (day_of(from), day_of(to - 1) + 86_400_000);
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "SELECT code, dim, value, CAST(SUM(clicks) AS BIGINT) FROM clicks_by_dim WHERE",
            );
            push_codes(&mut qb, codes);
            qb.push(" AND day >= ").push_bind(first_day);
            qb.push(" AND day < ").push_bind(end_day);
            qb.push(" GROUP BY code, dim, value");
            Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
        }

        /// The salt of one day (see `LinkStore::daily_salt`).
        async fn daily_salt_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            day_ms: i64,
            candidate: &str,
        ) -> $crate::store::StoreResult<String> {
            sqlx::QueryBuilder::<$db>::new("DELETE FROM daily_salts WHERE day < ")
                .push_bind(day_ms)
                .build()
                .execute(&mut *conn)
                .await?;
            sqlx::QueryBuilder::<$db>::new("INSERT INTO daily_salts (day, salt) VALUES (")
                .push_bind(day_ms)
                .push(", ")
                .push_bind(candidate.to_owned())
                .push(") ON CONFLICT (day) DO NOTHING")
                .build()
                .execute(&mut *conn)
                .await?;
            let salt: String =
                sqlx::QueryBuilder::<$db>::new("SELECT salt FROM daily_salts WHERE day = ")
                    .push_bind(day_ms)
                    .build_query_scalar()
                    .fetch_one(&mut *conn)
                    .await?;
            Ok(salt)
        }
    };
}

pub(crate) use click_statements;

/// Maps a unique-constraint violation to `Conflict(taken)`, anything else to `Other`.
pub(crate) fn on_unique(e: sqlx::Error, taken: super::Taken) -> super::StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => super::StoreError::Conflict(taken),
        _ => e.into(),
    }
}

impl From<sqlx::Error> for super::StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        // SQLSTATE classes 08 (connection exception) and 57P (operator intervention:
        // shutdown, cannot connect now) mean the database is away, not the query wrong.
        let away = |code: &str| code.starts_with("08") || code.starts_with("57P");
        match &e {
            // The pool found no connection within its connect timeout (refused connects
            // are retried until then): a retry would only wait as long again.
            E::PoolTimedOut => {
                super::StoreError::Unavailable(format!("{}: {e}", super::guarded::NO_CONNECTION))
            }
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolClosed | E::WorkerCrashed => {
                super::StoreError::Unavailable(e.to_string())
            }
            E::Database(db) if db.code().is_some_and(|c| away(&c)) => {
                super::StoreError::Unavailable(e.to_string())
            }
            _ => super::StoreError::Other(e.into()),
        }
    }
}
