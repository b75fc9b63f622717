#!/usr/bin/env python3
"""Search latency per operator over a generated archive.

    python3 tests/bench/bench_search.py [--deliveries N] [--runs R]
                                        [--report FILE]

Starts a private PostgreSQL (tests/integ/harness.py), generates N
messages and about 1.1 N deliveries with their index rows (one INSERT ...
SELECT per table: tests/integ/searchfix.py big_sql), VACUUM ANALYZE, then
runs each query R times through `ingestd search --format jsonl` (the
whole command: start, connect, parse, plan, run, print) and reports p50
and p95 in milliseconds, the number of deliveries found, and the plan of
each query (`ingestd search --explain`).  Selective queries are the goal
(p95 under 200 ms); the broad ones at the end show what a term matching
much of the archive costs.  Not part of make test: make bench runs it
(BENCH_SEARCH_DELIVERIES, default 1,000,000).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integ"))

import harness  # noqa: E402
import searchfix  # noqa: E402

QUERIES = [
    ("from: address", "from:user5@dom5.example"),
    ("from: domain", "from:dom7.example"),
    ("from: local part", "from:user77"),
    ("to:", "to:user15@dom15.example"),
    ("cc: domain", "cc:dom21.example"),
    ("bcc: local part", "bcc:user33@"),
    ("deliveredto:", "deliveredto:user13@dom13.example"),
    ("addr:", "addr:user5@dom5.example"),
    ("account:", "account:acct7"),
    ("subject: word", "subject:s123"),
    ("subject: phrase", 'subject:"s123 t4"'),
    ("filename:", "filename:file500.pdf"),
    ("has:attachment", "has:attachment"),
    ("msgid:", "msgid:<mid77@big.example>"),
    ("list:", "list:list100.example"),
    ("sha256:", None),  # filled in: a message that exists
    ("after:", "after:@LATE"),
    ("before:", "before:2015-01-05"),
    ("received-after:", "received-after:@RLATE"),
    ("received-before:", "received-before:2020-01-02"),
    ("larger:", "larger:200900"),
    ("smaller:", "smaller:1100"),
    ("word", "w123"),
    ("phrase", '"w123 x123"'),
    ("AND", "from:user5@dom5.example subject:s5"),
    ("OR", "from:user5@dom5.example OR to:user6@dom6.example"),
    ("NOT", "w123 -x123"),
    ("nested", "(w1 OR w2 OR w3) -(subject:s1 OR list:list100.example)"),
    # Broad: much of the archive.
    ("broad: from:alice after:", "from:user5 after:2016-01-01"),
    ("broad: common word --count", "common"),
]


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deliveries", type=int, default=int(os.environ.get(
        "BENCH_SEARCH_DELIVERIES", "1000000")),
        help="messages to generate (deliveries are about 1.1 times)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--report")
    a = ap.parse_args()
    n = a.deliveries
    binary = harness.ingestd_binary()

    harness.install_signal_cleanup()
    root = tempfile.mkdtemp(prefix="ingestd-bench-search-")
    harness.open_tree(root)
    os.chmod(root, 0o755)
    out = []

    def say(line=""):
        print(line, flush=True)
        out.append(line)

    try:
        pg = harness.Postgres(os.path.join(root, "pg"))
        conninfo = pg.create_database("search")
        conf = os.path.join(root, "ingestd.conf")
        harness.write_config(conf, [{
            "name": "unused", "host": "127.0.0.1", "port": 1, "user": "u",
            "password": "p", "tls": "none", "allow_plaintext": True,
            "enabled": False}], os.path.join(root, "state"), conninfo)

        def ingestd(*args):
            return harness.run_ingestd(["-c", conf] + list(args),
                                       binary=binary, timeout=3600)

        rc, o, e = ingestd("migrate")
        assert rc == 0, e
        t0 = time.monotonic()
        pg.psql(searchfix.big_sql(n), dbname="search", timeout=7200)
        load = time.monotonic() - t0
        deliveries = pg.scalar("SELECT count(*) FROM ingestd.delivery",
                               dbname="search")
        sizes = pg.psql(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid)))"
            " FROM pg_class c JOIN pg_namespace s ON s.oid ="
            " c.relnamespace WHERE s.nspname = 'ingestd' AND c.relname"
            " IN ('message', 'message_address', 'message_part')",
            dbname="search")[0][0]
        late = pg.scalar(
            "SELECT to_char(max(date) - interval '7 days', 'YYYY-MM-DD')"
            " FROM ingestd.message", dbname="search")
        rlate = pg.scalar(
            "SELECT to_char(max(archived_at) - interval '1 day',"
            " 'YYYY-MM-DD') FROM ingestd.delivery", dbname="search")
        sha = pg.scalar("SELECT encode(sha256('big777'::bytea), 'hex')",
                        dbname="search")
        say("search: %s deliveries (%d messages) generated and analyzed in"
            " %.0f s; index tables %s" % (deliveries, n, load, sizes))
        say("%-28s %8s %8s %9s  %s" % ("operator", "p50 ms", "p95 ms",
                                        "found", "query"))
        plans = []
        for name, q in QUERIES:
            if q is None:
                q = "sha256:" + sha
            q = q.replace("@LATE", late).replace("@RLATE", rlate)
            count = name.endswith("--count")
            args = ["search", "--count" if count else "--format"] + \
                ([] if count else ["jsonl"]) + ["--", q]
            times = []
            found = 0
            for i in range(a.runs + 1):
                t = time.monotonic()
                rc, o, e = ingestd(*args)
                dt = (time.monotonic() - t) * 1000
                assert rc == 0, "%s: %s" % (q, e)
                if i > 0:  # the first warms the cache
                    times.append(dt)
                found = int(o) if count else len(o.splitlines())
            say("%-28s %8.1f %8.1f %9d  %s" % (
                name, statistics.median(times), pct(times, 95), found, q))
            rc, plan, e = ingestd("search", "--explain", "--", q)
            plans.append("--- %s: %s\n%s" % (name, q, plan))
        say()
        say("plans:")
        for p in plans:
            say(p)
    finally:
        harness.cleanup_all()
    if a.report:
        with open(a.report, "w") as f:
            f.write("\n".join(out) + "\n")
    subprocess.run(["rm", "-rf", root])
    return 0


if __name__ == "__main__":
    sys.exit(main())
