#!/usr/bin/env bash
# build-deb.sh — build the Debian package of this source tree and print the
# path of pier_<version>_<arch>.deb (the last line of the output).
#
# dpkg-buildpackage -b -us -uc runs in a copy of the tree's files (those git
# tracks or would track) kept in $PIER_DEB_DIR/pier (default build-deb/), so that
# the tree itself stays clean and a rebuild compiles only what changed. When
# no file changed since the last build, the last .deb is reused. lintian runs
# after each build; its report is kept next to the .deb (lintian.txt), and
# the build fails on any error it reports.
# DEB_BUILD_OPTIONS defaults to "nocheck" (./test.sh runs the unit tests).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${PIER_DEB_DIR:-$SRC/build-deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
COPY=$OUT/pier

say() { printf '# %s\n' "$*"; }

files() { git -C "$SRC" ls-files -z --cached --others --exclude-standard; }

# The key of the tree: every file's name, mode and content, except the
# integration and browser tests, which the package neither builds nor runs.
keyed() { files | grep -zv -e '^tests/integration/' -e '^tests/browser/' | sort -z; }
key=$(cd "$SRC" && keyed | xargs -0 -r stat -c '%n %a' -- | sha256sum | cut -d' ' -f1)
key=$key-$(cd "$SRC" && keyed | xargs -0 -r sha256sum -- | sha256sum | cut -d' ' -f1)

version=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$OUT/pier_${version}_${arch}.deb

if [ -f "$deb" ] && [ -f "$OUT/lintian.txt" ] && [ "$(cat "$OUT/key" 2>/dev/null)" = "$key" ]; then
    say "reusing $deb (no file changed since it was built)"
    echo "$deb"
    exit 0
fi
rm -f "$OUT/key" "$OUT"/*.deb "$OUT"/*.changes "$OUT"/*.buildinfo "$OUT/lintian.txt"

# Bring the copy up to date. Unchanged files keep their time stamps (tar
# restores them from the tree), so make rebuilds only what changed; files
# gone from the tree are removed from the copy.
mkdir -p "$COPY"
(cd "$SRC" && files | tar -cf - --null -T -) | tar -C "$COPY" -xf -
(cd "$SRC" && files | tr '\0' '\n' | sort) >"$OUT/files.now"
if [ -f "$OUT/files.last" ]; then
    comm -23 "$OUT/files.last" "$OUT/files.now" | while IFS= read -r gone; do
        rm -f "$COPY/$gone"
    done
fi
mv "$OUT/files.now" "$OUT/files.last"

# Objects of a build made without dependency tracking cannot tell which
# header changed: start that build directory afresh (once).
[ -f "$OUT/deps-tracked" ] || rm -rf "$COPY/debian/build"

# dh skips a build it has a stamp for: this is a new build of the same copy.
rm -f "$COPY"/debian/debhelper-build-stamp "$COPY"/debian/*.debhelper.log

say "building the package in $COPY"
start=$SECONDS
# -nc: no "debian/rules clean" first, which would throw the objects away. A
# first build in a fresh copy is a build from a clean tree.
if ! (cd "$COPY" && DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck parallel=$(nproc)} \
    dpkg-buildpackage -b -us -uc -nc) >"$OUT/build.log" 2>&1; then
    tail -n 40 "$OUT/build.log" | sed 's/^/# /'
    echo "build-deb.sh: dpkg-buildpackage failed, see $OUT/build.log" >&2
    exit 1
fi
say "built in $((SECONDS - start))s"
[ -f "$deb" ] || { echo "build-deb.sh: no $deb after the build" >&2; exit 1; }

lintian_root=()
[ "$(id -u)" = 0 ] && lintian_root=(--allow-root)
lintian "${lintian_root[@]}" "$OUT/pier_${version}_${arch}.changes" >"$OUT/lintian.txt" 2>&1 || true
sed 's/^/# lintian: /' "$OUT/lintian.txt"
if grep -q '^E: ' "$OUT/lintian.txt"; then
    echo "build-deb.sh: lintian reports errors" >&2
    exit 1
fi
touch "$OUT/deps-tracked"
echo "$key" >"$OUT/key"
echo "$deb"
