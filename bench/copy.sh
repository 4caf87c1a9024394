#!/usr/bin/env bash
# bench/copy.sh: offline `volmig copy` against nbdcopy and qemu-img convert.
#
# Cases: a local file to an NBD export and an NBD export to a local file,
# each with a dense (random) and a sparse (25% data) source of BENCH_SIZE
# (default 2G), on the disk (BENCH_DISK_DIR, default /var/tmp: device-bound)
# and in /dev/shm (copier-bound).  The NBD end is nbdkit's file plugin for
# every copier, and every target starts as a fresh sparse file.  Each time
# includes a `sync`, so copiers that leave dirty pages behind pay for them,
# and the page cache is dropped before each run on the disk (BENCH_DROP=0
# turns that off).  fio measures the disk's raw copy limit in the same run:
# one sequential O_DIRECT reader and one writer at the same time.
#
# BENCH_REPEAT (default 3) runs every case that many times, the copiers
# taking turns within each round so that they share the machine's load;
# the table shows the fastest run and the range, the copier's own CPU time
# (user + system, its I/O threads included) of its fastest run, and the
# 1-minute load average when the case started: on a shared machine CPU
# time is the steadier figure.
#
# A second table: the source's page cache.  A BENCH_CACHE_SIZE (default 1G)
# file on the disk copied into nbdkit's file plugin with cache=none, once
# with the source warm (read just before) and once cold (caches dropped),
# volmig against nbdcopy: O_DIRECT alone loses when the cache is warm,
# buffered reads alone lose when it is cold.  What bounds those copies is
# measured in the same run: the same reads into null: (the source side
# alone), the file from /dev/shm into nbdkit (the NBD end alone, reads
# costing next to nothing), and fio's raw copy limit for that size on the
# disk (one O_DIRECT reader and one writer at once).
# BENCH_COPY_CACHE_ONLY=1 runs this table alone.
#
# Prints Markdown tables on stdout; progress goes to stderr.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
VOLMIG=${VOLMIG:-$TOP/build/volmig}
SIZE=${BENCH_SIZE:-2G}
DISK=${BENCH_DISK_DIR:-/var/tmp}
DROP=${BENCH_DROP:-1}
REPEAT=${BENCH_REPEAT:-3}
for c in nbdkit nbdcopy qemu-img fio python3; do
    command -v $c >/dev/null || { echo "bench/copy.sh: missing $c" >&2; exit 77; }
done
[ -x "$VOLMIG" ] || { echo "bench/copy.sh: build volmig first ($VOLMIG)" >&2; exit 1; }
bytes=$(numfmt --from=iec "$SIZE")
pids=() dirs=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "${dirs[@]}"
}
trap cleanup EXIT
say() { echo "bench/copy.sh: $*" >&2; }

drop_caches() {
    sync
    if [ "$DROP" = 1 ] && [ "$1" = disk ] && [ -w /proc/sys/vm/drop_caches ]; then
        echo 3 >/proc/sys/vm/drop_caches
    fi
}

# The cache table's runs: TOOL warm|cold|shm nbd|null; prints "SECONDS
# CPU".  shm: the source is a copy in /dev/shm.
cache_case() {
    local src=$dir/csrc dst=null: s
    [ "$2" = shm ] && src=$shmsrc
    if [ "$3" = nbd ]; then
        rm -f "$dir/target"
        truncate -s "$cbytes" "$dir/target"
        rm -f "$dir/t.sock"
        nbdkit -f -U "$dir/t.sock" file "$dir/target" cache=none >/dev/null 2>&1 &
        pids+=($!)
        server=$!
        for _ in $(seq 100); do [ -S "$dir/t.sock" ] && break; sleep 0.05; done
        dst="nbd+unix:///?socket=$dir/t.sock"
    fi
    sync
    if [ "$2" = cold ]; then echo 3 >/proc/sys/vm/drop_caches; else cat "$src" >/dev/null; fi
    case $1 in
        volmig)  s=$(timed "$VOLMIG" copy "$src" "$dst") ;;
        nbdcopy) s=$(timed nbdcopy "$src" "$dst") ;;
    esac
    if [ "$3" = nbd ]; then
        stop_server
        cmp -s "$dir/csrc" "$dir/target" || s="DIFFERS -"
    fi
    echo "$s"
}

# nbdkit exporting FILE on a unix socket; URI in $uri, pid remembered.
nbd_server() { # FILE SOCK [-r]
    rm -f "$2"
    nbdkit -f ${3:-} -U "$2" file "$1" >/dev/null 2>&1 &
    pids+=($!)
    server=$!
    for _ in $(seq 100); do [ -S "$2" ] && break; sleep 0.05; done
    uri="nbd+unix:///?socket=$2"
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; }

make_sources() { # DIR
    say "creating $SIZE sources in $1"
    head -c "$bytes" /dev/urandom >"$1/dense"
    truncate -s "$bytes" "$1/sparse"
    local q=$(( bytes / 4 )) chunk=$(( bytes / 16 / 1048576 )) i
    for i in 0 1 2 3; do
        dd if="$1/dense" of="$1/sparse" bs=1M count=$chunk skip=$(( i * q / 1048576 )) \
           seek=$(( i * q / 1048576 )) conv=notrunc status=none
    done
}

# Runs "$@" and prints "SECONDS CPU": the seconds it took, sync included,
# and the CPU seconds it used (every thread of it, io_uring workers too).
timed() {
    python3 - "$dir/err" "$@" <<'PY' || { cat "$dir/err" >&2; echo "FAIL -"; }
import os, subprocess, sys, time
err = open(sys.argv[1], "w")
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
_, status, ru = os.wait4(p.pid, 0)
os.sync()
t1 = time.monotonic()
if status:
    sys.exit(1)
print("%.2f %.2f" % (t1 - t0, ru.ru_utime + ru.ru_stime))
PY
}

# One case: TOOL DIRECTION SRCFILE; prints "SECONDS CPU".  The target is
# fresh.
run_case() { # TOOL to-nbd|from-nbd KIND WHERE
    local tool=$1 dirn=$2 kind=$3 where=$4 src dst s
    rm -f "$dir/target"
    truncate -s "$bytes" "$dir/target"
    if [ "$dirn" = to-nbd ]; then
        nbd_server "$dir/target" "$dir/t.sock"
        src="$dir/$kind" dst=$uri
    else
        nbd_server "$dir/$kind" "$dir/s.sock" -r
        src=$uri dst="$dir/target"
    fi
    drop_caches "$where"
    case $tool in
        volmig)   s=$(timed "$VOLMIG" copy "$src" "$dst") ;;
        nbdcopy)  s=$(timed nbdcopy "$src" "$dst") ;;
        qemu-img) s=$(timed qemu-img convert -n -f raw -O raw "$src" "$dst") ;;
    esac
    stop_server
    cmp -s "$dir/$kind" "$dir/target" || s="DIFFERS -"
    echo "$s"
}

# best "S1 C1" "S2 C2" ...: "MIN CPU-OF-MIN RANGE"; a failed run wins
# (FAIL or DIFFERS) so that it shows.
best() {
    python3 - "$@" <<'PY'
import sys
runs = [a.split() for a in sys.argv[1:]]
bad = [r for r in runs if not r[0].replace('.', '').isdigit()]
if bad:
    print("%s - -" % bad[0][0]); sys.exit()
runs.sort(key=lambda r: float(r[0]))
rng = "%s-%s" % (runs[0][0], runs[-1][0]) if len(runs) > 1 else runs[0][0]
print(runs[0][0], runs[0][1], rng)
PY
}

fio_limit() { # DIR WHERE -> "seconds MB/s"
    local direct=1
    [ "$2" = shm ] && direct=0
    rm -f "$1/fio.w"
    drop_caches "$2"
    fio --output-format=json --ioengine=io_uring --bs=1M --iodepth=16 --direct=$direct \
        --size="$bytes" --name=read --rw=read --filename="$1/dense" \
        --name=write --rw=write --filename="$1/fio.w" >"$1/fio.json" 2>/dev/null
    rm -f "$1/fio.w"
    python3 - "$1/fio.json" "$bytes" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
r = j["jobs"][0]["read"]["bw_bytes"]; w = j["jobs"][1]["write"]["bw_bytes"]
bw = min(r, w)
print("%.2f %.0f" % (int(sys.argv[2]) / bw, bw / 1e6))
PY
}

ratio() { python3 -c "a, b = '$1', '$2'
try: print('%.2fx' % (float(a) / float(b)))
except ValueError: print('-')"; }

rows=() wheres="disk shm"
[ "${BENCH_COPY_CACHE_ONLY:-0}" = 1 ] && wheres=
for where in $wheres; do
    if [ $where = disk ]; then base=$DISK; else base=/dev/shm; fi
    dir=$(mktemp -d "$base/volmig-bench-copy.XXXXXX")
    dirs+=("$dir")
    make_sources "$dir"
    read -r limit_s limit_mb < <(fio_limit "$dir" $where)
    say "$where: fio copy limit ${limit_mb} MB/s (${limit_s} s for $SIZE)"
    rows+=("| $where | fio raw copy limit | ${limit_s} | | | | | | $(cut -d' ' -f1 /proc/loadavg) | ${limit_mb} MB/s |")
    for dirn in to-nbd from-nbd; do
        for kind in dense sparse; do
            declare -A t=() c=() r=() all=()
            load=$(cut -d' ' -f1 /proc/loadavg)
            for i in $(seq "$REPEAT"); do
                for tool in volmig nbdcopy qemu-img; do
                    x=$(run_case $tool $dirn $kind $where)
                    all[$tool]+="${all[$tool]:+|}$x"
                    say "$where $dirn $kind $tool run $i: ${x% *} s, CPU ${x#* } s (load $(cut -d' ' -f1 /proc/loadavg))"
                done
            done
            for tool in volmig nbdcopy qemu-img; do
                IFS='|' read -r -a runs <<<"${all[$tool]}"
                read -r t[$tool] c[$tool] r[$tool] < <(best "${runs[@]}")
            done
            pct=-
            [ $kind = dense ] && pct=$(python3 -c "
try: print('%.0f%%' % (100 * $limit_s / float('${t[volmig]}')))
except ValueError: print('-')")
            rows+=("| $where | file $( [ $dirn = to-nbd ] && echo '-> NBD' || echo '<- NBD') $kind | ${r[volmig]} | ${r[nbdcopy]} | ${r[qemu-img]} | $(ratio "${t[nbdcopy]}" "${t[volmig]}") | $(ratio "${t[qemu-img]}" "${t[volmig]}") | ${c[volmig]} / ${c[nbdcopy]} / ${c[qemu-img]} | $load | $pct of limit |")
        done
    done
    rm -rf "$dir"
done

crows=()
if [ -w /proc/sys/vm/drop_caches ]; then
    cbytes=$(numfmt --from=iec "${BENCH_CACHE_SIZE:-1G}")
    dir=$(mktemp -d "$DISK/volmig-bench-cache.XXXXXX")
    dirs+=("$dir")
    head -c "$cbytes" /dev/urandom >"$dir/csrc"
    shmdir=$(mktemp -d /dev/shm/volmig-bench-cache.XXXXXX)
    dirs+=("$shmdir")
    shmsrc=$shmdir/csrc
    cp "$dir/csrc" "$shmsrc"
    for case in "warm nbd" "cold nbd" "warm null" "cold null" "shm nbd"; do
        read -r temp to <<<"$case"
        declare -A all=() t=() c=() r=()
        load=$(cut -d' ' -f1 /proc/loadavg)
        for i in $(seq "$REPEAT"); do
            for tool in volmig nbdcopy; do
                x=$(cache_case $tool $temp $to)
                all[$tool]+="${all[$tool]:+|}$x"
                say "cache $temp -> $to $tool run $i: ${x% *} s, CPU ${x#* } s"
            done
        done
        for tool in volmig nbdcopy; do
            IFS='|' read -r -a runs <<<"${all[$tool]}"
            read -r t[$tool] c[$tool] r[$tool] < <(best "${runs[@]}")
        done
        src=$temp
        [ $temp = shm ] && src="in /dev/shm"
        crows+=("| $src | $( [ $to = nbd ] && echo nbdkit || echo null: ) | ${r[volmig]} | ${r[nbdcopy]} | $(ratio "${t[nbdcopy]}" "${t[volmig]}") | ${c[volmig]} / ${c[nbdcopy]} | $load |")
    done
    rm -rf "$shmdir"
    # fio_limit reads "dense" and drops the caches itself.
    ln -s csrc "$dir/dense"
    read -r climit_s climit_mb < <(bytes=$cbytes fio_limit "$dir" disk)
    crows+=("| cold (fio raw copy limit) | disk | ${climit_s} | | | | $(cut -d' ' -f1 /proc/loadavg) |")
    rm -rf "$dir"
fi

if [ ${#rows[@]} -gt 0 ]; then
    echo "### volmig copy vs nbdcopy vs qemu-img convert ($SIZE, seconds incl. sync, fastest-slowest of $REPEAT; ratio of the fastest runs > 1: volmig faster)"
    echo
    echo "| where | case | volmig | nbdcopy | qemu-img | nbdcopy/volmig | qemu-img/volmig | CPU s volmig / nbdcopy / qemu-img | load | notes |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "$(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg); NBD end: nbdkit file plugin ($(nbdkit --version | head -n 1)); $(nbdcopy --version | head -n 1); $(qemu-img --version | head -n 1); targets start as fresh sparse files."
fi
if [ ${#crows[@]} -gt 0 ]; then
    echo
    echo "### The source's page cache: a ${BENCH_CACHE_SIZE:-1G} file on the disk into nbdkit (file, cache=none) or null:, warm (read just before) and cold (caches dropped); seconds incl. sync, fastest-slowest of $REPEAT; ratio > 1: volmig faster"
    echo
    echo "| source | target | volmig | nbdcopy | nbdcopy/volmig | CPU s volmig / nbdcopy | load |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${crows[@]}"
fi
