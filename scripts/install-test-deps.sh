#!/usr/bin/env bash
# Installs the real peers the tests drive: Debian's mosquitto (broker, for
# the benchmark) and mosquitto-clients, Debian's chromium (browser tests),
# Python's paho-mqtt and openapi-spec-validator, MQTT.js, playwright-core
# (a driver only: it never downloads a browser here) and axe-core from npm;
# faketime (a clock earlier than the build); Debian's prometheus (a real
# server scrapes /metrics, promtool lints it); debootstrap, umoci, skopeo
# and runc (the container image is built from Debian packages and run).
# Debian/Ubuntu; run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v mosquitto_sub >/dev/null || ! command -v mosquitto >/dev/null \
   || ! command -v openssl >/dev/null || ! command -v stdbuf >/dev/null \
   || ! command -v chromium >/dev/null || ! command -v faketime >/dev/null \
   || ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
   || ! command -v debootstrap >/dev/null || ! command -v umoci >/dev/null \
   || ! command -v skopeo >/dev/null || ! command -v runc >/dev/null \
   || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq mosquitto mosquitto-clients openssl coreutils \
    chromium fonts-dejavu-core faketime
  $SUDO apt-get install -y -qq --no-install-recommends prometheus debootstrap umoci skopeo runc \
    postgresql
fi
# Debian starts a mosquitto service on 1883 when it can; the tests never need it.
# The same for PostgreSQL: the scale-out tests start their own server in a temp dir.
$SUDO systemctl disable --now mosquitto prometheus postgresql >/dev/null 2>&1 || true

python3 -m pip install --quiet -r tests/requirements.txt

if ! command -v node >/dev/null; then
  $SUDO apt-get install -y -qq nodejs npm
fi
npm ci --silent --prefix tests/js
