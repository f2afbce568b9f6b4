"""Checks the Spark job's rows against Weir's for the same input.

Usage: python compare.py WEIR.jsonl SPARK_DIR [--watermark-only]

Rows are matched on (symbol, window_start, window_end). `count`, `min` and `max` must be
equal; `sum`, `avg` and `stddev` equal within 1e-9 (relative, absolute below 1): Spark adds
in another order and computes the standard deviation in one pass. With `--watermark-only`
(the streaming job, which writes a window only once the watermark passed its end) Weir's
rows whose windows end after the last window Spark wrote are left out of the comparison
and counted apart; the last window end Spark wrote must be where the final watermark puts
it (the latest event time minus 1 s, rounded down to a window end).

Prints the row counts, a few rows side by side, and exits 1 on any difference.
"""

import datetime
import json
import math
import os
import sys

TOLERANCE = 1e-9
EXACT = ("count", "min", "max")
CLOSE = ("sum", "avg", "stddev")


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def key(row):
    return (row["symbol"], row["window_start"], row["window_end"])


def parse(t):
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%f%z")


def spark_rows(out_dir):
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("part-"):
            with open(os.path.join(out_dir, name)) as f:
                for line in f:
                    yield json.loads(line)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    watermark_only = "--watermark-only" in sys.argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    weir_path, spark_dir = args

    weir = {}
    with open(weir_path) as f:
        for line in f:
            row = json.loads(line)
            weir[key(row)] = row
    weir_rows = len(weir)

    left_open = 0
    if watermark_only:
        # The latest window start is the latest event's second; the final watermark (that
        # event's time minus 1 s) passed the ends up to one second before it.
        latest_start = max(parse(k[1]) for k in weir)
        expected_end = latest_start - datetime.timedelta(seconds=1)
        last_end = max(parse(r["window_end"]) for r in spark_rows(spark_dir))
        print(f"last window end written by Spark: {last_end.isoformat()}; "
              f"final watermark passed {expected_end.isoformat()}")
        if last_end != expected_end:
            print("MISMATCH: Spark's last window end is not where the watermark puts it")
            return 1
        for k in [k for k in weir if parse(k[2]) > last_end]:
            del weir[k]
            left_open += 1

    spark_count, missing, differing, extra, shown = 0, 0, 0, 0, []
    for row in spark_rows(spark_dir):
        spark_count += 1
        ours = weir.pop(key(row), None)
        if ours is None:
            extra += 1
            continue
        same = all(ours[c] == row[c] for c in EXACT) and all(close(ours[c], row[c]) for c in CLOSE)
        if not same:
            differing += 1
            if differing <= 5:
                print(f"differs: weir {ours}\n         spark {row}")
        if len(shown) < 2 and ours["count"] >= 2:
            shown.append((ours, row))
    missing = len(weir)

    print(f"weir rows: {weir_rows}, spark rows: {spark_count}", end="")
    if watermark_only:
        print(f" ({left_open} of Weir's windows end after it)", end="")
    print()
    for ours, row in shown:
        print(f"  {row['symbol']} {row['window_start']}:")
        for c in EXACT + CLOSE:
            print(f"    {c:7} weir {ours[c]!r:24} spark {row[c]!r}")
    if missing or extra or differing:
        print(
            f"MISMATCH: {missing} of Weir's rows not in Spark's output, {extra} of Spark's not "
            f"in Weir's, {differing} with different values"
        )
        return 1
    print("same rows: every window, count/min/max equal, sum/avg/stddev within 1e-9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
