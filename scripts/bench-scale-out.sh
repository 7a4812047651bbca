#!/bin/sh
# Call setups per second and setup latency through Debian's mosquitto +
# `mqrtc controller` (state in SQLite, and in PostgreSQL), against the
# appliance, in one run on this machine (alternating, ROUNDS times each):
# `mqrtc bench calls` on each. Extra arguments after ROUNDS go to every
# `mqrtc bench calls` (for example --rate 250).
#
#   scripts/bench-scale-out.sh [BINARY] [ROUNDS] [BENCH ARGS...]   # default target/release/mqrtc, 2
#
# Needs mosquitto and PostgreSQL (scripts/install-test-deps.sh). Prints the
# bench's JSON lines, each after a line naming the setup; docs/benchmarks.md
# keeps the figures.
set -eu
BIN=$(realpath "${1:-target/release/mqrtc}")
ROUNDS=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
tmp=$(mktemp -d)
chmod 711 "$tmp"
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL refuses to run as root: run it as nobody then.
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi; }
mkdir "$tmp/pg"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$tmp/pg"
as_pg "$PG_BIN/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
PG_PORT=$(free_port)
as_pg "$PG_BIN/postgres" -D "$tmp/pg/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" -k "$tmp/pg" \
  >"$tmp/pg/log" 2>&1 &
pids="$pids $!"

cp "$(dirname "$(realpath "$0")")/../packaging/scale-out/mosquitto.acl" "$tmp/acl"
until as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do sleep 0.1; done

# start_controller NAME: `mqrtc controller` on data dir NAME; sets CTL_PID.
start_controller() {
  RUST_LOG=warn "$BIN" controller --data-dir "$tmp/$1" --config "$tmp/$1/mqrtc.toml" --http-port 0 \
    2>"$tmp/$1.log" &
  CTL_PID=$!
  pids="$pids $CTL_PID"
}

# role NAME: what /healthz of controller NAME says it is (empty until it answers).
role() {
  [ -f "$tmp/$1/ports.json" ] || return 0
  port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$tmp/$1/ports.json")
  curl -s "http://127.0.0.1:$port/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("role",""))' 2>/dev/null || true
}

# start_scale_out NAME STORE: a mosquitto and a controller (state in STORE:
# empty for SQLite); sets MQ_PORT.
start_scale_out() {
  MQ_PORT=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nacl_file %s\nmax_queued_messages 10000\nmax_inflight_messages 1000\n' \
    "$MQ_PORT" "$tmp/acl" >"$tmp/$1.conf"
  /usr/sbin/mosquitto -c "$tmp/$1.conf" >"$tmp/$1-mosquitto.log" 2>&1 &
  pids="$pids $!"
  # With PostgreSQL the demo tenant goes there (the data dir keeps master.key).
  if [ -n "$2" ]; then
    "$BIN" instance demo --data-dir "$tmp/$1" --store "$2" >/dev/null
  else
    "$BIN" instance demo --data-dir "$tmp/$1" >/dev/null
  fi
  printf '[upstream]\nurl = "mqtt://127.0.0.1:%s"\nusername = "mqrtc-controller"\nstore = "%s"\n' \
    "$MQ_PORT" "$2" >"$tmp/$1/mqrtc.toml"
  start_controller "$1"
  until [ "$(role "$1")" = active ]; do sleep 0.2; done
}
start_scale_out ctl-sqlite ""
SQLITE_PORT=$MQ_PORT
start_scale_out ctl-pg "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
PG_MQ_PORT=$MQ_PORT

i=1
while [ "$i" -le "$ROUNDS" ]; do
  echo "# round $i: appliance (mqrtc serve --dev)"
  "$BIN" bench calls "$@"
  echo "# round $i: mosquitto + mqrtc controller + SQLite"
  "$BIN" bench calls --port "$SQLITE_PORT" --standard-broker "$@"
  echo "# round $i: mosquitto + mqrtc controller + PostgreSQL"
  "$BIN" bench calls --port "$PG_MQ_PORT" --standard-broker "$@"
  i=$((i + 1))
done

# Failover: a standby on a copy of the data dir (master.key and config), kill -9 of the active one,
# the time until the standby says it is active (default lease poll, 500 ms).
active_pid=$CTL_PID
n=1
while [ "$n" -le 5 ]; do
  standby="pg-standby-$n"
  cp -a "$tmp/ctl-pg" "$tmp/$standby"
  rm -f "$tmp/$standby/ports.json"
  start_controller "$standby"
  until [ "$(role "$standby")" = standby ]; do sleep 0.05; done
  killed=$(date +%s%N)
  kill -9 "$active_pid"
  until [ "$(role "$standby")" = active ]; do :; done
  now=$(date +%s%N)
  echo "{\"failover\":$n,\"standby_active_after_ms\":$(( (now - killed) / 1000000 ))}"
  active_pid=$CTL_PID
  n=$((n + 1))
done
