"""What the scripts under bench/ share: the built binary, generated inputs, copies of a
pipeline file with settings changed, a tansu broker, and `weir run` with its summary.

Standard library only; run the scripts with any python3 of 3.9 or later.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target")
WEIR = os.path.join(TARGET, "release", "weir")
DATA = os.path.join(TARGET, "bench-data")


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


def ensure_built():
    """target/release/weir and the plugins, built unless they are there."""
    if not os.access(WEIR, os.X_OK):
        say("bench: building weir (the first release build takes about 10 minutes)")
        subprocess.run(["cargo", "build", "--release", "-p", "weir"], cwd=ROOT, check=True)
    if not os.path.exists(os.path.join(TARGET, "wasm32-wasip2", "plugin", "stats.wasm")):
        subprocess.run([os.path.join(ROOT, "scripts", "setup.sh")], cwd=ROOT, check=True)


def ticks(count, keys, interval_ms, seed=42):
    """The file of `weir gen stocks --count COUNT --keys KEYS --interval INTERVALms --seed
    SEED`, generated unless it is there; named as `weir bench` names its inputs."""
    path = os.path.join(DATA, f"stocks-n{count}-k{keys}-i{interval_ms}ms-j0ms-s{seed}.jsonl")
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        say(f"bench: generating {path}")
        partial = path + ".partial"
        subprocess.run(
            [WEIR, "gen", "stocks", "--count", str(count), "--keys", str(keys),
             "--interval", f"{interval_ms}ms", "--seed", str(seed), "-o", partial],
            check=True,
        )
        os.rename(partial, path)
    return path


def pipeline_copy(template, dest, replace=(), append=""):
    """Writes a copy of the pipeline file `template` (a path under bench/) to `dest`: its
    paths made absolute (they are relative to bench/<dir>/, `../../target/...`), each
    (old, new) of `replace` replaced, `append` added at the end (a `[checkpoint]` table)."""
    with open(template) as f:
        text = f.read()
    text = text.replace('"../../target/', f'"{TARGET}/')
    for old, new in replace:
        if old not in text:
            raise SystemExit(f"bench: {old!r} is not in {template}")
        text = text.replace(old, new)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as f:
        f.write(text + append)
    return dest


def checkpoint_table(directory, every):
    return f'\n[checkpoint]\ndir = "{directory}"\nevery = "{every}"\n'


def fresh(*paths):
    """Removes files or directories left by an earlier run."""
    for p in paths:
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)


def weir_run(pipeline, debug=False, extra=()):
    """Starts `weir run --json-summary --no-progress PIPELINE` (JSON log lines, the
    checkpoint writes among them with `debug`, or the RUST_LOG filter `debug` names);
    stderr goes to a file beside the pipeline. Returns (process, stderr path, start time)."""
    env = dict(os.environ)
    if debug:
        env["RUST_LOG"] = debug if isinstance(debug, str) else "weir::pipeline=debug"
    log = pipeline + ".stderr"
    err = open(log, "w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [WEIR, "run", "--json-summary", "--no-progress", "--log-format", "json", *extra, pipeline],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=env,
    )
    err.close()
    return proc, log, started


def summary_and_log(log):
    """The run's summary (its last stderr line) and its JSON log lines."""
    summary, lines = None, []
    with open(log) as f:
        for line in f:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "events_read" in obj:
                summary = obj
            else:
                lines.append(obj)
    return summary, lines


def checkpoints_written(lines):
    """(bytes, ms) of every checkpoint the run's debug log reports, in order."""
    return [
        (l["fields"]["bytes"], l["fields"]["ms"])
        for l in lines
        if l.get("fields", {}).get("message") == "checkpoint written"
    ]


def run_to_end(pipeline, debug=False):
    """Runs a pipeline to its end. Returns (wall seconds spawn to exit, summary, log lines)."""
    proc, log, started = weir_run(pipeline, debug)
    code = proc.wait()
    wall = time.monotonic() - started
    summary, lines = summary_and_log(log)
    if code != 0 or summary is None:
        raise SystemExit(f"bench: weir run {pipeline} failed ({code}); see {log}")
    return wall, summary, lines


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A tansu broker (scripts/install-tansu.sh installs it) on a free port of 127.0.0.1
    with memory storage, as the tests start it; stopped on exit of the `with` block."""

    def __enter__(self):
        subprocess.run([os.path.join(ROOT, "scripts", "install-tansu.sh")], check=True)
        exe = shutil.which("tansu") or os.path.join(
            os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "bin", "tansu"
        )
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.brokers = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise SystemExit(f"bench: tansu did not listen on {port} within 30 s")
                time.sleep(0.1)
        say(f"bench: tansu on {self.brokers}")
        return self

    def produce(self, topic, path, partitions=3, key="symbol"):
        """`weir produce` the lines of `path` to a new topic; returns the seconds it took."""
        started = time.monotonic()
        subprocess.run(
            [WEIR, "produce", "--brokers", self.brokers, "--topic", topic,
             "--partitions", str(partitions), "--key", key, "--input", path],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.monotonic() - started

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return False
