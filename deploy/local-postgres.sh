#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (trust auth, user postgres), starting
# the machine's installed cluster if nothing listens. Used by .ci/run; safe to run by hand.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ready; then
  echo "postgres: already listening on 127.0.0.1:5432"
  exit 0
fi

version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
fi
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
  echo "postgres: creating cluster $version/main"
  pg_createcluster "$version" main -- --auth=trust >/dev/null
fi
echo "postgres: starting cluster $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || runuser -u postgres -- \
  "/usr/lib/postgresql/$version/bin/pg_ctl" -D "/var/lib/postgresql/$version/main" \
  -o "-c config_file=/etc/postgresql/$version/main/postgresql.conf" -l "/tmp/postgres-$version.log" start

for _ in $(seq 1 60); do
  if ready; then
    echo "postgres: ready"
    exit 0
  fi
  sleep 0.5
done
echo "postgres: did not become ready on 127.0.0.1:5432" >&2
exit 1
