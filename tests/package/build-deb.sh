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
#
#   build-deb.sh --commit REV --version VERSION
# builds instead the tree of commit REV of this repository (git archive), with
# a debian/changelog entry of VERSION on top, e.g. an older release for the
# package upgrade test. Such a build is made once per machine: it is kept in
# $PIER_DEB_CACHE/<commit>-<version>/ (default ~/.cache/pier-deb), keyed by
# the commit and the version, and reused from every clone. When the clone lacks
# the commit (a shallow one), it is fetched from the remote "origin" first
# (which needs REV to be a full commit id).
# No lintian run: the package is as that commit made it.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

say() { printf '# %s\n' "$*"; }

# build_commit REV VERSION: the package of commit REV, versioned VERSION,
# built once and kept in the machine's cache (see the top of this file).
build_commit() {
    local rev=$1 version=$2 sha dir arch deb
    if ! sha=$(git -C "$SRC" rev-parse -q --verify "$rev^{commit}"); then
        say "fetching $rev from origin (this clone does not have it)"
        git -C "$SRC" fetch -q --depth=1 origin "$rev" >&2 ||
            { echo "build-deb.sh: commit $rev is not in this clone and origin did not give it" >&2; exit 1; }
        sha=$(git -C "$SRC" rev-parse --verify "$rev^{commit}")
    fi
    dir=${PIER_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pier-deb}/$sha-$version
    mkdir -p "$dir"
    arch=$(dpkg-architecture -qDEB_HOST_ARCH)
    deb=$dir/pier_${version}_${arch}.deb
    # One build at a time per commit and version, whoever asks for it.
    exec 9>"$dir/lock"
    flock 9
    if [ -f "$deb" ] && [ -f "$dir/done" ]; then
        say "reusing $deb (built from $sha)"
        echo "$deb"
        return 0
    fi
    rm -rf "$dir/pier" "$dir"/*.deb "$dir"/*.changes "$dir"/*.buildinfo "$dir/done"
    mkdir "$dir/pier"
    git -C "$SRC" archive --format=tar "$sha" | tar -C "$dir/pier" -xf -
    [ -f "$dir/pier/debian/changelog" ] || { echo "build-deb.sh: commit $sha has no debian/" >&2; exit 1; }
    # The version is that of the copy only: a changelog entry on top of the commit's.
    {
        printf 'pier (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * Built from commit %s by tests/package/build-deb.sh.\n\n' "$sha"
        printf ' -- Pier developers <pier@example.org>  %s\n\n' "$(git -C "$SRC" log -1 --format=%aD "$sha")"
        cat "$dir/pier/debian/changelog"
    } >"$dir/changelog.new"
    mv "$dir/changelog.new" "$dir/pier/debian/changelog"
    [ "$(dpkg-parsechangelog -l "$dir/pier/debian/changelog" -S Version)" = "$version" ] ||
        { echo "build-deb.sh: $version is not a valid version" >&2; exit 1; }
    say "building the package of $sha as version $version in $dir/pier"
    local start=$SECONDS
    if ! (cd "$dir/pier" && DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck parallel=$(nproc)} \
        dpkg-buildpackage -b -us -uc) >"$dir/build.log" 2>&1; then
        tail -n 40 "$dir/build.log" | sed 's/^/# /'
        echo "build-deb.sh: dpkg-buildpackage failed, see $dir/build.log" >&2
        exit 1
    fi
    say "built in $((SECONDS - start))s"
    [ -f "$deb" ] || { echo "build-deb.sh: no $deb after the build" >&2; exit 1; }
    # The objects are not needed again: keep the package, not the build tree.
    rm -rf "$dir/pier"
    touch "$dir/done"
    echo "$deb"
}

commit='' commit_version=''
while [ $# -gt 0 ]; do
    case $1 in
    --commit) commit=${2:?--commit needs a revision}; shift 2 ;;
    --version) commit_version=${2:?--version needs a version}; shift 2 ;;
    *) echo "build-deb.sh: unknown argument $1 (usage: build-deb.sh [--commit REV --version VERSION])" >&2; exit 2 ;;
    esac
done
if [ -n "$commit" ] || [ -n "$commit_version" ]; then
    if [ -z "$commit" ] || [ -z "$commit_version" ]; then
        echo "build-deb.sh: --commit and --version go together" >&2
        exit 2
    fi
    build_commit "$commit" "$commit_version"
    exit 0
fi

OUT=${PIER_DEB_DIR:-$SRC/build-deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
COPY=$OUT/pier

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
