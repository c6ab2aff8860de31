-- The dashboard: a user may have a password, and signs in to a session.

ALTER TABLE users ADD COLUMN password_hash TEXT;

-- A browser session, or a one-time sign-in link (kind 'link'). Only a SHA-256 of the
-- token is kept. `csrf` is the form token of a session.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('web', 'link')),
    csrf       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    seen_at    BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
