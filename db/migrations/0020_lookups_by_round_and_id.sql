-- A round's lookups read by the round and the live window's ids together (workers/rounds.py, `decide_waiting`).
-- With the index on the round alone, a generic plan made on a new install's nearly empty tables could as well read
-- the lookups by the window of ids and match the rounds afterwards: every lookup of the window per call, growing
-- with the tables until they were next analysed (stop 47's soak: 10,800 buffers a call in the first minute,
-- tests/test_plans_as_tables_grow.py). With both in one index, the read by round is the cheapest plan at any size.
-- On a large install this builds the index on every partition while holding writes to lookups: run it in a quiet
-- hour (docs/deployment.md).
CREATE INDEX lookups_round_id ON lookups (round_id, lookup_id);
DROP INDEX lookups_round;
