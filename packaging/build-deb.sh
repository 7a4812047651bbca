#!/usr/bin/env bash
# Builds the Debian package from this repository: /usr/bin/mqrtc, the
# conffile /etc/mqrtc/mqrtc.toml, the hardened systemd unit and the docs.
#
#   packaging/build-deb.sh [BINARY] [OUT_DIR]
#
# BINARY defaults to target/release/mqrtc (built if missing); OUT_DIR to
# target/debian. Prints the path of the .deb. Needs dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-target/release/mqrtc}"
OUT="${2:-target/debian}"
if [ ! -x "$BIN" ]; then
  [ "$BIN" = target/release/mqrtc ] || { echo "no binary at $BIN" >&2; exit 1; }
  cargo build --release --locked >&2
fi
# MQRTC_DEB_VERSION: another version number (the upgrade test builds two).
VERSION="${MQRTC_DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}"
ARCH=$(dpkg --print-architecture)
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
chmod 0755 "$ROOT"

install -D -m 0755 "$BIN" "$ROOT/usr/bin/mqrtc"
# The release profile keeps line tables for backtraces; the package does not.
strip --strip-debug "$ROOT/usr/bin/mqrtc"
install -D -m 0644 packaging/mqrtc.toml "$ROOT/etc/mqrtc/mqrtc.toml"
install -D -m 0644 packaging/mqrtc.service "$ROOT/lib/systemd/system/mqrtc.service"
install -d -m 0755 "$ROOT/usr/share/doc/mqrtc"
install -m 0644 README.md "$ROOT/usr/share/doc/mqrtc/"
install -m 0644 docs/*.md "$ROOT/usr/share/doc/mqrtc/"
cat > "$ROOT/usr/share/doc/mqrtc/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mqrtc
License: MIT or Apache-2.0
COPY

install -d -m 0755 "$ROOT/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
  packaging/debian/control.in > "$ROOT/DEBIAN/control"
echo /etc/mqrtc/mqrtc.toml > "$ROOT/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$ROOT/DEBIAN/"

mkdir -p "$OUT"
DEB="$OUT/mqrtc_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$ROOT" "$DEB" > /dev/null
echo "$DEB"
