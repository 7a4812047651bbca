#!/usr/bin/env bash
# Makes an upgrade fixture: a data directory written by this build, with
# every kind of row the database holds (instances, keys, groups, grants,
# topics, device credentials, tokens, an admin and an API key, calls with
# their timelines and the controller's state), for tests/it/upgrade.rs to
# migrate with every later build. Keep one per release:
#
#   scripts/make-upgrade-fixture.sh target/debug/mqrtc tests/fixtures/upgrade/0.1.0
set -euo pipefail
BIN="$(realpath "$1")"
OUT="$2"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
D="$WORK/data"
"$BIN" serve --dev --data-dir "$D" --mqtt-port 0 --mqtts-port 0 --ws-port 0 --wss-port 0 \
  --http-port 0 --https-port 0 > "$WORK/out" 2> "$WORK/log" &
SERVER=$!
for _ in $(seq 600); do [ -f "$D/ports.json" ] && break; sleep 0.1; done
port() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$D/ports.json" "$1"; }
MQTT=$(port mqtt); HTTP=$(port http)
m() { "$BIN" "$@" --data-dir "$D" > /dev/null; }
m instance create acme --name "Acme"
m instance add-key acme
m group create GID_acme --instance acme --p2p group
m topic create acme_up --instance acme --role uplink
m topic create acme_down --instance acme --role downlink
m topic create acme_event --instance acme --role event
m group grant GID_acme acme_event --publish --subscribe
m device create GID_acme@@@sensor1 --instance acme
m token create --instance acme --type RW --resource acme_event
m admin api-key-create fixture
# A call on the demo tenant, answered and hung up.
dev() { "$BIN" device --mqtt-port "$MQTT" --http-port "$HTTP" --data-dir "$D" "$@"; }
dev --id GID_demo@@@bob --auto-answer --once --hangup-after 1 > /dev/null 2>&1 &
BOB=$!
sleep 1
timeout 30 "$BIN" device --mqtt-port "$MQTT" --http-port "$HTTP" --id GID_demo@@@alice call bob > /dev/null 2>&1
wait "$BOB" || true
kill -TERM "$SERVER"; wait "$SERVER" || true

mkdir -p "$OUT"
cp "$D/mqrtc.sqlite" "$D/master.key" "$OUT/"
python3 - "$OUT" "$("$BIN" --version)" "$(git rev-parse --short HEAD)" <<'PY'
import json, sqlite3, sys
out, version, commit = sys.argv[1:4]
c = sqlite3.connect(f"{out}/mqrtc.sqlite")
tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
json.dump({
    "made_by": f"{version} ({commit})",
    "schema": c.execute("PRAGMA user_version").fetchone()[0],
    "rows": {t: c.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables},
}, open(f"{out}/manifest.json", "w"), indent=2)
PY
cat "$OUT/manifest.json"
