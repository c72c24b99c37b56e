-- Findings: each rule's verdict on a subject (DESIGN "Findings"), one row per fingerprint.
-- The findings job recomputes every rule's current verdicts and reconciles them here: a new
-- fingerprint opens, a known one is refreshed (last_seen, evidence), one no longer found resolves.
-- Acknowledgements and silences are people's decisions and survive every run; a silence ends at
-- silenced_until. `occurrences` counts episodes: how many times the finding opened (first, then
-- again after each resolve), so a flapping condition shows as such.

CREATE TABLE findings (
    fingerprint     VARCHAR PRIMARY KEY,     -- digest of rule + subject + dimension: the dedupe key
    rule            VARCHAR NOT NULL,        -- e.g. sprawl.unregistered_agent (docs/rules.md)
    category        VARCHAR NOT NULL,        -- sprawl, drift, spend, hygiene
    severity        VARCHAR NOT NULL,        -- info, warning, critical
    subject_kind    VARCHAR NOT NULL,        -- agent, identity, department, cost_centre, budget, provider, model, endpoint, fleet
    subject_id      VARCHAR NOT NULL,
    dimension       VARCHAR,                 -- what about the subject: the model, tool, threshold, day ...
    agent_id        VARCHAR,                 -- the registered agent concerned, for scoping and routing
    department_id   VARCHAR,                 -- the department concerned, for scoping and routing
    title           VARCHAR NOT NULL,        -- one line for people
    labels          VARCHAR NOT NULL,        -- JSON object of strings: what alert routes match on
    evidence        VARCHAR NOT NULL,        -- JSON object: observed vs allowed, amounts, sample trace ids
    status          VARCHAR NOT NULL,        -- open, acknowledged, silenced, resolved
    first_seen      TIMESTAMPTZ NOT NULL,
    last_seen       TIMESTAMPTZ NOT NULL,    -- the last run that found the condition holding
    resolved_at     TIMESTAMPTZ,             -- NULL while the condition holds
    occurrences     BIGINT NOT NULL,
    acknowledged_by VARCHAR,
    acknowledged_at TIMESTAMPTZ,
    silenced_by     VARCHAR,
    silenced_until  TIMESTAMPTZ,
    comment         VARCHAR,                 -- the reason given with the last acknowledge or silence
    updated_at      TIMESTAMPTZ NOT NULL
);
