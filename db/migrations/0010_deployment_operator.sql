-- The institution that runs the deployment (the payments switch itself): its admins work what belongs to no
-- single institution, such as dead letters (`ppu institutions operator I`). At most one.
ALTER TABLE institutions ADD COLUMN operates_deployment boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX institutions_one_operator ON institutions (operates_deployment) WHERE operates_deployment;
