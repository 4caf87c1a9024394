#!/usr/bin/env bash
# The README's examples work as written (issue 15): every ```sh block runs,
# in a directory of its own and a network namespace of its own (so that
# port 10809 is free whatever else runs), with build/volmig first on the
# PATH, under bash -e; it must exit 0 and leave nothing running.  Blocks of
# make commands (make demo, make check: what the runner itself is) are
# not run, nor are blocks marked "<!-- example: NAME -->", which a test of
# their own runs (one must exist).  The README names nothing outside the
# repository.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/leftovers.sh"
require python3 qemu-system-x86_64 ip
[ "$(id -u)" = 0 ] || skip "network namespaces need root"

grep -nE '\.\./[A-Za-z]' "$TOP/README.md" && fail "the README points outside the repository"

python3 - "$TOP/README.md" "$T" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
n = 0
for m in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M):
    body = m.group(1)
    before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
    if before.startswith("<!-- example: "):
        open("%s/marked" % sys.argv[2], "a").write(before + "\n")
        continue
    lines = [l for l in body.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if all(l.lstrip().startswith("make ") or l.lstrip().startswith("make\t") for l in lines):
        continue
    n += 1
    open("%s/example%d.sh" % (sys.argv[2], n), "w").write(body)
print(n)
PY
while read -r marker; do
    grep -rqF -- "$marker" "$TOP/tests/integration" --exclude=readme-examples.sh \
        || fail "no test runs the README block marked $marker"
done < <(cat "$T/marked" 2>/dev/null)
count=$(ls "$T"/example*.sh 2>/dev/null | wc -l)
[ "$count" -ge 2 ] || fail "only $count runnable examples in the README"

ns=volmig-readme-$$
ip netns add "$ns" || skip "cannot create a network namespace"
track_netns "$ns"
ip -n "$ns" link set lo up

for ex in "$T"/example*.sh; do
    name=$(basename "$ex" .sh)
    d=$T/$name.d
    mkdir -p "$d"
    log "$name:"
    sed 's/^/    | /' "$ex"
    tag=${VOLMIG_TAG}${name#example}x
    rc=0
    (cd "$d" && VOLMIG_TAG=$tag PATH="$TOP/$BUILD:$PATH" \
        timeout 180 ip netns exec "$ns" bash -e -o pipefail "$ex") >"$d.out" 2>&1 || rc=$?
    sed 's/^/    > /' "$d.out"
    left=
    leftovers "$tag" >"$d.left" || { left=$(cat "$d.left"); sweep_leftovers "$tag"; }
    [ $rc = 0 ] || fail "$name exited $rc"
    [ -z "$left" ] || fail "$name left behind: $left"
done
log "ok: $count examples ran"
