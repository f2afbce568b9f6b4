#!/usr/bin/env python3
"""Rows into PostgreSQL: the 2 M-tick job (bench/spark/stocks-2m.toml: 2 000 000 ticks, 1 000
symbols, 3 s windows sliding every 1 s, about 2 M result rows) with its file sink, then with
a PostgreSQL sink (`create = true`, the table dropped before each run), runs interleaved.
Starts its own throwaway PostgreSQL 15 server (Debian's binaries; as the `postgres` user when
run as root) in a temporary directory, with the server's default durability (fsync on).

    bench/postgres/throughput.py [--repeat 3] [--count 2000000]

Prints per run the wall time (spawn to exit) and rows, then the medians and rows/s.
"""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import weirbench as wb  # noqa: E402

BIN = "/usr/lib/postgresql/15/bin"
PASSWORD = "bench-pw"


class Postgres:
    """A throwaway server: initdb, postgres on a free port, a database `bench`."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weir-bench-pg-")
        self.port = wb.free_port()
        self.user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.user = (pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, *self.user)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD)
        if self.user:
            os.chown(pwfile, *self.user)
        data = os.path.join(self.dir, "data")
        self._run([f"{BIN}/initdb", "-D", data, "-U", "weir", "--auth=scram-sha-256",
                   f"--pwfile={pwfile}", "--no-locale", "-E", "UTF8"])
        log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [f"{BIN}/postgres", "-D", data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1"],
            stdout=log, stderr=log, preexec_fn=self._demote)
        for _ in range(300):
            if self.psql("postgres", "SELECT 1", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("bench: PostgreSQL did not start; see " + log.name)
        self.psql("postgres", "CREATE DATABASE bench")

    def _demote(self):
        if self.user:
            os.setgid(self.user[1])
            os.setuid(self.user[0])

    def _run(self, cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, preexec_fn=self._demote)

    def psql(self, db, sql, check=True):
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        return subprocess.run(
            [f"{BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "weir", "-d", db,
             "-At", "-c", sql],
            env=env, check=check, capture_output=True, text=True)

    def url(self):
        return f"postgresql://weir:{PASSWORD}@127.0.0.1:{self.port}/bench"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--count", type=int, default=2_000_000)
    args = ap.parse_args()
    wb.ensure_built()
    wb.ticks(args.count, 1000, 1)
    template = os.path.join(wb.ROOT, "bench", "spark", "stocks-2m.toml")
    out = os.path.join(wb.TARGET, "bench-postgres")
    data_old = "stocks-n2000000-k1000-i1ms-j0ms-s42.jsonl"
    data_new = f"stocks-n{args.count}-k1000-i1ms-j0ms-s42.jsonl"
    file_sink = os.path.join(out, "rows.jsonl")
    to_file = wb.pipeline_copy(
        template, os.path.join(out, "file.toml"),
        replace=[(data_old, data_new),
                 (f'"{wb.TARGET}/bench-spark/weir-n2000000.jsonl"', f'"{file_sink}"')])
    pg = Postgres()
    try:
        sink = ('[sink]\nkind = "file"\npath = "' + file_sink + '"\nformat = "jsonl"\nmode = "truncate"')
        with open(to_file) as f:
            text = f.read()
        if sink not in text:
            raise SystemExit("bench: the sink table of " + template + " changed")
        to_pg = os.path.join(out, "postgres.toml")
        with open(to_pg, "w") as f:
            f.write(text.replace(sink, f'[sink]\nkind = "postgres"\nurl = "{pg.url()}"\n'
                                       'table = "moving_averages"\ncreate = true'))
        times = {"file": [], "postgres": []}
        rows = {}
        for i in range(args.repeat):
            for kind, pipeline in (("file", to_file), ("postgres", to_pg)):
                if kind == "postgres":
                    pg.psql("bench", "DROP TABLE IF EXISTS moving_averages")
                wall, summary, _ = wb.run_to_end(pipeline)
                if kind == "postgres":
                    n = int(pg.psql("bench", "SELECT count(*) FROM moving_averages").stdout)
                else:
                    n = summary["rows_written"]
                rows[kind] = n
                times[kind].append(wall)
                wb.say(f"run {i + 1} {kind}: {wall:.2f} s, {n} rows")
        if rows["file"] != rows["postgres"]:
            raise SystemExit(f"bench: the table holds {rows['postgres']} rows, the file {rows['file']}")
        f, p = wb.median(times["file"]), wb.median(times["postgres"])
        print(f"file sink: median {f:.2f} s; PostgreSQL sink: median {p:.2f} s "
              f"({rows['postgres']} rows, {rows['postgres'] / p:,.0f} rows/s over the whole run, "
              f"{rows['postgres'] / max(p - f, 1e-9):,.0f} rows/s for the time the database adds)")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
