#!/bin/sh
# The standby of docker-compose.cluster.yml: a base backup of the primary on first start, then a hot standby
# streaming from it. Promote it with: docker compose exec postgres-standby gosu postgres pg_ctl promote -D "$PGDATA"
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres -U "$POSTGRES_USER"; do sleep 1; done
  export PGPASSWORD="$POSTGRES_PASSWORD"
  gosu postgres pg_basebackup -h postgres -U "$POSTGRES_USER" -D "$PGDATA" -R -X stream -c fast \
    --dbname="application_name=ppu_standby"
  chmod 700 "$PGDATA"
fi
exec gosu postgres postgres -D "$PGDATA"
