-- The append-only history, partitioned by time (PostgreSQL native range partitioning). db/partitions.py holds the
-- catalogue (key, partition width, retention per table) and the maintenance that creates partitions ahead of time
-- and drops them whole after each table's retention; docs/deployment.md "Data growth and retention" explains it.
--
-- Keys: our own UUIDv7 ids where the rows have them (rounds, lookups: a lookup by id then reads one partition),
-- otherwise a time the database sets. A unique key of a partitioned table must include its partition key, so:
--  * purchase_attempts: (attempt_id, recorded_at). The attempt id is the purchase service's; the lookup worker
--    recognises it again within the live window (kernel/live_window.py: 7 days, as long as the inbox remembers
--    message ids), reading under the meter's lock that every writer of attempts takes first.
--  * routing_decisions: (attempt_id, decided_at). One decision per attempt holds because a waiting attempt is
--    claimed (decided_at IS NULL → now(), row-locked) before its decision is written (workers/routing_context.py),
--    and a new attempt is written decided in the transaction that first sees it.
--  * lookup_rounds: "one open round per meter" was a partial unique index; only the lookup worker opens rounds,
--    under the meter's lock (workers/lookup.py), so it is an ordinary index now.
-- Rows already stored go to each table's DEFAULT partition (it also takes any row no dated partition covers yet,
-- so nothing is refused); maintenance moves them into the dated partition it creates over them, and deletes
-- what stays there by time after the retention.

CREATE TABLE purchase_attempts_p (
    attempt_id     uuid NOT NULL,
    meter_number   text NOT NULL,
    institution_id text NOT NULL,
    received_at    timestamptz NOT NULL,
    round_id       uuid,
    decided_at     timestamptz,
    joined_at      timestamptz,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (attempt_id, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE TABLE purchase_attempts_default PARTITION OF purchase_attempts_p DEFAULT;
INSERT INTO purchase_attempts_p (attempt_id, meter_number, institution_id, received_at, round_id, decided_at,
                                 joined_at, recorded_at)
    SELECT attempt_id, meter_number, institution_id, received_at, round_id, decided_at, joined_at,
           coalesce(joined_at, decided_at, received_at)
    FROM purchase_attempts;
DROP TABLE purchase_attempts;
ALTER TABLE purchase_attempts_p RENAME TO purchase_attempts;
CREATE INDEX purchase_attempts_waiting ON purchase_attempts (round_id) WHERE decided_at IS NULL;
CREATE INDEX purchase_attempts_meter_institution ON purchase_attempts (meter_number, institution_id, received_at DESC);
CREATE INDEX purchase_attempts_over_budget ON purchase_attempts (joined_at) WHERE decided_at IS NULL AND round_id IS NOT NULL;

CREATE TABLE routing_decisions_p (
    attempt_id   uuid NOT NULL,
    meter_number text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('routed', 'blocked')),
    provider_id  text,
    reason       text NOT NULL,
    skipped      jsonb NOT NULL DEFAULT '[]',
    decided_at   timestamptz NOT NULL,
    PRIMARY KEY (attempt_id, decided_at)
) PARTITION BY RANGE (decided_at);
CREATE TABLE routing_decisions_default PARTITION OF routing_decisions_p DEFAULT;
INSERT INTO routing_decisions_p SELECT attempt_id, meter_number, outcome, provider_id, reason, skipped, decided_at
    FROM routing_decisions;
DROP TABLE routing_decisions;
ALTER TABLE routing_decisions_p RENAME TO routing_decisions;
CREATE INDEX routing_decisions_meter ON routing_decisions (meter_number, decided_at DESC);

CREATE TABLE lookup_rounds_p (
    round_id        uuid NOT NULL,
    meter_number    text NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('first_seen', 'rebroadcast', 'routine')),
    opened_at       timestamptz NOT NULL,
    deadline        timestamptz NOT NULL,
    closed_at       timestamptz,
    providers_asked text[] NOT NULL,
    institution_id  text,
    PRIMARY KEY (round_id)
) PARTITION BY RANGE (round_id);
CREATE TABLE lookup_rounds_default PARTITION OF lookup_rounds_p DEFAULT;
INSERT INTO lookup_rounds_p SELECT round_id, meter_number, reason, opened_at, deadline, closed_at, providers_asked,
                                   institution_id
    FROM lookup_rounds;
DROP TABLE lookup_rounds;
ALTER TABLE lookup_rounds_p RENAME TO lookup_rounds;
CREATE INDEX lookup_rounds_open ON lookup_rounds (meter_number) WHERE closed_at IS NULL;
CREATE INDEX lookup_rounds_deadline ON lookup_rounds (deadline) WHERE closed_at IS NULL;

CREATE TABLE lookups_p (
    lookup_id    uuid NOT NULL,
    round_id     uuid NOT NULL,
    meter_number text NOT NULL,
    provider_id  text NOT NULL,
    sent_at      timestamptz NOT NULL,
    responded_at timestamptz,
    status       text,
    PRIMARY KEY (lookup_id)
) PARTITION BY RANGE (lookup_id);
CREATE TABLE lookups_default PARTITION OF lookups_p DEFAULT;
INSERT INTO lookups_p SELECT lookup_id, round_id, meter_number, provider_id, sent_at, responded_at, status
    FROM lookups;
DROP TABLE lookups;
ALTER TABLE lookups_p RENAME TO lookups;
CREATE INDEX lookups_round ON lookups (round_id);
CREATE INDEX lookups_sent ON lookups (sent_at);

ALTER SEQUENCE audit_log_audit_id_seq OWNED BY NONE;
CREATE TABLE audit_log_p (
    audit_id       bigint NOT NULL DEFAULT nextval('audit_log_audit_id_seq'),
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    institution_id text,
    action         text NOT NULL,
    target         text,
    outcome        text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (audit_id, at)
) PARTITION BY RANGE (at);
CREATE TABLE audit_log_default PARTITION OF audit_log_p DEFAULT;
INSERT INTO audit_log_p SELECT audit_id, at, actor, institution_id, action, target, outcome, details FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_p RENAME TO audit_log;
ALTER SEQUENCE audit_log_audit_id_seq OWNED BY audit_log.audit_id;
CREATE INDEX audit_log_target ON audit_log (target, at DESC);
CREATE INDEX audit_log_institution ON audit_log (institution_id, at DESC);
CREATE INDEX audit_log_auto_recheck ON audit_log (institution_id, at) WHERE action = 'auto_recheck';

CREATE TABLE login_failures_p (
    throttle_key text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (at);
CREATE TABLE login_failures_default PARTITION OF login_failures_p DEFAULT;
INSERT INTO login_failures_p SELECT throttle_key, at FROM login_failures;
DROP TABLE login_failures;
ALTER TABLE login_failures_p RENAME TO login_failures;
CREATE INDEX login_failures_key ON login_failures (throttle_key, at DESC);
