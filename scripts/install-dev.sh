#!/usr/bin/env bash
# Install hfssl with its test dependencies (and chromium for the browser test). torch first: torch==2.13.0 where pip's index
# has it (on the project's CI machines a CPU build served locally), else whatever `pip install torch` gives the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0" || python -m pip install -q torch
python -m pip install -q -e ".[dev]"
# Debian's chromium for the browser test of the demo (skipped, with a reason, where apt-get is unavailable).
bash scripts/install-browser.sh
