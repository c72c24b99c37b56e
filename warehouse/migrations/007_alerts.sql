-- Alerts: findings routed to people (DESIGN "Findings"), following Alertmanager's lifecycle.
-- The dispatcher reads `findings` and never writes it; everything it decides lives here.
--
-- `alert_groups` is the state of each notification group (route + receiver + group-by values):
-- when it is next due (group_wait, then group_interval), what it last told its receiver, and a
-- sequence number of its notifications. `alert_notifications` is the outbox: a notification is
-- recorded here, in the same transaction that advances its group, before anything is sent; the
-- unique (group_key, seq) means a restart can never record the same group state twice. Sending
-- then moves it from pending to delivered, or to failed with the error after its retries.

CREATE TABLE alert_groups (
    group_key        VARCHAR PRIMARY KEY,     -- route path + receiver + group-by label values
    route            VARCHAR NOT NULL,        -- the route's path in the tree, e.g. "root.1.0"
    receiver         VARCHAR NOT NULL,
    group_labels     VARCHAR NOT NULL,        -- JSON object: the group-by labels and their values
    created_at       TIMESTAMPTZ NOT NULL,    -- when its first alert arrived (group_wait starts)
    next_flush_at    TIMESTAMPTZ NOT NULL,    -- when the group is next looked at for a notification
    last_notified_at TIMESTAMPTZ,             -- the last notification recorded (repeat_interval)
    notified_firing  VARCHAR[] NOT NULL,      -- fingerprints the last notification told as firing
    seq              BIGINT NOT NULL,         -- notifications recorded for this group so far
    active           BOOLEAN NOT NULL         -- false once nothing in it fires: the next alert waits afresh
);

CREATE TABLE alert_notifications (
    id               VARCHAR PRIMARY KEY,
    group_key        VARCHAR NOT NULL,
    seq              BIGINT NOT NULL,
    receiver         VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,        -- pending, delivered, failed
    group_status     VARCHAR NOT NULL,        -- firing (any alert firing) or resolved
    fingerprints     VARCHAR[] NOT NULL,      -- the alerts it tells of, for "who was told about this"
    payload          VARCHAR NOT NULL,        -- JSON: the notification as recorded, rendered at send
    created_at       TIMESTAMPTZ NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_attempt_at  TIMESTAMPTZ,
    last_error       VARCHAR,                 -- never holds a secret: errors are redacted first
    delivered_at     TIMESTAMPTZ,
    UNIQUE (group_key, seq)
);

-- Silences: mute alerts whose labels match every matcher, from starts_at until ends_at.
-- Ending one early (unsilence) sets ends_at to that moment, so the record stays for the audit.
CREATE TABLE alert_silences (
    id               VARCHAR PRIMARY KEY,
    matchers         VARCHAR NOT NULL,        -- JSON list of {name, value, regex, negative}
    starts_at        TIMESTAMPTZ NOT NULL,
    ends_at          TIMESTAMPTZ NOT NULL,
    created_by       VARCHAR NOT NULL,
    comment          VARCHAR NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    ended_by         VARCHAR                  -- who ended it early, if anyone
);

-- Acknowledgements of alerts: an acknowledged alert is not repeated until it resolves. One per
-- episode of a finding (its `occurrences` when acknowledged), so a finding that resolves and
-- fires again is notified afresh.
CREATE TABLE alert_acks (
    fingerprint      VARCHAR NOT NULL,
    episode          BIGINT NOT NULL,
    acked_by         VARCHAR NOT NULL,
    acked_at         TIMESTAMPTZ NOT NULL,
    comment          VARCHAR NOT NULL,
    PRIMARY KEY (fingerprint, episode)
);
