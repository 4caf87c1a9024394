# Sourced by every integration test and bench script.
# Gives a private scratch directory, cleanup of everything started, and
# helpers to start volmig serve and a block-only QEMU.
set -euo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
VOLMIG=${VOLMIG:-$TOP/$BUILD/volmig}
QMPPY="$TOP/tests/lib/qmp.py"
# The tag (tests/lib/leftovers.sh) names this test's scratch directories
# and rides in the environment of every process it starts, so that the
# runner finds whatever outlives the test.
export VOLMIG_TAG=${VOLMIG_TAG:-t$$}
T=$(mktemp -d "/tmp/volmig-test.$VOLMIG_TAG.XXXXXX")
_pids=() _loops=() _dirs=() _netns_owned=() _mounts=()

cleanup() {
    local p l
    for p in "${_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    for l in "${_mounts[@]}"; do umount "$l" 2>/dev/null || umount -l "$l" 2>/dev/null || true; done
    for l in "${_loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    # A namespace goes after its processes: deleting it would not stop them.
    for l in "${_netns_owned[@]}"; do ip netns del "$l" 2>/dev/null || true; done
    [ ${#_dirs[@]} = 0 ] || rm -rf "${_dirs[@]}"
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
# Ctrl-C, a timeout or a hangup end the test through its EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

log()  { printf '# %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'SKIP: %s\n' "$*"; exit 77; }
require() {
    local c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "missing $c (make deps)"; done
}
assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"; }
same_bytes() { # FILE1 FILE2 [LEN]
    if [ -n "${3:-}" ]; then
        cmp -n "$3" "$1" "$2" || fail "$1 and $2 differ in the first $3 bytes"
    else
        cmp "$1" "$2" || fail "$1 and $2 differ"
    fi
}
track_pid()  { _pids+=("$1"); }
track_loop() { _loops+=("$1"); }
track_mount() { _mounts+=("$1"); }   # unmounted at exit, after the processes
# track_netns NAME : a network namespace the test made; deleted at exit
# after the processes, and listed in the runner's ledger.
track_netns() {
    _netns_owned+=("$1")
    [ -z "${VOLMIG_LEDGER:-}" ] || echo "netns $1" >>"$VOLMIG_LEDGER"
}
# scratch VAR BASE : VAR = a new directory under BASE (/var/tmp for a real
# disk, /dev/shm for tmpfs), removed at exit and named with the tag.
scratch() {
    local d
    d=$(mktemp -d "$2/volmig-test.$VOLMIG_TAG.XXXXXX") || fail "cannot make a directory in $2"
    _dirs+=("$d")
    printf -v "$1" '%s' "$d"
}

wait_for() { # SECONDS CMD... : poll until CMD succeeds
    local limit=$1; shift
    local end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt $end ] || return 1
        sleep 0.05
    done
}

# A TCP port nobody listens on right now, from a range the kernel does not
# hand out as ephemeral ports.
free_port() {
    local p
    for _ in $(seq 100); do
        p=$(( 20000 + RANDOM % 10000 ))
        ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }
    done
    fail "no free port"
}

# start_serve NAME ARGS... : volmig serve in the background, logging to
# $T/NAME.log; waits until it reports that it is listening.
start_serve() {
    local name=$1; shift
    "$VOLMIG" serve "$@" >"$T/$name.log" 2>&1 &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
    wait_for 10 grep -q "listening on" "$T/$name.log" \
        || { cat "$T/$name.log" >&2; fail "volmig serve ($name) did not start"; }
}

# stop_serve NAME : ends the server NAME and waits until it has gone, so
# that its image lock on the target is released.
stop_serve() {
    local pid
    eval "pid=\$${1}_pid"
    kill "$pid" 2>/dev/null || true
    wait_for 30 sh -c "! kill -0 $pid" || fail "volmig serve ($1) did not exit"
}

# start_qemu NAME BLOCKDEV-JSON... : a guest-less QEMU whose block layer is
# all we need.  Two monitors: $T/NAME.qmp for the code under test and
# $T/NAME.qmp2 for the test's own probes.
start_qemu() {
    local name=$1; shift
    local args=() b
    for b in "$@"; do args+=(-blockdev "$b"); done
    qemu-system-x86_64 -machine none -nodefaults -display none \
        -qmp "unix:$T/$name.qmp,server=on,wait=off" \
        -qmp "unix:$T/$name.qmp2,server=on,wait=off" \
        "${args[@]}" ${QEMU_EXTRA:-} >"$T/$name.qemu.log" 2>&1 &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
    wait_for 20 test -S "$T/$name.qmp2" || fail "QEMU $name did not start"
}

qmp() { python3 "$QMPPY" "$@"; }

# A file of SIZE bytes of random data (dd from urandom, in MiB).
random_file() { # PATH MIB
    dd if=/dev/urandom of="$1" bs=1M count="$2" status=none
}

# run_rusage OUT CMD... : runs CMD with stdout and stderr into OUT, and
# writes "EXIT CPU-SECONDS WALL-SECONDS" into OUT.cpu; returns CMD's exit.
run_rusage() {
    python3 -c '
import resource, subprocess, sys, time
t = time.time()
rc = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1] + ".cpu", "w").write("%d %.3f %.3f\n" % (rc, u.ru_utime + u.ru_stime, time.time() - t))
sys.exit(rc)' "$@"
}

# assert_sleeps OUT WHAT : the run_rusage run into OUT used under half its
# wall time in CPU.  Under load a spinning process gets less CPU, so this
# can miss a spin but never flags a process that sleeps.
assert_sleeps() {
    local rc cpu wall
    read -r rc cpu wall <"$1.cpu"
    log "CPU ${cpu} s over ${wall} s"
    python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 0.5 * float(sys.argv[2]) else 1)' "$cpu" "$wall" \
        || fail "$2 used ${cpu} s of CPU in ${wall} s: it spins while it waits"
}
