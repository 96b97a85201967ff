-- Tenancy (docs/tenancy.md): what a provider answered about a meter is shared; everything an institution decides
-- is its own. So Confirm support, the rebroadcast mark, the reset to Unconfirmed and routing preferences become
-- per institution, and the shared support row only ever holds a provider's real answer.

-- One mark per (meter, institution): who asked for a re-check, and when (database time).
CREATE TABLE rebroadcast_marks (
    meter_number   text NOT NULL REFERENCES meters,
    institution_id text NOT NULL REFERENCES institutions,
    marked_by      text NOT NULL,
    marked_at      timestamptz NOT NULL,
    PRIMARY KEY (meter_number, institution_id)
);
INSERT INTO rebroadcast_marks
SELECT m.meter_number, m.marked_by_institution, coalesce(m.marked_by, 'unknown'), coalesce(m.marked_at, now())
FROM meters m JOIN institutions i ON i.institution_id = m.marked_by_institution
WHERE m.marked_for_rebroadcast;

-- A provider an institution reset to Unconfirmed shows Unconfirmed to that institution (and is not eligible for
-- its routing) until it answers a lookup sent after `since`; other institutions keep seeing its last answer.
CREATE TABLE support_resets (
    meter_number   text NOT NULL,
    provider_id    text NOT NULL REFERENCES providers,
    institution_id text NOT NULL REFERENCES institutions,
    since          timestamptz NOT NULL,
    PRIMARY KEY (meter_number, provider_id, institution_id)
);
INSERT INTO support_resets
SELECT s.meter_number, s.provider_id, m.marked_by_institution, s.unconfirmed_since
FROM meter_support s JOIN meters m USING (meter_number) JOIN institutions i ON i.institution_id = m.marked_by_institution
WHERE s.unconfirmed_since IS NOT NULL;
-- The last real answer stays the shared fact; a reset no longer overwrites it. Rows a reset turned to
-- 'unconfirmed' lose the answer they held (it was not kept), which is what they showed already.
ALTER TABLE meter_support DROP COLUMN unconfirmed_since;
-- Which lookup the recorded answer belongs to (its sent_at, the database's clock): answers are ordered by the
-- lookup they answer, so a late answer to an older round never overwrites the answer to a re-check.
ALTER TABLE meter_support ADD COLUMN answered_sent_at timestamptz;

ALTER TABLE meters DROP COLUMN marked_for_rebroadcast, DROP COLUMN marked_by, DROP COLUMN marked_by_institution,
    DROP COLUMN marked_at;

-- A rebroadcast round asks the providers of the institution that asked for it.
ALTER TABLE lookup_rounds ADD COLUMN institution_id text;

-- Routing preferences per institution: per utility, and per meter.
-- Each existing (global) preference becomes one per institution that has the provider enabled.
ALTER TABLE utility_routing_preferences ADD COLUMN institution_id text REFERENCES institutions;
ALTER TABLE utility_routing_preferences DROP CONSTRAINT utility_routing_preferences_pkey;
INSERT INTO utility_routing_preferences (utility_id, provider_id, kind, rank, weight, institution_id)
SELECT p.utility_id, p.provider_id, p.kind, p.rank, p.weight, ip.institution_id
FROM utility_routing_preferences p JOIN institution_providers ip USING (provider_id)
WHERE p.institution_id IS NULL;
DELETE FROM utility_routing_preferences WHERE institution_id IS NULL;
ALTER TABLE utility_routing_preferences ALTER COLUMN institution_id SET NOT NULL;
ALTER TABLE utility_routing_preferences ADD PRIMARY KEY (institution_id, utility_id, provider_id);

CREATE TABLE meter_preferences (
    meter_number   text NOT NULL REFERENCES meters,
    institution_id text NOT NULL REFERENCES institutions,
    provider_id    text NOT NULL REFERENCES providers,
    PRIMARY KEY (meter_number, institution_id)
);
INSERT INTO meter_preferences
SELECT m.meter_number, ip.institution_id, m.preferred_provider_id
FROM meters m JOIN institution_providers ip ON ip.provider_id = m.preferred_provider_id;
ALTER TABLE meters DROP COLUMN preferred_provider_id;

-- An institution's own decisions on a meter page.
CREATE INDEX purchase_attempts_meter_institution ON purchase_attempts (meter_number, institution_id, received_at DESC);
