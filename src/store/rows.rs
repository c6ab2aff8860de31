//! Turning rows into records, the same way for every SQL backend. Each adapter expands
//! [`row_mappers!`] with its row type: the column names and types are the same in every
//! dialect's schema, so one text serves all, and the adapters cannot drift apart here.

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
