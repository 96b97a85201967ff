-- Reference data: institutions, their console users, providers, utilities and routing preferences.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE institutions (
    institution_id text PRIMARY KEY CHECK (institution_id ~ '^[A-Za-z0-9_-]{1,40}$'),
    name           text NOT NULL
);

CREATE TABLE providers (
    provider_id      text PRIMARY KEY CHECK (provider_id ~ '^[A-Za-z0-9_-]{1,40}$'),
    name             text NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    health           text NOT NULL DEFAULT 'HEALTHY' CHECK (health IN ('HEALTHY', 'DEGRADED', 'DOWN')),
    health_changed_at timestamptz,
    integration_mode text NOT NULL DEFAULT 'kafka' CHECK (integration_mode IN ('kafka', 'http')),
    base_url         text,
    credentials_ref  text,           -- the name of a secret, never the secret itself
    timeout_ms       integer NOT NULL DEFAULT 60000 CHECK (timeout_ms > 0),
    max_in_flight    integer NOT NULL DEFAULT 16 CHECK (max_in_flight > 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE institution_providers (
    institution_id text NOT NULL REFERENCES institutions,
    provider_id    text NOT NULL REFERENCES providers,
    PRIMARY KEY (institution_id, provider_id)
);

CREATE TABLE console_users (
    user_id        bigserial PRIMARY KEY,
    institution_id text NOT NULL REFERENCES institutions,
    username       text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (institution_id, username)
);

CREATE TABLE utilities (
    utility_id text PRIMARY KEY,
    name       text NOT NULL UNIQUE
);

CREATE TABLE utility_routing_preferences (
    utility_id  text NOT NULL REFERENCES utilities,
    provider_id text NOT NULL REFERENCES providers,
    kind        text NOT NULL CHECK (kind IN ('ranked', 'unranked', 'excluded')),
    rank        integer CHECK (rank > 0),
    weight      integer NOT NULL DEFAULT 1 CHECK (weight >= 0),
    PRIMARY KEY (utility_id, provider_id),
    CHECK ((kind = 'ranked') = (rank IS NOT NULL))
);

CREATE TABLE audit_log (
    audit_id       bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    institution_id text,
    action         text NOT NULL,
    target         text,
    outcome        text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_target ON audit_log (target, at DESC);
