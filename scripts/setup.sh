#!/usr/bin/env bash
# Installs what a fresh Debian machine needs to build and test IoMTChain.
# Idempotent: only installs what is missing.
set -euo pipefail
need=()
if command -v dpkg >/dev/null; then
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
dpkg -s sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
dpkg -s curl >/dev/null 2>&1 || need+=(curl)
# zlib: the gateway compresses reading batches before it encrypts them.
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
# ipfs-cid: the content-id tests compare with IPFS's own hashing of files.
dpkg -s ipfs-cid >/dev/null 2>&1 || need+=(ipfs-cid)
# MQTT: the Paho C client library the gateway links, and the Mosquitto broker and clients the tests run.
dpkg -s libpaho-mqtt-dev >/dev/null 2>&1 || need+=(libpaho-mqtt-dev)
dpkg -s mosquitto >/dev/null 2>&1 || need+=(mosquitto)
dpkg -s mosquitto-clients >/dev/null 2>&1 || need+=(mosquitto-clients)
# Chromium: the web console's tests open every page in a real (headless) browser.
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
else
  echo "not a Debian system: install SQLite 3 (library and sqlite3 tool) and curl yourself" >&2
fi
# openapi-spec-validator checks Sources/IoMTAPI/openapi.yaml. Only the docs need it, so a machine
# where pip cannot install it still builds and tests (a warning, not a failure).
if command -v python3 >/dev/null && ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  python3 -m pip install -q openapi-spec-validator >/dev/null 2>&1 \
    || python3 -m pip install -q --user --break-system-packages openapi-spec-validator >/dev/null 2>&1 \
    || echo "warning: could not install openapi-spec-validator (python3 -m pip install openapi-spec-validator)" >&2
fi
# Playwright drives the system's Chromium in the console tests (no browser download: it is
# pointed at /usr/bin/chromium). The tests need it, so a failure here is an error.
if command -v python3 >/dev/null && ! python3 -c 'import playwright.sync_api' >/dev/null 2>&1; then
  python3 -m pip install -q playwright >/dev/null 2>&1 \
    || python3 -m pip install -q --user --break-system-packages playwright >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages playwright >/dev/null 2>&1 \
    || { echo "could not install playwright (python3 -m pip install playwright): the console tests need it" >&2; exit 1; }
fi
command -v swift >/dev/null || { echo "swift 6.1+ is required (https://swift.org/install)"; exit 1; }
