#!/usr/bin/env bash
# The controller against a VM that libvirt owns: the README's controller
# example with the VMI annotated volmig.io/qmp: libvirt:DOMAIN (and the
# volume's disk named vda, as volmig.io/drive.disk0).  The migration runs
# through libvirt's block copy and pivot: the VMI moves to dst-pvc, and
# libvirt's live and persistent XML name the destination file.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require jq

DOM=volmig-k8slv-$$
EX=$T/ex
mkdir -p "$EX" "$T/fix"
dd if=/dev/urandom of="$EX/src.img" bs=1M count=16 status=none
truncate -s 64M "$EX/src.img" "$EX/dst.img"
lv_domain "$DOM" persistent "$EX/src.img"
for f in "$TOP"/tests/fixtures/k8s/example/*.yaml; do
    sed "s|/tmp/volmig-example|$EX|g; s|\"unix:$EX/vm.qmp\"|\"libvirt:$DOM\", volmig.io/drive.disk0: vda|" \
        "$f" >"$T/fix/$(basename "$f")"
done
grep -q "libvirt:$DOM" "$T/fix/cluster.yaml" || fail "the fixture's annotation was not replaced"
S=$T/store
"$VOLMIG" apply -f "$T/fix/cluster.yaml" -f "$T/fix/vm.yaml" --store "$S" >/dev/null
"$VOLMIG" apply -f "$T/fix/vm-migrate.yaml" --store "$S" >/dev/null
"$VOLMIG" controller --store "$S" --once --timeout 120 >"$T/out" 2>&1 \
    || fail "controller: $(cat "$T/out")"
assert_eq "$("$VOLMIG" get --store "$S" vmim | jq -r '.items[0].status.phase')" Succeeded "phase"
assert_eq "$("$VOLMIG" get --store "$S" vmi vm1 | jq -r '.items[0].spec.volumes[0].persistentVolumeClaim.claimName')" \
    dst-pvc "the VMI's claim"
assert_eq "$(lv_source "$DOM" vda)" "$EX/dst.img" "live XML"
assert_eq "$(lv_source "$DOM" vda --inactive)" "$EX/dst.img" "persistent XML"
lv_no_job "$DOM" vda
"${VIRSH[@]}" destroy "$DOM" >/dev/null
same_bytes "$EX/src.img" "$EX/dst.img"
log "ok"
