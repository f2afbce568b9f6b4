#!/usr/bin/env python3
"""Recovery after `kill -9`: starts a run, kills it with SIGKILL a fixed time after its start,
restarts it at once, and polls the result file every 2 ms for its first new row (the file
growing past the smallest length it had since the restart: a restart that cuts the file
back, to nothing without a checkpoint and `mode = "truncate"`, to the checkpointed length
with one, has cut it by then), then waits for the restarted run to end.

    bench/checkpoint/recovery.py file    # bench/checkpoint/ticks-1h.toml: 16 M ticks, killed at 5.5 s
    bench/checkpoint/recovery.py kafka   # bench/kafka/stocks-10m.toml: 1 M ticks, killed at 2.5 s

`file` runs the setup without `[checkpoint]` (the run starts over) and with `every = "2s"`,
and compares each result file with an uninterrupted run's (byte for byte). `kafka` starts
its own tansu broker, sends the ticks to a 3-partition topic, and runs the setup without
`[checkpoint]` (offsets committed every 1 s; the file is appended to) and with
`every = "1s"`; it reports whether the file holds every row of an uninterrupted run once
(at least once without a checkpoint: rows of windows fired since the last commit again).

Options: --kill-at SECONDS, --every INTERVAL, --repeat N, --count N; for kafka, --window 3s
runs bench/kafka/stocks-3s.toml instead (3 s windows sliding every 1 s).
"""

import argparse
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import weirbench as wb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
POLL = 0.002


def size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def kill_and_restart(pipeline, sink, kill_at, debug=False):
    """One kill and restart. Returns (first new row s, rest of the run s, restart's log)."""
    proc, _, started = wb.weir_run(pipeline)
    time.sleep(max(0.0, kill_at - (time.monotonic() - started)))
    if proc.poll() is not None:
        raise SystemExit(f"bench: {pipeline} ended before {kill_at} s: kill it earlier")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc, log, restarted = wb.weir_run(pipeline, debug=debug)
    smallest, first = size(sink), None
    while proc.poll() is None:
        now = size(sink)
        if first is None and now > smallest:
            first = time.monotonic() - restarted
        smallest = min(smallest, now)
        time.sleep(POLL)
    rest = time.monotonic() - restarted
    if proc.returncode != 0:
        raise SystemExit(f"bench: the restarted run failed ({proc.returncode}); see {log}")
    return first, rest, log


def rows(path):
    with open(path) as f:
        return collections.Counter(f)


def file_setup(args):
    wb.ensure_built()
    wb.ticks(args.count, 100, 2)
    work = os.path.join(wb.TARGET, "bench-checkpoint")
    template = os.path.join(HERE, "ticks-1h.toml")
    count = [("stocks-n16000000-", f"stocks-n{args.count}-")]

    reference = wb.pipeline_copy(
        template, os.path.join(work, "recovery-reference.toml"),
        replace=count + [("ticks-16m-1h.jsonl", "recovery-reference.jsonl")],
    )
    wall, _, _ = wb.run_to_end(reference)
    print(f"uninterrupted run: {wall:.2f} s; killed at {args.kill_at} s")
    expected = os.path.join(work, "recovery-reference.jsonl")

    print("| setting | first new row after restart, each run | rest of the run | same file as uninterrupted |")
    print("|---|---|---|---|")
    for label, every in [("none: starts over", None), (f'`[checkpoint] every = "{args.every}"`', args.every)]:
        sink = os.path.join(work, "recovery.jsonl")
        ckpt = os.path.join(work, "ckpt-recovery")
        firsts, rests, same = [], [], []
        for _ in range(args.repeat):
            wb.fresh(sink, ckpt)
            pipeline = wb.pipeline_copy(
                template, os.path.join(work, "recovery.toml"),
                replace=count + [("ticks-16m-1h.jsonl", "recovery.jsonl")],
                append=wb.checkpoint_table(ckpt, every) if every else "",
            )
            first, rest, _ = kill_and_restart(pipeline, sink, args.kill_at)
            firsts.append(first)
            rests.append(rest)
            with open(sink, "rb") as a, open(expected, "rb") as b:
                same.append(a.read() == b.read())
        print(f"| {label} | {fmt(firsts)} | {fmt(rests)} | {', '.join('yes' if s else 'no' for s in same)} |",
              flush=True)


def kafka_setup(args):
    wb.ensure_built()
    ticks = wb.ticks(args.count, 6, 5)
    work = os.path.join(wb.TARGET, "bench-kafka")
    setup = f"stocks-{args.window}"
    template = os.path.join(wb.ROOT, "bench", "kafka", f"{setup}.toml")
    with wb.Tansu() as broker:
        broker.produce("bench-ticks", ticks, partitions=3)

        def copy(name, group, append=""):
            replace = [
                ('brokers = "127.0.0.1:9092"', f'brokers = "{broker.brokers}"'),
                (f'group_id = "bench-kafka-{setup}"', f'group_id = "{group}"'),
                (f"bench-kafka/{setup}.jsonl", f"bench-kafka/{name}.jsonl"),
            ]
            if args.window == "3s":
                # A restart without a checkpoint appends, as stocks-10m.toml does.
                replace.append(('mode = "truncate"', 'mode = "append"'))
            return wb.pipeline_copy(template, os.path.join(work, f"{name}.toml"),
                                    replace=replace, append=append)

        reference = copy("recovery-reference", f"bench-reference-{os.getpid()}")
        wb.fresh(os.path.join(work, "recovery-reference.jsonl"))
        wall, _, _ = wb.run_to_end(reference)
        expected = rows(os.path.join(work, "recovery-reference.jsonl"))
        print(f"uninterrupted run: {wall:.2f} s; killed at {args.kill_at} s")
        print("| setting | first new row after restart, each run | rest of the run | rows |")
        print("|---|---|---|---|")
        run = 0
        for label, every in [("none (offsets every 1 s)", None), (f'`[checkpoint] every = "{args.every}"`', args.every)]:
            firsts, rests, verdicts = [], [], []
            for _ in range(args.repeat):
                run += 1
                sink = os.path.join(work, "recovery.jsonl")
                ckpt = os.path.join(work, "ckpt-recovery")
                wb.fresh(sink, ckpt)
                pipeline = copy("recovery", f"bench-recovery-{os.getpid()}-{run}",
                                wb.checkpoint_table(ckpt, every) if every else "")
                first, rest, _ = kill_and_restart(pipeline, sink, args.kill_at)
                firsts.append(first)
                rests.append(rest)
                got = rows(sink)
                if got == expected:
                    verdicts.append("every row once")
                elif set(got) == set(expected):
                    verdicts.append(f"every row, {sum(got.values()) - sum(expected.values())} again")
                else:
                    verdicts.append("rows differ")
            print(f"| {label} | {fmt(firsts)} | {fmt(rests)} | {'; '.join(verdicts)} |", flush=True)


def fmt(values):
    return ", ".join("n/a" if v is None else f"{v:.2f} s" for v in values)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("setup", choices=["file", "kafka"])
    p.add_argument("--kill-at", type=float, help="seconds after the start (file: 5.5, kafka: 2.5)")
    p.add_argument("--every", help='checkpoint interval (file: "2s", kafka: "1s")')
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--count", type=int, help="ticks (file: 16000000, kafka: 1000000)")
    p.add_argument("--window", choices=["10m", "3s"], default="10m",
                   help="kafka: bench/kafka/stocks-10m.toml (10 min tumbling windows) or "
                   "stocks-3s.toml (3 s sliding every 1 s, appended to the file)")
    args = p.parse_args()
    file = args.setup == "file"
    args.kill_at = args.kill_at if args.kill_at is not None else (5.5 if file else 2.5)
    args.every = args.every or ("2s" if file else "1s")
    args.count = args.count or (16_000_000 if file else 1_000_000)
    (file_setup if file else kafka_setup)(args)


if __name__ == "__main__":
    main()
