-- Provider health reads each provider's latest lookups (db/provider_health.py): newest first, per provider, from
-- the index instead of every lookup of the window.
CREATE INDEX lookups_provider_sent ON lookups (provider_id, sent_at DESC);
