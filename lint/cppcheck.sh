#!/usr/bin/env bash
# cppcheck over fcgi/, as `make lint` and .ci/run run it: no build directory,
# no services, no network. Exits non-zero on any finding. Reads
# lint/cppcheck.cfg (library macros) and lint/cppcheck.supp (accepted
# findings, each with its reason).
set -euo pipefail
cd "$(dirname "$0")/.."
CPPCHECK=${CPPCHECK:-cppcheck}
command -v "$CPPCHECK" >/dev/null || { echo "lint: $CPPCHECK is not installed" >&2; exit 2; }
# -D__CPPCHECK__: db/db.h gives cppcheck a DB_ARG it can parse (see there).
exec "$CPPCHECK" -q -j"$(nproc)" --std=c11 --enable=warning,style,performance,portability \
    --inline-suppr --library=posix --library=lint/cppcheck.cfg \
    --suppressions-list=lint/cppcheck.supp --error-exitcode=1 \
    -Ifcgi -D_GNU_SOURCE -D__CPPCHECK__ "$@" fcgi
