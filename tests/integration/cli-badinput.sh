#!/usr/bin/env bash
# Bad input costs no time (issue 15).  Every usage error below exits 2 at
# once, before anything starts (no QEMU is even needed: the --qmp sockets
# do not exist, so an error found later would be a connection failure,
# exit 1), and prints exactly two lines: "volmig SUB: ..." naming the flag
# and the value, then "see volmig SUB --help"; never the whole help, never
# ": Invalid argument".  Then what is not a usage error but must still be
# quick and clear: a missing file: target in mirror mode, and `volmig qmp`
# on a monitor another client holds.
. "$(dirname "$0")/../lib/common.sh"
require python3 qemu-system-x86_64

Q=unix:$T/none.qmp    # nobody listens here
n=0
# usage SUB WORD ARGS... : volmig SUB ARGS is a usage error whose message
# holds WORD (the flag) and the value that follows it in ARGS
usage() {
    local sub=$1 word=$2 rc=0 t0; shift 2
    n=$((n + 1))
    t0=$(date +%s%N)
    timeout 10 "$VOLMIG" "$sub" "$@" >"$T/u$n.out" 2>"$T/u$n.err" || rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    local what="volmig $sub $* -> $(tr '\n' '|' <"$T/u$n.err")"
    assert_eq "$rc" 2 "exit status of $what"
    [ "$(wc -l <"$T/u$n.err")" = 2 ] || fail "not two lines: $what"
    [ -s "$T/u$n.out" ] && fail "a usage error printed on stdout: $what"
    head -n 1 "$T/u$n.err" | grep -q "^volmig $sub: " || fail "prefix: $what"
    head -n 1 "$T/u$n.err" | grep -qF -- "$word" || fail "the message does not name '$word': $what"
    tail -n 1 "$T/u$n.err" | grep -qx "see volmig $sub --help" || fail "no pointer to --help: $what"
    grep -q "Invalid argument" "$T/u$n.err" && fail "stray errno text: $what"
    [ $ms -lt 2000 ] || fail "took $ms ms: $what"
    log "ok ($ms ms): $(head -n 1 "$T/u$n.err")"
}

# volmig serve
truncate -s 1M "$T/disk"
usage serve "--listen '127.0.0.1:99999'" --target "$T/disk" --listen 127.0.0.1:99999
usage serve "--listen ':65536'" --target "$T/disk" --listen :65536
usage serve "--listen '127.0.0.1:65536'" --target "$T/disk" --listen 127.0.0.1:65536
usage serve "--listen '127.0.0.1:-1'" --target "$T/disk" --listen 127.0.0.1:-1
usage serve "--listen ':abc'" --target "$T/disk" --listen :abc
usage serve "--listen 'localhost:http'" --target "$T/disk" --listen localhost:http
usage serve "--listen '127.0.0.1'" --target "$T/disk" --listen 127.0.0.1
usage serve "--target 'null:'" --target null:
usage serve "--size '0'" --target "$T/disk" --size 0
usage serve "--target" --listen 127.0.0.1:0
usage serve "'--bogus'" --target "$T/disk" --bogus
usage serve "'--size'" --target "$T/disk" --size

# volmig migrate
V=(--volume "disk0=file:$T/disk")
usage migrate "--qmp '$T/q.sock'" --qmp "$T/q.sock" "${V[@]}"
usage migrate "--qmp 'libvirt:'" --qmp libvirt: "${V[@]}"
usage migrate "--qmp 'libvirt:?uri=qemu:///system'" --qmp "libvirt:?uri=qemu:///system" "${V[@]}"
usage migrate "--switchover pivot" --qmp "$Q" "${V[@]}" --mode bitmap --switchover pivot
usage migrate "--switchover 'migrate:garbage'" --qmp "$Q" "${V[@]}" --switchover migrate:garbage
usage migrate "--switchover 'migrate:tcp:127.0.0.1:99999'" --qmp "$Q" "${V[@]}" --switchover migrate:tcp:127.0.0.1:99999
usage migrate "--switchover 'migrate:tcp:'" --qmp "$Q" "${V[@]}" --switchover migrate:tcp:
usage migrate "--switchover 'migrate:'" --qmp "$Q" "${V[@]}" --switchover migrate:
usage migrate "--granularity '3'" --qmp "$Q" "${V[@]}" --granularity 3
usage migrate "--granularity '256'" --qmp "$Q" "${V[@]}" --granularity 256
usage migrate "--granularity '128M'" --qmp "$Q" "${V[@]}" --granularity 128M
usage migrate "--granularity '96k'" --qmp "$Q" "${V[@]}" --granularity 96k
usage migrate "--speed '0'" --qmp "$Q" "${V[@]}" --speed 0
usage migrate "--buf-size 'x'" --qmp "$Q" "${V[@]}" --buf-size x
usage migrate "--progress-interval '5'" --qmp "$Q" "${V[@]}" --progress-interval 5
usage migrate "--retries ''" --qmp "$Q" "${V[@]}" --retries ''
usage migrate "--volume disk0=nbd://h:99999/" --qmp "$Q" --volume disk0=nbd://h:99999/
usage migrate "--volume 'disk0'" --qmp "$Q" --volume disk0
usage migrate "--qmp" "${V[@]}"
usage migrate "'--bogus'" --qmp "$Q" "${V[@]}" --bogus

# volmig copy and volmig qmp
usage copy "--speed '0'" "$T/disk" "$T/out" --speed 0
usage copy "'--bogus'" "$T/disk" "$T/out" --bogus
usage copy "SOURCE" "$T/disk"
usage copy "--qmp '$T/q.sock'" --qmp "$T/q.sock" --drive disk0 "$T/out"
usage copy "--drive" --qmp "$Q" "$T/out"
usage copy "'--connections'" --qmp "$Q" --drive disk0 --connections 2 "$T/out"
usage qmp "'$T/q.sock'" "$T/q.sock" -c query-status
usage qmp "--timeout 'x'" "$Q" --timeout x
usage qmp "no QMP address"

rc=0
"$VOLMIG" frobnicate >"$T/top.out" 2>"$T/top.err" || rc=$?
assert_eq "$rc" 2 "exit status of an unknown subcommand"
assert_eq "$(cat "$T/top.err")" "volmig: unknown subcommand 'frobnicate'
see volmig --help" "an unknown subcommand"

log "a file: target that does not exist, in mirror mode: said at once, with what to do"
random_file "$T/src" 4
start_qemu q '{"driver":"raw","node-name":"disk0","file":{"driver":"file","filename":"'"$T/src"'"}}'
rc=0
timeout 10 "$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/new.img" --switchover pivot \
    >"$T/m.out" 2>"$T/m.err" || rc=$?
cat "$T/m.err"
assert_eq "$rc" 1 "exit status for a missing file: target"
grep -q "$T/new.img does not exist" "$T/m.err" || fail "the message does not say the file is missing"
grep -q "truncate -s" "$T/m.err" || fail "the message does not say what to do"
assert_eq "$(wc -l <"$T/m.err")" 1 "lines of the message"
[ -e "$T/new.img" ] && fail "new.img was created"

log "volmig qmp on a monitor another client holds: it says so within a few seconds"
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(4096); time.sleep(4)' "$T/q.qmp" &
holder=$!
track_pid $holder
sleep 0.5
"$VOLMIG" qmp "unix:$T/q.qmp" -c query-status >"$T/c.out" 2>"$T/c.err" &
cpid=$!
track_pid $cpid
wait_for 3 grep -q "waiting for the monitor" "$T/c.err" \
    || fail "nothing said within 3 s while the monitor is held: $(cat "$T/c.err")"
grep -q "another client holds it" "$T/c.err" || fail "the message does not say why: $(cat "$T/c.err")"
rc=0
wait $cpid || rc=$?
assert_eq "$rc" 0 "volmig qmp once the monitor is free"
grep -q running "$T/c.out" || fail "no reply after the wait: $(cat "$T/c.out")"
log "ok"
