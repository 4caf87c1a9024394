#!/usr/bin/env bash
# The randomized fault campaign, short: 10 migrations with a fixed seed
# (tests/campaign/campaign.sh; `make check-faults` runs 100).
exec bash "$(dirname "$0")/../campaign/campaign.sh" "${CAMPAIGN_RUNS:-10}" "${CAMPAIGN_SEED:-7}"
