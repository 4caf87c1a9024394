#!/usr/bin/env bash
# volmig reconcile on the guide's example, checked field by field through
# -o json and jq; then the steps that follow (Succeeded, Failed + backoff,
# cancellation) driven by editing the output; then bad input.
. "$(dirname "$0")/../lib/common.sh"
require jq
F=$TOP/tests/fixtures/k8s
NOW=2026-08-01T10:00:00Z

rec() { "$VOLMIG" reconcile -o json "$@"; }
q() { jq -r "$2" "$1"; }   # FILE FILTER
item() { echo ".items[] | select(.kind == \"$1\" and .metadata.name == \"$2\")"; }
VM=$(item VirtualMachine vm-dv)
VMI=$(item VirtualMachineInstance vm-dv)
VMIM='.items[] | select(.kind == "VirtualMachineInstanceMigration")'

log "accepted: the guide's src-dv -> dst-dv update"
rec -f "$F/guide-update.yaml" --now $NOW >"$T/1.json"
assert_eq "$(q "$T/1.json" "[$VMIM] | length")" 1 "one migration object"
name=$(q "$T/1.json" "$VMIM | .metadata.name")
[[ $name == kubevirt-workload-update-????? ]] || fail "generated name '$name'"
assert_eq "$(q "$T/1.json" "$VMIM | .metadata.generateName")" kubevirt-workload-update- generateName
assert_eq "$(q "$T/1.json" "$VMIM | .metadata.labels[\"kubevirt.io/volume-update-migration\"]")" vm-dv label
assert_eq "$(q "$T/1.json" "$VMIM | .metadata.labels[\"kubevirt.io/volume-update-in-progress\"]")" vm-dv label
assert_eq "$(q "$T/1.json" "$VMIM | .metadata.annotations | has(\"kubevirt.io/workloadUpdateMigration\")")" true annotation
assert_eq "$(q "$T/1.json" "$VMIM | .spec.vmiName")" vm-dv vmiName
assert_eq "$(q "$T/1.json" "$VMIM | .status.phase")" Pending phase
mv="$VM | .status.volumeUpdateState.volumeMigrationState.migratedVolumes[0]"
assert_eq "$(q "$T/1.json" "$mv | .volumeName")" datavolumedisk1 volumeName
assert_eq "$(q "$T/1.json" "$mv | .sourcePVCInfo.claimName")" src-dv source
assert_eq "$(q "$T/1.json" "$mv | .destinationPVCInfo.claimName")" dst-dv destination
assert_eq "$(q "$T/1.json" "$mv | .destinationPVCInfo.accessModes[0]")" ReadWriteMany accessModes
assert_eq "$(q "$T/1.json" "$mv | .destinationPVCInfo.volumeMode")" Block volumeMode
assert_eq "$(q "$T/1.json" "$mv | .destinationPVCInfo.requests.storage")" 5Gi requests
assert_eq "$(q "$T/1.json" "$mv | .sourcePVCInfo.capacity.storage")" 2Gi capacity
assert_eq "$(q "$T/1.json" "$VMI | .status.migratedVolumes[0].destinationPVCInfo.claimName")" dst-dv vmi migratedVolumes
assert_eq "$(q "$T/1.json" "$VMI | .status.conditions[] | select(.type == \"VolumesChange\") | .status + \" \" + .message")" \
    "True migrate volumes" "VMI VolumesChange"
assert_eq "$(q "$T/1.json" "$VM | .status.conditions[] | select(.type == \"VolumesChange\") | .status")" True "VM VolumesChange"
assert_eq "$(q "$T/1.json" '[.items[] | select(.kind == "Event") | .reason] | join(",")')" \
    VolumeMigrationStarted,SuccessfulCreate events
assert_eq "$(q "$T/1.json" "$VMI | .spec.volumes[0].dataVolume.name")" dst-dv "VMI spec patched at once"
# unknown fields survive
assert_eq "$(q "$T/1.json" "$(item DataVolume src-dv) | .spec.source.registry.url")" \
    docker://registry:5000/kubevirt/alpine-container-disk-demo:devel "unknown field kept"

log "deterministic, and YAML output reads back to the same objects"
rec -f "$F/guide-update.yaml" --now $NOW | cmp - "$T/1.json" || fail "two runs differ"
"$VOLMIG" reconcile -f "$F/guide-update.yaml" --now $NOW >"$T/1.yaml"
rec -f "$T/1.yaml" --now $NOW | cmp - "$T/1.json" || fail "the YAML output is not a fixed point"
rec -f "$T/1.json" --now $NOW | cmp - "$T/1.json" || fail "the JSON output is not a fixed point"

log "Succeeded: the update is over, the VM keeps its record of it"
jq "($VMIM).status.phase = \"Succeeded\"" "$T/1.json" >"$T/2in.json"
rec -f "$T/2in.json" --now 2026-08-01T10:05:00Z >"$T/2.json"
assert_eq "$(q "$T/2.json" "$VMI | .spec.volumes[0].dataVolume.name")" dst-dv "VMI volume"
assert_eq "$(q "$T/2.json" "$VMI | .status.migratedVolumes // \"none\"")" none "migratedVolumes cleared"
assert_eq "$(q "$T/2.json" "$VM | .status.volumeUpdateState.volumeMigrationState.migratedVolumes[0].destinationPVCInfo.claimName")" \
    dst-dv "VM state kept"
assert_eq "$(q "$T/2.json" "$VMI | .status.volumeStatus[0].persistentVolumeClaimInfo.claimName")" dst-dv "volumeStatus"
assert_eq "$(q "$T/2.json" "[$VM | .status.conditions[]? | select(.type == \"VolumesChange\")] | length")" 0 "VolumesChange cleared"

log "Failed: the next migration at once, held Pending, with MigrationBackoff"
jq "($VMIM).status.phase = \"Failed\" | ($VMIM).status.phaseTransitionTimestamps += [{phase: \"Failed\", phaseTransitionTimestamp: \"2026-08-01T10:01:00Z\"}]" \
    "$T/1.json" >"$T/3in.json"
rec -f "$T/3in.json" --now 2026-08-01T10:01:10Z >"$T/3.json"
assert_eq "$(q "$T/3.json" "[$VMIM | .status.phase] | sort | join(\",\")")" Failed,Pending "a new migration, Pending"
assert_eq "$(q "$T/3.json" '.items[] | select(.reason == "MigrationBackoff") | .message')" \
    "backoff migrating vmi default/vm-dv" "MigrationBackoff event"
rec -f "$T/3.json" --now 2026-08-01T10:01:20Z >"$T/4.json"
assert_eq "$(q "$T/4.json" "[$VMIM] | length")" 2 "no third migration"

log "cancellation: re-applying the original volumes deletes the migration"
jq "($VM).spec.template.spec.volumes[0].dataVolume.name = \"src-dv\" | ($VM).spec.dataVolumeTemplates[0].metadata.name = \"src-dv\"" \
    "$T/1.json" >"$T/5in.json"
rec -f "$T/5in.json" --now 2026-08-01T10:02:00Z >"$T/5.json"
assert_eq "$(q "$T/5.json" "[$VMIM] | length")" 0 "migration deleted"
assert_eq "$(q "$T/5.json" "$VMI | .status.conditions[] | select(.type == \"VolumesChange\") | .status + \" \" + .reason")" \
    "False VolumesChangeCancellation" "cancellation condition"

log "bad input: clear errors naming the object and field"
set +e
out=$("$VOLMIG" reconcile -f "$F/bad-type.yaml" 2>&1); rc=$?
set -e
assert_eq $rc 1 "exit status for a wrong type"
[[ $out == *"VirtualMachine broken: spec.template.spec.volumes[0].dataVolume.name: expected a string, got a list"* ]] \
    || fail "message: $out"
set +e
out=$("$VOLMIG" reconcile -f "$F/bad-yaml.yaml" 2>&1); rc=$?
set -e
assert_eq $rc 1 "exit status for bad YAML"
[[ $out == *"bad-yaml.yaml:"* ]] || fail "message: $out"
set +e
out=$("$VOLMIG" reconcile -f "$F/missing-name.yaml" 2>&1); rc=$?
set -e
[[ $out == *"metadata.name: missing"* ]] || fail "message: $out"
set +e
"$VOLMIG" reconcile >/dev/null 2>&1; rc=$?
set -e
assert_eq $rc 2 "usage"
"$VOLMIG" reconcile --help | grep -q "usage: volmig reconcile" || fail "--help"
log "ok"
