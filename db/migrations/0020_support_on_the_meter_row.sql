-- Each meter's support, as its one row carries it: "provider=status,…" ordered by provider, kept from meter_support
-- by the triggers below, in the statement that changes it. The hot path reads a batch's meters anyway (and locks
-- them, workers/meter_locks.py); reading support there too spares an index descent and its heap pages per meter.
-- Measured (`ppu bench --only meters`): the separate read cost 25 µs per attempt over a million meters, 13 over ten
-- thousand; there a meter's five rows lay on five heap pages (rows written at different times, as answers are, land
-- apart). meter_support stays the record (the console, provider health, Confirm support read it); this is its
-- summary, never written by hand.
--
-- Statement-level triggers with transition tables: one UPDATE of meters per statement, only for meters whose set
-- of (provider, status) changed; an answer that repeats a status (most routine answers) changes no meter row.
-- Every writer of meter_support holds its meters' locks already (the lookup worker and the response consumer lock
-- them first, in order), so the meters updated here are rows the transaction has locked: no new lock order.

-- NULL: not summarised yet (a meter this install had before the upgrade); '' when it has no support rows. Meters
-- made from now on start summarised (no support rows yet), the existing ones stay NULL until db/support_backfill.py
-- fills them, a batch per transaction after this migration; routing reads meter_support for a meter still NULL.
-- Filled here in one statement, a million meters held every meter's lock for 20-26 s: the hot path stopped meanwhile.
ALTER TABLE meters ADD COLUMN support text;
ALTER TABLE meters ALTER COLUMN support SET DEFAULT '';

-- PL/pgSQL, whose statements keep their plans for the session (a SQL function's are made on each call).
-- `unsummarised_only`: the backfill's, which must not write over a summary a trigger made since its snapshot (its
-- UPDATE re-checks this on the newest version of a row it waited for; a trigger leaves no meter NULL).
CREATE FUNCTION meters_support_refresh(changed text[], unsummarised_only boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meters m SET support = a.support
    FROM (SELECT k AS meter_number,
                 coalesce((SELECT string_agg(s.provider_id || '=' || s.status, ',' ORDER BY s.provider_id)
                           FROM meter_support s WHERE s.meter_number = k), '') AS support
          FROM unnest(changed) AS k OFFSET 0) a  -- OFFSET 0: each meter's aggregate made once, not in SET and WHERE
    WHERE m.meter_number = a.meter_number AND m.support IS DISTINCT FROM a.support
      AND (NOT unsummarised_only OR m.support IS NULL);
END $$;

CREATE FUNCTION meter_support_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM meters_support_refresh(ARRAY(SELECT DISTINCT meter_number FROM added ORDER BY 1));
    RETURN NULL;
END $$;

CREATE FUNCTION meter_support_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM meters_support_refresh(ARRAY(SELECT DISTINCT meter_number FROM removed ORDER BY 1));
    RETURN NULL;
END $$;

CREATE FUNCTION meter_support_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM meters_support_refresh(ARRAY(
        SELECT DISTINCT meter_number FROM (
            (SELECT meter_number, provider_id, status FROM new_rows EXCEPT SELECT meter_number, provider_id, status FROM old_rows)
            UNION ALL
            (SELECT meter_number, provider_id, status FROM old_rows EXCEPT SELECT meter_number, provider_id, status FROM new_rows)
        ) d ORDER BY 1));
    RETURN NULL;
END $$;

CREATE FUNCTION meter_support_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meters SET support = '' WHERE support IS DISTINCT FROM '';
    RETURN NULL;
END $$;

CREATE TRIGGER meter_support_added AFTER INSERT ON meter_support
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION meter_support_added();
CREATE TRIGGER meter_support_removed AFTER DELETE ON meter_support
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION meter_support_removed();
CREATE TRIGGER meter_support_changed AFTER UPDATE ON meter_support
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meter_support_changed();
CREATE TRIGGER meter_support_truncated AFTER TRUNCATE ON meter_support
    FOR EACH STATEMENT EXECUTE FUNCTION meter_support_truncated();

-- Work left to do outside a migration's transaction, a batch at a time (db/support_backfill.py): where it has got
-- to (`next_key`, the last key done), so that a run stopped halfway goes on from there.
CREATE TABLE backfills (
    name     text PRIMARY KEY,
    next_key text NOT NULL DEFAULT '',
    done_at  timestamptz
);
INSERT INTO backfills (name) VALUES ('meters.support');
