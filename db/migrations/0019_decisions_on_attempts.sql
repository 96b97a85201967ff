-- A purchase attempt has at most one decision, so the decision is stored on the attempt's row: outcome, provider,
-- reason and the providers skipped, beside `decided_at` (set in the same statement). Each attempt was two rows in
-- two history tables, each with a key index on a random id (the purchase service's attempt id) and an index by
-- meter; the lookup worker wrote both in every batch. Over 10 million attempts of history the decisions' inserts
-- grew with their indexes (bench/results: lookup_10m_history_vs_empty_ratio), and one row and two index entries
-- fewer per attempt is the write the hot path can most easily do without.
--
-- One decision per attempt now holds by construction: the decision is written by the statement that claims the
-- attempt (`decided_at IS NULL` → now(), workers/decisions.py) or that stores it decided (workers/lookup.py).
--
-- `routing_decisions` stays as a view for readers (operators' SQL, the fault scenarios' invariants, tests).
-- On an install with a large history this rewrites each decided attempt once: run it in a quiet hour.
-- A decision whose attempt the retention had already dropped (the two tables were dropped by different partition
-- keys, seconds apart) goes with the table.

ALTER TABLE purchase_attempts
    ADD COLUMN outcome text CHECK (outcome IN ('routed', 'blocked')),
    ADD COLUMN provider_id text,
    ADD COLUMN reason text,
    ADD COLUMN skipped jsonb,
    ADD CONSTRAINT purchase_attempts_decision_whole
        CHECK (outcome IS NULL OR (decided_at IS NOT NULL AND reason IS NOT NULL AND skipped IS NOT NULL));

UPDATE purchase_attempts a
   SET outcome = d.outcome, provider_id = d.provider_id, reason = d.reason, skipped = d.skipped,
       decided_at = d.decided_at
  FROM routing_decisions d
 WHERE d.attempt_id = a.attempt_id;

DROP TABLE routing_decisions;

CREATE VIEW routing_decisions AS
    SELECT attempt_id, meter_number, outcome, provider_id, reason, skipped, decided_at
      FROM purchase_attempts
     WHERE outcome IS NOT NULL;
