-- Console: failed logins for throttling (per account and per client address).
CREATE TABLE login_failures (
    throttle_key text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_key ON login_failures (throttle_key, at DESC);
CREATE INDEX audit_log_institution ON audit_log (institution_id, at DESC);
-- Provider health reads recent lookups and each provider's latest answer.
CREATE INDEX lookups_sent ON lookups (sent_at);
CREATE INDEX meter_support_provider_last ON meter_support (provider_id, last_response_at DESC);
