#!/usr/bin/env bash
# The interactive console on a real terminal (tmux): Tab completes command
# and argument names, history recalls a line, events show up while the
# prompt waits, Ctrl-D leaves with status 0.
. "$(dirname "$0")/../lib/common.sh"
require tmux qemu-system-x86_64 python3

start_qemu vm '{"driver":"null-co","node-name":"disk0","size":67108864}'
TM=(tmux -L "volmig-test-$$" -f /dev/null)
cleanup_tmux() { "${TM[@]}" kill-server 2>/dev/null || true; cleanup; }
trap cleanup_tmux EXIT

"${TM[@]}" new-session -d -x 200 -y 50 \
    "TERM=xterm HOME=$T '$VOLMIG' qmp unix:$T/vm.qmp; echo exited=\$?; sleep 600"
screen() { "${TM[@]}" capture-pane -p -J -S -; }
# shows TEXT: the screen has the fixed string TEXT (on some line).
shows() { screen | grep -qF -- "$1"; }
expect() { # TEXT WHAT
    wait_for 30 shows "$1" || { screen >&2; fail "$2: '$1' not on the screen"; }
}
count() { screen | grep -cF -- "$1" || true; }
keys() { "${TM[@]}" send-keys "$@"; }

expect "(QEMU) " "the prompt"

log "Tab completes a unique command name and adds a space"
keys 'query-named-b' Tab
expect "(QEMU) query-named-block-nodes " "command completion"

log "Tab completes an argument name from the schema and adds '='"
keys 'fl' Tab
expect "(QEMU) query-named-block-nodes flat=" "argument completion"
keys 'true' Enter
expect '"node-name": "disk0"' "the reply, pretty-printed"

log "Tab on an ambiguous prefix completes the common part, then lists"
keys 'query-block' Tab
expect "query-block-jobs" "candidate list"
shows "query-blockstats" || fail "candidate list incomplete"
keys C-u

log "history: Up recalls the last line"
before=$(count '"node-name": "disk0"')
keys Up
expect "(QEMU) query-named-block-nodes flat=true" "recalled line"
keys Enter
more_than() { [ "$(count "$2")" -gt "$1" ]; }
wait_for 30 more_than "$before" '"node-name": "disk0"' \
    || { screen >&2; fail "the recalled line did not run again"; }

log "a reply with an error is shown as QEMU's class and description"
keys 'no-such-command' Enter
expect '"class": "CommandNotFound"' "error reply"

log "events print while the prompt waits (a mirror started on the other monitor)"
qmp "$T/vm.qmp2" blockdev-add '{"driver":"null-co","node-name":"tgt","size":67108864}' \
    blockdev-mirror '{"job-id":"m0","device":"disk0","target":"tgt","sync":"full"}' >/dev/null
expect 'event BLOCK_JOB_READY {"device": "m0"' "the event"

log "a half-typed line survives an event"
keys 'query-sta'
qmp "$T/vm.qmp2" block-job-cancel '{"device":"m0"}' >/dev/null
expect 'event BLOCK_JOB_COMPLETED' "the second event"
keys 'tus' Enter
expect '"singlestep": false' "the completed line ran (query-status)"

log "Ctrl-D leaves with status 0"
keys C-d
expect "exited=0" "exit"
log "ok"
