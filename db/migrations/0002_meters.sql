-- Meters, per-provider support, lookup rounds, purchase attempts and their routing decisions.
CREATE TABLE meters (
    meter_number          text PRIMARY KEY CHECK (meter_number ~ '^[A-Za-z0-9]{1,20}$'),
    utility_id            text REFERENCES utilities,
    blocked               boolean NOT NULL DEFAULT false,
    marked_for_rebroadcast boolean NOT NULL DEFAULT false,
    marked_by             text,
    marked_by_institution text,
    marked_at             timestamptz,
    preferred_provider_id text REFERENCES providers,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- Prefix search (LIKE 'abc%') and infix search (trigram) for the console's meter search.
CREATE INDEX meters_number_prefix ON meters (meter_number text_pattern_ops);
CREATE INDEX meters_number_trgm ON meters USING gin (meter_number gin_trgm_ops);

CREATE TABLE meter_support (
    meter_number        text NOT NULL REFERENCES meters,
    provider_id         text NOT NULL REFERENCES providers,
    status              text NOT NULL DEFAULT 'unconfirmed'
                        CHECK (status IN ('supported', 'not_supported', 'unconfirmed')),
    last_response_at    timestamptz,
    last_lookup_sent_at timestamptz,
    -- Set by Confirm support: answers to lookups sent before it no longer count.
    unconfirmed_since   timestamptz,
    PRIMARY KEY (meter_number, provider_id)
);

CREATE TABLE lookup_rounds (
    round_id        uuid PRIMARY KEY,
    meter_number    text NOT NULL REFERENCES meters,
    reason          text NOT NULL CHECK (reason IN ('first_seen', 'rebroadcast', 'routine')),
    opened_at       timestamptz NOT NULL,
    deadline        timestamptz NOT NULL,
    closed_at       timestamptz,
    providers_asked text[] NOT NULL
);
-- One open fan-out per meter (routine lookups do not hold attempts, so they are opened closed).
CREATE UNIQUE INDEX lookup_rounds_one_open ON lookup_rounds (meter_number) WHERE closed_at IS NULL;
CREATE INDEX lookup_rounds_deadline ON lookup_rounds (deadline) WHERE closed_at IS NULL;

CREATE TABLE lookups (
    lookup_id    uuid PRIMARY KEY,
    round_id     uuid NOT NULL REFERENCES lookup_rounds,
    meter_number text NOT NULL,
    provider_id  text NOT NULL REFERENCES providers,
    sent_at      timestamptz NOT NULL,
    responded_at timestamptz,
    status       text
);
CREATE INDEX lookups_round ON lookups (round_id);

CREATE TABLE purchase_attempts (
    attempt_id     uuid PRIMARY KEY,
    meter_number   text NOT NULL REFERENCES meters,
    institution_id text NOT NULL,
    received_at    timestamptz NOT NULL,
    round_id       uuid REFERENCES lookup_rounds,
    decided_at     timestamptz
);
CREATE INDEX purchase_attempts_waiting ON purchase_attempts (round_id) WHERE decided_at IS NULL;

CREATE TABLE routing_decisions (
    attempt_id   uuid PRIMARY KEY REFERENCES purchase_attempts,
    meter_number text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('routed', 'blocked')),
    provider_id  text,
    reason       text NOT NULL,
    skipped      jsonb NOT NULL DEFAULT '[]',
    decided_at   timestamptz NOT NULL
);
CREATE INDEX routing_decisions_meter ON routing_decisions (meter_number, decided_at DESC);
