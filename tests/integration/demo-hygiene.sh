#!/usr/bin/env bash
# `make demo` leaves nothing behind (issue 15): no QEMU, no volmig, no
# network namespace, no scratch directory; neither when it succeeds nor
# when Ctrl-C stops it halfway.  The demos run small (DEMO_MIB) under a tag
# of their own, and tests/lib/leftovers.sh looks for what carries it.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/leftovers.sh"
require qemu-system-x86_64 python3 ip jq

# demo TAG SCRIPT [SIGNAL-AFTER-LINE] : runs a demo script as a terminal
# would (its own process group, SIGINT not ignored); with a line, sends
# SIGINT to the group once the output shows it.  Sets demo_rc.
demo() {
    local tag=$1 script=$2 line=${3:-}
    VOLMIG_TAG=$tag VOLMIG_LEDGER=$T/$tag.ledger DEMO_MIB=${DEMO_MIB:-32} DEMO_K8S_MIB=16 python3 -c '
import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp("bash", ["bash"] + sys.argv[1:])' "$TOP/tests/lib/$script" >"$T/$tag.out" 2>&1 &
    local pid=$!
    track_pid $pid
    if [ -n "$line" ]; then
        wait_for 120 grep -q -- "$line" "$T/$tag.out" || { cat "$T/$tag.out"; fail "$script never printed '$line'"; }
        sleep 0.3
        log "Ctrl-C to $script after '$line'"
        kill -INT -- -$pid
    fi
    demo_rc=0
    timeout 300 tail --pid=$pid -f /dev/null || fail "$script did not end"
    wait $pid || demo_rc=$?
    sed 's/^/    | /' "$T/$tag.out"
}

nothing_left() { # TAG WHAT
    local what
    if ! what=$(leftovers "$1" "$T/$1.ledger"); then
        sweep_leftovers "$1" "$T/$1.ledger"
        fail "$2 left behind: $what"
    fi
    log "ok: nothing of $2 is left"
}

demo "${VOLMIG_TAG}a" demo.sh
assert_eq "$demo_rc" 0 "demo.sh exit status"
nothing_left "${VOLMIG_TAG}a" "demo.sh"

demo "${VOLMIG_TAG}b" demo-k8s.sh
assert_eq "$demo_rc" 0 "demo-k8s.sh exit status"
nothing_left "${VOLMIG_TAG}b" "demo-k8s.sh"

DEMO_MIB=256 demo "${VOLMIG_TAG}c" demo.sh "-- volmig migrate"
[ "$demo_rc" != 0 ] || fail "demo.sh exited 0 after Ctrl-C"
nothing_left "${VOLMIG_TAG}c" "demo.sh stopped by Ctrl-C"

demo "${VOLMIG_TAG}d" demo-k8s.sh "the migration object"
[ "$demo_rc" != 0 ] || log "demo-k8s.sh finished before the Ctrl-C"
nothing_left "${VOLMIG_TAG}d" "demo-k8s.sh stopped by Ctrl-C"
