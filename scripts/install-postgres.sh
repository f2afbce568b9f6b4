#!/usr/bin/env bash
# PostgreSQL 15's server binaries for the PostgreSQL sink's tests (tests/postgres.rs starts
# its own throwaway server from them), from Debian's package `postgresql`. Called by
# test.sh; does nothing when they are installed. Without root or apt-get it says so and
# those tests skip with that reason, except under CI=true, where it fails.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/postgres ] || command -v postgres >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgres: not root or no apt-get: the PostgreSQL tests will be skipped" >&2
  [ "${CI:-}" = true ] && { echo "install-postgres: CI=true: failing instead" >&2; exit 1; }
  exit 0
fi
echo "install-postgres: installing PostgreSQL's server for the PostgreSQL sink's tests (once per machine)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || echo "install-postgres: apt-get update failed" >&2
if ! apt-get install -y -qq postgresql >/dev/null; then
  echo "install-postgres: apt-get install failed: the PostgreSQL tests will be skipped" >&2
  [ "${CI:-}" = true ] && exit 1
fi
