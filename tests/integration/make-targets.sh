#!/usr/bin/env bash
# The Makefile (issue 15), with a stand-in compiler that only records and
# touches its output, so that the whole build takes a second:
#  1. make -j2 all compiles nothing before deps has finished (on a fresh
#     machine deps installs the headers the compiles need);
#  2. make check-integration runs the integration tests and nothing else;
#  3. make install honours PREFIX and DESTDIR.
. "$(dirname "$0")/../lib/common.sh"
require make ar

B=$T/b
cat >"$T/cc" <<EOS
#!/bin/sh
# A compiler that fails unless deps is done, and writes an empty output.
[ -e "$T/deps.done" ] || { echo "compiled before deps finished: \$*" >>"$T/early"; exit 1; }
out=
while [ \$# -gt 0 ]; do [ "\$1" = -o ] && out=\$2; shift; done
: >"\$out"
EOS
cat >"$T/deps" <<EOS
#!/bin/sh
sleep 2
touch "$T/deps.done"
EOS
chmod +x "$T/cc" "$T/deps"

log "1. make -j2 all: no compile before deps is done"
rc=0
make -C "$TOP" -j2 BUILD="$B" CC="$T/cc" DEPS="$T/deps" all >"$T/make1.log" 2>&1 || rc=$?
tail -n 5 "$T/make1.log"
[ -e "$T/early" ] && fail "$(wc -l <"$T/early") compiles started before deps finished, e.g. $(head -n 1 "$T/early")"
assert_eq "$rc" 0 "make -j2 all"
[ -e "$B/volmig" ] || fail "no $B/volmig"

log "2. make check-integration: the integration tests only"
mkdir -p "$T/suite" "$B/tests/unit"
printf '#!/bin/sh\nexit 0\n' >"$T/suite/fine.sh"
printf '#!/bin/sh\necho "a unit test ran"; exit 1\n' >"$B/tests/unit/test_fake"
chmod +x "$B/tests/unit/test_fake"
rc=0
VOLMIG_TESTS_DIR=$T/suite make -C "$TOP" BUILD="$B" CC="$T/cc" DEPS=true check-integration \
    >"$T/make2.log" 2>&1 || rc=$?
cat "$T/make2.log"
assert_eq "$rc" 0 "make check-integration"
grep -q "^PASS integration/fine" "$T/make2.log" || fail "the integration test did not run"
grep -q "unit/" "$T/make2.log" && fail "a unit test ran"

log "3. make install PREFIX=/opt/volmig DESTDIR=$T/root"
make -C "$TOP" BUILD="$B" CC="$T/cc" DEPS=true PREFIX=/opt/volmig DESTDIR="$T/root" install \
    >"$T/make3.log" 2>&1 || { cat "$T/make3.log"; fail "make install"; }
[ -x "$T/root/opt/volmig/bin/volmig" ] || fail "not installed at \$DESTDIR\$PREFIX/bin/volmig"
make -C "$TOP" BUILD="$B" DEPS=true PREFIX=/opt/volmig DESTDIR="$T/root" uninstall >/dev/null \
    || fail "make uninstall"
[ -e "$T/root/opt/volmig/bin/volmig" ] && fail "make uninstall left the binary"
log "ok"
