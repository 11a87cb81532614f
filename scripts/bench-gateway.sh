#!/usr/bin/env bash
# Edge gateway benchmark (docs/benchmarks.md, "Edge gateway"): a dev node and a gateway as separate
# release-build processes on 127.0.0.1, driven by `iomtchain simulate devices`. Prints the
# simulator's figures (readings/s accepted and end to end, upload and alert latency) and the bytes
# on-chain per reading (anchor transactions, and the anchor records they add to the state).
#
#   scripts/bench-gateway.sh [simulate-devices options]      e.g. --devices 1000 --rate 0 --batch 100 --seconds 20
#
# Environment: IOMT_BIN (default: a release build in .build-release), GATEWAY_ARGS (extra
# `gateway run` options, e.g. "--batch-size 1000 --batch-ms 1000").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IOMT_BIN:-}" ]; then
  scripts/setup.sh
  swift build -c release --product iomtchain --scratch-path .build-release >&2
  IOMT_BIN=.build-release/release/iomtchain
fi
B=$(realpath "$IOMT_BIN")
dir=$(mktemp -d /tmp/iomt-bench-gateway.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
np=$(port); gp=$(port)
"$B" node run --dev --data-dir "$dir/node" --http "127.0.0.1:$np" > "$dir/node.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$np/healthz" >/dev/null && break; sleep 0.1; done
"$B" keys generate --out "$dir/gw.key.json" >/dev/null
pub=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["publicKey"])' "$dir/gw.key.json")
"$B" tx submit --node "http://127.0.0.1:$np" --key "$dir/node/admin.key.json" --wait --type register-account \
  --public-key "$pub" --role gateway --organisation dev-hospital >/dev/null
# shellcheck disable=SC2086
"$B" gateway run --data-dir "$dir/gw" --key "$dir/gw.key.json" --node "http://127.0.0.1:$np" --http "127.0.0.1:$gp" ${GATEWAY_ARGS:-} > "$dir/gw.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gp/healthz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); gateway options: ${GATEWAY_ARGS:-defaults}"
timeout 900 "$B" simulate devices --node "http://127.0.0.1:$np" --gateway "http://127.0.0.1:$gp" --admin-key "$dir/node/admin.key.json" --wait-anchored "$@"
sqlite3 "$dir/gw/gateway.sqlite" "SELECT 'on-chain: ' || count(*) || ' anchor transactions for ' || sum(count) || ' readings (' || printf('%.1f', avg(count)) || ' per batch); ' || printf('%.3f', 1.0 * sum(length(tx_bytes)) / sum(count)) || ' bytes of transaction per reading; full batches (' || max(count) || '): ' || printf('%.3f', 1.0 * max(length(tx_bytes)) / max(count)) || ' bytes per reading' FROM batches WHERE committed_height IS NOT NULL"
