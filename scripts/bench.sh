#!/usr/bin/env bash
# Release-build benchmark (docs/benchmarks.md): throughput, latency, proof costs, machine limit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product iomtchain
.build/release/iomtchain bench "$@"
