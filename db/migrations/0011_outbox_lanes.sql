-- The outbox scales out (workers/outbox_relay.py): rows fall into 16 lanes by a hash of their key, so every row of
-- one key is in one lane; a relay publishes a lane while it holds the lane's row lock, so no two relays publish one
-- key at once and order per key holds. Several relays share the lanes. A row is deleted in the transaction that
-- published it (no update, no later purge); `published` counts per lane what went out.
ALTER TABLE outbox ADD COLUMN lane smallint GENERATED ALWAYS AS (hashtext(key) & 15) STORED;
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_unsent;
ALTER TABLE outbox DROP COLUMN sent_at;
-- Only the headers a row adds to the constant ones (content-type): most rows add none, and the relay need not
-- decode the same JSON for each of them.
ALTER TABLE outbox ALTER COLUMN headers DROP NOT NULL, ALTER COLUMN headers SET DEFAULT NULL;
UPDATE outbox SET headers = NULLIF(
    (SELECT coalesce(jsonb_agg(h), '[]') FROM jsonb_array_elements(headers) h WHERE h->>0 <> 'content-type'), '[]');

CREATE TABLE outbox_lanes (
    lane      smallint PRIMARY KEY,
    published bigint NOT NULL DEFAULT 0
);
INSERT INTO outbox_lanes (lane) SELECT generate_series(0, 15);

-- Relays alive, so each takes its share of the lanes (a relay that stops heart-beating loses its share in seconds).
CREATE TABLE outbox_relays (
    member  text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
