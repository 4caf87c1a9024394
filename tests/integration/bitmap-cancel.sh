#!/usr/bin/env bash
# --mode bitmap, interrupted:
#  (a) SIGINT during pass 0 into a slow destination: exit 3, one cancelled
#      event, the VM runs, no export, bitmap or NBD server of volmig's is
#      left, the source is unchanged;
#  (b) SIGKILL during pass 0: volmig cannot clean up, so its export, bitmap
#      and NBD server stay, and so does its socket directory
#      /tmp/volmig-PID.XXXXXX; the next run removes them (a warning says
#      so), then migrates normally and leaves nothing behind.  Directories
#      that merely look similar stay: a live pid's, one holding anything but
#      the socket, one whose socket still accepts connections, and names
#      off the pattern;
#  (c) QEMU killed during pass 0: volmig fails (exit 1) and still removes
#      its socket directory, which is on its own host.
# Every run's socket directory is gone once it exits (success, cancel,
# failure).
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit


# sock_dirs PID : the socket directories volmig process PID made, one a line.
sock_dirs() {
    find /tmp -maxdepth 1 -name "volmig-$1.*" -type d
}

# decoys left in /tmp by this test; removed on exit
decoys=()
trap 'cleanup; [ ${#decoys[@]} = 0 ] || rm -rf "${decoys[@]}"' EXIT

# listen_unix PATH : something that accepts connections on a unix socket
# until the test ends.
listen_unix() {
    python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
time.sleep(600)' "$1" &
    track_pid $!
    wait_for 10 test -S "$1" || fail "no listener on $1"
}

# stale_unix PATH : a unix socket nothing listens on any more.
stale_unix() {
    python3 -c '
import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$1"
    test -S "$1" || fail "no socket at $1"
}

random_file "$T/src" 32
before=$(sha "$T/src")
src_qemu q "$T/src"
p="$T/q.qmp2"
truncate -s 32M "$T/slow"
port=$(free_port)
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/slow" rate=16M   # 2 MiB/s

# (a) SIGINT mid-copy
migrate_bg ca --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --progress-interval 100
wait_event ca progress
has_event ca pass && fail "pass 0 ended before the signal"
[ -n "$(bitmaps "$p")" ] || fail "no dirty bitmap while pass 0 runs"
kill -INT $ca_pid
migrate_wait ca
assert_eq "$ca_rc" 3 "exit status of a cancelled migration"
assert_eq "$(count_event ca cancelled)" 1 "cancelled events"
bitmap_clean "$p"
assert_eq "$(sha "$T/src")" "$before" "source changed"
assert_eq "$(sock_dirs $ca_pid)" "" "socket directory left by a cancelled run"
log "(a) cancelled cleanly"

# (b) SIGKILL mid-copy, then a run that cleans up after it
migrate_bg cb --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --progress-interval 100
wait_event cb progress
kill -KILL $cb_pid
migrate_wait cb
[ -n "$(bitmaps "$p")" ] || fail "the killed run left no bitmap: nothing to test"
[ "$(qmp "$p" query-block-exports)" != "[]" ] || fail "the killed run left no export"
killed_dir=$(sock_dirs $cb_pid)
[ -n "$killed_dir" ] || fail "the killed run left no socket directory: nothing to test"
test -S "$killed_dir/nbd.sock" || fail "the killed run's directory holds no socket"

# Look-alikes the next run must not touch.  dead: a pid that is gone.
sh -c 'exit 0' & dead=$!
wait $dead || true
kill -0 $dead 2>/dev/null && fail "pid $dead is not dead"
live_dir=/tmp/volmig-$$.Lv1Liv        # this shell is alive
full_dir=/tmp/volmig-$dead.Fu11aa     # dead, but holds another file
busy_dir=/tmp/volmig-$dead.Bu5yaa     # dead, but its socket is listened on
odd_dir=/tmp/volmig-$dead.toolong     # dead, off the mkdtemp pattern
odd2_dir=/tmp/volmig-${dead}x.Odd2aa  # dead, off the pattern
empty_dir=/tmp/volmig-$dead.Empty0    # dead and empty: removed
decoys+=("$live_dir" "$full_dir" "$busy_dir" "$odd_dir" "$odd2_dir" "$empty_dir")
mkdir "$live_dir" "$full_dir" "$busy_dir" "$odd_dir" "$odd2_dir" "$empty_dir"
stale_unix "$live_dir/nbd.sock"
stale_unix "$full_dir/nbd.sock"
echo keep >"$full_dir/other"
listen_unix "$busy_dir/nbd.sock"
stale_unix "$odd_dir/nbd.sock"

truncate -s 32M "$T/dst"
migrate_bg cc --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst" --mode bitmap --switchover none
migrate_wait cc
assert_eq "$cc_rc" 0 "exit status of the run after a killed one"
event_field cc warning message | grep -q "left in QEMU" || fail "no warning about the leftovers"
same_bytes "$T/src" "$T/dst"
bitmap_clean "$p"
assert_eq "$(sha "$T/src")" "$before" "source changed"
[ -e "$killed_dir" ] && fail "the killed run's socket directory $killed_dir is still there"
assert_eq "$(sock_dirs $cc_pid)" "" "socket directory left by a successful run"
test -S "$live_dir/nbd.sock" || fail "removed the socket of a live pid's directory"
test -f "$full_dir/other" || fail "removed a file that is not volmig's"
test -S "$busy_dir/nbd.sock" || fail "removed a socket something listens on"
test -S "$odd_dir/nbd.sock" || fail "removed a socket in a directory off the pattern"
test -d "$odd2_dir" || fail "removed a directory off the pattern"
[ -e "$empty_dir" ] && fail "kept the empty socket directory of a dead pid"
log "(b) the next run cleaned up after the killed one"

# (c) QEMU dies mid-copy: no monitor to clean up with, but the socket
# directory is volmig's own.
# A fresh nbdkit: the one above may not outlive the killed run's
# connections (nbdkit 1.32 can abort in raw_send_socket when they drop).
random_file "$T/src2" 32
src_qemu q2 "$T/src2"
truncate -s 32M "$T/slow2"
port2=$(free_port)
start_nbdkit slow2 $port2 -i 127.0.0.1 --filter=rate file "$T/slow2" rate=16M
migrate_bg cd --qmp "unix:$T/q2.qmp" --volume "disk0=nbd://127.0.0.1:$port2/" \
    --mode bitmap --switchover none --retries 0 --progress-interval 100
wait_event cd progress
[ -n "$(sock_dirs $cd_pid)" ] || fail "no socket directory while pass 0 runs"
kill -KILL $q2_pid
migrate_wait cd
assert_eq "$cd_rc" 1 "exit status when QEMU dies"
assert_eq "$(sock_dirs $cd_pid)" "" "socket directory left when QEMU died"
log "ok"
