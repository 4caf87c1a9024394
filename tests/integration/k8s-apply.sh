#!/usr/bin/env bash
# volmig apply: the store is created 0700, one file per object, merged like
# kubectl apply (spec replaced, status kept), and a malformed manifest
# changes nothing.
. "$(dirname "$0")/../lib/common.sh"
F=$TOP/tests/fixtures/k8s
S=$T/store

log "first apply creates the store and the files"
"$VOLMIG" apply -f "$F/guide-original.yaml" --store "$S" >"$T/out"
grep -q "VirtualMachine default/vm-dv created" "$T/out" || fail "$(cat "$T/out")"
assert_eq "$(stat -c %a "$S")" 700 "store mode"
test -f "$S/VirtualMachine_default_vm-dv.yaml" || fail "no manifest file"
grep -q "name: src-dv" "$S/VirtualMachine_default_vm-dv.yaml" || fail "content"
uid=$(grep -m1 "uid:" "$S/VirtualMachine_default_vm-dv.yaml")

log "status written by the controller survives a re-apply; spec is replaced"
printf 'status:\n  printableStatus: Running\n' >>"$S/VirtualMachine_default_vm-dv.yaml"
sed 's/namespace: default//' "$F/guide-update.yaml" | "$VOLMIG" apply -f - --store "$S" >"$T/out"
grep -q "VirtualMachine default/vm-dv configured" "$T/out" || fail "$(cat "$T/out")"
f=$S/VirtualMachine_default_vm-dv.yaml
grep -q "printableStatus: Running" "$f" || fail "status lost"
grep -q "name: dst-dv" "$f" || fail "spec not replaced"
grep -q "updateVolumesStrategy: Migration" "$f" || fail "strategy not applied"
assert_eq "$(grep -m1 "uid:" "$f")" "$uid" "uid kept"
grep -q "generation: 2" "$f" || fail "generation not bumped"
"$VOLMIG" apply -f "$F/guide-update.yaml" --store "$S" | grep -q "vm-dv unchanged" || fail "re-apply not idempotent"

log "malformed manifests: clear errors, nothing written or lost"
before=$(cd "$S" && sha256sum * | sha256sum)
for bad in bad-type bad-yaml missing-name escape-name; do
    set +e
    out=$("$VOLMIG" apply -f "$F/$bad.yaml" --store "$S" 2>&1); rc=$?
    set -e
    assert_eq $rc 1 "$bad: exit status"
    log "$bad: $out"
done
set +e
out=$("$VOLMIG" apply -f "$F/bad-type.yaml" --store "$S" 2>&1)
set -e
[[ $out == *"VirtualMachine default/broken: spec.template.spec.volumes[0].dataVolume.name"* ]] || fail "message: $out"
test ! -e "$S/PersistentVolumeClaim_default_good.yaml" || fail "half of a bad file was applied"
test ! -e "$T/etc" || fail "escaped the store"
assert_eq "$(cd "$S" && sha256sum * | sha256sum)" "$before" "store changed by bad input"
assert_eq "$(ls -A "$S" | grep -c '^\.')" 0 "temporary files left behind"
printf 'apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm2}\nspec:\n  dataVolumeTemplates:\n  - metadata: {name: lonely}\n  template: {spec: {}}\n' >"$T/tmpl.yaml"
set +e
out=$("$VOLMIG" apply -f "$T/tmpl.yaml" --store "$S" 2>&1); rc=$?
set -e
assert_eq $rc 1 "unreferenced template refused"
[[ $out == *"DataVolumeTemplate entry lonely must be referenced in the VMI template's 'volumes' list"* ]] || fail "message: $out"
log "ok"
