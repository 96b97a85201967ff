-- Reference data that routing reads for every batch (providers, institutions' providers, utility preferences) is
-- cached by the workers (workers/reference_data.py). This row says when the cache is stale: every change to those
-- tables bumps `version` in the changing transaction, so a statement that sees a version sees the tables as they
-- were at that version.
CREATE TABLE reference_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  bigint NOT NULL DEFAULT 0
);
INSERT INTO reference_version DEFAULT VALUES;

-- The version as the caches compare it, with what tells two databases apart whose versions happen to be equal (one
-- worker process, or one test run, can talk to several): the database's oid in its cluster and when the cluster
-- started. Not a stored id: a database made from another as its template would copy it.
CREATE FUNCTION reference_stamp() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::text || '/'
           || pg_postmaster_start_time()::text || ':' || version
    FROM reference_version
$$;

CREATE FUNCTION reference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reference_version SET version = version + 1;
    RETURN NULL;
END $$;

-- Per row, and for an update only when the row changed: the response consumer's "a DOWN provider that answers is
-- back" runs with every batch and nearly always changes nothing; bumping then would take this row's lock in every
-- response batch and make every cache read the tables again. A truncate bumps once.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['providers', 'institution_providers', 'utility_routing_preferences'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION reference_changed()', t || '_added_or_removed', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I
                        FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION reference_changed()',
                       t || '_changed', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION reference_changed()', t || '_truncated', t);
    END LOOP;
END $$;
