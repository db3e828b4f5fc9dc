#!/usr/bin/env bash
# Install Debian's chromium for the Playwright browser tests (tests/demo/test_browser.py) when it is missing.
# Playwright drives /usr/bin/chromium through `executable_path`; never run `playwright install`.
# Without root or apt-get this prints why it skips and exits 0: the browser tests then skip with a reason.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "install-browser: $CHROMIUM is present ($("$CHROMIUM" --version 2>/dev/null | head -n 1 || echo 'version unknown'))."
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: skipped, apt-get is not available here; the browser tests will skip." >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-browser: skipped, installing chromium with apt-get needs root; the browser tests will skip." >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "install-browser: installed $("$CHROMIUM" --version 2>/dev/null | head -n 1 || echo chromium)."
