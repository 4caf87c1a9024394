#!/usr/bin/env bash
# Load tests of volmig migrate + volmig serve (issue 7):
#
#   tests/campaign/load.sh [--short]
#
#   (a) one migration of 8 volumes in one call into 8 volmig serve exports
#       (full: 8 x 256 MiB; short: 8 x 16 MiB)
#   (b) 4 migrations at once: 4 source QEMUs, 4 volmig migrate processes,
#       into 4 volmig serve processes (full: 4 x 512 MiB; short: 4 x 32 MiB).
#       volmig serve has one export per process today, so "4 migrations into
#       one volmig serve" cannot be run as such: multi-export serving does
#       not exist yet.
#   (c) a sparse volume (full: 100 GiB; short: 4 GiB) holding 16 scattered
#       MiB of data, migrated into volmig serve on a sparse target file of
#       the same size; the target must stay sparse (du), its data regions
#       equal the source's, and everything else read as zeroes (checked
#       through SEEK_DATA/SEEK_HOLE, without reading the holes).  Skipped,
#       saying so, if the file system has less than 5 GiB free.
#
# Every destination is compared with its source (cmp).  For each scenario:
# wall time, and for each process (volmig migrate, volmig serve, the source
# QEMU that does the mirroring) CPU seconds (user+sys) and peak memory
# (VmHWM); volmig migrate's through /usr/bin/time -v, the long-running ones
# from /proc just before they are stopped.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 qemu-img python3 /usr/bin/time

short=0
[ "${1:-}" = --short ] && short=1
if [ $short = 1 ]; then
    A_MIB=16 B_MIB=32 C_SIZE=$((4 << 30)) C_NAME="4 GiB"
else
    A_MIB=256 B_MIB=512 C_SIZE=$((100 << 30)) C_NAME="100 GiB"
fi
HELP="$TOP/tests/campaign/helpers.py"
HZ=$(getconf CLK_TCK)

# cpu PID : user+sys CPU seconds so far.   hwm PID : VmHWM in KiB.
cpu() { awk -v hz="$HZ" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
now() { date +%s.%N; }
elapsed() { python3 -c "print('%.2f' % ($(now) - $1))"; }

# stats LABEL PID CPU0 : one report line for a live process.
stats() {
    local c; c=$(python3 -c "print('%.2f' % ($(cpu "$2") - $3))")
    printf '#   %-28s CPU %6ss   peak RSS %s\n' "$1" "$c" "$(mib "$(hwm "$2")")"
}
# time_stats LABEL FILE : the same from /usr/bin/time -v.
time_stats() {
    local u s m
    u=$(sed -n 's/.*User time (seconds): //p' "$2")
    s=$(sed -n 's/.*System time (seconds): //p' "$2")
    m=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$2")
    printf '#   %-28s CPU %6ss   peak RSS %s\n' "$1" "$(python3 -c "print('%.2f' % ($u + $s))")" "$(mib "$m")"
}
# stop PID : SIGTERM, and wait until it is gone.
stop() { kill "$1" 2>/dev/null || true; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$1" 2>/dev/null || true; }

summary=()

# ---- (a) 8 volumes, one call ----
log "(a) one migration of 8 volumes x $A_MIB MiB into 8 volmig serve exports"
vols=() srcs=()
for i in $(seq 0 7); do
    random_file "$T/a_src$i" $A_MIB
    truncate -s $((A_MIB << 20)) "$T/a_dst$i"
    start_serve asrv$i --target "$T/a_dst$i" --listen "unix:$T/asrv$i.sock" --export vol$i
    vols+=(--volume "disk$i=nbd+unix:///vol$i?socket=$T/asrv$i.sock")
    srcs+=("$T/a_src$i")
done
src_qemu aq "${srcs[@]}"
q0=$(cpu $aq_pid); s0=()
for i in $(seq 0 7); do s0[$i]=$(cpu "$(eval echo \$asrv${i}_pid)"); done
t0=$(now)
MIGRATE_WRAP="/usr/bin/time -v -o $T/a.time" migrate_bg amig --qmp "unix:$T/aq.qmp" "${vols[@]}" --switchover none
migrate_wait amig
ta=$(elapsed "$t0")
assert_eq "$amig_rc" 0 "exit status of the 8-volume migration"
for i in $(seq 0 7); do same_bytes "$T/a_src$i" "$T/a_dst$i"; done
assert_clean "$T/aq.qmp2"
echo "# (a) 8 x $A_MIB MiB in one call: ${ta}s, $(python3 -c "print('%.0f' % (8 * $A_MIB / $ta))") MiB/s; all 8 equal"
time_stats "volmig migrate" "$T/a.time"
stats "source QEMU" $aq_pid "$q0"
tot=0 maxh=0
for i in $(seq 0 7); do
    p=$(eval echo \$asrv${i}_pid)
    stats "volmig serve vol$i" "$p" "${s0[$i]}"
done
summary+=("(a) 8 x $A_MIB MiB, one call: ${ta} s")
for i in $(seq 0 7); do stop "$(eval echo \$asrv${i}_pid)"; done
stop $aq_pid
rm -f "$T"/a_src* "$T"/a_dst*

# ---- (b) 4 migrations at once ----
log "(b) 4 migrations at once (4 QEMUs, 4 volmig migrate) into 4 volmig serve processes x $B_MIB MiB"
log "    (volmig serve serves one export per process: multi-export serving does not exist yet)"
for i in 0 1 2 3; do
    random_file "$T/b_src$i" $B_MIB
    truncate -s $((B_MIB << 20)) "$T/b_dst$i"
    port=$(free_port)
    start_serve bsrv$i --target "$T/b_dst$i" --listen "127.0.0.1:$port" --export vol$i
    eval "bport$i=$port"
    src_qemu bq$i "$T/b_src$i"
done
for i in 0 1 2 3; do
    eval "bq0_$i=\$(cpu \$bq${i}_pid) bs0_$i=\$(cpu \$bsrv${i}_pid)"
done
t0=$(now)
for i in 0 1 2 3; do
    MIGRATE_WRAP="/usr/bin/time -v -o $T/b$i.time" migrate_bg bmig$i --qmp "unix:$T/bq$i.qmp" \
        --volume "disk0=nbd://127.0.0.1:$(eval echo \$bport$i)/vol$i" --switchover none
done
for i in 0 1 2 3; do migrate_wait bmig$i; done
tb=$(elapsed "$t0")
for i in 0 1 2 3; do
    assert_eq "$(eval echo \$bmig${i}_rc)" 0 "exit status of concurrent migration $i"
    same_bytes "$T/b_src$i" "$T/b_dst$i"
    assert_clean "$T/bq$i.qmp2"
done
echo "# (b) 4 concurrent migrations x $B_MIB MiB: ${tb}s, $(python3 -c "print('%.0f' % (4 * $B_MIB / $tb))") MiB/s in all; all 4 equal"
for i in 0 1 2 3; do
    echo "#   migration $i: $(event_field bmig$i completed seconds) s"
    time_stats "volmig migrate $i" "$T/b$i.time"
    stats "source QEMU $i" "$(eval echo \$bq${i}_pid)" "$(eval echo \$bq0_$i)"
    stats "volmig serve $i" "$(eval echo \$bsrv${i}_pid)" "$(eval echo \$bs0_$i)"
done
summary+=("(b) 4 x $B_MIB MiB at once: ${tb} s")
for i in 0 1 2 3; do stop "$(eval echo \$bsrv${i}_pid)"; stop "$(eval echo \$bq${i}_pid)"; done
rm -f "$T"/b_src* "$T"/b_dst*

# ---- (c) a large sparse volume ----
avail=$(df --output=avail -B1 "$T" | tail -n 1)
if [ "$avail" -lt $((5 << 30)) ]; then
    echo "# (c) SKIPPED: only $((avail >> 20)) MiB free under $T; the $C_NAME sparse test wants 5 GiB"
    summary+=("(c) skipped: too little free space")
else
    log "(c) a $C_NAME sparse volume with 16 scattered MiB of data into volmig serve"
    qemu-img create -q -f raw "$T/c_src" $C_SIZE
    ranges=()
    RANDOM=42
    for j in $(seq 0 15); do
        off=$(( (C_SIZE / 16) * j + ((RANDOM * 32768 + RANDOM) % 1024) * 1048576 % (C_SIZE / 16 - (1 << 20)) ))
        off=$(( off / 4096 * 4096 ))
        dd if=/dev/urandom of="$T/c_src" bs=1M count=1 seek=$off oflag=seek_bytes conv=notrunc status=none
        ranges+=("$off:1048576")
    done
    truncate -s $C_SIZE "$T/c_dst"
    port=$(free_port)
    start_serve csrv --target "$T/c_dst" --listen "127.0.0.1:$port" --export big
    src_qemu cq "$T/c_src"
    q0=$(cpu $cq_pid) s0=$(cpu $csrv_pid)
    t0=$(now)
    MIGRATE_WRAP="/usr/bin/time -v -o $T/c.time" migrate_bg cmig --qmp "unix:$T/cq.qmp" \
        --volume "disk0=nbd://127.0.0.1:$port/big" --switchover none
    migrate_wait cmig
    tc=$(elapsed "$t0")
    assert_eq "$cmig_rc" 0 "exit status of the sparse migration"
    assert_clean "$T/cq.qmp2"
    time_stats "volmig migrate" "$T/c.time" >"$T/c.stats"
    stats "source QEMU" $cq_pid "$q0" >>"$T/c.stats"
    stats "volmig serve" $csrv_pid "$s0" >>"$T/c.stats"
    stop $csrv_pid
    du_src=$(du -k "$T/c_src" | cut -f1) du_dst=$(du -k "$T/c_dst" | cut -f1)
    assert_eq "$(stat -c %s "$T/c_dst")" "$C_SIZE" "target size"
    [ "$du_dst" -le $(( du_src + 65536 )) ] \
        || fail "the target is not sparse: $du_dst KiB allocated, the source $du_src KiB"
    for r in "${ranges[@]}"; do
        cmp -i "${r%%:*}:${r%%:*}" -n "${r#*:}" "$T/c_src" "$T/c_dst" \
            || fail "data region $r differs"
    done
    zeros=$(python3 "$HELP" sparse-check "$T/c_dst" $C_SIZE "${ranges[@]}") || fail "sparse target: $zeros"
    echo "# (c) $C_NAME sparse, 16 MiB of data: ${tc}s; target allocates $du_dst KiB (source $du_src KiB); data equal; $zeros"
    cat "$T/c.stats"
    summary+=("(c) $C_NAME sparse: ${tc} s, target $du_dst KiB allocated")
    stop $cq_pid
fi

echo
printf '# %s\n' "${summary[@]}"
log "ok"
