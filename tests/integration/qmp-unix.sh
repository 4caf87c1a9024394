#!/usr/bin/env bash
# volmig qmp over QEMU's unix socket, scripted (-c and stdin): capabilities,
# query-status, query-named-block-nodes, an error reply, and an event
# (BLOCK_JOB_READY from a small mirror).
. "$(dirname "$0")/../lib/common.sh"
require qemu-system-x86_64 python3

# py EXPR: evaluates EXPR over the JSON on stdin (as d).
py() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

start_qemu vm '{"driver":"null-co","node-name":"disk0","size":67108864}'
Q=unix:$T/vm.qmp

log "the greeting, then capabilities are negotiated, with id 1"
"$VOLMIG" qmp -v "$Q" -c query-status >"$T/out" 2>"$T/trace" || fail "query-status failed"
grep -q '^<- {"QMP":{"version":{"qemu":{' <(sed -n 1p "$T/trace") || fail "no greeting first"
assert_eq "$(sed -n 2p "$T/trace")" '-> {"execute":"qmp_capabilities","id":1}' "first message sent"
assert_eq "$(sed -n 3p "$T/trace")" '<- {"return":{},"id":1}' "capabilities reply"
assert_eq "$(wc -l <"$T/out")" 1 "one reply line"
assert_eq "$(py 'd["return"]["status"]' <"$T/out")" running "query-status"

log "replies, one per line, in order; an unknown command fails the run"
set +e
"$VOLMIG" qmp "$Q" -c 'query-named-block-nodes flat=true' -c no-such-command \
    -c '{"execute": "query-version"}' >"$T/out" 2>"$T/err"
rc=$?
set -e
assert_eq "$rc" 1 "exit status after a failed command"
assert_eq "$(wc -l <"$T/out")" 3 "reply lines"
assert_eq "$(sed -n 1p "$T/out" | py '[n["node-name"] for n in d["return"]]')" "['disk0']" "node names"
assert_eq "$(sed -n 2p "$T/out" | py 'd["error"]["class"]')" CommandNotFound "error class"
sed -n 2p "$T/out" | grep -q 'no-such-command' || fail "error desc does not name the command"
assert_eq "$(sed -n 3p "$T/out" | py 'd["return"]["qemu"]["major"] >= 7')" True "query-version"

log "a mirror reaches READY; the event is waited for with /wait"
"$VOLMIG" qmp "$Q" \
    -c 'blockdev-add driver=null-co node-name=tgt size=67108864' \
    -c 'blockdev-mirror job-id=m0 device=disk0 target=tgt sync=full' \
    -c '/wait BLOCK_JOB_READY 60' \
    -c 'query-block-jobs' \
    -c 'block-job-cancel device=m0' \
    -c '/wait BLOCK_JOB_COMPLETED 60' >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "mirror run"; }
assert_eq "$(sed -n 3p "$T/out" | py 'd["event"]')" BLOCK_JOB_READY "event"
assert_eq "$(sed -n 3p "$T/out" | py 'd["data"]["device"]')" m0 "event device"
assert_eq "$(sed -n 4p "$T/out" | py 'd["return"][0]["ready"]')" True "job is ready"
assert_eq "$(sed -n 6p "$T/out" | py 'd["event"]')" BLOCK_JOB_COMPLETED "completion event"

log "commands from standard input, comments and blank lines skipped"
printf '# a comment\n\nquery-status\n{"execute":"query-block-jobs"}\n' \
    | "$VOLMIG" qmp "$Q" >"$T/out" || fail "stdin mode"
assert_eq "$(wc -l <"$T/out")" 2 "stdin reply lines"
assert_eq "$(sed -n 2p "$T/out")" '{"return": []}' "no jobs left"

log "a line that does not parse fails the run but not the rest"
set +e
"$VOLMIG" qmp "$Q" -c 'query-status a=1 a=2' -c query-status >"$T/out" 2>"$T/err"
rc=$?
set -e
assert_eq "$rc" 1 "exit status after a bad line"
grep -q "given twice" "$T/err" || fail "no parse error message: $(cat "$T/err")"
assert_eq "$(wc -l <"$T/out")" 1 "the good command still ran"

log "usage errors exit 2; a missing socket exits 1"
set +e
"$VOLMIG" qmp >/dev/null 2>&1; assert_eq "$?" 2 "no address"
"$VOLMIG" qmp "$Q" "$Q" >/dev/null 2>&1; assert_eq "$?" 2 "two addresses"
"$VOLMIG" qmp "$Q" --timeout x >/dev/null 2>&1; assert_eq "$?" 2 "bad timeout"
"$VOLMIG" qmp "unix:$T/nothing.qmp" -c query-status >/dev/null 2>"$T/err"; assert_eq "$?" 1 "no socket"
set -e
grep -q "No such file" "$T/err" || fail "missing socket message: $(cat "$T/err")"
"$VOLMIG" qmp --help | grep -q 'usage: volmig qmp' || fail "--help"
log "ok"
