#!/usr/bin/env bash
# A Kafka-protocol broker for the Kafka tests (tests/support/kafka.rs starts it on a free
# port of 127.0.0.1): tansu, installed once per machine (about 15 minutes the first time).
# Called by test.sh; does nothing when tansu is already installed.
set -euo pipefail
if command -v tansu >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
  exit 0
fi
echo "install-tansu: installing the tansu broker for the Kafka tests (once per machine)" >&2
cargo install --quiet --locked tansu --version 0.6.0 --features dynostore
