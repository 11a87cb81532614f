#!/usr/bin/env bash
# Starts a single-node development chain in ./data (created on first start) with its API on :8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift run iomtchain node run --dev --data-dir "${DATA_DIR:-./data}" --http "${HTTP_ADDR:-127.0.0.1:8080}"
