#!/usr/bin/env bash
# What volmig prints (issue 15):
#  1. volmig copy on a terminal: the bar ends at 100.0%;
#  2. volmig migrate on a terminal: the bar carries figures per volume,
#     and ends at 100.0% when the mirrors are ready;
#  3. JSON events: "t" to the millisecond at most, an unknown ETA is null
#     (never -1), in migrate's and copy's events;
#  4. a failure is said once, on stderr: not as well as a line on stdout
#     (migrate into a too small target; copy whose source server dies).
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require script qemu-system-x86_64 python3

# on_tty OUT CMD... : CMD on a pseudo-terminal; its screen output in OUT,
# carriage returns turned into newlines (one bar a line)
on_tty() {
    local out=$1; shift
    script -qec "$(printf '%q ' "$@")" /dev/null </dev/null | tr '\r' '\n' >"$out"
}
bars() { grep -a '^\[[# ]*\]' "$1" || true; }

log "1. volmig copy on a terminal"
random_file "$T/src" 48
on_tty "$T/copy.tty" "$VOLMIG" copy --speed 24M --progress-interval 100 "$T/src" "$T/dst"
bars "$T/copy.tty" | tail -n 3
bars "$T/copy.tty" | tail -n 1 | grep -q "100.0% 48.0 MiB / 48.0 MiB" || fail "the copy bar does not end at 100%"
same_bytes "$T/src" "$T/dst"

log "2. volmig migrate on a terminal, two volumes"
random_file "$T/a" 16
random_file "$T/b" 24
truncate -s 16M "$T/ta"
truncate -s 24M "$T/tb"
src_qemu q "$T/a" "$T/b"
on_tty "$T/mig.tty" "$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/ta" \
    --volume "disk1=file:$T/tb" --switchover none --speed 8M --progress-interval 100
bars "$T/mig.tty" | tail -n 3
bars "$T/mig.tty" | grep -q "disk0 [0-9]*% .* left, disk1 [0-9]*% .* left" \
    || fail "the migrate bar has no figures per volume"
bars "$T/mig.tty" | tail -n 1 | grep -q "100.0%" || fail "the migrate bar does not end at 100%"

log "3. JSON events"
check_json() { # FILE WHAT
    python3 - "$1" "$2" <<'PY' || fail "$2: JSON events"
import json, re, sys
raw = open(sys.argv[1]).read().splitlines()
nulls = 0
for line in raw:
    if not line.strip():
        continue
    m = re.search(r'"t":([^,}]*)', line)
    assert m, "no t: " + line
    assert re.fullmatch(r"\d+(\.\d{1,3})?", m.group(1)), "t is %s in %s" % (m.group(1), line)
    e = json.loads(line)
    if "eta" in e:
        assert e["eta"] is None or e["eta"] >= 0, "eta %s in %s" % (e["eta"], line)
        nulls += e["eta"] is None
print("%s: %d events, %d with an unknown eta (null)" % (sys.argv[2], len(raw), nulls))
PY
}
truncate -s 16M "$T/ta2"
truncate -s 24M "$T/tb2"
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/ta2" --volume "disk1=file:$T/tb2" \
    --switchover none --speed 8M --progress-interval 100 --output json >"$T/mig.json" \
    || fail "migrate --output json"
check_json "$T/mig.json" migrate
grep -q '"eta":null' "$T/mig.json" || fail "no unknown ETA in migrate's events (the first progress has no rate yet)"
"$VOLMIG" copy --speed 24M --progress-interval 100 --output json "$T/src" "$T/dst2" >"$T/copy.json" \
    || fail "copy --output json"
check_json "$T/copy.json" copy
head -n 1 "$T/copy.json" | grep -q '"event":"started".*"eta":null' \
    || fail "copy's started event, with no rate yet, gives an ETA: $(head -n 1 "$T/copy.json")"

log "4. a failure is said once"
random_file "$T/small" 8
port=$(free_port)
start_serve small --target "$T/small" --listen 127.0.0.1:$port
rc=0
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --retries 0 \
    >"$T/f.out" 2>"$T/f.err" || rc=$?
assert_eq "$rc" 1 "migrate into a too small target"
log "stdout: $(cat "$T/f.out")"
log "stderr: $(cat "$T/f.err")"
grep -q 8388608 "$T/f.err" || fail "stderr does not say why"
grep -q 8388608 "$T/f.out" && fail "the failure is said on stdout as well"
assert_eq "$(grep -c 8388608 "$T/f.err")" 1 "times stderr says it"

random_file "$T/big" 64
sport=$(free_port)
start_serve srcsrv --target "$T/big" --listen 127.0.0.1:$sport --readonly
"$VOLMIG" copy --speed 8M "nbd://127.0.0.1:$sport/" "$T/out" >"$T/c.out" 2>"$T/c.err" &
cpid=$!
track_pid $cpid
sleep 1.5
kill -9 "$srcsrv_pid"
rc=0
wait $cpid || rc=$?
assert_eq "$rc" 1 "copy whose source died"
log "stdout: $(cat "$T/c.out")"
log "stderr: $(cat "$T/c.err")"
grep -qi "failed" "$T/c.out" && fail "the failure is said on stdout as well"
grep -q "failed after" "$T/c.err" || fail "stderr does not say how far the copy got"
assert_eq "$(wc -l <"$T/c.err")" 1 "lines on stderr"
log "ok"
