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
# Found by the manifest fuzzer: a template without a name once crashed.
set +e
out=$("$VOLMIG" apply -f "$F/template-without-name.yaml" --store "$S" 2>&1); rc=$?
set -e
assert_eq $rc 1 "template without a name refused"
[[ $out == *"spec.dataVolumeTemplates[0]: metadata.name is required"* ]] || fail "message: $out"
assert_eq "$(cd "$S" && sha256sum * | sha256sum)" "$before" "store changed by a nameless template"

log "kinds the store has no resource for are refused, nothing written"
obj() { # KIND APIVERSION NAME
    printf 'apiVersion: %s\nkind: %s\nmetadata: {name: %s}\nspec: {}\n' "$2" "$1" "$3"
}
{ obj PersistentVolumeClaim v1 fine; echo ---; obj Frobnicator example.com/v1 frob; } >"$T/frob.yaml"
obj virtualmachine kubevirt.io/v1 lower >"$T/lower.yaml"
obj VirtualMachine v1 wrongapi >"$T/wrongapi.yaml"
set +e
out=$("$VOLMIG" apply -f "$T/frob.yaml" --store "$S" 2>&1); rc=$?
set -e
assert_eq $rc 1 "unknown kind"
[[ $out == *'no matches for kind "Frobnicator" in version "example.com/v1"'* ]] || fail "message: $out"
test ! -e "$S/PersistentVolumeClaim_default_fine.yaml" || fail "a file with an unknown kind was half applied"
for f in lower wrongapi; do
    set +e
    out=$("$VOLMIG" apply -f "$T/$f.yaml" --store "$S" 2>&1); rc=$?
    set -e
    assert_eq $rc 1 "$f: exit status"
    [[ $out == *"no matches for kind"* ]] || fail "$f: $out"
done
assert_eq "$(cd "$S" && sha256sum * | sha256sum)" "$before" "store changed by unknown kinds"

log "unknown fields: a warning naming the field (kubectl's default), an error with --validate strict"
sed 's/updateVolumesStrategy: Migration/updateVolumeStrategy: Migration/' "$F/guide-update.yaml" >"$T/typo.yaml"
set +e
"$VOLMIG" apply -f "$T/typo.yaml" --store "$T/s2" --validate strict >"$T/out" 2>"$T/err"; rc=$?
set -e
assert_eq $rc 1 "strict: exit status"
grep -q 'unknown field "spec.updateVolumeStrategy"' "$T/err" || fail "strict: $(cat "$T/err")"
test ! -e "$T/s2" || fail "strict: the store was written"
"$VOLMIG" apply -f "$T/typo.yaml" --store "$T/s2" >"$T/out" 2>"$T/err" || fail "warn: exit status"
assert_eq "$(grep -c '^Warning: unknown field' "$T/err")" 1 "one warning"
grep -q '^Warning: unknown field "spec.updateVolumeStrategy" in VirtualMachine default/vm-dv$' "$T/err" \
    || fail "warning: $(cat "$T/err")"
"$VOLMIG" apply -f "$F/guide-update.yaml" --store "$T/s3" >/dev/null 2>"$T/err" || fail "clean apply"
assert_eq "$(cat "$T/err")" "" "no warning for the guide's own manifests"
"$VOLMIG" apply -f "$T/typo.yaml" --store "$T/s4" --validate ignore >/dev/null 2>"$T/err" || fail "ignore"
assert_eq "$(cat "$T/err")" "" "--validate ignore"

# no false alarms: KubeVirt's own objects pass strict validation
for f in "$F"/snapshots/*.yaml "$F"/guide-*.yaml "$F"/example/*.yaml; do
    "$VOLMIG" apply -f "$f" --store "$T/strict" --validate strict >/dev/null 2>"$T/err" \
        || fail "strict validation refused $f: $(cat "$T/err")"
    rm -rf "$T/strict"
done

log "several -f, a directory, -f -, concatenated JSON"
mkdir "$T/dir"
obj PersistentVolumeClaim v1 a >"$T/dir/a.yaml"
obj PersistentVolumeClaim v1 b >"$T/dir/b.yml"
printf '{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c"},"spec":{}}{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"d"},"spec":{}}\n' >"$T/dir/cd.json"
echo "not a manifest" >"$T/dir/README"
mkdir "$T/dir/sub"; obj PersistentVolumeClaim v1 nested >"$T/dir/sub/n.yaml"
obj PersistentVolumeClaim v1 e >"$T/e.yaml"
obj PersistentVolumeClaim v1 f | "$VOLMIG" apply -f "$T/dir" -f "$T/e.yaml" -f - --store "$T/m" >"$T/out" \
    || fail "apply several"
assert_eq "$(awk '{print $2}' "$T/out" | tr '\n' ' ')" \
    "default/a default/b default/c default/d default/e default/f " "applied in order"
test ! -e "$T/m/PersistentVolumeClaim_default_nested.yaml" || fail "a subdirectory was read"
mkdir "$T/empty"
set +e
out=$("$VOLMIG" apply -f "$T/empty" --store "$T/m" 2>&1); rc=$?
set -e
assert_eq $rc 1 "an empty directory"
[[ $out == *"recognized file extensions are [.json .yaml .yml]"* ]] || fail "message: $out"
set +e
out=$("$VOLMIG" apply -f "$T/e.yaml" -f "$T/nosuch.yaml" --store "$T/m2" 2>&1); rc=$?
set -e
assert_eq $rc 1 "a missing file among several"
[[ $out == *"nosuch.yaml: No such file or directory"* ]] || fail "message: $out"
test ! -e "$T/m2" || fail "a missing second file let the first be applied"
assert_eq "$("$VOLMIG" reconcile -o json -f "$T/dir" -f "$T/e.yaml" | jq -r '[.items[].metadata.name] | join(",")')" \
    a,b,c,d,e "reconcile takes several -f and directories too"
log "ok"
