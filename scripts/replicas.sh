#!/usr/bin/env bash
# Two agent-auth-issuer replicas on one local PostgreSQL, no docker (README "Running replicas").
#
#   scripts/replicas.sh [DIR]
#
# Keeps everything in DIR (default target/replicas): the PostgreSQL data directory (initdb at the
# first run, served on 127.0.0.1:$PGPORT, default 54329), the key-encryption key and the admin key
# (generated once, mode 0600), the logs. Replicas listen on 127.0.0.1:8081 and :8082. Prints the replicas' URLs and the admin key, then runs until Ctrl-C,
# which stops the replicas and PostgreSQL. Both replicas carry the issuer URL $ISSUER_URL (default
# http://127.0.0.1:8080): put a load balancer there, in front of both.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=$(realpath -m "${1:-target/replicas}")
PGPORT=${PGPORT:-54329}
ISSUER_URL=${ISSUER_URL:-http://127.0.0.1:8080}
PORTS=(8081 8082)
# The cargo profile of the binary (PROFILE=dev reuses a debug build).
PROFILE=${PROFILE:-release}
OUT=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL not installed (apt-get install postgresql-15)" >&2
  exit 1
fi
# PostgreSQL refuses to run as root: as root, run it as the system user postgres.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$DIR"
chmod 700 "$DIR"
if [ ! -f "$DIR/pg/PG_VERSION" ]; then
  mkdir -p "$DIR/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$DIR" "$DIR/pg"
  as_pg "$PGBIN/initdb" -D "$DIR/pg" -U postgres -A trust -E UTF8 >"$DIR/initdb.log"
fi
as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/postgres.log" -w \
  -o "-p $PGPORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null || true
}
trap stop EXIT
trap "exit 130" INT TERM

PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qtA)
if [ -z "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'agent_auth'")" ]; then
  "${PSQL[@]}" -c "CREATE DATABASE agent_auth"
fi
DB="postgres://postgres@127.0.0.1:$PGPORT/agent_auth"

# Every replica needs the same key-encryption key and admin key.
umask 077
[ -f "$DIR/kek" ] || head -c 32 /dev/urandom | base64 >"$DIR/kek"
[ -f "$DIR/admin" ] || echo "admin_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n') $(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" >"$DIR/admin"
read -r ADMIN_ID ADMIN_SECRET <"$DIR/admin"

cargo build --profile "$PROFILE" --quiet --features postgres --bin agent-auth-issuer
for port in "${PORTS[@]}"; do
  AGENT_AUTH_KEY_ENCRYPTION_KEY=$(cat "$DIR/kek") \
    AGENT_AUTH_ADMIN_KEY_ID=$ADMIN_ID AGENT_AUTH_ADMIN_KEY_SECRET=$ADMIN_SECRET \
    "$OUT/agent-auth-issuer" --db "$DB" --listen "127.0.0.1:$port" \
    --issuer-url "$ISSUER_URL" >"$DIR/replica-$port.log" 2>&1 &
  pids+=($!)
done
for port in "${PORTS[@]}"; do
  until grep -q "listening" "$DIR/replica-$port.log" 2>/dev/null; do
    if ! kill -0 "${pids[0]}" 2>/dev/null || ! kill -0 "${pids[1]}" 2>/dev/null; then
      echo "a replica exited:" >&2
      cat "$DIR"/replica-*.log >&2
      exit 1
    fi
    sleep 0.2
  done
done

echo "PostgreSQL:  $DB (data in $DIR/pg)"
for port in "${PORTS[@]}"; do echo "replica:     http://127.0.0.1:$port"; done
echo "issuer URL:  $ISSUER_URL (the tokens' iss: a load balancer in front of both replicas)"
echo "admin key:   AGENT_AUTH_ADMIN_KEY_ID=$ADMIN_ID AGENT_AUTH_ADMIN_KEY_SECRET=(in $DIR/admin)"
echo "Ctrl-C stops the replicas and PostgreSQL."
wait
