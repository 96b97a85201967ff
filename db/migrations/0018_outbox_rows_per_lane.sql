-- One outbox row per transaction and lane, not per message (workers/outbox.py): a lookup batch of 500 attempts wrote
-- about 1,000 rows, each inserted, indexed and later deleted one by one, the outbox the largest share of PostgreSQL's
-- work per attempt. A row now holds its transaction's messages of one lane, in order, packed by the writer
-- (`batch`, MessagePack: [topic, key, value, extra headers] each) and `n` of them. Rows written before this migration
-- keep their one message in the columns they had; the relay reads both.
--
-- The lane is the writer's now (it packs per lane): the first byte of the key's MD5, in both languages, rows already
-- here moved to it in this transaction, so every row of one key stays in one lane and per-key order holds across
-- the change. Not for security: a spread of keys over 16 lanes.
ALTER TABLE outbox ALTER COLUMN lane DROP EXPRESSION;
UPDATE outbox SET lane = get_byte(decode(md5(key), 'hex'), 0) & 15;
ALTER TABLE outbox ALTER COLUMN lane SET NOT NULL;
ALTER TABLE outbox ALTER COLUMN topic DROP NOT NULL,
                   ALTER COLUMN key DROP NOT NULL,
                   ALTER COLUMN value DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN n integer NOT NULL DEFAULT 1,
                   ADD COLUMN batch bytea;
-- A packed row is a few to a few hundred kilobytes: stored out of line without compression, as compressing it (pglz)
-- would cost the database more CPU than the bytes it saves, for a row that lives a few milliseconds.
ALTER TABLE outbox ALTER COLUMN batch SET STORAGE EXTERNAL;
ALTER TABLE outbox ADD CONSTRAINT outbox_one_form
    CHECK ((batch IS NULL) = (topic IS NOT NULL AND key IS NOT NULL AND value IS NOT NULL));
