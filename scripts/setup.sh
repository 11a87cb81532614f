#!/usr/bin/env bash
# Installs what a fresh Debian machine needs to build and test IoMTChain.
# Idempotent: only installs what is missing.
set -euo pipefail
need=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
dpkg -s sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
dpkg -s curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v swift >/dev/null || { echo "swift 6.1+ is required (https://swift.org/install)"; exit 1; }
