#!/usr/bin/env bash
# Bring up Debian's PostgreSQL for the test suite and print the URL of its test database.
# Uses the host's cluster when there is one (pg_ctlcluster), else a throwaway cluster under a
# temporary directory run as the postgres user (initdb refuses root). Idempotent.
set -euo pipefail
DB=vokter_test
ROLE=vokter_test
PASS=vokter_test

log() { echo "postgres-up: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  log "PostgreSQL is not installed (apt-get install postgresql)"; exit 1
fi
cluster=$(pg_lsclusters -h 2>/dev/null | head -n 1 || true)
if [ -n "$cluster" ]; then
  read -r ver name port status _ <<<"$cluster"
  if [ "$status" != "online" ]; then
    log "starting cluster $ver/$name"
    pg_ctlcluster "$ver" "$name" start >&2 || true
  fi
  host_args=(-p "$port")
else
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  port=54329
  dir=/var/tmp/vokter-test-pg
  if ! runuser -u postgres -- /usr/lib/postgresql/"$ver"/bin/pg_ctl -D "$dir" status >/dev/null 2>&1; then
    log "creating a throwaway cluster in $dir"
    rm -rf "$dir"; install -d -o postgres -g postgres -m 0700 "$dir"
    runuser -u postgres -- /usr/lib/postgresql/"$ver"/bin/initdb -D "$dir" -A scram-sha-256 \
      --pwfile=<(echo postgres) -U postgres >/dev/null
    runuser -u postgres -- /usr/lib/postgresql/"$ver"/bin/pg_ctl -D "$dir" -l "$dir/log" \
      -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" -w start >&2
  fi
  host_args=(-h /tmp -p "$port")
  export PGPASSWORD=postgres
fi

for _ in $(seq 1 60); do
  runuser -u postgres -- env PGPASSWORD="${PGPASSWORD:-}" psql "${host_args[@]}" -Atqc "select 1" >/dev/null 2>&1 && break
  sleep 0.5
done
psql_admin() { runuser -u postgres -- env PGPASSWORD="${PGPASSWORD:-}" psql "${host_args[@]}" -v ON_ERROR_STOP=1 -Atq "$@"; }
psql_admin -c "select 1" >/dev/null || { log "PostgreSQL did not come up"; exit 1; }
if [ -z "$(psql_admin -c "select 1 from pg_roles where rolname='$ROLE'")" ]; then
  psql_admin -c "create role $ROLE login createdb password '$PASS'"
fi
if [ -z "$(psql_admin -c "select 1 from pg_database where datname='$DB'")" ]; then
  psql_admin -c "create database $DB owner $ROLE"
fi
echo "postgresql+psycopg://$ROLE:$PASS@127.0.0.1:$port/$DB"
