#!/usr/bin/env bash
# Headless Chromium and ChromeDriver for the console's browser tests (tests/console.rs),
# from Debian's packages `chromium` and `chromium-driver`. Called by test.sh; does nothing
# when both are installed. Without root or apt-get it says so and the browser tests skip
# with that reason, except under CI=true, where it fails (a CI run never skips them).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: not root or no apt-get: the console's browser tests will be skipped" >&2
  [ "${CI:-}" = true ] && { echo "install-chromium: CI=true: failing instead" >&2; exit 1; }
  exit 0
fi
echo "install-chromium: installing chromium and chromium-driver for the console's browser tests (once per machine)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || echo "install-chromium: apt-get update failed" >&2
if ! apt-get install -y -qq chromium chromium-driver >/dev/null; then
  echo "install-chromium: apt-get install failed: the console's browser tests will be skipped" >&2
  [ "${CI:-}" = true ] && exit 1
fi
