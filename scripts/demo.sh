#!/usr/bin/env bash
# The main job: a 4-validator devnet, the hospital's gateway and the device simulator on 127.0.0.1,
# playing remote monitoring, the vaccine supply chain and contact tracing as a story
# (iomtchain demo). Ctrl-C stops every process it started. Data in ./demo (a fresh one each run:
# an earlier ./demo is moved to ./demo.previous).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DIR="${DATA_DIR:-./demo}"
if [ -e "$DIR" ]; then rm -rf "$DIR.previous"; mv "$DIR" "$DIR.previous"; fi
swift build --product iomtchain
exec .build/debug/iomtchain demo --data-dir "$DIR" "$@"
