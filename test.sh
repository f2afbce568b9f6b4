#!/usr/bin/env bash
# Every test: unit tests, plugin tests (native and through wasm), end-to-end tests of
# the real binary (`weir run` and `weir serve`), the Kafka tests against a real broker
# (tansu, installed once per machine), the console's tests in headless Chromium (installed
# from Debian's packages once per machine), the PostgreSQL sink's tests against a throwaway
# PostgreSQL 15 (its server installed from Debian's packages when missing), and doctests
# (the README's plugin too).
# Benchmarks are not tests: run them with `cargo bench` (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
scripts/install-tansu.sh
scripts/install-chromium.sh
scripts/install-postgres.sh
cargo test --workspace "$@"
