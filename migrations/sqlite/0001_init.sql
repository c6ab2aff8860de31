-- snip schema, SQLite dialect. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    email       TEXT    NOT NULL,
    name        TEXT    NOT NULL DEFAULT '',
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER
);
-- E-mails are unique among live users; a deleted user's address may be used again.
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL DEFAULT '',
    prefix       TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE links (
    code            TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    owner_id        INTEGER NOT NULL REFERENCES users (id),
    title           TEXT,
    redirect_status INTEGER NOT NULL DEFAULT 302 CHECK (redirect_status IN (301, 302, 307, 308)),
    password_hash   TEXT,
    expires_at      INTEGER,
    max_clicks      INTEGER,
    -- Exact count of redirects, kept only for links with max_clicks.
    clicks_used     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- Deleted links stay as tombstones so their codes are never handed out again.
    deleted_at      INTEGER
) WITHOUT ROWID;
-- A user's links, newest first, by keyset cursor.
CREATE INDEX links_owner_created ON links (owner_id, created_at DESC, code);

CREATE TABLE link_tags (
    code TEXT NOT NULL REFERENCES links (code),
    tag  TEXT NOT NULL,
    PRIMARY KEY (code, tag)
) WITHOUT ROWID;
CREATE INDEX link_tags_tag ON link_tags (tag, code);

-- Redirects per link and hour (hour = start of the hour, ms).
CREATE TABLE clicks_by_hour (
    code   TEXT    NOT NULL,
    hour   INTEGER NOT NULL,
    clicks INTEGER NOT NULL,
    PRIMARY KEY (code, hour)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    user_id      INTEGER NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('in_flight', 'done')),
    status       INTEGER,
    location     TEXT,
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
