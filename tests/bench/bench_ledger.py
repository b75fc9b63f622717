#!/usr/bin/env python3
"""The ledger's and the standing holds' cost: ingest, checkpoints, proofs.

    python3 tests/bench/bench_ledger.py [--messages N] [--entries E]
                                        [--quick] [--report FILE]

Starts a private PostgreSQL (tests/integ/harness.py) and, for the ingest
part, tests/fake/fakepop3.py on loopback (plain POP3, 20 mailboxes of
generated 1 to 4 KB messages).

1. Ingest: `ingestd once` drains N messages (default 20,000) into a fresh
   database, three ways:
     ledger + 10 holds   as shipped: the ledger's trigger on delivery
                         (ledger_ingest) and 10 standing query holds
                         (`ingestd hold add`), each evaluated against
                         every new delivery when its transaction commits
     ledger, no holds    the ledger's trigger only
     off                 ledger_ingest and delivery_hold_standing
                         disabled (ALTER TABLE ... DISABLE TRIGGER, as
                         superuser)
   and reports msg/s, ingestd's CPU (wait4) and PostgreSQL's (its
   postmaster's process tree, /proc), per message, and the machine's CPU
   spent outside the benchmark (bench.py's CpuLedger).  Each mode runs
   --repeat times (default 2), the modes taking turns; the run with the
   least outside CPU is shown.
2. Ledger: E well-formed ingest events (default 1,000,000) go into
   ledger_pending in one INSERT ... SELECT generate_series; then the
   whole-command time of `ingestd ledger checkpoint` (sequencing: leaf
   hashes, the subtree nodes, one signed tree head), of a checkpoint
   adding 1,000 events to that ledger, of one adding none; of
   `ingestd prove` for 25 entries spread over the ledger (p50/p95), and
   of `prove` for a message the ledger lacks (start, connect, the newest
   checkpoint, the leaf lookup, no audit path) whose difference is the
   audit path's part; and of `ingestd verify-proof` (offline).

Not part of make test: make bench runs it (BENCH_LEDGER=0 skips it,
BENCH_LEDGER_ENTRIES=E, BENCH_LEDGER_MESSAGES=N).
"""

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integ"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from bench import CpuLedger, index_share, tree_cpu  # noqa: E402

FAKE = os.path.join(ROOT, "tests", "fake", "fakepop3.py")
MAILBOXES = 20

# Standing query holds: selective ones (the usual matter) and two that
# match part of the generated mail, so some deliveries become members.
HOLDS = [
    "from:custodian@example.com",
    "to:counsel@example.com",
    "subject:merger",
    'subject:"project falcon"',
    "msgid:<matter-17@example.com>",
    "larger:50000000",
    "dividend OR acquisition",
    "cc:example.org",
    'subject:"message 7"',
    "from:gen@fakepop3.invalid subject:1234",
]

MODES = [
    ("ledger + 10 holds", True, True),
    ("ledger, no holds", True, False),
    ("off", False, False),
]


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


class FakeServer:
    """fakepop3 as its own process: MAILBOXES users of generated mail."""

    def __init__(self, wd, n, seed):
        os.makedirs(wd)
        state = os.path.join(wd, "mail")
        os.makedirs(state)
        ready = os.path.join(wd, "port")
        per = n // MAILBOXES
        args = [sys.executable, FAKE, "--state", state, "--ready-file",
                ready]
        self.users = []
        for i in range(MAILBOXES):
            k = per + (1 if i < n % MAILBOXES else 0)
            u = "box%d" % i
            self.users.append(u)
            args += ["-d", "USER %s pw" % u,
                     "-d", "GENERATE %d 1K..4K seed=%d uidl=s%d-%d-"
                     % (k, seed * 100 + i, seed, i)]
        self.log = open(os.path.join(wd, "fakepop3.log"), "wb")
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(ready) or os.path.getsize(ready) == 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise harness.HarnessError("fakepop3 did not start")
            time.sleep(0.05)
        with open(ready) as f:
            self.port = int(f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def timed(cmd, timeout=3600):
    """(seconds, rc, stdout, stderr) of a command run to its end."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise harness.HarnessError("%s: timed out" % " ".join(cmd))
    dt = time.monotonic() - t0
    return dt, p.returncode, out.decode(errors="replace"), \
        err.decode(errors="replace")


def wait4_run(cmd, timeout):
    """Runs cmd; (wall s, CPU s of its tree, rc, output tail)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL,
                             start_new_session=True)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        tail = out.read().decode(errors="replace")[-2000:]
    return wall, ru.ru_utime + ru.ru_stime, p.returncode, tail


class LedgerBench:
    def __init__(self, a, root, say):
        self.a = a
        self.root = root
        self.say = say
        self.binary = harness.ingestd_binary()
        self.pg = harness.Postgres(os.path.join(root, "pg"))
        with open(os.path.join(self.pg.datadir, "postmaster.pid")) as f:
            self.pg_pid = int(f.readline())
        self.ndb = 0

    def database(self, accounts, extra=None):
        self.ndb += 1
        name = "ledger_%d" % self.ndb
        conninfo = self.pg.create_database(name)
        wd = os.path.join(self.root, name)
        os.makedirs(wd)
        conf = os.path.join(wd, "ingestd.conf")
        harness.write_config(conf, accounts, os.path.join(wd, "state"),
                             conninfo, extra=extra)
        rc, o, e = self.ingestd(conf, "migrate")
        assert rc == 0, e
        return name, conf, wd

    def ingestd(self, conf, *args, timeout=3600):
        return harness.run_ingestd(["-c", conf] + list(args),
                                   binary=self.binary, timeout=timeout)

    # ---- 1. ingest with the ledger and holds on and off

    def ingest(self, seed, label, ledger, holds):
        n = self.a.messages
        srv = FakeServer(os.path.join(self.root, "fake%d" % seed), n, seed)
        try:
            accounts = [{"name": u, "host": "127.0.0.1", "port": srv.port,
                         "user": u, "password": "pw", "tls": "none",
                         "allow_plaintext": True,
                         "delete": "after-archive"} for u in srv.users]
            db, conf, wd = self.database(accounts)
            if holds:
                for i, q in enumerate(HOLDS):
                    rc, o, e = self.ingestd(conf, "hold", "add",
                                            "matter-%d" % i, "--reason",
                                            "bench", "--query", q)
                    assert rc == 0, (q, e)
            if not ledger:
                self.pg.psql("ALTER TABLE ingestd.delivery DISABLE TRIGGER "
                             "ledger_ingest; ALTER TABLE ingestd.delivery "
                             "DISABLE TRIGGER delivery_hold_standing",
                             dbname=db)
            self.pg.psql("CHECKPOINT", dbname=db)
            cl = CpuLedger([self.pg_pid])
            fake0 = tree_cpu(srv.proc.pid)
            pg0 = tree_cpu(self.pg_pid)
            cl.start()
            wall, cpu, rc, tail = wait4_run(
                [self.binary, "-c", conf, "once"], 3600)
            cl.stop()
            pgcpu = tree_cpu(self.pg_pid) - pg0
            fakecpu = tree_cpu(srv.proc.pid) - fake0
            assert rc == 0, tail
            got, pend, members = (int(x) for x in self.pg.psql(
                "SELECT (SELECT count(*) FROM ingestd.delivery),"
                " (SELECT count(*) FROM ingestd.ledger_pending"
                "   WHERE kind = 'ingest'),"
                " (SELECT count(*) FROM ingestd.hold_member)",
                dbname=db)[0])
            assert got == n, "%s: %d of %d messages archived" % (label, got,
                                                                   n)
            assert pend == (n if ledger else 0), (label, pend)
            self.share = index_share(self.pg, db)
            self.pg.psql('DROP DATABASE "%s"' % db, dbname="postgres",
                         timeout=600)
        finally:
            srv.stop()
        return {"label": label, "n": n, "wall": wall, "cpu": cpu,
                "pg": pgcpu, "members": members, "fake": fakecpu,
                "outside": cl.outside}

    def ingest_all(self):
        n = self.a.messages
        self.say("ingest: %d messages of 1 to 4 KB from fakepop3 (%d "
                 "mailboxes, plain POP3 on loopback), ingestd once, "
                 "workers = 2, a fresh database each" % (n, MAILBOXES))
        # Each mode runs `repeat` times, the modes taking turns, and the
        # least disturbed run (least outside CPU) of each is shown.
        runs = {label: [] for label, _, _ in MODES}
        seed = 0
        for k in range(self.a.repeat):
            for label, ledger, holds in MODES:
                seed += 1
                r = self.ingest(seed, label, ledger, holds)
                runs[label].append(r)
                print("bench_ledger: %s: %.1f s, %.1f s outside CPU" % (
                    label, r["wall"], r["outside"]), file=sys.stderr,
                    flush=True)
        rows = [min(runs[label], key=lambda r: r["outside"])
                for label, _, _ in MODES]
        hdr = "%-18s %6s %6s %6s %8s %8s %8s %8s %8s %8s %6s"
        self.say(hdr % ("mode", "msgs", "wall s", "msg/s", "ingestd",
                        "ingestd", "db CPU", "db", "both", "outside",
                        "held"))
        self.say(hdr % ("", "", "", "", "CPU s", "us/msg", "s", "us/msg",
                        "us/msg", "CPU s", "msgs"))
        for r in rows:
            self.say("%-18s %6d %6.1f %6.0f %8.2f %8.0f %8.2f %8.0f %8.0f "
                     "%8.1f %6d"
                     % (r["label"], r["n"], r["wall"], r["n"] / r["wall"],
                        r["cpu"], 1e6 * r["cpu"] / r["n"], r["pg"],
                        1e6 * r["pg"] / r["n"],
                        1e6 * (r["cpu"] + r["pg"]) / r["n"], r["outside"],
                        r["members"]))
        self.say("fakepop3's own CPU: %s s; outside CPU: the machine's "
                 "process time spent by neither this benchmark nor "
                 "PostgreSQL, work that disturbs the wall times"
                 % ", ".join("%.1f" % r["fake"] for r in rows))
        if self.a.repeat > 1:
            for label, _, _ in MODES:
                self.say("%s: %d runs: %s msg/s, %s us/msg (ingestd + "
                         "PostgreSQL), %s s outside CPU" % (
                             label, self.a.repeat,
                             ", ".join("%.0f" % (r["n"] / r["wall"])
                                       for r in runs[label]),
                             ", ".join("%.0f" % (1e6 * (r["cpu"] + r["pg"])
                                                 / r["n"])
                                       for r in runs[label]),
                             ", ".join("%.1f" % r["outside"]
                                       for r in runs[label])))
        off = rows[-1]
        both = (off["cpu"] + off["pg"]) / off["n"]
        for r in rows[:-1]:
            mine = (r["cpu"] + r["pg"]) / r["n"]
            self.say("%s vs off: %.2fx msg/s, %.2fx CPU per message "
                     "(ingestd + PostgreSQL), %+.0f us per message" % (
                         r["label"], (r["n"] / r["wall"]) /
                         (off["n"] / off["wall"]), mine / both,
                         1e6 * (mine - both)))
        self.say("(the ledger's events wait in ledger_pending; their "
                 "sequencing is the checkpoint's cost, below)")
        self.say("%s, for these generated messages (their bodies are "
                 "random base64 text; bench.py gives it for mailgen's "
                 "corpus)" % self.share)

    # ---- 2. checkpoint and proofs over a generated ledger

    def ledger(self):
        e = self.a.entries
        key = os.path.join(self.root, "ledger.key")
        db, conf, wd = self.database(
            [{"name": "unused", "host": "127.0.0.1", "port": 1,
              "user": "u", "password": "p", "tls": "none",
              "allow_plaintext": True, "enabled": False}],
            extra={"ledger": {"signing_key": key,
                              "key_name": "bench.example/ingestd"}})
        rc, vkey, err = self.ingestd(conf, "ledger", "keygen", "--out", key)
        assert rc == 0, err
        vkey = vkey.strip()

        def pending(lo, hi):
            # The shape of ledger_on_ingest()'s events; message i is the
            # bytes "ledger-bench-i", so that verify-proof can check it.
            t = time.monotonic()
            self.pg.psql(
                "INSERT INTO ingestd.ledger_pending (kind, fields) "
                "SELECT 'ingest', ARRAY['account', 'acct' || (i %% 100), "
                "'uidl', 'u' || i, 'sha256', encode(sha256(convert_to("
                "'ledger-bench-' || i, 'UTF8')), 'hex'), 'size', "
                "octet_length('ledger-bench-' || i)::text, 'archived_at', "
                "ingestd.ledger_time(timestamptz '2026-01-01' + i * "
                "interval '1 second')] FROM generate_series(%d, %d) i "
                "ORDER BY i" % (lo, hi), dbname=db, timeout=7200)
            return time.monotonic() - t

        gen = pending(0, e - 1)
        self.say("ledger: %d ingest events generated into ledger_pending "
                 "in %.0f s" % (e, gen))

        def checkpoint(what):
            dt, rc, o, err = timed([self.binary, "-c", conf, "ledger",
                                    "checkpoint"], timeout=7200)
            assert rc == 0, err
            lines = o.split("\n")
            note = ("tree size " + lines[1]) if len(lines) > 2 and \
                lines[1].isdigit() else o.strip()
            self.say("  %-44s %9.2f s   %s" % (what, dt, note))
            return dt

        self.say("%-46s %9s" % ("  command", "time"))
        full = checkpoint("ledger checkpoint: %d pending" % e)
        pending(e, e + 999)
        checkpoint("ledger checkpoint: 1,000 more")
        checkpoint("ledger checkpoint: nothing new")
        total = e + 1000
        sizes = self.pg.psql(
            "SELECT pg_size_pretty(pg_total_relation_size("
            "'ingestd.ledger')), pg_size_pretty(pg_total_relation_size("
            "'ingestd.ledger_node'))", dbname=db)[0]
        self.pg.psql("VACUUM ANALYZE", dbname=db, timeout=3600)

        # Proofs: entries spread over the ledger, each proved R times.
        runs = 3 if self.a.quick else 5
        picks = [(k * 7919 * 131 + 17) % total for k in range(25)]
        ptimes, vtimes, plen = [], [], []
        pf = os.path.join(wd, "proof.json")
        mf = os.path.join(wd, "message")
        for k, i in enumerate(picks):
            body = b"ledger-bench-%d" % i
            sha = harness.sha256_hex(body)
            with open(mf, "wb") as f:
                f.write(body)
            for r in range(runs):
                dt, rc, o, err = timed([self.binary, "-c", conf, "prove",
                                        sha, "--out", pf])
                assert rc == 0, err
                if k > 0 or r > 0:  # the first warms the cache
                    ptimes.append(dt * 1000)
            with open(pf) as f:
                p = json.load(f)
            assert p["leaf_index"] == i, (i, p["leaf_index"])
            plen.append(len(p["audit_path"]))
            dt, rc, o, err = timed([self.binary, "verify-proof", pf, mf,
                                    "--key", vkey])
            assert rc == 0 and o.startswith("OK: "), (o, err)
            vtimes.append(dt * 1000)
        base = []
        absent = harness.sha256_hex(b"not in the ledger")
        for r in range(runs * 4):
            dt, rc, o, err = timed([self.binary, "-c", conf, "prove",
                                    absent, "--out", pf])
            assert rc == 1 and "no ingest entry" in err, err
            base.append(dt * 1000)
        self.say()
        self.say("%-46s %8s %8s" % ("  command (%d runs)" % len(ptimes),
                                    "p50 ms", "p95 ms"))
        self.say("  %-44s %8.1f %8.1f   audit path %d-%d hashes" % (
            "prove (leaf of %d)" % total, statistics.median(ptimes),
            pct(ptimes, 95), min(plen), max(plen)))
        self.say("  %-44s %8.1f %8.1f" % (
            "prove of an absent message (no audit path)",
            statistics.median(base), pct(base, 95)))
        self.say("  %-44s %8.1f %8.1f" % (
            "verify-proof (offline)", statistics.median(vtimes),
            pct(vtimes, 95)))
        indb = self.in_database(db, picks, total, runs)
        self.say("  %-44s %8.2f %8.2f   in the server (clock_timestamp)"
                 % ("prove's statements", statistics.median(indb),
                    pct(indb, 95)))
        self.say("  ledger tables: ledger %s, ledger_node %s" % (
            sizes[0], sizes[1]))
        self.say("  checkpoint: %.0f us per event sequenced" %
                 (1e6 * full / e))
        self.say("  at 10x the entries a proof reads %d node hashes "
                 "instead of %d (one primary-key lookup each), so it "
                 "stays in milliseconds; sequencing is linear in the "
                 "events sequenced, not in the ledger's size" % (
                     math.ceil(math.log2(total * 10)), max(plen)))


    def in_database(self, db, picks, total, runs):
        """Milliseconds the statements of one proof take in the server:
        the newest checkpoint, the message's leaves, and the hash of each
        sibling on the leaf's path (ledger for level 0, ledger_node
        above; a sibling at the tree's right edge, which prove computes
        from smaller subtrees, is left out).  PL/pgSQL keeps each
        statement's plan, as prove's prepared statements do."""
        rows = self.pg.psql("""
CREATE FUNCTION pg_temp.prove_ms(i bigint, n bigint, sha text)
RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	lv integer := 0;
	h bytea;
	r record;
BEGIN
	SELECT id, tree_size, note INTO r FROM ingestd.ledger_checkpoint
	 WHERE id = (SELECT max(id) FROM ingestd.ledger_checkpoint);
	FOR r IN SELECT idx, encode(entry, 'hex') FROM ingestd.ledger
	     WHERE sha256 = decode(sha, 'hex') AND kind = 'ingest'
	       AND idx < n ORDER BY idx LOOP
	END LOOP;
	WHILE (1::bigint << lv) < n LOOP
		IF lv = 0 THEN
			SELECT leaf_hash INTO h FROM ingestd.ledger
			 WHERE idx = i # 1;
		ELSE
			SELECT hash INTO h FROM ingestd.ledger_node
			 WHERE level = lv AND idx = (i >> lv) # 1;
		END IF;
		lv := lv + 1;
	END LOOP;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$$;
SELECT pg_temp.prove_ms(i, %d, encode(sha256(convert_to('ledger-bench-'
       || i, 'UTF8')), 'hex'))
  FROM unnest(ARRAY[%s]::bigint[]) i, generate_series(1, %d) r;
""" % (total, ",".join(str(i) for i in picks), runs), dbname=db)
        return [float(r[0]) for r in rows][1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="4,000 messages and 100,000 entries unless given")
    ap.add_argument("--messages", type=int, default=int(os.environ.get(
        "BENCH_LEDGER_MESSAGES", "0")) or None)
    ap.add_argument("--entries", type=int, default=int(os.environ.get(
        "BENCH_LEDGER_ENTRIES", "0")) or None)
    ap.add_argument("--repeat", type=int,
                    help="runs of each ingest mode, the least disturbed "
                    "shown (default 2, --quick 1)")
    ap.add_argument("--only", default="ingest,ledger")
    ap.add_argument("--report")
    a = ap.parse_args()
    if a.messages is None:
        a.messages = 4000 if a.quick else 20000
    if a.repeat is None:
        a.repeat = 1 if a.quick else 2
    if a.entries is None:
        a.entries = 100000 if a.quick else 1000000
    if a.messages < MAILBOXES or a.entries < 1:
        ap.error("--messages at least %d, --entries at least 1" % MAILBOXES)

    harness.install_signal_cleanup()
    root = tempfile.mkdtemp(prefix="ingestd-bench-ledger-")
    harness.open_tree(root)
    os.chmod(root, 0o755)
    out = []

    def say(line=""):
        print(line, flush=True)
        out.append(line)

    t0 = time.monotonic()
    try:
        b = LedgerBench(a, root, say)
        if "ingest" in a.only:
            b.ingest_all()
            say()
        if "ledger" in a.only:
            b.ledger()
        say("bench_ledger: %.0f s" % (time.monotonic() - t0))
    finally:
        harness.cleanup_all()
    if a.report:
        with open(a.report, "w") as f:
            f.write("\n".join(out) + "\n")
    subprocess.run(["rm", "-rf", root])
    return 0


if __name__ == "__main__":
    sys.exit(main())
