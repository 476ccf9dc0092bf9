#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every unit and integration test with nextest
# (falling back to cargo test where nextest is not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --profile ci
else
  cargo test --locked
fi
