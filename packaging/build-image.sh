#!/usr/bin/env bash
# Builds the mqrtc container image from Debian packages, with no image
# registry: a minimal Debian 12 root (debootstrap --variant=minbase) with
# the binary and a user added, packed as an OCI image by umoci, with the
# configuration of packaging/Containerfile (user 10001, volume, ports,
# healthcheck, `serve --all-interfaces`).
#
#   packaging/build-image.sh [BINARY] [OUT_DIR]
#   packaging/build-image.sh --context DIR [BINARY]   (a build context for Containerfile instead)
#
# Writes OUT_DIR (default target/image)/mqrtc-oci, an OCI layout with the
# tag `VERSION`, mqrtc-VERSION.oci.tar (the same as an oci-archive, for
# `podman load -i`) and, with skopeo, mqrtc-VERSION.docker.tar (for
# `docker load -i`). Needs root, debootstrap, umoci and the Debian mirror
# (MQRTC_DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--context" ]; then
  mkdir -p "$2"
  install -m 0755 "${3:-target/release/mqrtc}" "$2/mqrtc"
  strip --strip-debug "$2/mqrtc"
  echo "$2"
  exit 0
fi
BIN="${1:-target/release/mqrtc}"
OUT="${2:-target/image}"
MIRROR="${MQRTC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ -x "$BIN" ] || { [ "$BIN" = target/release/mqrtc ] && cargo build --release --locked >&2; }
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ROOT="$WORK/rootfs"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
chroot "$ROOT" useradd --system -K SYS_UID_MAX=10001 -K SYS_GID_MAX=10001 --uid 10001 --user-group --home-dir /var/lib/mqrtc \
  --no-create-home --shell /usr/sbin/nologin mqrtc
install -d -o 10001 -g 10001 -m 0700 "$ROOT/var/lib/mqrtc"
install -m 0755 "$BIN" "$ROOT/usr/bin/mqrtc"
strip --strip-debug "$ROOT/usr/bin/mqrtc"
# What a running appliance never reads.
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
  "$ROOT"/usr/share/locale/*

OCI="$WORK/mqrtc-oci"
umoci init --layout "$OCI"
umoci new --image "$OCI:$VERSION"
umoci unpack --image "$OCI:$VERSION" "$WORK/bundle" > /dev/null
rm -rf "$WORK/bundle/rootfs"
mv "$ROOT" "$WORK/bundle/rootfs"
umoci repack --image "$OCI:$VERSION" --history.created_by "packaging/build-image.sh" "$WORK/bundle"
ports=()
for p in 1883 8883 8083 8084 8080 8443; do ports+=(--config.exposedports "$p/tcp"); done
umoci config --image "$OCI:$VERSION" --author "mqrtc developers" \
  --config.user 10001:10001 --config.workingdir /var/lib/mqrtc \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env MQRTC_DATA_DIR=/var/lib/mqrtc --config.volume /var/lib/mqrtc \
  "${ports[@]}" --config.stopsignal SIGTERM \
  --config.entrypoint /usr/bin/mqrtc --config.cmd serve --config.cmd --all-interfaces \
  --config.label "org.opencontainers.image.title=mqrtc" \
  --config.label "org.opencontainers.image.version=$VERSION"
# OCI image configs have no healthcheck; Docker reads one from this field.
python3 packaging/image-healthcheck.py "$OCI" "$VERSION"
umoci gc --layout "$OCI"

mkdir -p "$OUT"
rm -rf "${OUT:?}/mqrtc-oci"
cp -a "$OCI" "$OUT/mqrtc-oci"
tar -C "$OUT/mqrtc-oci" -cf "$OUT/mqrtc-$VERSION.oci.tar" .
if command -v skopeo > /dev/null; then # for `docker load -i` (keeps the healthcheck)
  rm -f "$OUT/mqrtc-$VERSION.docker.tar"
  skopeo copy -q "oci:$OUT/mqrtc-oci:$VERSION" "docker-archive:$OUT/mqrtc-$VERSION.docker.tar:mqrtc:$VERSION"
fi
echo "$OUT/mqrtc-oci:$VERSION"
