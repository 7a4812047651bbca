#!/usr/bin/env bash
# The vendored rmqtt crates (vendor/rmqtt, vendor/rmqtt-net, vendor/rmqtt-session-storage,
# vendor/rmqtt-storage) are their crates.io releases plus the patch series
# in vendor/patches/<crate>/, applied in order; vendor/<crate>/PATCHES.md
# says what each change is for and which test covers it.
#
#   scripts/vendor.sh check
#       downloads the releases (checked against vendor/patches/SHA256SUMS,
#       the crates.io index checksums), applies the series and fails unless
#       the result equals vendor/<crate> byte for byte (CI runs this).
#   scripts/vendor.sh new-patch CRATE NAME
#       after editing vendor/CRATE, writes the difference from upstream plus
#       the series as the next patch, vendor/patches/CRATE/NNNN-NAME.patch.
set -euo pipefail
cd "$(dirname "$0")/.."

CRATES="rmqtt:0.24.0 rmqtt-net:0.5.0 rmqtt-storage:0.11.1 rmqtt-session-storage:0.24.0"
CACHE="${VENDOR_CACHE:-target/vendor-upstream}"
mkdir -p "$CACHE"

upstream() { # crate version -> extracted directory
  local file="$1-$2.crate" dir="$CACHE/$1-$2"
  if [ ! -d "$dir" ]; then
    if [ ! -f "$CACHE/$file" ]; then
      curl -sfL --retry 3 "https://static.crates.io/crates/$1/$file" -o "$CACHE/$file.part"
      mv "$CACHE/$file.part" "$CACHE/$file"
    fi
    (cd "$CACHE" && grep " $file\$" "$OLDPWD/vendor/patches/SHA256SUMS" | sha256sum -c --quiet -)
    tar xzf "$CACHE/$file" -C "$CACHE"
  fi
  echo "$dir"
}

patched() { # crate version out-dir: upstream with the series applied
  rm -rf "$3"
  cp -a "$(upstream "$1" "$2")" "$3"
  for p in vendor/patches/"$1"/*.patch; do
    [ -e "$p" ] || continue
    patch -d "$3" -p1 --binary -s -f --no-backup-if-mismatch < "$p" \
      || { echo "vendor: $p does not apply to $1 $2" >&2; exit 1; }
  done
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case "${1:-}" in
  check)
    for c in $CRATES; do
      name=${c%:*} version=${c#*:}
      patched "$name" "$version" "$work/$name"
      if ! diff -r --exclude=PATCHES.md "$work/$name" "vendor/$name" >"$work/diff"; then
        echo "vendor/$name is not $name $version plus vendor/patches/$name:" >&2
        head -50 "$work/diff" >&2
        echo "(record a change with: scripts/vendor.sh new-patch $name NAME)" >&2
        exit 1
      fi
      echo "vendor/$name = $name $version + $(ls vendor/patches/"$name" | wc -l) patches"
    done
    ;;
  new-patch)
    name="${2:?crate}" title="${3:?name}"
    version=$(for c in $CRATES; do if [ "${c%:*}" = "$name" ]; then echo "${c#*:}"; fi; done)
    [ -n "$version" ] || { echo "unknown crate $name" >&2; exit 2; }
    patched "$name" "$version" "$work/a"
    cp -a "vendor/$name" "$work/b"
    rm -f "$work/b/PATCHES.md"
    n=$(( $(ls vendor/patches/"$name" | wc -l) + 1 ))
    out=$(printf "vendor/patches/%s/%04d-%s.patch" "$name" "$n" "$title")
    { echo "mqrtc: $title"; echo; (cd "$work" && diff -ruN a b) || true; } > "$out"
    echo "wrote $out"
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
