//! What the SQL adapters share, written once: turning rows into records ([`row_mappers!`];
//! column names and types are the same in every dialect's schema) and the statements built
//! with `QueryBuilder` ([`listing_builders!`]; its placeholders suit every backend). Each
//! adapter expands both with its own types, so the adapters cannot drift apart here.

/// Defines `link_from_row`, `redirect_from_row`, `user_from_row`, `key_from_row`,
/// `caller_from_row` and `idempotency_from_row` for a `sqlx` row type.
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

        fn redirect_from_row(row: &$row) -> Result<$crate::store::RedirectTarget, sqlx::Error> {
            use sqlx::Row;
            Ok($crate::store::RedirectTarget {
                url: $crate::domain::target_url::TargetUrl::from_trusted(row.try_get("url")?),
                redirect_status: status_from_db(row.try_get("redirect_status")?),
                password_hash: row.try_get("password_hash")?,
                expires_at: opt_time(row.try_get("expires_at")?),
                max_clicks: row.try_get("max_clicks")?,
                clicks_used: row.try_get("clicks_used")?,
                deleted: row.try_get("deleted")?,
            })
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

/// Defines the statements built with `QueryBuilder` (whose placeholders suit any backend):
/// `push_filters`, `page_query` and `insert_tags`. `$contains` names the dialect's
/// substring-position function (`instr` in SQLite, `strpos` in PostgreSQL). The adapter must
/// define `link_columns!()` before expanding this.
macro_rules! listing_builders {
    ($db:ty, $executor:ident, $contains:literal) => {
        /// Adds the filters of a listing query (owner, tag, text) to a statement.
        fn push_filters(qb: &mut sqlx::QueryBuilder<$db>, query: &$crate::store::LinkQuery) {
            qb.push(" WHERE owner_id = ")
                .push_bind(query.owner_id)
                .push(" AND deleted_at IS NULL");
            if let Some(tag) = &query.tag {
                qb.push(
                    " AND EXISTS (SELECT 1 FROM link_tags t WHERE t.code = links.code AND t.tag = ",
                )
                .push_bind(tag.clone())
                .push(")");
            }
            if let Some(q) = &query.q {
                let q = q.to_ascii_lowercase();
                qb.push(concat!(" AND (", $contains, "(lower(url), "))
                    .push_bind(q.clone())
                    .push(concat!(
                        ") > 0 OR ",
                        $contains,
                        "(lower(COALESCE(title, '')), "
                    ))
                    .push_bind(q.clone())
                    .push(concat!(") > 0 OR ", $contains, "(lower(code), "))
                    .push_bind(q)
                    .push(") > 0)");
            }
        }

        /// The statement for one page of a listing, after `prefix` (e.g. `EXPLAIN `):
        /// filters, keyset cursor, order, limit (one more than asked, to learn whether more
        /// follow) and offset.
        fn page_query(prefix: &str, query: &$crate::store::LinkQuery) -> sqlx::QueryBuilder<$db> {
            let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                "{prefix}{}",
                concat!("SELECT ", link_columns!(), " FROM links")
            ));
            push_filters(&mut qb, query);
            if let $crate::store::PageRequest::After(Some(cursor)) = &query.page {
                // `created_at <= c` bounds the index range; the OR settles ties within it.
                qb.push(" AND created_at <= ")
                    .push_bind(cursor.created_at)
                    .push(" AND (created_at < ")
                    .push_bind(cursor.created_at)
                    .push(" OR code > ")
                    .push_bind(cursor.code.clone())
                    .push(")");
            }
            qb.push(" ORDER BY created_at DESC, code ASC LIMIT ")
                .push_bind(i64::from(query.limit) + 1);
            if let $crate::store::PageRequest::Offset(offset) = query.page {
                qb.push(" OFFSET ")
                    .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
            }
            qb
        }

        /// Inserts a link's tags in one statement.
        async fn insert_tags<'e>(
            ex: impl sqlx::$executor<'e>,
            code: &str,
            tags: &[String],
        ) -> $crate::store::StoreResult<()> {
            if tags.is_empty() {
                return Ok(());
            }
            let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO link_tags (code, tag) ");
            qb.push_values(tags, |mut b, tag| {
                b.push_bind(code).push_bind(tag);
            });
            qb.build().execute(ex).await?;
            Ok(())
        }
    };
}

pub(crate) use listing_builders;

/// Maps a unique-constraint violation to `Conflict(taken)`, anything else to `Other`.
pub(crate) fn on_unique(e: sqlx::Error, taken: super::Taken) -> super::StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => super::StoreError::Conflict(taken),
        _ => e.into(),
    }
}

impl From<sqlx::Error> for super::StoreError {
    fn from(e: sqlx::Error) -> Self {
        super::StoreError::Other(e.into())
    }
}
