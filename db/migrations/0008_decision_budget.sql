-- The purchase-time decision budget (domain/rounds.py): when an attempt began to wait on a round, by the database's
-- clock (received_at is the purchase service's), and an index that finds the waits that crossed the budget.
ALTER TABLE purchase_attempts ADD COLUMN joined_at timestamptz;
CREATE INDEX purchase_attempts_over_budget ON purchase_attempts (joined_at)
    WHERE decided_at IS NULL AND round_id IS NOT NULL;

-- Retention of the inbox runs by age: without this it scans the whole table.
CREATE INDEX inbox_received ON inbox (received_at);
