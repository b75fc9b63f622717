"""Crash safety: `ingestd once` killed with SIGKILL at many moments of a
large poll, restarted each time, checked after every kill.

    loop = CrashLoop(env, "crash", seed=1234)
    loop.fill(mailboxes=20)        # Dovecot mailboxes, shared messages
    loop.run(kills=30)             # kill, check, restart, ...
    loop.finish()                  # an undisturbed poll, then every check

Each round starts `ingestd once` over every mailbox and kills it with
SIGKILL at a moment chosen by a seeded RNG, in one of three ways:

  delay        after a random delay from 0 to MAX_DELAY seconds;
  transaction  as soon as one of ingestd's PostgreSQL sessions is inside a
               transaction writing a blob or its chunks (seen in
               pg_stat_activity by a probe that asks about every
               millisecond), after a random extra delay of up to 20 ms:
               kills in the middle of a commit;
  commit       as soon as one of them is inside a transaction that is
               writing its deliveries or executing COMMIT (the last
               round trip of a group commit, which ends with COMMIT).

Before every round some mail is delivered, so that each run has work to
be killed in: new small messages, now and then a new multi-megabyte one,
and copies of messages already delivered elsewhere (one content in many
mailboxes, so deduplication is crossed by the kills too).

After every kill, for every mailbox: each message ever delivered is still
on the server or archived (or both), nothing is archived that was not
delivered, and nothing is archived twice; in the database no blob lacks a
delivery, no blob has a missing, extra or short chunk; the spool directory
is empty.  At the end, after one undisturbed `once`: the archive holds
every (mailbox, message) exactly once with one blob per distinct content,
export gives back exactly the bytes RETR delivered, `verify` passes, and
every mailbox is empty (delete = "after-archive").

The RNG seed is printed; CRASH_SEED=N reruns a given sequence of
deliveries and kill modes (kill moments also depend on the machine).
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTEG = os.path.join(HERE, "..", "integ")
if INTEG not in sys.path:
    sys.path.insert(0, INTEG)

import harness  # noqa: E402
import mailgen  # noqa: E402
from harness import sha256_hex  # noqa: E402
from test_ingest import Archive  # noqa: E402

MAX_DELAY = 1.5          # seconds after start, for "delay" kills
PROBE_TIMEOUT = 4.0      # a probe that sees nothing kills at this point
BACKLOG = 60_000_000     # bytes on the servers before each round, about


def seed_from_env(default=None):
    """CRASH_SEED from the environment, else a fresh random seed."""
    s = os.environ.get("CRASH_SEED")
    if s:
        return int(s)
    return default if default is not None else random.SystemRandom()\
        .randrange(1, 2 ** 31)


class Prober:
    """A psql process kept open, for asking PostgreSQL many quick
    questions (about a millisecond each) without a new connection every
    time.  Connects to the maintenance database `postgres`."""

    END = "@@end-of-result@@"

    def __init__(self, pg):
        self.p = subprocess.Popen(
            [pg.psql_bin, "-X", "-A", "-t", "-q", "-F", "\t",
             "-v", "ON_ERROR_STOP=1", "-d", pg.conninfo_for("postgres")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        harness._register(self)

    def __repr__(self):
        return "psql probe %d" % self.p.pid

    def query(self, sql):
        """Rows of sql (one statement, values without tabs or newlines)."""
        self.p.stdin.write(("%s;\n\\echo %s\n" % (sql.rstrip().rstrip(";"),
                                                 self.END)).encode())
        self.p.stdin.flush()
        rows = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise harness.HarnessError("the psql probe exited")
            line = line.decode(errors="replace").rstrip("\n")
            if line == self.END:
                return rows
            rows.append(line.split("\t"))

    def stop(self):
        harness._unregister(self)
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait(timeout=10)


def archive_problems(ar):
    """Structural checks of the archive's tables: a list of problems
    (empty when all is well).  No blob without a delivery (blob and
    deliveries are written in one transaction); every blob has chunks
    0..chunks-1, no more, adding up to stored_size; every delivery's blob
    exists; no (account, UIDL) archived twice with different bytes where
    the server gave unique UIDLs."""
    checks = [
        ("blobs without a delivery",
         "SELECT encode(b.sha256, 'hex') FROM ingestd.blob b "
         "WHERE NOT EXISTS (SELECT 1 FROM ingestd.delivery d "
         "WHERE d.sha256 = b.sha256)"),
        ("blobs whose chunks are missing, extra or short",
         "SELECT encode(b.sha256, 'hex') || ' chunks=' || b.chunks || "
         "' stored_size=' || b.stored_size || ' have ' || "
         "coalesce(c.n, 0) || ' chunks, seq ' || coalesce(c.lo, -1) || "
         "'..' || coalesce(c.hi, -1) || ', ' || coalesce(c.bytes, 0) || "
         "' bytes' FROM ingestd.blob b LEFT JOIN (SELECT sha256, "
         "count(*) AS n, min(seq) AS lo, max(seq) AS hi, "
         "sum(octet_length(data)) AS bytes FROM ingestd.blob_chunk "
         "GROUP BY sha256) c ON c.sha256 = b.sha256 "
         "WHERE coalesce(c.n, 0) <> b.chunks "
         "OR (b.chunks > 0 AND (c.lo <> 0 OR c.hi <> b.chunks - 1)) "
         "OR coalesce(c.bytes, 0) <> b.stored_size"),
        ("chunks of no blob",
         "SELECT encode(c.sha256, 'hex') || ' seq ' || c.seq "
         "FROM ingestd.blob_chunk c WHERE NOT EXISTS "
         "(SELECT 1 FROM ingestd.blob b WHERE b.sha256 = c.sha256)"),
        ("UIDLs archived twice in one mailbox",
         "SELECT a.name || ' ' || d.uidl || ' x' || count(*) "
         "FROM ingestd.delivery d JOIN ingestd.account a "
         "ON a.id = d.account_id WHERE d.uidl IS NOT NULL "
         "GROUP BY a.name, d.uidl HAVING count(*) > 1"),
    ]
    sql = ";\n".join(
        "SELECT %s || E'\\x1f' || x FROM (%s) t(x)" % (
            "'%d'" % i, q) for i, (_, q) in enumerate(checks)) + ";"
    problems = []
    for row in ar.pg.psql(sql, dbname=ar.dbname):
        i, what = row[0].split("\x1f", 1)
        problems.append("%s: %s" % (checks[int(i)][0], what))
    return problems


def spool_leftovers(state_dir):
    """Entries left in state_dir/spool (the spool's files are unlinked
    from the start, so there must be none)."""
    d = os.path.join(state_dir, "spool")
    if not os.path.isdir(d):
        return []
    return sorted(os.listdir(d))


def server_messages(dc, user, tries=50):
    """The bytes of each message in user's Maildir (new/ and cur/).  A
    Dovecot session may still be running there (one whose client was just
    killed): a file it renames from new/ to cur/ while we read is read
    again, and one read in new/ and found again in cur/ (its unique name,
    before the ":2," of its flags, is the same) counts once."""
    md = dc.maildir(user)
    for _ in range(tries):
        out = []
        seen = set()
        try:
            for sub in ("new", "cur"):
                d = os.path.join(md, sub)
                for f in sorted(os.listdir(d)):
                    unique = f.split(":", 1)[0]
                    if unique in seen:
                        continue
                    with open(os.path.join(d, f), "rb") as fh:
                        out.append(fh.read())
                    seen.add(unique)
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        return out
    raise harness.HarnessError("%s: the Maildir keeps changing" % user)


class CrashLoop:
    """One crash test: an Archive (fresh database, state directory, the
    run's Dovecot) whose mailboxes receive mail between the kills."""

    def __init__(self, env, prefix, seed):
        self.env = env
        self.seed = seed
        self.rng = random.Random(seed)
        self.gen = mailgen.MailGen(seed)
        self.ar = Archive(env, prefix)
        self.dc = self.ar.dc
        self.names = []
        self.content = {}      # sha256 -> bytes RETR delivers
        self.raw = {}          # sha256 -> bytes as delivered to the Maildir
        self.delivered = {}    # mailbox -> set of sha256 ever delivered
        self.big = []          # sha256 of the multi-megabyte contents
        self.kills = []        # (round, mode, seconds, what the probe saw)
        self.rounds = 0
        self.finished_alone = 0
        self.hung = {}         # pid -> mailbox of stuck Dovecot sessions
        self.logdir = os.path.join(self.ar.dir, "logs")
        os.makedirs(self.logdir)
        self.pg_log_start = os.path.getsize(self.ar.pg.logfile)

    # ---- mail

    def _content(self, raw):
        served = mailgen.served(raw)
        h = sha256_hex(served)
        self.content.setdefault(h, served)
        self.raw.setdefault(h, raw)
        return h

    def deliver(self, name, raw):
        h = self._content(raw)
        assert h not in self.delivered[name], \
            "fixture: %s would get the same content twice" % name
        self.dc.deliver(name, raw)
        self.delivered[name].add(h)
        return h

    def new_big(self):
        raw = self.gen.message(kind="attachment",
                               size=self.rng.randrange(1_000_000, 4_000_000))
        h = self._content(raw)
        self.big.append(h)
        return raw

    def fill(self, mailboxes=20, per_mailbox=10, big=8, shared=4):
        """mailboxes Dovecot mailboxes of per_mailbox varied messages, big
        multi-megabyte messages spread over them, and shared messages each
        delivered to several mailboxes."""
        for _ in range(mailboxes):
            name = self.ar.mailbox([])
            self.names.append(name)
            self.delivered[name] = set()
        for name in self.names:
            for _ in range(per_mailbox):
                self.deliver(name, self.gen.message())
        for i in range(big):
            self.deliver(self.names[i * len(self.names) // big],
                         self.new_big())
        for i in range(shared):
            raw = self.new_big() if i == 0 else self.gen.message(
                kind=self.rng.choice(("alternative", "dots", "utf8")))
            for name in self.rng.sample(self.names,
                                        self.rng.randrange(5, 11)):
                self.deliver(name, raw)
        self.ar.write_config(workers=2, extra={
            "connect_timeout": 10, "command_timeout": 30})

    def on_server(self):
        """{mailbox: [sha256 of each message on the server]}"""
        return {n: [sha256_hex(mailgen.served(m))
                    for m in server_messages(self.dc, n)]
                for n in self.names}

    def top_up(self):
        """Mail for the next round: a few new small messages, sometimes a
        new big one, and copies of known contents to mailboxes that never
        had them, until about BACKLOG bytes wait on the servers."""
        for _ in range(self.rng.randrange(2, 6)):
            self.deliver(self.rng.choice(self.names), self.gen.message())
        if self.rng.random() < 0.5:
            self.deliver(self.rng.choice(self.names), self.new_big())
        waiting = sum(len(self.content[h]) for hs in
                      self.on_server().values() for h in hs)
        pool = self.big + list(self.content)[:50]
        tries = 0
        while waiting < BACKLOG and tries < 200:
            tries += 1
            h = self.rng.choice(pool)
            name = self.rng.choice(self.names)
            if h in self.delivered[name]:
                continue
            self.deliver(name, self.raw[h])
            waiting += len(self.content[h])

    # ---- the archive as it is

    def schema_ready(self):
        """Whether the archive's tables exist yet (a kill can come before
        the first run has applied the migrations)."""
        return self.ar.pg.scalar(
            "SELECT to_regclass('ingestd.delivery') IS NOT NULL AND "
            "to_regclass('ingestd.deliveries') IS NOT NULL",
            dbname=self.ar.dbname) == "t"

    def archived(self):
        """{mailbox: [(uidl, sha256, size)]}"""
        out = {n: [] for n in self.names}
        if not self.schema_ready():
            return out
        for r in self.ar.deliveries():
            out.setdefault(r["account"], []).append(
                (r["uidl"], r["sha256"], int(r["size"])))
        return out

    def check_consistent(self, when):
        """Nothing lost, nothing invented, nothing twice, no half-written
        state: the checks made after every kill."""
        server = self.on_server()
        archived = self.archived()
        bad = []
        for name in self.names:
            want = self.delivered[name]
            srv = server[name]
            got = [h for _, h, _ in archived[name]]
            if len(set(srv)) != len(srv):
                bad.append("%s: the server holds a message twice" % name)
            if len(set(got)) != len(got):
                dup = sorted({h for h in got if got.count(h) > 1})
                bad.append("%s: archived twice: %s" % (name, dup))
            extra = set(got) - want
            if extra:
                bad.append("%s: archived but never delivered: %s" % (
                    name, sorted(extra)))
            lost = want - set(srv) - set(got)
            if lost:
                bad.append("%s: %d messages neither on the server nor "
                           "archived: %s" % (name, len(lost), sorted(lost)))
            for uidl, h, size in archived[name]:
                if h in self.content and size != len(self.content[h]):
                    bad.append("%s: %s archived with size %d, not %d" % (
                        name, h, size, len(self.content[h])))
        unknown = set(archived) - set(self.names)
        if unknown:
            bad.append("deliveries for unknown accounts %s" % unknown)
        if self.schema_ready():
            bad += archive_problems(self.ar)
        left = spool_leftovers(self.ar.state)
        if left:
            bad.append("files left in the spool directory: %s" % left)
        assert not bad, "after %s (seed %d):\n  %s" % (
            when, self.seed, "\n  ".join(bad))
        return server, archived

    # ---- one round

    def _start(self, rnd):
        out = open(os.path.join(self.logdir, "%03d.out" % rnd), "wb")
        err = open(os.path.join(self.logdir, "%03d.err" % rnd), "wb")
        try:
            p = subprocess.Popen(
                [harness.ingestd_binary(), "-c", self.ar.conf, "once"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            out.close()
            err.close()
        group = harness._ProcessGroup(p)
        harness._register(group)
        return p, group

    def _probe_until(self, p, probe, dbname, want):
        """Asks pg_stat_activity until want(state, query) holds for one of
        ingestd's sessions, ingestd has exited, or PROBE_TIMEOUT passes.
        Returns what was seen, or None."""
        sql = ("SELECT state, coalesce(xact_start IS NOT NULL, false), "
               "left(regexp_replace(query, '\\s+', ' ', 'g'), 60) "
               "FROM pg_stat_activity WHERE datname = '%s' "
               "AND pid <> pg_backend_pid() AND backend_type = "
               "'client backend'" % dbname)
        deadline = time.monotonic() + PROBE_TIMEOUT
        while p.poll() is None and time.monotonic() < deadline:
            for state, in_xact, query in probe.query(sql):
                if want(state, in_xact == "t", query):
                    return "%s: %s" % (state, query)
            time.sleep(0.0005)
        return None

    def round(self, probe, mode):
        """Starts `once`, kills it in the given mode; returns True if the
        SIGKILL found it running."""
        self.rounds += 1
        rnd = self.rounds
        p, group = self._start(rnd)
        t0 = time.monotonic()
        seen = None
        try:
            if mode == "delay":
                deadline = t0 + self.rng.uniform(0, MAX_DELAY)
                while p.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.002)
            elif mode == "transaction":
                extra = self.rng.uniform(0, 0.02)
                seen = self._probe_until(
                    p, probe, self.ar.dbname,
                    lambda st, x, q: x and "ingestd.blob" in q)
                if seen:
                    time.sleep(extra)
            elif mode == "commit":
                seen = self._probe_until(
                    p, probe, self.ar.dbname,
                    lambda st, x, q: x and st == "active" and (
                        q == "COMMIT" or
                        q.startswith("INSERT INTO ingestd.delivery")))
            else:
                raise ValueError(mode)
            killed_at = time.monotonic() - t0
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            rc = p.wait(timeout=60)
        finally:
            group.stop()
            harness._unregister(group)
        if rc == -signal.SIGKILL:
            self.kills.append((rnd, mode, killed_at, seen))
            return True
        # It finished before the kill: then it must have succeeded.
        self.finished_alone += 1
        with open(os.path.join(self.logdir, "%03d.err" % rnd), "rb") as f:
            err = f.read().decode(errors="replace")
        assert rc == 0, "round %d: once exited %d on its own (seed %d):\n%s" \
            % (rnd, rc, self.seed, err[-3000:])
        return False

    def wait_dovecot_sessions(self, grace=3.0):
        """Waits until every Dovecot POP3 session that logged in to one of
        our mailboxes has ended (its logout line is logged once QUIT's
        deletions are done, or once it noticed its client gone), so that
        the next run does not race a dying session.

        A session whose client is killed just as Dovecot hands the login
        over to its pop3 process can be left waiting for ever; after
        `grace` seconds such a process (ours: it serves our mailbox for
        the Dovecot this run started, and its client is dead) is killed
        by its PID.  It never saw QUIT, so it had nothing to apply."""
        names = set(self.names)
        rx_in = re.compile(r"pop3-login: Info: Login: user=<([^>]+)>.* "
                           r"mpid=(\d+)")
        rx_out = re.compile(r"pop3\(([^)]+)\)<(\d+)><[^:]*: Info: .*"
                            r"top=\d+/\d+ retr=")
        deadline = time.monotonic() + grace
        while True:
            with open(self.dc.log, "rb") as f:
                text = f.read().decode(errors="replace")
            opened, closed = {}, set()
            for line in text.splitlines():
                m = rx_in.search(line)
                if m and m.group(1) in names:
                    opened[int(m.group(2))] = m.group(1)
                    continue
                m = rx_out.search(line)
                if m and m.group(1) in names:
                    closed.add(int(m.group(2)))
            busy = {pid: user for pid, user in opened.items()
                    if pid not in closed and pid not in self.hung and
                    harness._pid_alive(pid)}
            if not busy:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for pid, user in busy.items():
            cmd = harness._cmdline(pid)
            if self.dc.instance in cmd and "pop3" in cmd:
                os.kill(pid, signal.SIGKILL)
                self.hung[pid] = user

    PG_LOG = (("open transaction", "unexpected EOF on client connection "
               "with an open transaction"),
              ("message cut", "incomplete message from client"),
              ("reset", "could not receive data from client"))

    def pg_log_counts(self):
        """What PostgreSQL logged when our sessions vanished: how many
        ended inside a transaction, in the middle of a protocol message
        (a chunk being sent), or with unread data."""
        with open(self.ar.pg.logfile, "rb") as f:
            f.seek(self.pg_log_start)
            text = f.read().decode(errors="replace")
        tag = "@%s " % self.ar.dbname
        lines = [l for l in text.splitlines() if tag in l]
        return {k: sum(1 for l in lines if v in l) for k, v in self.PG_LOG}

    def run(self, kills=30, min_in_commit=5, max_rounds=None):
        """Rounds until `kills` SIGKILLs found ingestd running, at least
        min_in_commit of them while one of its sessions was inside a
        transaction (as the probe saw it), within max_rounds rounds."""
        max_rounds = max_rounds or kills * 3
        modes = ["delay"] * 5 + ["transaction"] * 3 + ["commit"] * 2
        probe = Prober(self.ar.pg)
        try:
            while True:
                in_commit = sum(1 for k in self.kills if k[3])
                if len(self.kills) >= kills and in_commit >= min_in_commit:
                    break
                assert self.rounds < max_rounds, \
                    "after %d rounds only %d kills found ingestd running, " \
                    "%d of them inside a transaction (seed %d): %s" % (
                        self.rounds, len(self.kills), in_commit, self.seed,
                        self.kills)
                self.top_up()
                mode = self.rng.choice(modes)
                if len(self.kills) >= kills:
                    mode = self.rng.choice(("transaction", "commit"))
                self.round(probe, mode)
                self.wait_dovecot_sessions()
                self.check_consistent("round %d (%s)" % (self.rounds,
                                                         mode))
        finally:
            probe.stop()

    # ---- the end

    def finish(self):
        """One undisturbed poll, then every check of the final state."""
        ar = self.ar
        summ = ar.once(timeout=300)
        bad = {n: s for n, s in summ.items() if s["errors"]}
        assert not bad, "the undisturbed poll had errors: %s%s" % (
            bad, ar.context())
        server, archived = self.check_consistent("the undisturbed poll")
        left = {n: len(v) for n, v in server.items() if v}
        assert not left, "messages left on the server after the last " \
            "poll (delete = after-archive): %s" % left
        # Each mailbox holds exactly what it was sent, once, and the
        # UIDLs are distinct.
        for name in self.names:
            got = sorted(h for _, h, _ in archived[name])
            assert got == sorted(self.delivered[name]), \
                "%s: archived %d, delivered %d" % (
                    name, len(got), len(self.delivered[name]))
            uidls = [u for u, _, _ in archived[name]]
            assert None not in uidls and len(set(uidls)) == len(uidls), \
                "%s: UIDLs %s" % (name, uidls)
        # One blob per distinct content, with its size.
        blobs = ar.blobs()
        assert set(blobs) == set(self.content), \
            "blobs: %d, distinct contents delivered: %d; extra %s, " \
            "missing %s" % (len(blobs), len(self.content),
                            sorted(set(blobs) - set(self.content))[:5],
                            sorted(set(self.content) - set(blobs))[:5])
        for h, (size, stored) in blobs.items():
            assert size == len(self.content[h]) and stored > 0, \
                "blob %s: size %d stored %d, content has %d bytes" % (
                    h, size, stored, len(self.content[h]))
        for r in ar.deliveries():
            assert r["server_deleted_at"], \
                "%s %s: gone from the server, server_deleted_at NULL" % (
                    r["account"], r["uidl"])
        self.check_export()
        out = ar.ok("verify", timeout=300)
        assert re.search(r"\b0 damaged\b", out), out
        # Nothing left to do: a further poll fetches nothing.
        summ = ar.once()
        busy = {n: s for n, s in summ.items() if s["fetched"] or
                s["archived"] or s["errors"]}
        assert not busy, "a poll after the end still worked: %s" % busy

    def check_export(self):
        """export writes DIR/<account>/<sha256>.eml for each message of
        each mailbox, holding exactly the bytes RETR delivered."""
        out = os.path.join(self.env.tmpdir("export"), "out")
        self.ar.ok("export", "--out", out, timeout=300)
        accounts = sorted(os.listdir(out))
        want_accounts = sorted(n for n in self.names if self.delivered[n])
        assert accounts == want_accounts, "export wrote %s, want %s" % (
            accounts, want_accounts)
        for name in want_accounts:
            d = os.path.join(out, name)
            files = sorted(os.listdir(d))
            want = sorted(h + ".eml" for h in self.delivered[name])
            assert files == want, "export of %s: %d files, want %d" % (
                name, len(files), len(want))
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    data = fh.read()
                assert data == self.content[f[:-4]], \
                    "export %s/%s: %d bytes differ from the %d RETR " \
                    "delivered" % (name, f, len(data),
                                   len(self.content[f[:-4]]))
                os.unlink(os.path.join(d, f))

    def report(self):
        """One line on what the loop did, for the test's output."""
        modes = {}
        for _, mode, _, seen in self.kills:
            modes[mode] = modes.get(mode, 0) + 1
        in_xact = sum(1 for k in self.kills if k[3])
        return ("seed %d: %d rounds, %d kills (%s), %d seen by the probe "
                "inside a transaction; PostgreSQL saw sessions end: %s; "
                "%d polls finished before their kill; %d Dovecot "
                "sessions left hanging by a kill, stopped; %d distinct "
                "messages, %d deliveries" % (
                    self.seed, self.rounds, len(self.kills),
                    ", ".join("%s %d" % kv for kv in sorted(modes.items())),
                    in_xact, ", ".join(
                        "%s %d" % kv for kv in self.pg_log_counts().items()),
                    self.finished_alone, len(self.hung), len(self.content),
                    sum(len(v) for v in self.delivered.values())))


def crash_test(env, prefix, kills, mailboxes=20):
    """The whole test: fill, kill `kills` times, finish; prints the seed
    first and what the loop did last."""
    seed = seed_from_env()
    print("# crash loop seed %d (rerun with CRASH_SEED=%d)" % (seed, seed),
          flush=True)
    loop = CrashLoop(env, prefix, seed)
    try:
        loop.fill(mailboxes=mailboxes)
        loop.run(kills=kills)
        loop.finish()
    finally:
        print("# " + loop.report(), flush=True)
