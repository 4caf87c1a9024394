#!/usr/bin/env bash
# make demo, part 2: the declarative story.  A VM's manifest is edited to
# point its disk at a new claim with updateVolumesStrategy: Migration, and
# `volmig apply` hands it to the controller, which works out the rest.
. "$(dirname "$0")/common.sh"
. "$TOP/tests/lib/k8s-world.sh"
require qemu-system-x86_64 python3 cmp jq
MIB=${DEMO_K8S_MIB:-256}
S=$T/store
say() { printf '%s\n' "$*"; }

say "== volmig demo, part 2: updateVolumesStrategy: Migration, declaratively =="
random_file "$T/src-pv.img" "$MIB"
truncate -s "${MIB}M" "$T/dst-pv.img"
start_qemu vm "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/src-pv.img\"}}"
k8s_world "$T" "$T/src-pv.img" "$T/dst-pv.img" "$MIB" "unix:$T/vm.qmp"
say "-- the running VM vm1 (QEMU, disk0 on claim src-pvc) and its storage, into the store"
"$VOLMIG" apply -f "$T/base.yaml" --store "$S" | sed 's/^/   /'
"$VOLMIG" controller --store "$S" >"$T/controller.log" 2>&1 &
track_pid $!

say "-- the edited manifest: disk0 on dst-pvc, updateVolumesStrategy: Migration"
{ diff -u "$T/original.yaml" "$T/update.yaml" || true; } | tail -n +3 | sed "s/^/   /"
"$VOLMIG" apply -f "$T/update.yaml" --store "$S" | sed 's/^/   /'

say "-- the migration object, as the controller moves it along"
last=
for _ in $(seq 600); do
    line=$("$VOLMIG" get --store "$S" VirtualMachineInstanceMigration | jq -r \
        '.items[0] | select(.) | "\(.metadata.name)  \(.status.phase)  vmi=\(.spec.vmiName)"')
    if [ -n "$line" ] && [ "$line" != "$last" ]; then
        say "   $line"
        last=$line
        # While it runs, the VM's status lists the volumes being migrated.
        case "$line" in *Running*)
            "$VOLMIG" get --store "$S" VirtualMachine vm1 | jq -c \
                '.items[0].status.volumeUpdateState.volumeMigrationState.migratedVolumes[]? | {volumeName, from: .sourcePVCInfo.claimName, to: .destinationPVCInfo.claimName}' \
                | sed 's/^/     VM status migratedVolumes: /' ;;
        esac
    fi
    case "$line" in *Succeeded*) break ;; *Failed*) cat "$T/controller.log"; fail "the migration failed" ;; esac
    sleep 0.1
done
case "$last" in *Succeeded*) ;; *) fail "the migration did not finish" ;; esac
sleep 1   # one more controller round writes the VM status

say "-- the VM's status after success (volumeMigrationState is kept, as in KubeVirt)"
"$VOLMIG" get --store "$S" VirtualMachine vm1 | jq -c '.items[0].status | {volumeUpdateState, conditions: [.conditions[]? | {type, status}]}' | sed 's/^/   /'
say "-- the VMI now runs on:"
"$VOLMIG" get --store "$S" VirtualMachineInstance vm1 | jq -c '.items[0].spec.volumes' | sed 's/^/   /'
say "-- events"
"$VOLMIG" get --store "$S" Event | jq -r '.items[] | "   \(.reason): \(.message)"' | sort -u
cmp "$T/src-pv.img" "$T/dst-pv.img" || fail "the destination claim's data differ"
say "   verified: dst-pvc holds the same $MIB MiB as src-pvc, byte for byte"
