#!/usr/bin/env bash
# make bench: every benchmark under bench/, one after the other.  Today
# that is serve.sh (issue 2: QEMU's mirror into volmig serve and the peers).
# Knobs are environment variables, listed at the top of each script, e.g.
#   make bench BENCH_SIZE=256M BENCH_REPEAT=1
set -euo pipefail
cd "$(dirname "$0")"
./serve.sh "$@"
