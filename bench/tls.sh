#!/usr/bin/env bash
# bench/tls.sh: what TLS costs volmig serve.  nbdcopy writes BENCH_SIZE
# (default 1 GiB) of random data into volmig serve over loopback TCP,
# plaintext and over TLS (PSK, and X.509 with client certificates), with 1
# and 4 connections, into the null target (protocol and TLS only) and into a
# file on tmpfs.  Each cell is the best of BENCH_REPEAT runs (default 3),
# with volmig serve's CPU seconds for that run.  Prints a Markdown table.
#
#   bench/tls.sh            BENCH_SIZE=256M BENCH_REPEAT=1 bench/tls.sh
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/tls-certs.sh"
require nbdcopy certtool psktool
SIZE=${BENCH_SIZE:-1G}
REPEAT=${BENCH_REPEAT:-3}
SHM=$(mktemp -d /dev/shm/volmig-bench-tls.XXXXXX)
trap 'rm -rf "$SHM"; cleanup' EXIT

bytes=$(numfmt --from=iec "$SIZE")
make_tls "$T/tls"
head -c "$bytes" /dev/urandom >"$SHM/src"

cpu_of() { # PID : user+system CPU seconds so far
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# run MODE TARGET CONNS : prints "seconds cpu" of the best run
run() {
    local mode=$1 target=$2 conns=$3 args=() uri port best="" bestcpu="" i t0 t1 c0 c1
    case "$mode" in
        plain) uri="nbd://127.0.0.1:PORT/" ;;
        psk)   args=(--tls-psk "$T/tls/psk/keys.psk")
               uri="nbds://volmig@127.0.0.1:PORT/?tls-psk-file=$T/tls/psk/keys.psk" ;;
        x509)  args=(--tls-creds "$T/tls/server")
               uri="nbds://127.0.0.1:PORT/?tls-certificates=$T/tls/client" ;;
    esac
    for i in $(seq "$REPEAT"); do
        port=$(free_port)
        rm -f "$T/b.log"       # start_serve waits for its "listening on"
        if [ "$target" = null ]; then
            start_serve b --target null: --size "$bytes" --listen 127.0.0.1:$port "${args[@]}"
        else
            truncate -s "$bytes" "$SHM/dst"
            start_serve b --target "$SHM/dst" --no-direct --listen 127.0.0.1:$port "${args[@]}"
        fi
        c0=$(cpu_of "$b_pid")
        t0=$(date +%s.%N)
        nbdcopy --connections="$conns" --requests=64 "$SHM/src" "${uri/PORT/$port}" \
            || fail "nbdcopy ($mode, $target, $conns) failed"
        t1=$(date +%s.%N)
        c1=$(cpu_of "$b_pid")
        kill "$b_pid"; wait "$b_pid" 2>/dev/null || true
        if [ "$target" != null ] && [ "$i" = 1 ]; then
            cmp "$SHM/src" "$SHM/dst" || fail "the copy ($mode) differs from the source"
        fi
        local s; s=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then
            best=$s; bestcpu=$(echo "$c1 - $c0" | bc -l)
        fi
        rm -f "$SHM/dst"
    done
    echo "$best $bestcpu"
}

echo "## volmig serve: the cost of TLS (nbdcopy of $SIZE, loopback, best of $REPEAT)"
echo
echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(gnutls-cli --version 2>/dev/null | head -n 1 || echo GnuTLS)"
echo
echo "| target | connections | mode | seconds | MiB/s | vs plaintext | serve CPU s |"
echo "|---|---:|---|---:|---:|---:|---:|"
for target in null tmpfs; do
    for conns in 1 4; do
        plain=""
        for mode in plain psk x509; do
            read -r s cpu < <(run "$mode" "$target" "$conns")
            [ "$mode" = plain ] && plain=$s
            mibs=$(echo "$bytes / 1048576 / $s" | bc -l)
            rel=$(echo "100 * $plain / $s" | bc -l)
            printf '| %s | %d | %s | %.2f | %.0f | %.0f%% | %.2f |\n' \
                "$target" "$conns" "$mode" "$s" "$mibs" "$rel" "$cpu"
        done
    done
done
