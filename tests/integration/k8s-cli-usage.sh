#!/usr/bin/env bash
# Bad input to volmig controller and volmig get: usage errors exit 2 with a
# message; a malformed manifest in the store is an error naming the file,
# and the controller touches nothing.
. "$(dirname "$0")/../lib/common.sh"
require jq

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
expect 2 "use json, yaml or wide" "$VOLMIG" get --store "$T/s" -o xml VirtualMachine
expect 2 "only with --once" "$VOLMIG" controller --store "$T/s" --timeout 5
expect 2 "positive number" "$VOLMIG" controller --store "$T/s" --once --timeout 5x

expect 2 "use strict, warn or ignore" "$VOLMIG" apply -f "$TOP/tests/fixtures/k8s/guide-update.yaml" --store "$T/v" --validate maybe
test ! -e "$T/v" || fail "a usage error wrote the store"
expect 2 "a NAME needs a KIND" "$VOLMIG" get --store "$T/s" all vm1
expect 1 "standard input can be read only once" "$VOLMIG" reconcile -f - -f -
mkdir "$T/d"; printf 'kind: [broken\n' >"$T/d/bad.yaml"
expect 1 "$T/d/bad.yaml:2:1" "$VOLMIG" reconcile -f "$T/d"
expect 1 "$T/d/bad.yaml:2:1" "$VOLMIG" apply -f "$T/d" --store "$T/v"
test ! -e "$T/v" || fail "a bad manifest in a directory wrote the store"

# a usage error is the line naming the problem and a pointer to --help
for sub in apply reconcile controller get; do
    rc=0; out=$("$VOLMIG" $sub --bogus 2>&1) || rc=$?
    assert_eq $rc 2 "$sub --bogus"
    [ "$(wc -l <<<"$out")" -le 2 ] || fail "$sub --bogus printed $(wc -l <<<"$out") lines: $out"
    assert_eq "$(tail -n 1 <<<"$out")" "see volmig $sub --help" "$sub: the last line"
done

log "a missing store is an error, unless asked to create it"
expect 1 "store $T/typo: No such file or directory" "$VOLMIG" controller --store "$T/typo" --once --timeout 10
test ! -e "$T/typo" || fail "the controller created the store it was told of by mistake"
"$VOLMIG" controller --store "$T/new" --create-store --once --timeout 10 >/dev/null || fail "--create-store"
test -d "$T/new" || fail "--create-store made no store"

log "controller --once exits 1 when a migration it ran failed"
F=$TOP/tests/fixtures/k8s
"$VOLMIG" apply -f "$F/guide-update.yaml" --store "$T/f" >/dev/null   # no volmig.io/qmp: cannot start
expect 1 "1 migration failed" "$VOLMIG" controller --store "$T/f" --once --timeout 20
assert_eq "$("$VOLMIG" get --store "$T/f" vmim | jq -r '[.items[].status.phase] | sort | join(",")')" \
    Failed,Pending "the failed migration, and the next one held by the backoff"

log "get names kinds as kubectl does"
for k in vm vms VM virtualmachine VirtualMachine VirtualMachines virtualmachines.kubevirt.io; do
    assert_eq "$("$VOLMIG" get --store "$T/f" "$k" | jq -r '.items[0].metadata.name')" vm-dv "get $k"
done
for k in vmi vmim pvc dv kubevirt kv events; do
    n=$("$VOLMIG" get --store "$T/f" "$k" | jq '.items | length')
    [ "$n" -ge 1 ] || fail "get $k listed nothing"
done
assert_eq "$("$VOLMIG" get --store "$T/f" pv | jq '.items | length')" 0 "get pv"
assert_eq "$("$VOLMIG" get --store "$T/f" pvc dst-dv src-dv | jq -r '[.items[].metadata.name] | join(",")')" \
    dst-dv,src-dv "get with two names"
expect 1 'error: the server doesn.t have a resource type "Bogus"' "$VOLMIG" get --store "$T/f" Bogus
expect 1 'Error from server (NotFound): virtualmachines.kubevirt.io "nosuch" not found' \
    "$VOLMIG" get --store "$T/f" VirtualMachine nosuch
expect 1 'Error from server (NotFound): persistentvolumeclaims "nosuch" not found' \
    "$VOLMIG" get --store "$T/f" pvc nosuch
expect 1 'Error from server (NotFound): virtualmachines.kubevirt.io "vm-dv" not found' \
    "$VOLMIG" get --store "$T/f" vm vm-dv -n other

mkdir -p "$T/s"
printf 'kind: [broken\n' >"$T/s/bad.yaml"
before=$(sha256sum "$T/s/bad.yaml")
expect 1 "bad.yaml:2:1" "$VOLMIG" controller --store "$T/s" --once --timeout 10
expect 1 "bad.yaml:2:1" "$VOLMIG" get --store "$T/s" VirtualMachine
assert_eq "$(sha256sum "$T/s/bad.yaml")" "$before" "the controller changed a file it could not read"
assert_eq "$(ls "$T/s")" "bad.yaml" "files appeared in the store"
echo ok
