#!/usr/bin/env bash
# Installs what Weir needs on a fresh machine and builds the plugins as wasm32-wasip2
# components. Called by demo.sh and test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  rustup target add wasm32-wasip2 >/dev/null
else
  echo "setup: rustup not found; make sure the wasm32-wasip2 target is installed." >&2
fi

# Every plugin crate in the workspace: the examples and the adversarial test plugins.
PLUGINS=(
  weir-plugin-stats weir-plugin-stats-incremental weir-plugin-fare-totals weir-plugin-fare-totals-incremental weir-plugin-hotspot weir-plugin-ticker weir-plugin-vwap
  weir-test-spin weir-test-hog weir-test-panicky weir-test-huge
  weir-test-importer weir-test-wrong-world weir-test-shouty weir-test-legacy weir-test-spoof
  weir-test-skewed
)
args=()
for p in "${PLUGINS[@]}"; do args+=(-p "$p"); done
echo "setup: building plugins for wasm32-wasip2" >&2
cargo build --quiet --profile plugin --target wasm32-wasip2 "${args[@]}"

