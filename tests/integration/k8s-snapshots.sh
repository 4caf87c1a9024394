#!/usr/bin/env bash
# KubeVirt's own object state, taken in the middle of a volume migration
# (tests/fixtures/k8s/snapshots, in the shapes KubeVirt writes), through
# volmig reconcile: each snapshot must read the way KubeVirt reads it.
. "$(dirname "$0")/../lib/common.sh"
require jq
F=$TOP/tests/fixtures/k8s/snapshots

rec() { # SNAPSHOT NOW -> $T/SNAPSHOT.json
    "$VOLMIG" reconcile -o json -f "$F/$1.yaml" --now "$2" >"$T/$1.json" || fail "reconcile $1"
    J=$T/$1.json
}
q() { jq -r "$1" "$J"; }
VM='.items[] | select(.kind == "VirtualMachine" and .metadata.name == "vm-mig")'
VMI='.items[] | select(.kind == "VirtualMachineInstance" and .metadata.name == "vm-mig")'
VMIMS='[.items[] | select(.kind == "VirtualMachineInstanceMigration")]'
cond() { echo "($1 | .status.conditions // [] | map(select(.type == \"$2\")) | .[0] // {} | \"\(.status // \"-\") \(.reason // \"-\") \(.message // \"-\")\")"; }
events() { q '[.items[] | select(.kind == "Event" and .source.component == "volmig") | .reason] | join(",")'; }  # the new ones
mv() { q "$VMI | .status.migratedVolumes // [] | map(\"\(.volumeName):\(.sourcePVCInfo.claimName)->\(.destinationPVCInfo.claimName)\") | join(\",\")"; }
vmstate() { q "$VM | .status.volumeUpdateState.volumeMigrationState.migratedVolumes // [] | map(\"\(.volumeName):\(.sourcePVCInfo.claimName)->\(.destinationPVCInfo.claimName)\") | join(\",\")"; }
vmiclaim() { q "$VMI | .spec.volumes[] | select(.name == \"rootdisk\") | .persistentVolumeClaim.claimName"; }
# The input's objects (events aside) must come out unchanged, but for FILTER.
unchanged_but() { # SNAPSHOT JQ-FILTER-TO-DROP
    diff <("$VOLMIG" reconcile -o json -f "$F/$1.yaml" --now 2000-01-01T00:00:00Z >/dev/null; \
           python3 -c 'import sys,yaml,json; print(json.dumps(yaml.safe_load(open(sys.argv[1]))["items"]))' "$F/$1.yaml" \
           | jq -S "[.[] | select(.kind != \"Event\")] | $2") \
         <(jq -S "[.items[] | select(.kind != \"Event\")] | $2" "$J") >"$T/diff" \
        || { cat "$T/diff"; fail "$1: objects changed beyond what was expected"; }
}

log "accepted: VMI spec and migratedVolumes set, no condition, no migration yet"
rec accepted 2026-08-01T10:00:05Z
assert_eq "$(q "$(cond "$VMI" VolumesChange)")" "True - migrate volumes" "VMI VolumesChange"
assert_eq "$(q "$(cond "$VM" VolumesChange)")" "True - migrate volumes" "VM VolumesChange"
assert_eq "$(vmiclaim)" dst-pvc "VMI spec stays on the destination"
assert_eq "$(mv)" "rootdisk:src-pvc->dst-pvc" "VMI migratedVolumes"
assert_eq "$(vmstate)" "rootdisk:src-pvc->dst-pvc" "VM volumeMigrationState"
assert_eq "$(q "$VMIMS | length")" 1 "a migration object"
m="$VMIMS[0]"
[[ $(q "$m.metadata.name") == kubevirt-workload-update-????? ]] || fail "name $(q "$m.metadata.name")"
assert_eq "$(q "$m.metadata.generateName")" kubevirt-workload-update- generateName
assert_eq "$(q "$m.metadata.labels[\"kubevirt.io/volume-update-migration\"]")" vm-mig "label"
assert_eq "$(q "$m.metadata.annotations | has(\"kubevirt.io/workloadUpdateMigration\")")" true "annotation"
assert_eq "$(q "$m.spec.vmiName + \" \" + $m.spec.priority")" "vm-mig user-triggered" "spec"
assert_eq "$(q "$m.status.phase")" Pending phase
assert_eq "$(events)" SuccessfulCreate events
assert_eq "$(q '.items[] | select(.kind == "Event") | .involvedObject.kind + " " + .message')" \
    "VirtualMachineInstance Created Migration $(q "$m.metadata.name") for automated workload update" "event"
assert_eq "$(q "$(cond "$VM" Failure)")" "- - -" "no Failure"
assert_eq "$(q "$(cond "$VM" RestartRequired)")" "- - -" "no RestartRequired"

log "running: nothing to do, nothing cancelled"
rec running 2026-08-01T10:00:30Z
assert_eq "$(events)" "" events
unchanged_but running '.'
assert_eq "$(q "$VMIMS | map(.status.phase) | join(\",\")")" Running "migration stays Running"

log "failed: retried at once, held back by the backoff"
rec failed 2026-08-01T10:01:05Z
assert_eq "$(q "$(cond "$VMI" VolumesChange)")" "True - migrate volumes" "VolumesChange kept"
assert_eq "$(mv)" "rootdisk:src-pvc->dst-pvc" "migratedVolumes kept"
assert_eq "$(vmstate)" "rootdisk:src-pvc->dst-pvc" "VM state kept"
assert_eq "$(vmiclaim)" dst-pvc "VMI spec"
assert_eq "$(q "$VMIMS | map(.status.phase) | sort | join(\",\")")" Failed,Pending "a new migration"
assert_eq "$(events)" VolumeMigrationFailed,SuccessfulCreate,MigrationBackoff events
assert_eq "$(q '.items[] | select(.reason == "MigrationBackoff") | .type + " " + .involvedObject.kind + " " + .message')" \
    "Warning VirtualMachineInstance backoff migrating vmi default/vm-mig" "backoff event"
q '.items[] | select(.reason == "VolumeMigrationFailed") | .message' | grep -q "error reading from the NBD server" \
    || fail "failure reason"
unchanged_but failed "map(select(.kind != \"VirtualMachineInstanceMigration\"))"

log "backing off: still Pending, no second event, no third migration"
rec backoff 2026-08-01T10:01:10Z
assert_eq "$(events)" "" events
unchanged_but backoff '.'
rec backoff 2026-08-01T10:01:30Z      # past the backoff: the controller starts it
assert_eq "$(q "$VMIMS | length")" 2 "no new migration after the backoff"
assert_eq "$(events)" "" "events after the backoff"

log "reverted: the original manifest re-applied mid-migration is a cancellation"
rec reverted 2026-08-01T10:00:40Z
assert_eq "$(vmiclaim)" src-pvc "VMI spec back on the source"
assert_eq "$(mv)" "" "migratedVolumes cleared"
assert_eq "$(q "$(cond "$VMI" VolumesChange)")" "False VolumesChangeCancellation -" "VMI VolumesChange"
assert_eq "$(q "$(cond "$VM" VolumesChange)")" "False VolumesChangeCancellation -" "VM VolumesChange"
assert_eq "$(vmstate)" "" "VM volumeMigrationState cleared"
assert_eq "$(q "$VM | .status | has(\"volumeUpdateState\")")" false "VM volumeUpdateState"
assert_eq "$(q "$VMIMS | length")" 0 "the running migration is deleted"
assert_eq "$(events)" VolumeMigrationCancelled,SuccessfulDelete events
assert_eq "$(q "$(cond "$VM" Failure)")" "- - -" "no Failure"
assert_eq "$(q "$(cond "$VM" RestartRequired)")" "- - -" "no RestartRequired"

log "reverted after the target domain was ready: the migration object is kept"
rec reverted-target-ready 2026-08-01T10:00:40Z
assert_eq "$(vmiclaim)" src-pvc "VMI spec back on the source"
assert_eq "$(q "$(cond "$VMI" VolumesChange)")" "False VolumesChangeCancellation -" "VMI VolumesChange"
assert_eq "$(q "$VMIMS | map(.status.phase) | join(\",\")")" Running "the migration object is kept"
assert_eq "$(events)" VolumeMigrationCancelled,VolumeMigrationKept events
q '.items[] | select(.reason == "VolumeMigrationKept") | .message' | grep -q "target domain was ready at 2026-08-01T10:00:30Z" \
    || fail "VolumeMigrationKept message"

log "succeeded: the VMI is on the destination, the VM keeps its record"
rec succeeded 2026-08-01T10:02:05Z
assert_eq "$(q "$(cond "$VMI" VolumesChange)")" "- - -" "VMI VolumesChange removed"
assert_eq "$(q "$(cond "$VM" VolumesChange)")" "- - -" "VM VolumesChange removed"
assert_eq "$(mv)" "" "migratedVolumes cleared"
assert_eq "$(vmstate)" "rootdisk:src-pvc->dst-pvc" "VM volumeMigrationState kept"
assert_eq "$(vmiclaim)" dst-pvc "VMI spec"
assert_eq "$(q "$VMI | .status.volumeStatus[] | select(.name == \"rootdisk\") | .persistentVolumeClaimInfo.claimName")" \
    dst-pvc "volumeStatus on the destination"
assert_eq "$(q "$VMI | .status.volumeStatus[] | select(.name == \"shared\") | .persistentVolumeClaimInfo.claimName")" \
    shared-pvc "other volumeStatus untouched"
assert_eq "$(q "$VMIMS | map(.status.phase) | join(\",\")")" Succeeded "no new migration"
assert_eq "$(events)" VolumeMigrationSucceeded events

log "VMI lost: manual recovery, and no new VMI"
rec vmi-lost 2026-08-01T10:01:05Z
assert_eq "$(q "$(cond "$VM" ManualRecoveryRequired)")" \
    "True VMI was removed or was final during the volume migration -" "ManualRecoveryRequired"
assert_eq "$(q '[.items[] | select(.kind == "VirtualMachineInstance")] | length')" 0 "no VMI started"
assert_eq "$(vmstate)" "rootdisk:src-pvc->dst-pvc" "VM state kept"
assert_eq "$(events)" ManualRecoveryRequired,FailedCreate events
q '.items[] | select(.reason == "FailedCreate") | .message' | grep -q "^VM recovery required: Volume migration failed" \
    || fail "FailedCreate message"
log "VMI final: manual recovery too, the final VMI is left alone"
rec vmi-final 2026-08-01T10:01:05Z
assert_eq "$(q "$(cond "$VM" ManualRecoveryRequired)")" \
    "True VMI was removed or was final during the volume migration -" "ManualRecoveryRequired"
assert_eq "$(q "$VMIMS | length")" 1 "no new migration for a final VMI"
assert_eq "$(events)" VolumeMigrationFailed,ManualRecoveryRequired events
unchanged_but vmi-final "map(select(.kind != \"VirtualMachine\"))"
log "ok"
