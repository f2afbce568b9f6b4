#!/usr/bin/env python3
"""What a checkpoint costs, on the 16 M-tick setup (bench/checkpoint/ticks-1h.toml and
ticks-1d.toml: 16 000 000 ticks of 100 symbols 2 ms apart, `stats`, 1 h or 1 d tumbling
windows).

1. Time to write one checkpoint against the events it holds, on the 1 d window (nothing
   fires before the input ends, so every event read is held). Each point is a run with
   `[checkpoint] every = "1h"` (so it writes only the start's checkpoint and the stop's)
   stopped with SIGTERM after a fixed time: the stop writes a checkpoint, whose size and
   write time (flushing the sinks, encoding the state, writing and fsyncing the file) the
   debug log reports (`checkpoint written`, bytes, ms), and the summary says how many events
   were read. (With tumbling windows of S and events I ms apart, every fired window of the
   100 keys releases S/I events: held = events_read - windows_fired / keys * S / I, which
   is events_read here.)
2. The whole run, to its end, without `[checkpoint]` and with each `every` given.

    bench/checkpoint/cost.py                    # the defaults below
    bench/checkpoint/cost.py --stop 0.6,1,1.5,2.5 --every 3s,10s --repeat 3
    bench/checkpoint/cost.py --count 1600000 --stop 0.3 --repeat 1      # quick
    bench/checkpoint/cost.py --repeat 0         # only the checkpoints, no whole runs

Writes under target/bench-data (the input, 1.3 GB) and target/bench-checkpoint.
"""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import weirbench as wb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS, INTERVAL_MS = 100, 2
WINDOW_MS = {"1h": 3_600_000, "1d": 86_400_000}


def seconds_list(text):
    return [float(s) for s in text.split(",") if s]


def setup(count, window, work, suffix, append=""):
    """A copy of ticks-<window>.toml over `count` ticks, writing under `work`."""
    name = f"ticks-16m-{window}"
    return wb.pipeline_copy(
        os.path.join(HERE, f"ticks-{window}.toml"),
        os.path.join(work, f"{name}-{suffix}.toml"),
        replace=[
            ("stocks-n16000000-", f"stocks-n{count}-"),
            (f"bench-checkpoint/{name}.jsonl", f"bench-checkpoint/{name}-{suffix}.jsonl"),
        ],
        append=append,
    )


def stopped_checkpoint(count, window, after, work):
    """One run stopped with SIGTERM `after` seconds in: (events held, bytes, ms, read)."""
    ckpt = os.path.join(work, f"ckpt-{window}-stop")
    wb.fresh(ckpt)
    pipeline = setup(count, window, work, "stop", wb.checkpoint_table(ckpt, "1h"))
    proc, log, started = wb.weir_run(pipeline, debug=True)
    time.sleep(max(0.0, after - (time.monotonic() - started)))
    proc.send_signal(signal.SIGTERM)
    code = proc.wait()
    summary, lines = wb.summary_and_log(log)
    written = wb.checkpoints_written(lines)
    if code == 0:
        raise SystemExit(f"bench: the run ended before {after} s: stop it earlier")
    if summary is None or len(written) < 2:
        raise SystemExit(f"bench: the stopped run wrote no stop checkpoint ({code}); see {log}")
    bytes_, ms = written[-1]
    per_window = WINDOW_MS[window] // INTERVAL_MS
    held = summary["events_read"] - summary["windows_fired"] // KEYS * per_window
    return held, bytes_, ms, summary["events_read"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=16_000_000)
    p.add_argument("--stop", type=seconds_list, default=seconds_list("0.6,1,1.5,2.5"),
                   help="seconds after which the 1 d runs are stopped, comma-separated")
    p.add_argument("--every", default="3s,10s", help="checkpoint intervals of the whole runs")
    p.add_argument("--repeat", type=int, default=3, help="whole runs per setting")
    args = p.parse_args()

    wb.ensure_built()
    wb.ticks(args.count, KEYS, INTERVAL_MS)
    work = os.path.join(wb.TARGET, "bench-checkpoint")
    os.makedirs(work, exist_ok=True)

    print("time to write one checkpoint (1 d window: every event read is held; SIGTERM after the time given)")
    print("| stopped after | events held | checkpoint | time to write | bytes/event | µs/event |")
    print("|---|---|---|---|---|---|")
    for after in args.stop:
        held, bytes_, ms, _ = stopped_checkpoint(args.count, "1d", after, work)
        per_byte = bytes_ / held if held else float("nan")
        per_us = ms * 1e3 / held if held else float("nan")
        print(f"| {after} s | {held / 1e6:.2f} M | {bytes_ / 1e6:.1f} MB | {ms / 1e3:.2f} s "
              f"| {per_byte:.1f} | {per_us:.2f} |", flush=True)

    if args.repeat < 1:
        return
    print()
    print(f"whole run, 1 h windows, {args.count} ticks, {args.repeat} run(s) each (wall: spawn to exit)")
    print("| setting | wall s, each run | median | checkpoints written after the start's (the last: the end's) |")
    print("|---|---|---|---|")
    settings = [("none", None)] + [(f'every = "{e}"', e) for e in args.every.split(",") if e]
    for label, every in settings:
        walls, written = [], []
        for i in range(args.repeat):
            append = ""
            if every:
                ckpt = os.path.join(work, f"ckpt-1h-{every}")
                wb.fresh(ckpt)
                append = wb.checkpoint_table(ckpt, every)
            pipeline = setup(args.count, "1h", work, f"whole-{every or 'none'}", append)
            wall, _, lines = wb.run_to_end(pipeline, debug=bool(every))
            walls.append(wall)
            written = wb.checkpoints_written(lines)[1:]
        times = ", ".join(f"{ms / 1e3:.2f}" for _, ms in written)
        note = f"{len(written)}: {times} s" if every else "-"
        print(f"| {label} | {', '.join(f'{w:.2f}' for w in walls)} | {wb.median(walls):.2f} | {note} |",
              flush=True)


if __name__ == "__main__":
    main()
