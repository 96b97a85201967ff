#!/bin/sh
# Runs once, when the postgres image initialises the primary: lets the standby stream WAL, and makes replication
# synchronous (a commit waits for the standby: a failover loses no committed transaction; infra/postgres_standby.py).
set -e
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
  -c "ALTER SYSTEM SET synchronous_standby_names = 'ppu_standby'"
