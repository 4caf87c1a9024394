#!/usr/bin/env bash
# volmig controller end to end with a real QEMU.
#  1. The VM's manifest is edited to point disk0 at a new claim with
#     updateVolumesStrategy: Migration; the controller creates the migration
#     object, runs it through volmig migrate (pivot: same host) and the
#     object ends Succeeded, the VMI on the new claim, the data copied.
#  2. Another update; QEMU is killed mid-copy: the migration fails, the VM
#     gets ManualRecoveryRequired and no VMI is started while it holds;
#     restoring the original volume clears it.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/k8s-world.sh"
require qemu-system-x86_64 jq

S=$T/store
get() { "$VOLMIG" get --store "$S" "$@"; }
# new_claim NAME: a 32 MiB file $T/NAME.img behind PV NAME-pv and claim
# NAME-pvc, applied to the store (made from the dst-pvc manifests).
new_claim() {
    truncate -s 32M "$T/$1.img"
    sed "s|dst-pv|$1-pv|g; s|dst-pvc|$1-pvc|g; s|$T/dst.img|$T/$1.img|" "$T/base.yaml" \
        | awk -v n="$1" 'BEGIN{RS="---\n"; ORS="---\n"} /PersistentVolume/ && $0 ~ n' >"$T/$1.yaml"
    "$VOLMIG" apply -f "$T/$1.yaml" --store "$S" >/dev/null || fail "apply claim $1-pvc"
}

log "a VM whose disk0 is src-pvc on a running QEMU"
random_file "$T/src.img" 32
truncate -s 32M "$T/dst.img"
start_qemu vm "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/src.img\"}}"
k8s_world "$T" "$T/src.img" "$T/dst.img" 32 "unix:$T/vm.qmp"
"$VOLMIG" apply -f "$T/base.yaml" --store "$S" >/dev/null || fail "apply base"
"$VOLMIG" controller --store "$S" --once --timeout 60 >"$T/ctl0.log" || { cat "$T/ctl0.log"; fail "controller at rest"; }
assert_eq "$(get VirtualMachineInstanceMigration | jq '.items | length')" 0 "migrations before any change"

log "the user applies the VM with dst-pvc and updateVolumesStrategy: Migration"
"$VOLMIG" apply -f "$T/update.yaml" --store "$S" >/dev/null || fail "apply update"
"$VOLMIG" controller --store "$S" --once --timeout 120 >"$T/ctl1.log" || { cat "$T/ctl1.log"; fail "controller"; }
cat "$T/ctl1.log"
m=$(get VirtualMachineInstanceMigration | jq '.items[0]')
assert_eq "$(jq -r .status.phase <<<"$m")" Succeeded "migration phase"
assert_eq "$(jq -r '.metadata.labels["kubevirt.io/volume-update-in-progress"]' <<<"$m")" vm1 "label"
assert_eq "$(jq -r '.metadata.labels["kubevirt.io/volume-update-migration"]' <<<"$m")" vm1 "label"
assert_eq "$(jq -c '[.status.phaseTransitionTimestamps[].phase]' <<<"$m")" \
    '["Pending","Scheduling","Running","Succeeded"]' "phases"
assert_eq "$(get VirtualMachineInstance vm1 | jq -r '.items[0].spec.volumes[0].persistentVolumeClaim.claimName')" \
    dst-pvc "VMI volume after the migration"
# storage progress on the migration object (volmig.io/progress), and
# KubeVirt's status.migrationState
p=$(jq -r '.metadata.annotations["volmig.io/progress"]' <<<"$m")
assert_eq "$(jq -c '[.doneBytes, .totalBytes, .percent, .etaSeconds]' <<<"$p")" "[33554432,33554432,100,0]" "final progress"
assert_eq "$(jq -c '.volumes[0] | [.volume, .source, .destination, .doneBytes]' <<<"$p")" \
    '["disk0","src-pvc","dst-pvc",33554432]' "per-volume progress"
# KubeVirt's targetNodeDomainReadyTimestamp on the migration object (at
# the engine's switching event, or at the latest with the success)
[ "$(jq -r '.status.migrationState.targetNodeDomainReadyTimestamp' <<<"$m")" != null ] \
    || fail "no targetNodeDomainReadyTimestamp on the migration object"
assert_eq "$(jq -c '.status.migrationState | [.completed, (.startTimestamp != null), (.endTimestamp != null)]' <<<"$m")" \
    "[true,true,true]" "migrationState"
cmp "$T/src.img" "$T/dst.img" || fail "dst.img differs from src.img"
assert_eq "$(qmp "$T/vm.qmp2" query-jobs)" "[]" "jobs left in QEMU"
get Event | jq -r '.items[].reason' | grep -q VolumeMigrationSucceeded || fail "no VolumeMigrationSucceeded event"
# KubeVirt's representation after success: the VM keeps its record, the VMI's
# volumeStatus follows the volume, VolumesChange and migratedVolumes are gone.
assert_eq "$(get VirtualMachine vm1 | jq -r '.items[0].status.volumeUpdateState.volumeMigrationState.migratedVolumes[0] | .sourcePVCInfo.claimName + "->" + .destinationPVCInfo.claimName')" \
    "src-pvc->dst-pvc" "VM volumeMigrationState after success"
vmi=$(get VirtualMachineInstance vm1 | jq -c '.items[0]')
assert_eq "$(jq -r '.status.volumeStatus[0].persistentVolumeClaimInfo.claimName' <<<"$vmi")" dst-pvc "VMI volumeStatus"
assert_eq "$(jq -r '[.status.conditions[]? | select(.type=="VolumesChange")] | length' <<<"$vmi")" 0 "VMI VolumesChange"
assert_eq "$(jq -r '.status.migratedVolumes // "none"' <<<"$vmi")" none "VMI migratedVolumes"
assert_eq "$(jq -c '.status.migrationState | [.completed, (.targetNodeDomainReadyTimestamp != null)]' <<<"$vmi")" \
    "[true,true]" "VMI migrationState after success"

log "cancellation: the user re-applies the original manifest mid-copy"
# KubeVirt's bandwidth limit for migrations slows the copies from here on.
cat >"$T/kv.yaml" <<YAML
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    vmRolloutStrategy: LiveUpdate
    migrations: {bandwidthPerMigration: 2Mi}
  workloadUpdateStrategy:
    workloadUpdateMethods: [LiveMigrate]
YAML
"$VOLMIG" apply -f "$T/kv.yaml" --store "$S" >/dev/null || fail "apply KubeVirt CR"
new_claim dstc
# The VM now runs on dst-pvc; the update moves it to dstc-pvc.
sed "s|claimName: dst-pvc|claimName: dstc-pvc|" "$T/update.yaml" >"$T/updatec.yaml"
"$VOLMIG" controller --store "$S" >"$T/ctlc.log" 2>&1 &
ctl=$!
track_pid $ctl
"$VOLMIG" apply -f "$T/updatec.yaml" --store "$S" >/dev/null || fail "apply updatec"
wait_for 60 sh -c "'$VOLMIG' get --store '$S' VirtualMachineInstanceMigration | jq -e '.items[] | select(.status.phase==\"Running\")'" \
    || { cat "$T/ctlc.log"; fail "the cancellable migration never ran"; }
# The progress of the running migration, on its object and in get -o wide
# (2 MiB/s: 32 MiB take about 16 s).
wait_for 30 sh -c "'$VOLMIG' get --store '$S' vmim | jq -e '.items[] | select(.status.phase==\"Running\") | .metadata.annotations[\"volmig.io/progress\"] | fromjson | select(.doneBytes > 0 and .bytesPerSecond > 0 and (.etaSeconds | type) == \"number\")'" \
    || { get vmim; fail "no progress with a rate and an ETA on the running migration"; }
p=$(get vmim | jq -r '.items[] | select(.status.phase=="Running") | .metadata.annotations["volmig.io/progress"]')
log "progress: $p"
rate=$(jq .bytesPerSecond <<<"$p")
# sampled by the second, so the first samples can be off by a burst
[ "$rate" -ge $((512 * 1024)) ] && [ "$rate" -le $((8 * 1024 * 1024)) ] || fail "rate $rate is not near the 2 MiB/s limit"
assert_eq "$(jq .totalBytes <<<"$p")" 33554432 "progress total"
"$VOLMIG" get --store "$S" vmim -o wide | tee "$T/wide"
grep -Eq "Running +vm1 +[0-9]+% [0-9.]+ MiB/32.0 MiB +[0-9.]+ MiB/s +[0-9]+s" "$T/wide" || fail "get vmim -o wide"
# Mid-flight, as KubeVirt keeps it: the VMI spec already names the
# destination, the source is known from migratedVolumes only.
vmi=$(get VirtualMachineInstance vm1 | jq -c '.items[0]')
assert_eq "$(jq -r '.spec.volumes[0].persistentVolumeClaim.claimName' <<<"$vmi")" dstc-pvc "VMI spec mid-flight"
assert_eq "$(jq -r '.status.migratedVolumes[0] | .sourcePVCInfo.claimName + "->" + .destinationPVCInfo.claimName' <<<"$vmi")" \
    "dst-pvc->dstc-pvc" "VMI migratedVolumes mid-flight"
assert_eq "$(jq -r '.status.conditions[] | select(.type=="VolumesChange") | .status' <<<"$vmi")" True "VolumesChange mid-flight"
# a new migration replaces the last one's state: its target is not ready, so
# the cancellation below deletes the migration object
assert_eq "$(jq -c '.status.migrationState | [.completed, .targetNodeDomainReadyTimestamp]' <<<"$vmi")" \
    "[null,null]" "VMI migrationState mid-flight"
"$VOLMIG" apply -f "$T/update.yaml" --store "$S" >/dev/null || fail "re-apply the previous manifest"
wait_for 60 sh -c "[ \$('$VOLMIG' get --store '$S' VirtualMachineInstanceMigration | jq '[.items[] | select(.status.phase==\"Running\")] | length') = 0 ]" \
    || { cat "$T/ctlc.log"; fail "the migration object was not removed on cancellation"; }
wait_for 30 sh -c "[ \"\$(python3 '$QMPPY' '$T/vm.qmp2' query-jobs)\" = '[]' ]" || fail "the mirror was not cancelled in QEMU"
vmi=$(get VirtualMachineInstance vm1 | jq -c '.items[0]')
assert_eq "$(jq -r '.spec.volumes[0].persistentVolumeClaim.claimName' <<<"$vmi")" dst-pvc "VMI volume after cancel"
assert_eq "$(jq -r '.status.conditions[]? | select(.type=="VolumesChange") | .reason' <<<"$vmi")" \
    VolumesChangeCancellation "VolumesChange reason"
assert_eq "$(qmp "$T/vm.qmp2" query-status | jq -r .status)" running "QEMU after the cancel"
grep -q "cancelling" "$T/ctlc.log" || { cat "$T/ctlc.log"; fail "the controller did not cancel the job"; }
kill "$ctl"; wait "$ctl" 2>/dev/null || true

log "second update, to dst2-pvc; QEMU killed mid-copy"
new_claim dst2
sed "s|claimName: dst-pvc|claimName: dst2-pvc|" "$T/update.yaml" >"$T/update2.yaml"
"$VOLMIG" apply -f "$T/update2.yaml" --store "$S" >/dev/null || fail "apply update2"
# The bandwidth limit applied above still slows this copy to 2 MiB/s.
"$VOLMIG" controller --store "$S" >"$T/ctl2.log" 2>&1 &
ctl=$!
track_pid $ctl
wait_for 60 sh -c "'$VOLMIG' get --store '$S' VirtualMachineInstanceMigration | jq -e '.items[] | select(.status.phase==\"Running\")'" \
    || { cat "$T/ctl2.log"; fail "the second migration never ran"; }
kill -9 "$vm_pid"
wait_for 60 sh -c "'$VOLMIG' get --store '$S' VirtualMachine vm1 | jq -e '.items[0].status.conditions[]? | select(.type==\"ManualRecoveryRequired\" and .status==\"True\")'" \
    || { cat "$T/ctl2.log"; get VirtualMachine vm1; fail "no ManualRecoveryRequired"; }
log "ManualRecoveryRequired is set"
# The VMI is final; delete it as a user would: no new VMI may start.
rm -f "$S"/VirtualMachineInstance_default_vm1.yaml
sleep 2
assert_eq "$(get VirtualMachineInstance | jq '.items | length')" 0 "a VMI was started despite ManualRecoveryRequired"
get Event | jq -r '.items[].message' | grep -q "VM recovery required" || fail "no 'VM recovery required' event"

log "restoring the original volume (the copy never completed) clears it"
sed "s|claimName: dst2-pvc|claimName: dst-pvc|" "$T/update2.yaml" >"$T/restore.yaml"
"$VOLMIG" apply -f "$T/restore.yaml" --store "$S" >/dev/null || fail "apply restore"
wait_for 30 sh -c "! '$VOLMIG' get --store '$S' VirtualMachine vm1 | jq -e '.items[0].status.conditions[]? | select(.type==\"ManualRecoveryRequired\")'" \
    || { get VirtualMachine vm1; fail "ManualRecoveryRequired not cleared"; }
kill "$ctl"; wait "$ctl" 2>/dev/null || true
echo ok
