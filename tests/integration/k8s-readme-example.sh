#!/usr/bin/env bash
# The README's controller example, run as the README prints it: the shell
# block after "<!-- example: controller -->" with its paths moved into the
# test's scratch directory.  A README that no longer works fails here.
. "$(dirname "$0")/../lib/common.sh"
require qemu-system-x86_64 jq
EX=$T/ex
mkdir -p "$T/fix"
for f in "$TOP"/tests/fixtures/k8s/example/*.yaml; do
    sed "s|/tmp/volmig-example|$EX|g" "$f" >"$T/fix/$(basename "$f")"
done
awk '/<!-- example: controller -->/ {m = 1; next} m && /^```sh/ {p = 1; next} p && /^```/ {exit} p' \
    "$TOP/README.md" >"$T/block.sh"
[ -s "$T/block.sh" ] || fail "no example block in the README"
sed -i "s|/tmp/volmig-example|$EX|g; s|tests/fixtures/k8s/example|$T/fix|g; s|build/volmig|$VOLMIG|g" \
    "$T/block.sh"
set +e
(cd "$TOP" && bash -euo pipefail "$T/block.sh") >"$T/out" 2>&1
rc=$?
set -e
pid=$(cat "$EX/vm.pid" 2>/dev/null) && track_pid "$pid"   # QEMU, if the block failed before its kill
cat "$T/out"
assert_eq $rc 0 "the README example's exit status"
grep -q "^kubevirt-workload-update-..... Succeeded$" "$T/out" || fail "no Succeeded migration in the output"
grep -q '"claimName":"dst-pvc"' "$T/out" || fail "the VMI is not on dst-pvc"
grep -q "^identical$" "$T/out" || fail "the copy differs"
# the README shows this output; its lines must be the ones printed
for line in "VirtualMachine default/vm1 created" "VirtualMachine default/vm1 configured"; do
    grep -qF "$line" "$T/out" || fail "output lacks '$line'"
    grep -qF "$line" "$TOP/README.md" || fail "the README lacks '$line'"
done
log "ok"
