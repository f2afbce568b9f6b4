#!/usr/bin/env bash
# The 2 M-tick job (`weir bench` workload `stocks-2m`) in Spark, beside Weir, on the same
# generated input: installs what Spark needs once per machine, generates the input with
# `weir gen`, runs the pipeline with `weir run` for the reference rows, runs the PySpark job
# (bench/spark/stocks_window.py), checks its rows against Weir's (bench/spark/compare.py)
# and prints the wall times.
#
#   bench/spark/run.sh                       # batch job, once
#   bench/spark/run.sh --mode stream         # Structured Streaming, trigger(availableNow)
#   bench/spark/run.sh --mode both --repeat 3
#   bench/spark/run.sh --count 20000         # a quick check on a small input
#
# Options: --count N (ticks, default 2000000), --mode batch|stream|both (default batch),
# --repeat N (Spark runs per mode; the median wall is printed), --no-check (skip the
# reference run and the comparison).
#
# Installs, once: a Java runtime of 17 or later (Debian's openjdk-17-jre-headless, or the
# one Debian offers, with apt-get as root) and pyspark (PySpark 4.3.0, the version below)
# from PyPI into a venv at $WEIR_SPARK_VENV (default ~/.cache/weir-bench/spark-venv). Needs
# python3 3.10 or later with its venv module. Builds target/release/weir and the plugins if
# they are missing. Writes under target/bench-data (the input, shared with `weir bench`)
# and target/bench-spark (outputs).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

PYSPARK_VERSION=4.3.0
COUNT=2000000
MODE=batch
REPEAT=1
CHECK=1
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --no-check) CHECK=0; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "spark: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$MODE" in
  batch|stream) MODES=("$MODE") ;;
  both) MODES=(batch stream) ;;
  *) echo "spark: --mode is batch, stream or both, not $MODE" >&2; exit 2 ;;
esac

say() { echo "spark: $*" >&2; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- Java 17 or later --------------------------------------------------------------------
java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1
}
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "needs a Java runtime 17 or later (on Debian: apt-get install openjdk-17-jre-headless)"
    exit 1
  fi
  say "installing a Java runtime (once per machine)"
  apt-get update -qq
  pkg=""
  for candidate in openjdk-17-jre-headless openjdk-21-jre-headless openjdk-25-jre-headless; do
    if apt-cache show "$candidate" >/dev/null 2>&1; then pkg=$candidate; break; fi
  done
  if [ -z "$pkg" ]; then
    say "no openjdk-17/21/25-jre-headless package in this machine's apt sources"
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
fi

# --- PySpark in a venv -------------------------------------------------------------------
VENV=${WEIR_SPARK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-bench/spark-venv}
PY=$VENV/bin/python
if ! "$PY" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
  say "installing pyspark $PYSPARK_VERSION into $VENV (once per machine, about 500 MB)"
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV"; then
    # Debian's python3 leaves the venv module's pip out: python3-venv has it.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV" && python3 -m venv "$VENV"
    else
      say "python3 -m venv failed (on Debian: apt-get install python3-venv)"; exit 1
    fi
  fi
  "$PY" -m pip install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
fi

# --- Weir and the input ------------------------------------------------------------------
WEIR=$ROOT/target/release/weir
if [ ! -x "$WEIR" ]; then
  say "building weir (the first release build takes about 10 minutes)"
  cargo build --release -p weir
fi
if [ ! -f target/wasm32-wasip2/plugin/stats.wasm ]; then
  scripts/setup.sh
fi
# The name `weir bench` gives the same input, so either one generates it for both.
INPUT=$ROOT/target/bench-data/stocks-n$COUNT-k1000-i1ms-j0ms-s42.jsonl
if [ ! -f "$INPUT" ]; then
  say "generating $INPUT"
  mkdir -p "$(dirname "$INPUT")"
  "$WEIR" gen stocks --count "$COUNT" --keys 1000 --interval 1ms --seed 42 -o "$INPUT.partial"
  mv "$INPUT.partial" "$INPUT"
fi
OUT=$ROOT/target/bench-spark
mkdir -p "$OUT"

# --- Weir's rows (the reference) ---------------------------------------------------------
WEIR_ROWS=$OUT/weir-n$COUNT.jsonl
if [ "$CHECK" = 1 ]; then
  PIPELINE=$OUT/stocks-n$COUNT.toml
  sed -e "s#\"\.\./\.\./target/#\"$ROOT/target/#" -e "s#n2000000#n$COUNT#g" \
    bench/spark/stocks-2m.toml >"$PIPELINE"
  say "weir run $PIPELINE"
  start=$(date +%s.%N)
  # The summary is the last line of stderr.
  "$WEIR" run --json-summary --no-progress "$PIPELINE" 2>&1 | tail -n1 >"$OUT/weir-n$COUNT.summary.json"
  end=$(date +%s.%N)
  rows=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['rows_written'])" \
    "$OUT/weir-n$COUNT.summary.json")
  printf 'weir: %s rows, %.2f s wall (one run; for the figure use weir bench --only stocks-2m --variants wasm --repeat 3)\n' \
    "$rows" "$(elapsed "$start" "$end")"
fi

# --- Spark ---------------------------------------------------------------------------------
for mode in "${MODES[@]}"; do
  walls=()
  for i in $(seq 1 "$REPEAT"); do
    dest=$OUT/spark-n$COUNT-$mode
    start=$(date +%s.%N)
    result=$("$PY" bench/spark/stocks_window.py --input "$INPUT" --out "$dest" --mode "$mode" \
      2> >(grep -v -e ' WARN ' -e '^WARNING: Using incubator' -e 'log4j' -e 'setLogLevel' -e '^Setting default log level' >&2))
    end=$(date +%s.%N)
    wall=$(elapsed "$start" "$end")
    walls+=("$wall")
    printf 'spark %s run %d/%d: %.2f s wall (the python process: JVM and session start-up included); job %s\n' \
      "$mode" "$i" "$REPEAT" "$wall" "$result"
    if [ "$CHECK" = 1 ] && [ "$i" = 1 ]; then
      flag=""
      [ "$mode" = stream ] && flag=--watermark-only
      "$PY" bench/spark/compare.py "$WEIR_ROWS" "$dest" $flag
    fi
  done
  median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf 'spark %s: median wall %.2f s over %d run(s), %s ticks, %s cores, pyspark %s, %s\n' \
    "$mode" "$median" "$REPEAT" "$COUNT" "$(nproc)" "$PYSPARK_VERSION" \
    "$(java -version 2>&1 | head -n1)"
done
