#!/usr/bin/env bash
# Bad input to volmig controller and volmig get: usage errors exit 2 with a
# message; a malformed manifest in the store is an error naming the file,
# and the controller touches nothing.
. "$(dirname "$0")/../lib/common.sh"

expect() { # STATUS PATTERN CMD...
    local want=$1 pat=$2 rc=0 out; shift 2
    out=$("$@" 2>&1) || rc=$?
    assert_eq "$rc" "$want" "exit status of: $*"
    grep -q -- "$pat" <<<"$out" || fail "no '$pat' in the output of $*: $out"
}

expect 2 "store is required" "$VOLMIG" controller --once
expect 2 "positive number" "$VOLMIG" controller --store "$T/s" --once --timeout 0
expect 2 "unexpected argument" "$VOLMIG" controller --store "$T/s" extra
expect 2 "usage" "$VOLMIG" get --store "$T/s"
expect 2 "use json or yaml" "$VOLMIG" get --store "$T/s" -o xml VirtualMachine

mkdir -p "$T/s"
printf 'kind: [broken\n' >"$T/s/bad.yaml"
before=$(sha256sum "$T/s/bad.yaml")
expect 1 "bad.yaml:2:1" "$VOLMIG" controller --store "$T/s" --once --timeout 10
expect 1 "bad.yaml:2:1" "$VOLMIG" get --store "$T/s" VirtualMachine
assert_eq "$(sha256sum "$T/s/bad.yaml")" "$before" "the controller changed a file it could not read"
assert_eq "$(ls "$T/s")" "bad.yaml" "files appeared in the store"
echo ok
