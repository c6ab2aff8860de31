-- Click analytics: bots apart from people, per-day dimensions, daily unique visitors, and
-- the ids of applied events so a redelivered batch is counted once.

ALTER TABLE clicks_by_hour ADD COLUMN bots BIGINT NOT NULL DEFAULT 0;

-- People's clicks per link, day (start, ms) and dimension (referrer, browser, os, device,
-- country).
CREATE TABLE clicks_by_dim (
    code   TEXT    COLLATE "C" NOT NULL,
    day    BIGINT NOT NULL,
    dim    TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    clicks BIGINT NOT NULL,
    PRIMARY KEY (code, day, dim, value)
);

-- One row per visitor, link and day; the visitor is a hash of IP and user agent under that
-- day's salt, so nobody can be followed from one day to the next.
CREATE TABLE visitors (
    code    TEXT    NOT NULL,
    day     BIGINT NOT NULL,
    visitor TEXT    NOT NULL,
    PRIMARY KEY (code, day, visitor)
);

CREATE TABLE click_events (
    event_id TEXT    PRIMARY KEY,
    at       BIGINT NOT NULL
);
CREATE INDEX click_events_at ON click_events (at);

CREATE TABLE daily_salts (
    day  BIGINT PRIMARY KEY,
    salt TEXT    NOT NULL
);
