#!/usr/bin/env bash
# Builds and runs every libFuzzer target, tests/fuzz/fuzz_*.c.
#
#   tests/fuzz/run.sh [SECONDS] [PATTERN]   fuzz each target for SECONDS (60)
#   tests/fuzz/run.sh --replay [PATTERN]    run each seed input once, no fuzzing
#
# A target says what it links against in its header comment:
#   fuzz-sources: qmp/frame.c common/error.c     (library sources it needs)
#   fuzz-libs: jansson                           (pkg-config names)
# Its seed inputs live in tests/fuzz/corpus/NAME/ (NAME: the file name
# without fuzz_ and .c).  Inputs the fuzzer finds go to build-fuzz/corpus/NAME,
# crashes to build-fuzz/NAME-crash-*; the committed seeds are never touched.
# Exit status: 0 if every target ran clean, 1 if any failed or crashed.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${FUZZ_BUILD:-build-fuzz}
CC=${FUZZ_CC:-clang}
replay=0 seconds=60 pattern=
if [ "${1:-}" = --replay ]; then replay=1; shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then seconds=$1; shift
fi
pattern=${1:-}

command -v "$CC" >/dev/null || { echo "fuzz: no $CC (make deps)" >&2; exit 1; }
mkdir -p "$OUT"

field() { # FILE KEY: the words after "KEY:" in FILE's header
    sed -n "s|^.*$2:[[:space:]]*||p" "$1" | head -n 1
}

build() { # SRC BIN
    local srcs libs
    srcs=$(field "$1" fuzz-sources)
    libs=$(field "$1" fuzz-libs)
    [ -n "$srcs" ] || { echo "fuzz: $1 has no 'fuzz-sources:' line" >&2; return 1; }
    # shellcheck disable=SC2086
    "$CC" -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Wall -Wextra -Werror \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        $( [ -n "$libs" ] && pkg-config --cflags $libs ) \
        -o "$2" "$1" $srcs $( [ -n "$libs" ] && pkg-config --libs $libs )
}

failed=0 ran=0
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c); name=${name#fuzz_}
    [ -z "$pattern" ] || [[ "$name" == *"$pattern"* ]] || continue
    bin="$OUT/fuzz_$name" seeds="tests/fuzz/corpus/$name" work="$OUT/corpus/$name"
    log="$OUT/$name.log"
    mkdir -p "$seeds" "$work"
    if ! build "$src" "$bin"; then
        echo "FAIL $name: does not build"; failed=1; continue
    fi
    ran=$((ran + 1))
    # UBSan must stop the run, not just print.
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    if [ $replay = 1 ]; then
        set -- "$seeds"/*
        if "$bin" -runs=0 "$@" >"$log" 2>&1; then
            echo "PASS $name: replayed $# seed inputs"
        else
            echo "FAIL $name: a seed input fails; see $log"; tail -n 20 "$log"; failed=1
        fi
        continue
    fi
    if "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
            -rss_limit_mb=2048 -artifact_prefix="$OUT/$name-" "$work" "$seeds" \
            >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | tr -dc 0-9)
        ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | tr -dc 0-9)
        echo "PASS $name: ${execs:-?} execs in ${seconds}s, coverage $cov edges / $ft features," \
             "corpus $(ls "$work" | wc -l) inputs"
    else
        echo "FAIL $name: see $log"; grep -A 30 -m 1 'ERROR\|==ERROR\|deadly signal' "$log" || tail -n 30 "$log"
        ls "$OUT/$name"-crash-* "$OUT/$name"-leak-* 2>/dev/null || true
        failed=1
    fi
done
[ $ran -gt 0 ] || { echo "fuzz: no target matched" >&2; exit 1; }
exit $failed
