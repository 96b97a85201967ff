-- The console's search anywhere in a meter number (console/queries.py) reads a trigram index. On the column itself,
-- pg_trgm (1.4 on) also answers `=` from it, and PostgreSQL chose it for the hot path's batches of meters
-- (`meter_number = ANY($1)`, every lookup and answer batch) once a batch held a few hundred: 468 ms on 15,000 meters
-- instead of 1 ms through the primary key, every common trigram's posting list decoded. A backlog makes batches
-- bigger, so the slow plan made the backlog grow: the soak's stalls at 1,000 attempts/s. On an expression the hot
-- path never writes, the index serves the search and nothing else.
DROP INDEX meters_number_trgm;
CREATE INDEX meters_number_infix ON meters USING gin (lower(meter_number) gin_trgm_ops);
