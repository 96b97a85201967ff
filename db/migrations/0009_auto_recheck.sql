-- Opt-in automatic re-check, per institution (off: no row). workers/auto_recheck.py marks for rebroadcast the
-- meters where one of the institution's enabled providers has not answered a lookup sent more than `after` ago,
-- at most `max_per_hour` meters an hour, as the system's action (audited as 'auto_recheck').
CREATE TABLE auto_recheck (
    institution_id text PRIMARY KEY REFERENCES institutions,
    after          interval NOT NULL CHECK (after >= interval '1 minute'),
    max_per_hour   integer NOT NULL DEFAULT 60 CHECK (max_per_hour BETWEEN 1 AND 100000),
    set_by         text NOT NULL,
    set_at         timestamptz NOT NULL DEFAULT now()
);
-- The rate limit counts the last hour's automatic marks of an institution.
CREATE INDEX audit_log_auto_recheck ON audit_log (institution_id, at) WHERE action = 'auto_recheck';
