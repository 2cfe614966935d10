#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian/Raspberry Pi OS machine, then run lint, types and tests.
# Debian packages: mosquitto (real MQTT broker), gpsd + gpsd-clients (gpsfake), ffmpeg (ffprobe), openssl,
# systemd (systemd-analyze), chromium (console tests via Playwright), exiftool, pango/harfbuzz/fonts (WeasyPrint
# reports), fonts-noto-cjk (the Chinese text of the report's signature page), poppler-utils (pdftoppm),
# postgresql (customs index tests), iproute2 (`ip netns`: the LAN-neighbour test host, needs root).
# Python packages go into ./.venv.
# Go (1.26, with its module proxy) builds Rekor v2 and the Sigstore TSA for the anchoring tests (cached).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
pkgs=(mosquitto mosquitto-clients gpsd gpsd-clients ffmpeg openssl systemd python3-venv chromium libimage-exiftool-perl
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core fonts-noto-cjk poppler-utils
      postgresql iproute2)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# An independent C2PA reader for tests/integration/test_c2pa_independent.py (skipped without it)
if command -v npm >/dev/null 2>&1 && [ ! -d .cache/c2pa-ts/node_modules/@trustnxt/c2pa-ts ]; then
  npm install --prefix .cache/c2pa-ts --no-audit --no-fund --silent @trustnxt/c2pa-ts@0.9.4 >/dev/null \
    || echo "warning: npm could not install @trustnxt/c2pa-ts; its test will be skipped"
fi
# Rekor v2 and the Sigstore timestamp-authority for the anchoring tests (Go; cached in .cache/go-servers)
./scripts/build-test-servers.sh
echo "== ruff"; .venv/bin/ruff check agent tests benchmarks
echo "== mypy"; .venv/bin/mypy agent
echo "== import contracts"; .venv/bin/lint-imports
echo "== pytest"
if [ $# -gt 0 ]; then exec .venv/bin/python -m pytest -q "$@"; fi
# Most of the suite's time is spent waiting on real processes (browsers, brokers, devices at real-time rates),
# not computing: two pytest processes, each with its own temporary folder, share the two cores. The browser and
# integration tests run in one, everything else in the other; the second one's output follows the first's.
tmp=$(mktemp -d)
.venv/bin/python -m pytest -q -p no:cacheprovider --basetemp="$tmp/b" tests/faults tests/security tests/system \
  tests/unit tests/hardware >"$tmp/b.log" 2>&1 &
other=$!
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider --basetemp="$tmp/a" tests/console tests/integration || rc=$?
wait "$other" || rc=$?
cat "$tmp/b.log"
rm -rf "$tmp"
exit "$rc"
