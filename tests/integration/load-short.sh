#!/usr/bin/env bash
# The load tests, short (tests/campaign/load.sh --short; `make check-load`
# runs the full ones): 8 volumes in one call, 4 concurrent migrations, a
# 4 GiB sparse volume.
exec bash "$(dirname "$0")/../campaign/load.sh" --short
