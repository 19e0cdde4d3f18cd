# bench/lib.sh — small helpers the benchmark scripts share; sourced, not run.

# median N...: the median of the numbers (exit status 1 when there are none).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {
    if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
# fmt VALUE [DECIMALS]: VALUE with DECIMALS (default 1) digits after the point.
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }'; }
# port_busy PORT: true when something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
