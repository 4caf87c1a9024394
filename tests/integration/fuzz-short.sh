#!/usr/bin/env bash
# A short run of every fuzz target (make fuzz runs them longer): the
# committed seed inputs replay clean, then each target fuzzes for 10 s.
. "$(dirname "$0")/../lib/common.sh"
require clang
cd "$TOP"
export FUZZ_BUILD="$TOP/$BUILD/fuzz"   # per build dir: check and check-asan may overlap; crashes stay
tests/fuzz/run.sh --replay || fail "a seed input crashes a fuzz target"
tests/fuzz/run.sh "${FUZZ_SECONDS:-10}" || fail "fuzzing found a crash"
