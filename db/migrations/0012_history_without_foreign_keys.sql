-- The append-only history (attempts, rounds, lookups, decisions) keeps no foreign keys. Each row is written by one
-- handler in the same transaction as the row it refers to (a round and its lookups, an attempt and its round, a
-- decision and its attempt: workers/lookup.py, workers/rounds.py), so the reference holds by construction; the
-- checks cost a trigger and an index probe per row on the hot path (about a third of each insert, measured with
-- `ppu bench --only profile`), and they would stop old history being dropped by time apart from what refers to it.
-- Reference data keeps its keys (meter_support → meters and providers, institution_providers, users, ...).
ALTER TABLE lookups DROP CONSTRAINT lookups_round_id_fkey;
ALTER TABLE lookups DROP CONSTRAINT lookups_provider_id_fkey;
ALTER TABLE purchase_attempts DROP CONSTRAINT purchase_attempts_round_id_fkey;
ALTER TABLE purchase_attempts DROP CONSTRAINT purchase_attempts_meter_number_fkey;
ALTER TABLE routing_decisions DROP CONSTRAINT routing_decisions_attempt_id_fkey;
ALTER TABLE lookup_rounds DROP CONSTRAINT lookup_rounds_meter_number_fkey;
