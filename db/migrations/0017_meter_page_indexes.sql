-- The meter page's timeline (operations/timeline.py) reads one meter's rounds and answers. Without an index on the
-- meter, over 10 million lookups each was a sequential scan of every partition; with JIT compiling that plan, one
-- page took 25-40 s (bench/results: meter_timeline_ms_10m_history).
CREATE INDEX lookups_meter ON lookups (meter_number);
CREATE INDEX lookup_rounds_meter ON lookup_rounds (meter_number);
-- Nothing reads lookups by sent_at alone: provider health reads lookups_provider_sent (0014). One index fewer to
-- write per lookup sent pays for the one above.
DROP INDEX lookups_sent;
