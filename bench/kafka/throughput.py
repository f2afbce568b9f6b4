#!/usr/bin/env python3
"""Consumer throughput through a broker: bench/kafka/stocks-3s.toml (1 000 000 ticks of 6
symbols 5 ms apart, 3-partition topic, sliding 3 s / 1 s windows, `stats`, into a file)
without `[checkpoint]`, with the default interval (10 s) and with `every = "1s"`; then the
same pipeline reading the file (bench/kafka/stocks-3s-file.toml).

Starts its own tansu broker (scripts/install-tansu.sh installs it once per machine) on a
free port of 127.0.0.1 with memory storage, generates the ticks with `weir gen` and sends
them with `weir produce`; each run reads the whole topic in a group of its own. events/s is
the summary's (events read over the run's wall time).

    bench/kafka/throughput.py [--repeat 3] [--count 1000000]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import weirbench as wb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    wb.ensure_built()
    ticks = wb.ticks(args.count, 6, 5)
    work = os.path.join(wb.TARGET, "bench-kafka")
    os.makedirs(work, exist_ok=True)
    settings = [
        ("no checkpoint", None),
        ('`[checkpoint]`, default `every = "10s"`', ""),
        ('`[checkpoint]`, `every = "1s"`', "1s"),
    ]
    with wb.Tansu() as broker:
        seconds = broker.produce("bench-ticks", ticks, partitions=3)
        print(f"weir produce: {args.count} messages in {seconds:.2f} s")
        print("| setup | events/s, each run | median |")
        print("|---|---|---|")
        run = 0
        for label, every in settings:
            rates = []
            for _ in range(args.repeat):
                run += 1
                append = ""
                if every is not None:
                    ckpt = os.path.join(work, f"ckpt-3s-{run}")
                    wb.fresh(ckpt)
                    append = f'\n[checkpoint]\ndir = "{ckpt}"\n'
                    if every:
                        append += f'every = "{every}"\n'
                pipeline = wb.pipeline_copy(
                    os.path.join(HERE, "stocks-3s.toml"),
                    os.path.join(work, "stocks-3s-run.toml"),
                    replace=[
                        ('brokers = "127.0.0.1:9092"', f'brokers = "{broker.brokers}"'),
                        ('group_id = "bench-kafka-stocks-3s"',
                         f'group_id = "bench-kafka-stocks-3s-{os.getpid()}-{run}"'),
                    ],
                    append=append,
                )
                _, summary, _ = wb.run_to_end(pipeline)
                if summary["events_read"] != args.count:
                    raise SystemExit(f"bench: read {summary['events_read']} of {args.count}")
                rates.append(summary["events_per_second"])
            print(f"| {label} | {', '.join(f'{r / 1e3:.0f} k' for r in rates)} "
                  f"| {wb.median(rates) / 1e3:.0f} k |", flush=True)

    rates = []
    pipeline = wb.pipeline_copy(
        os.path.join(HERE, "stocks-3s-file.toml"),
        os.path.join(work, "stocks-3s-file-run.toml"),
        replace=[("stocks-n1000000-", f"stocks-n{args.count}-")],
    )
    for _ in range(args.repeat):
        _, summary, _ = wb.run_to_end(pipeline)
        rates.append(summary["events_per_second"])
    print(f"| the same pipeline reading the file | {', '.join(f'{r / 1e3:.0f} k' for r in rates)} "
          f"| {wb.median(rates) / 1e3:.0f} k |")


if __name__ == "__main__":
    main()
