#!/usr/bin/env bash
# tests/browser/run.sh — install the browser tests' dependencies (only when
# node_modules is missing or package-lock.json changed since the last install)
# and run the console's browser tests (every *.test.js here, one Chromium each)
# against a running Pier node. PIER_BROWSER_TESTS=word runs only the files whose
# name contains it.
#
# Environment (as for the integration tests): PIER_URL, PIER_ADMIN_ENV,
# PIER_STATE_DIR, PIER_BUILD_DIR, PIER_TEST_DIR. Needs node, npm, python3,
# skopeo, docker-registry, apache2-utils (quickstart.sh deps test installs
# these) and Debian's chromium at /usr/bin/chromium (installed here when
# missing and run as root).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE" || exit 1

# Debian's Chromium, as root (the test drives it; no browser is downloaded).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }
fi

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules/playwright-core ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if ! npm ci --no-audit --no-fund --loglevel=error >npm-ci.log 2>&1; then
        cat npm-ci.log
        echo "not ok - console_browser_test_npm_ci: npm ci failed"
        echo "0 passed, 1 failed"
        exit 1
    fi
    rm -f npm-ci.log
    echo "$want" >"$stamp"
fi

# Each file prints "ok"/"not ok" lines and its own "N passed, N failed"; the run
# fails when any file fails.
rc=0
for t in "$HERE"/*.test.js; do
    case "$(basename "$t")" in *"${PIER_BROWSER_TESTS:-}"*) ;; *) continue ;; esac
    echo "# $(basename "$t")"
    node "$t" || rc=1
done
exit "$rc"
