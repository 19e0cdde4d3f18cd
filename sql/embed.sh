#!/bin/sh
# Turn the numbered migrations into a C array so each binary carries the schema
# it was built for: embed.sh sql/001_x.sql sql/002_y.sql ... > migrations.c
set -e
echo '/* Generated from the sql/ migrations by sql/embed.sh; do not edit. */'
echo '#include "db/migrate.h"'
echo 'const struct migration pier_migrations[] = {'
for f in "$@"; do
    base=$(basename "$f")
    version=$(echo "$base" | sed -n 's/^\([0-9][0-9]*\)_.*\.sql$/\1/p')
    if [ -z "$version" ]; then
        echo "embed.sh: $base is not named NNN_name.sql" >&2
        exit 1
    fi
    printf '    {%d, "%s",\n' "$(expr "$version" + 0)" "$base"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/     "/' -e 's/$/\\n"/' "$f"
    echo '    },'
done
echo '};'
echo "const int pier_migrations_count = $#;"
