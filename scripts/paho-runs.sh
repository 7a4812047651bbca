#!/usr/bin/env bash
# Runs the Eclipse Paho interoperability suite (../shared/conformance, not
# part of this repository) N times in a row against `mqrtc serve
# --standard-mqtt` configured as the suite expects a broker (an ACL file
# that refuses `test/nosubscribe`, keepalive at most 60 s), and against
# Debian's mosquitto with the same settings if it is installed, and prints
# one line per run. The figures in docs/conformance.md come from this.
#
#   scripts/paho-runs.sh [N] [MQRTC_BINARY]     (default 5, target/release/mqrtc)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5}"
BIN="${2:-target/release/mqrtc}"
SUITE="${PAHO_SUITE:-../shared/conformance/run-paho.sh}"
[ -x "$SUITE" ] || [ -f "$SUITE" ] || { echo "skipped: $SUITE not found" >&2; exit 0; }
WORK="$(mktemp -d)"
if [ -n "${PAHO_KEEP:-}" ]; then # keep the logs (suite output per run, mqrtc.log) in $WORK
  echo "logs in $WORK"
  trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
else
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
fi
printf 'topic readwrite #\ntopic deny test/nosubscribe\n' > "$WORK/acl"
printf '[limits]\nmax_keepalive_secs = 60\n' > "$WORK/mqrtc.toml"

summary() { # suite output -> "passed/total (failed: ...)"
  local ran failed
  ran=$(grep -oE '^Ran [0-9]+' "$1" | awk '{print $2}')
  failed=$(grep -E '^(FAIL|ERROR): ' "$1" | awk '{print $2}' | tr '\n' ' ')
  echo "$(( ran - $(echo "$failed" | wc -w) ))/$ran${failed:+ (failed: ${failed% })}"
}

run_against() { # name port
  for i in $(seq "$N"); do
    bash "$SUITE" 127.0.0.1 "$2" 3 > "$WORK/v3.txt" 2>&1 || true
    bash "$SUITE" 127.0.0.1 "$2" 5 > "$WORK/v5.txt" 2>&1 || true
    echo "$1 run $i: MQTT 3.1.1 $(summary "$WORK/v3.txt"), MQTT 5 $(summary "$WORK/v5.txt")"
    if [ -n "${PAHO_KEEP:-}" ]; then cp "$WORK/v3.txt" "$WORK/$1-v3-$i.txt"; cp "$WORK/v5.txt" "$WORK/$1-v5-$i.txt"; fi
  done
}

"$BIN" serve --config "$WORK/mqrtc.toml" --standard-mqtt --acl-file "$WORK/acl" \
  --data-dir "$WORK/data" --mqtt-port 0 --mqtts-port 0 --ws-port 0 --wss-port 0 \
  --http-port 0 --https-port 0 > "$WORK/mqrtc.out" 2> "$WORK/mqrtc.log" &
for _ in $(seq 600); do [ -f "$WORK/data/ports.json" ] && break; sleep 0.1; done
PORT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mqtt'])" "$WORK/data/ports.json")
echo "mqrtc $("$BIN" --version 2>/dev/null | awk '{print $2}') ($(git rev-parse --short HEAD)) on port $PORT"
run_against mqrtc "$PORT"
kill %1; wait %1 2>/dev/null || true

if [ -z "${PAHO_NO_MOSQUITTO:-}" ] && command -v mosquitto > /dev/null; then
  MPORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nacl_file %s\nmax_keepalive 60\n' \
    "$MPORT" "$WORK/acl" > "$WORK/mosquitto.conf"
  mosquitto -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$MPORT") 2>/dev/null && break; sleep 0.1; done
  echo "$(mosquitto -h 2>/dev/null | head -1) on port $MPORT"
  run_against mosquitto "$MPORT"
fi
