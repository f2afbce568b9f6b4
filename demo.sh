#!/usr/bin/env bash
# The demo: per-symbol moving averages of generated stock ticks (3 s windows sliding 1 s,
# 1 s watermark delay), computed by the `stats` plugin in its sandbox. No broker needed.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cargo build --quiet --release -p weir
./target/release/weir run pipelines/demo-stocks.toml
echo "first rows of out/demo-stocks.jsonl:"
head -n 5 out/demo-stocks.jsonl
