"""The `stocks-2m` job of `weir bench`, in PySpark.

Reads the stock ticks `weir gen stocks` writes (JSON lines: ts, symbol, price, volume) and
computes what the pipeline does: per symbol and per 3 s window sliding every 1 s (windows
aligned to the epoch, half-open), count, sum, min, max, avg and sample standard deviation of
`price`, with a 1 s watermark. The rows are written as JSON lines with the columns and the
timestamp format of Weir's file sink:

    {"symbol":"AAPL","window_start":"2024-01-21T23:59:58.000Z","window_end":...,
     "count":1,"sum":325.94,"min":325.94,"max":325.94,"avg":325.94,"stddev":null}

Two modes:

- `batch` (default): `spark.read.json`, the minimum Spark does for this result. The
  watermark is declared as in the streaming job, but a batch query ignores it: every window
  is computed, as Weir computes every window when its input ends.
- `stream`: Structured Streaming over the same file, `trigger(availableNow=True)`, append
  output mode and a file sink. A window is written once the watermark (the largest event
  time minus 1 s) passes its end, so the windows still open at the end of the input (the
  last ones of each symbol) are not written: Spark has no end-of-input flush.

Usage: python stocks_window.py --input FILE --out DIR [--mode batch|stream] [--cores N]
       [--shuffle-partitions N] [--driver-memory 4g]

Spark runs in local mode (`local[*]`: one task thread per core, in the driver's JVM), UTC
session time zone, no UI, 4 GiB of driver heap.

Prints one JSON line on stdout: mode, seconds (from the session being ready to the output
written), session_seconds (starting the JVM and the session), rows, spark version.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

SCHEMA = StructType(
    [
        StructField("ts", TimestampType()),
        StructField("symbol", StringType()),
        StructField("price", DoubleType()),
        StructField("volume", LongType()),
    ]
)

# Weir's file sink writes times as RFC 3339 in UTC with milliseconds.
TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"


def aggregate(ticks):
    """The pipeline's window, watermark and `stats` aggregate."""
    return (
        ticks.withWatermark("ts", "1 second")
        .groupBy(F.window("ts", "3 seconds", "1 second"), F.col("symbol"))
        .agg(
            F.count("price").alias("count"),
            F.sum("price").alias("sum"),
            F.min("price").alias("min"),
            F.max("price").alias("max"),
            F.avg("price").alias("avg"),
            F.stddev_samp("price").alias("stddev"),
        )
        .select(
            "symbol",
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "count",
            "sum",
            "min",
            "max",
            "avg",
            "stddev",
        )
    )


def run_batch(spark, args):
    ticks = spark.read.schema(SCHEMA).option("timestampFormat", TIME_FORMAT).json(args.input)
    (
        aggregate(ticks)
        .write.mode("overwrite")
        .option("timestampFormat", TIME_FORMAT)
        .option("ignoreNullFields", "false")
        .json(args.out)
    )


def run_stream(spark, args):
    # A file stream source reads a directory: give it one holding only the input.
    source_dir = tempfile.mkdtemp(prefix="weir-spark-in-", dir=os.path.dirname(args.out))
    target = os.path.join(source_dir, os.path.basename(args.input))
    try:
        os.link(args.input, target)
    except OSError:
        shutil.copyfile(args.input, target)
    checkpoint = args.out + ".checkpoint"
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.rmtree(checkpoint, ignore_errors=True)
    try:
        ticks = (
            spark.readStream.schema(SCHEMA)
            .option("timestampFormat", TIME_FORMAT)
            .json(source_dir)
        )
        query = (
            aggregate(ticks)
            .writeStream.format("json")
            .outputMode("append")
            .option("path", args.out)
            .option("checkpointLocation", checkpoint)
            .option("timestampFormat", TIME_FORMAT)
            .option("ignoreNullFields", "false")
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
    finally:
        shutil.rmtree(source_dir, ignore_errors=True)
        shutil.rmtree(checkpoint, ignore_errors=True)


def count_rows(out_dir):
    rows = 0
    for name in os.listdir(out_dir):
        if name.startswith("part-"):
            with open(os.path.join(out_dir, name), "rb") as f:
                rows += sum(1 for _ in f)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="ticks from `weir gen stocks` (JSON lines)")
    p.add_argument("--out", required=True, help="output directory (replaced)")
    p.add_argument("--mode", choices=["batch", "stream"], default="batch")
    p.add_argument("--cores", default="*", help="local[N] (default: every core)")
    p.add_argument(
        "--shuffle-partitions",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="partitions of the aggregation (default: two per core; Spark's own default, 200, "
        "is meant for clusters, and the streaming job keeps a state store per partition)",
    )
    p.add_argument("--driver-memory", default="4g")
    args = p.parse_args()
    args.input = os.path.abspath(args.input)
    args.out = os.path.abspath(args.out)

    started = time.monotonic()
    spark = (
        SparkSession.builder.master(f"local[{args.cores}]")
        .appName(f"weir-stocks-2m-{args.mode}")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    ready = time.monotonic()
    if args.mode == "batch":
        run_batch(spark, args)
    else:
        run_stream(spark, args)
    done = time.monotonic()
    version = spark.version
    spark.stop()
    print(
        json.dumps(
            {
                "mode": args.mode,
                "seconds": round(done - ready, 3),
                "session_seconds": round(ready - started, 3),
                "rows": count_rows(args.out),
                "spark": version,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
