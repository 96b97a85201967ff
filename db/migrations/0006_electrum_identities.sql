-- Electrum's numeric institution ids beside our readable slugs (docs/provider-integration.md): the slug stays the
-- key that topics, routing and the console's URLs use; `electrum_id` is what a PPU v3 body carries and what the
-- console shows as "Provider ID". Nullable so that an existing install migrates; every way of adding a provider,
-- institution or utility now asks for it, and the bridge refuses (as a configuration error) to send without it.
ALTER TABLE institutions ADD COLUMN electrum_id text UNIQUE CHECK (electrum_id ~ '^[0-9]{1,11}$');
ALTER TABLE providers ADD COLUMN electrum_id text UNIQUE CHECK (electrum_id ~ '^[0-9]{1,11}$');
ALTER TABLE utilities ADD COLUMN electrum_id text UNIQUE CHECK (electrum_id ~ '^[0-9]{1,11}$');

-- MISCONFIGURED: the provider refuses what we send (400 FORMAT_ERROR) or we cannot build a body it accepts.
-- Distinct from DOWN (silence); routing skips both. Cleared by the bridge when the provider answers again.
ALTER TABLE providers DROP CONSTRAINT providers_health_check;
ALTER TABLE providers ADD CONSTRAINT providers_health_check
    CHECK (health IN ('HEALTHY', 'DEGRADED', 'DOWN', 'MISCONFIGURED'));
ALTER TABLE providers ADD COLUMN health_detail text;
-- TLS to a provider whose certificate a private CA signed: the CA bundle's path on the bridge's host.
ALTER TABLE providers ADD COLUMN ca_file text;
ALTER TABLE providers ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- What a provider's 201 said about the meter (utility, customer, amounts): shown on the meter page and API.
ALTER TABLE meter_support ADD COLUMN details jsonb;
