#!/usr/bin/env bash
# Every test: unit tests, plugin tests (native and through wasm) and end-to-end tests of
# the real binary on the ready pipelines.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
