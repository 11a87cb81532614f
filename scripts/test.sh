#!/usr/bin/env bash
# The whole test suite: unit, property-based, store/crash and integration tests
# (the integration tests start the real `iomtchain` binary and talk HTTP to it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --product iomtchain
swift test "$@"
