"""Outages under a running ingestd: the database going away in the middle
of a poll, and a spool directory that is full or read-only.

The database tests run `ingestd run` against fakepop3 mailboxes (its
transcript gives the time of every command ingestd sent) while mail keeps
arriving, stop PostgreSQL (cleanly, or with SIGKILL to the postmaster) in
the middle of a poll, deliver more mail while it is down, and start it
again.  They check that ingestd did not exit, that no message was deleted
from a server whose archiving transaction had not committed before the
database went away (every DELE is matched to its message by replaying the
transcript against a model of the mailbox), that everything converges
(all mail archived exactly once, every mailbox empty) without a restart,
and that the failed polls are recorded with an error naming the database.

The spool tests (root only: they mount a tmpfs) put a 1 MiB tmpfs, or a
read-only one, on state_dir/spool with spool_memory = 4096, so every
message whose compressed bytes outgrow 4 KiB must go to a file that cannot
be written.  Those messages fail with an error naming the spool and the
system's reason, are not deleted, and are archived by the next poll once
the spool is writable again; the small ones are archived and deleted
meanwhile.  They run with spool_min_free = 0, no floor, so that the spool
does fill (test_spool_floor.py tests the pause under the floor).
"""

import base64
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import harness
import mailgen
from harness import sha256_hex
from test_ingest import Archive

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fake"))

from fakepop3 import FakePop3, make_certs, read_transcript  # noqa: E402

TIMEOUTS = {"connect_timeout": 5, "command_timeout": 20,
            "session_timeout": 300}


# --------------------------------------------------------------------------
# fakepop3 mailboxes that receive mail while ingestd runs

class Mailboxes:
    """Users of one fakepop3 server (implicit TLS), each a directory of
    message files.  Files are named m000001, m000002, ... in delivery
    order across all users, so a session's listing (files in name order)
    is always the first K of the files delivered and not yet deleted."""

    def __init__(self, ar, directives=None):
        self.ar = ar
        self.dir = os.path.join(ar.dir, "pop")
        os.makedirs(self.dir)
        certs = make_certs(os.path.join(ar.dir, "pki"))
        self.ca_file = str(certs["ca"][0])
        self.directives = directives or {}
        self.users = {}     # name -> password
        self.files = {}     # name -> [(file name, bytes served)]
        self.seq = 0
        self.srv = None
        self._cert = certs["good"]

    def start(self):
        self.srv = FakePop3(self.dir, scenario=self.scenario(),
                            tls_cert=str(self._cert[0]),
                            tls_key=str(self._cert[1]), implicit=True,
                            idle_timeout=120, max_stall=60)
        self.srv.start()
        harness._register(self)

    def stop(self):
        harness._unregister(self)
        if self.srv is not None:
            self.srv.stop()

    def scenario(self):
        lines = []
        for name, pw in self.users.items():
            lines.append("USER %s %s" % (name, pw))
            lines += self.directives.get(name, [])
        return "\n".join(lines) + "\n"

    def add(self, name, directives=()):
        """A user with an empty mailbox, and its ingestd account."""
        pw = "pw-" + name
        self.users[name] = pw
        self.files[name] = []
        self.directives[name] = list(directives)
        os.makedirs(os.path.join(self.dir, name))
        self.ar.accounts.append({
            "name": name, "host": "127.0.0.1", "port": 0,
            "tls": "implicit", "ca_file": self.ca_file, "user": name,
            "password": pw, "auth": "auto", "delete": "after-archive"})
        if self.srv is not None:
            self.srv.reload(self.scenario())
        return name

    def set_port(self):
        for a in self.ar.accounts:
            if a["name"] in self.users:
                a["port"] = self.srv.port

    def deliver(self, name, data):
        """Adds a message file (written aside, then renamed in)."""
        self.seq += 1
        fname = "m%06d" % self.seq
        d = os.path.join(self.dir, name)
        tmp = os.path.join(d, ".tmp-" + fname)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(d, fname))
        served = data if data.endswith(b"\r\n") else data + b"\r\n"
        self.files[name].append((fname, served))
        return sha256_hex(served)

    def left(self, name):
        d = os.path.join(self.dir, name)
        return sorted(f for f in os.listdir(d) if not f.startswith("."))

    def replay(self, name):
        """Replays the transcript of name's sessions against the files
        delivered.  Returns (deles, applied): deles [(time, file name,
        sha256)] for each DELE the server accepted, applied [(time, file
        name, sha256)] for each deletion a QUIT carried out."""
        data = dict(self.files[name])
        live = [f for f, _ in self.files[name]]
        listing = {}
        pending = {}
        deles, applied = [], []
        for e in read_transcript(self.srv.transcript_path):
            if e.user != name:
                continue
            if e.kind == "E" and e.text.startswith("logged in,"):
                k = int(e.text.split()[2])
                listing[e.conn] = sorted(live)[:k]
                assert len(listing[e.conn]) == k, \
                    "%s: the server listed %d messages, the model has " \
                    "%d" % (name, k, len(live))
            elif e.kind == "C" and e.text.upper().startswith("DELE ") and \
                    e.conn in listing:
                pending[e.conn] = (e.time, int(e.text.split()[1]))
            elif e.kind == "S" and e.conn in pending:
                t, n = pending.pop(e.conn)
                if e.text.startswith("+OK"):
                    f = listing[e.conn][n - 1]
                    deles.append((t, f, sha256_hex(data[f])))
            elif e.kind == "E" and e.text.startswith("update: deleted"):
                nums = e.text.split(":", 2)[2].split() \
                    if e.text.count(":") >= 2 else []
                for s in nums:
                    f = listing[e.conn][int(s) - 1]
                    applied.append((e.time, f, sha256_hex(data[f])))
                    live.remove(f)
        return deles, applied


def _message(rng, name, n, size=None):
    """A CRLF message, distinct for each (name, n)."""
    size = size or rng.randrange(800, 30_000)
    head = ("From: <sender@example.invalid>\r\nTo: <%s@example.invalid>\r\n"
            "Subject: message %d for %s\r\nMessage-ID: <%s.%d.%x@example."
            "invalid>\r\n\r\n" % (name, n, name, name, n,
                                  rng.getrandbits(48))).encode()
    lines = []
    total = len(head)
    while total < size:
        line = "%d %s" % (rng.getrandbits(40), " ".join(
            rng.choice(mailgen.WORDS) for _ in range(rng.randrange(3, 12))))
        if rng.random() < 0.05:
            line = "." + line
        lines.append(line)
        total += len(line) + 2
    return head + "\r\n".join(lines).encode() + b"\r\n"


# --------------------------------------------------------------------------
# Database restart under `ingestd run`

class Daemon:
    """`ingestd -c CONF run`, its stderr in a file, stopped by PID."""

    def __init__(self, conf, errpath):
        self.errpath = errpath
        with open(errpath, "wb") as err:
            self.p = subprocess.Popen(
                [harness.ingestd_binary(), "-c", conf, "run"],
                stdout=subprocess.DEVNULL, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.group = harness._ProcessGroup(self.p)
        harness._register(self.group)

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self, when):
        assert self.p.poll() is None, "ingestd exited (%d) %s:\n%s" % (
            self.p.returncode, when, self.stderr()[-4000:])

    def terminate(self, timeout=90):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("ingestd did not exit %ds after SIGTERM:"
                                 "\n%s" % (timeout, self.stderr()[-4000:]))
        harness._unregister(self.group)
        return rc

    def kill(self):
        self.group.stop()
        harness._unregister(self.group)


def _wait(what, predicate, daemon, timeout):
    deadline = time.monotonic() + timeout
    while True:
        daemon.alive("while waiting for %s" % what)
        try:
            if predicate():
                return
        except harness.HarnessError:
            pass  # e.g. the schema is not there until ingestd migrates
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ds waiting for %s:\n%s"
                                 % (timeout, what, daemon.stderr()[-4000:]))
        time.sleep(0.1)


def _epoch_deliveries(ar):
    """{account: [(uidl, sha256, archived_at epoch, server_deleted_at
    epoch or None)]}"""
    out = {}
    for r in ar.sql("SELECT account, uidl, sha256, extract(epoch FROM "
                    "archived_at), extract(epoch FROM server_deleted_at) "
                    "FROM deliveries;"):
        out.setdefault(r[0], []).append(
            (r[1], r[2], float(r[3]), None if r[4] is None else float(r[4])))
    return out


def _database_outage(env, prefix, crash, give_up=False):
    """crash: kill -9 the postmaster instead of a fast shutdown.  give_up:
    keep the database down until the poll in flight has given up on its
    commits (ingestd retries a commit for a minute) and ended; else a few
    seconds."""
    rng = random.Random(prefix)
    ar = Archive(env, prefix)
    pg = ar.pg
    # Each RETR of `slow` waits 250 ms: its poll is still running when
    # the database goes away, and goes on fetching while it is down.
    mb = Mailboxes(ar)
    slow = mb.add(env.unique(prefix), ["DELAY RETR 250"])
    fast = [mb.add(env.unique(prefix)) for _ in range(4)]
    names = [slow] + fast
    counter = {n: 0 for n in names}

    def deliver(name, size=None):
        counter[name] += 1
        return mb.deliver(name, _message(rng, name, counter[name], size))

    for _ in range(30):
        deliver(slow)
    for name in fast:
        for _ in range(6):
            deliver(name)
    deliver(fast[0], size=2_500_000)
    mb.start()
    mb.set_port()
    ar.write_config(poll_interval=1, workers=2, extra=TIMEOUTS)
    d = Daemon(ar.conf, os.path.join(ar.dir, "ingestd.stderr"))
    down = up = None
    try:
        _wait("the first messages of %s archived" % slow,
              lambda: len(ar.deliveries(slow)) >= 4, d, 60)
        for name in fast:
            deliver(name)
        # The database goes away in the middle of slow's poll.
        t_down0 = time.time()
        if crash:
            pg.kill9()
        else:
            pg.stop()
        t_down = time.time()
        down = True
        left_at_down = {n: mb.left(n) for n in names}
        # Mail keeps arriving; ingestd keeps polling and must neither exit
        # nor delete what it could not archive.
        for _ in range(8):
            time.sleep(0.5)
            d.alive("while the database was down")
            deliver(rng.choice(fast))
        if give_up:
            _wait("%s's poll to give up on its commits and end" % slow,
                  lambda: re.search(r"mbox=%s message \d+ not archived: "
                                    % slow, d.stderr()) and
                  _sessions_ended(mb, slow), d, 150)
        deliver(slow)
        d.alive("while the database was down")
        left_at_up = {n: mb.left(n) for n in names}
        t_up0 = time.time()
        pg.start()
        down = False
        up = time.time()
        for name in names:
            deliver(name)
        total = sum(len(v) for v in mb.files.values())
        _wait("every message archived and every mailbox empty",
              lambda: all(not mb.left(n) for n in names) and
              len(ar.deliveries()) == total, d, 150)
        d.alive("after the outage")
        rc = d.terminate()
    finally:
        if down:
            pg.start()
        d.kill()
        mb.stop()
    err = d.stderr()
    assert rc == 0, "exit %d after SIGTERM:\n%s" % (rc, err[-4000:])

    # Everything archived exactly once, byte-exact, and nothing else.
    deliveries = _epoch_deliveries(ar)
    for name in names:
        want = sorted((f, sha256_hex(b)) for f, b in mb.files[name])
        got = sorted((u, h) for u, h, _, _ in deliveries.get(name, []))
        assert got == want, "%s: archived %s\nwant %s" % (name, got, want)
        assert all(dl is not None for _, _, _, dl in deliveries[name]), \
            "%s: server_deleted_at missing: %s" % (name, deliveries[name])
    contents = {sha256_hex(b): b for v in mb.files.values() for _, b in v}
    assert set(ar.blobs()) == set(contents), "blobs differ from contents"
    exported = ar.export()
    for name in names:
        want = {sha256_hex(b) + ".eml": b for _, b in mb.files[name]}
        assert exported.get(name) == want, \
            "export of %s differs from what the server sent" % name
    ar.ok("verify")

    # No DELE for a message before its transaction began, and none while
    # the database was down unless its transaction had begun before.
    for name in names:
        when = {h: t for _, h, t, _ in deliveries[name]}
        deles, applied = mb.replay(name)
        for t, f, h in deles:
            assert h in when, "%s: DELE of %s, never archived" % (name, f)
            assert when[h] <= t, \
                "%s: DELE of %s at %.6f before its transaction began " \
                "(%.6f)" % (name, f, t, when[h])
            if t_down0 <= t <= t_up0:
                assert when[h] < t_down, \
                    "%s: DELE of %s at %.6f while the database was down " \
                    "(%.6f to %.6f); archived at %.6f" % (
                        name, f, t, t_down0, t_up0, when[h])
        for t, f, h in applied:
            assert h in when and when[h] <= t, \
                "%s: the server deleted %s, not archived before" % (name, f)
        # What left the server during the outage was archived before it.
        gone = set(left_at_down[name]) - set(left_at_up[name])
        data = dict(mb.files[name])
        for f in gone:
            h = sha256_hex(data[f])
            assert when[h] < t_down, \
                "%s: %s left the server while the database was down, " \
                "archived at %.6f (down from %.6f)" % (name, f, when[h],
                                                       t_down0)
    assert len(deliveries[slow]) == len(mb.files[slow])
    assert left_at_up[slow], "fixture: %s was drained before the " \
        "database came back; nothing was waiting on it" % slow

    problems = _archive_problems(ar)
    assert not problems, "\n".join(problems)
    left = _spool_left(ar.state)
    assert not left, "files left in the spool directory: %s" % left

    # The daemon said what went wrong, and kept going without a restart:
    # every account has an ok poll after the outage.
    for name in names:
        polls = ar.sql("SELECT outcome, coalesce(error, ''), extract(epoch "
                       "FROM started_at) FROM polls WHERE account = '%s' "
                       "ORDER BY started_at;" % name)
        assert any(o == "ok" and float(s) >= t_up0 - 1 for o, _, s in
                   polls), "%s: no ok poll after the database came back: " \
            "%s" % (name, polls)
    # Each poll that could not start for want of the database was logged
    # as such, and is recorded once it is back, with an error that says
    # so: the polls view shows the outage.
    failed_log = {}
    for m in re.finditer(r"warning: mbox=(\S+) ((?:loading the archive "
                         r"state: )?database: .*)", err):
        failed_log.setdefault(m.group(1), []).append(m.group(2))
    assert failed_log, "no poll failed for want of the database while it " \
        "was down (%.3f to %.3f):\n%s" % (t_down0, up, err[-4000:])
    for name in names:
        polls = ar.sql("SELECT outcome, coalesce(error, ''), extract(epoch "
                       "FROM started_at) FROM polls WHERE account = '%s' "
                       "ORDER BY started_at;" % name)
        failed = [(o, e, float(s)) for o, e, s in polls if o != "ok"]
        logged = failed_log.get(name, [])
        gave_up = [f for f in failed if "not archived" in f[1]]
        if give_up and name == slow:
            # Its poll in flight failed too, for its commits.
            assert len(gave_up) == 1, \
                "%s: the poll that gave up on its commits is not " \
                "recorded as such: %s" % (name, polls)
        else:
            # On a busy machine the poll of another account can be in
            # flight too, with the message delivered just before, and
            # give up on its commit the same way; never more than that.
            assert len(gave_up) <= 1 and all(
                s <= t_down + 1 and re.search(r"database", e, re.I)
                for _, e, s in gave_up), \
                "%s: polls that gave up on their commits: %s" % (name,
                                                                 polls)
        for f in gave_up:
            failed.remove(f)
        assert len(failed) == len(logged) and all(
            re.search(r"database", e, re.I) and o == "temporary" and
            t_down0 - 1 <= s <= up + 1 for o, e, s in failed), \
            "%s: %d polls failed for want of the database (%.3f to %.3f), " \
            "the polls view has %d failed polls: %s\n--- log:\n%s" % (
                name, len(logged), t_down0, up, len(failed), polls,
                "\n".join(l for l in err.splitlines()
                          if name in l)[-1500:])


def _sessions_ended(mb, name):
    """Every connection that logged in as name has closed."""
    opened, closed = set(), set()
    for e in read_transcript(mb.srv.transcript_path):
        if e.user == name and e.kind == "E":
            if e.text.startswith("logged in,"):
                opened.add(e.conn)
            elif e.text in ("closed", "client closed") or \
                    e.text.startswith("connection error"):
                closed.add(e.conn)
    return opened <= closed


def _archive_problems(ar):
    sys.path.insert(0, os.path.join(HERE, "..", "crash"))
    import crashlib
    return crashlib.archive_problems(ar)


def _spool_left(state):
    d = os.path.join(state, "spool")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_database_restart_mid_poll(env):
    """PostgreSQL stopped (fast shutdown) in the middle of a poll while
    mail keeps arriving, started again a few seconds later."""
    _database_outage(env, "pgstop", crash=False)


def test_database_killed_mid_poll(env):
    """The postmaster killed with SIGKILL in the middle of a poll (crash
    recovery at the next start) while mail keeps arriving."""
    _database_outage(env, "pgkill", crash=True)


test_database_restart_mid_poll.timeout = 240
test_database_killed_mid_poll.timeout = 240


# --------------------------------------------------------------------------
# A spool that is full or read-only

def _incompressible(rng, name, n, size):
    """A message of about size bytes whose body is base64 of random
    bytes: zstd keeps about three quarters of it."""
    head = ("From: <sender@example.invalid>\nTo: <%s@example.invalid>\n"
            "Subject: scan %d for %s\nMessage-ID: <scan.%s.%d@example."
            "invalid>\nMIME-Version: 1.0\nContent-Type: application/pdf\n"
            "Content-Transfer-Encoding: base64\n\n" % (
                name, n, name, name, n)).encode()
    body = base64.encodebytes(rng.randbytes(size * 3 // 4))
    return head + body


def _small(rng, name, n):
    """A message well under 4 KiB, so its compressed bytes stay in the
    spool's memory."""
    return ("From: <sender@example.invalid>\nTo: <%s@example.invalid>\n"
            "Subject: note %d for %s\nMessage-ID: <note.%s.%d.%x@example."
            "invalid>\n\n%s\n" % (
                name, n, name, name, n, rng.getrandbits(64), " ".join(
                    rng.choice(mailgen.WORDS) for _ in range(200)))).encode()


def _mount_tmpfs(path, options):
    if not harness.is_root():
        raise AssertionError(
            "this test mounts a tmpfs on the spool directory and must run "
            "as root (CI does); run `make test` as root")
    if shutil.which("mount") is None:
        raise harness.Missing("mount", "mount")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                        path], capture_output=True, timeout=30)
    assert p.returncode == 0, "mount -t tmpfs -o %s on %s failed: %s" % (
        options, path, p.stderr.decode(errors="replace"))


def _umount(path):
    if not os.path.ismount(path):
        return
    p = subprocess.run(["umount", path], capture_output=True, timeout=30)
    if p.returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True,
                       timeout=30)
    assert not os.path.ismount(path), "could not unmount %s: %s" % (
        path, p.stderr.decode(errors="replace"))


def _spool_fault(env, prefix, options, reason):
    """Mailboxes of small messages and messages whose compressed bytes do
    not fit in a 1 MiB spool, polled with a tmpfs mounted on the spool
    directory (mount options `options`); the big ones must fail with
    `reason` and stay on the server, the small ones be archived and
    deleted.  Then without the tmpfs the next poll archives the rest."""
    rng = random.Random(prefix)
    ar = Archive(env, prefix)
    msgs = {}
    big = set()
    for i in range(3):
        tag = "%s-%d" % (prefix, i)
        box = []
        for n in range(1, 7):
            if n in (2, 5) or (i == 2 and n == 1):
                m = _incompressible(rng, tag, n, 1_600_000 + 300_000 * i)
                big.add(m)
            else:
                m = _small(rng, tag, n)
            box.append(m)
        msgs[ar.mailbox(box)] = box
    names = list(msgs)
    ar.snapshot()
    spool = os.path.join(ar.state, "spool")
    os.makedirs(spool, mode=0o700)
    ar.write_config(workers=2, extra=dict(TIMEOUTS, spool_memory=4096,
                                          spool_min_free=0))
    _mount_tmpfs(spool, options)
    try:
        summ = ar.once(expect_rc=1)
        args, rc, out, err = ar.last
        st = os.statvfs(spool)
        left_in_spool = sorted(os.listdir(spool))
        free = (st.f_bfree, st.f_blocks)
    finally:
        _umount(spool)
    assert not left_in_spool, "files left in the spool: %s" % left_in_spool
    assert free[0] == free[1] or "ro" in options.split(","), \
        "the spool tmpfs still has %d of %d blocks in use after ingestd " \
        "exited" % (free[1] - free[0], free[1])
    for name in names:
        box = msgs[name]
        small = [m for m in box if m not in big]
        nbig = len(box) - len(small)
        s = summ[name]
        assert s["archived"] == len(small) and \
            s["deleted"] == len(small) and s["errors"] >= nbig, \
            "%s: %s; want %d archived and deleted, %d errors%s" % (
                name, s, len(small), nbig, ar.context())
        # The server keeps exactly the messages that could not be spooled.
        assert ar.dc.messages(name) == [m for m in box if m in big], \
            "%s: the server holds %d messages, want the %d that failed" % (
                name, ar.dc.count(name), nbig)
        sess = ar.dc.sessions(name, want=2)[-1]
        assert sess["deleted"] == len(small), \
            "%s: Dovecot deleted %d, want %d: %s" % (
                name, sess["deleted"], len(small), sess)
        got = sorted(r["sha256"] for r in ar.deliveries(name))
        want = sorted(sha256_hex(mailgen.served(m)) for m in small)
        assert got == want, "%s: archived %s, want %s" % (name, got, want)
        polls = ar.polls(name)
        assert len(polls) == 1 and polls[0]["outcome"] == "temporary", \
            polls
        e = polls[0]["error"] or ""
        first = 1 + next(i for i, m in enumerate(box) if m in big)
        assert "spool" in e and spool in e and reason in e and \
            re.search(r"\bmessage %d\b" % first, e), \
            "%s: the poll's error %r does not name message %d, the spool " \
            "%s and %r" % (name, e, first, spool, reason)
    assert re.search(r"spool .*%s: %s" % (re.escape(spool),
                                           re.escape(reason)), err), \
        "the log does not name the spool and %r:\n%s" % (reason,
                                                         err[-4000:])

    # Room again: the next poll archives the rest, fetching only them.
    summ = ar.once()
    for name in names:
        nbig = sum(1 for m in msgs[name] if m in big)
        s = summ[name]
        assert s["fetched"] == nbig and s["archived"] == nbig and \
            s["deleted"] == nbig and s["errors"] == 0, \
            "%s: %s, want the %d left fetched, archived and deleted" % (
                name, s, nbig)
        ar.check_archived(name)
        ar.check_drained(name)
        assert ar.polls(name)[-1]["outcome"] == "ok"
    ar.check_export(ar.export())
    ar.ok("verify")
    assert not _archive_problems(ar)
    assert not _spool_left(ar.state)


def test_spool_full_fails_only_the_big_messages(env):
    """A 1 MiB tmpfs as the spool directory, spool_memory = 4096: each
    message whose compressed bytes pass 1 MiB fails with "No space left on
    device" and stays on the server; the small ones are archived and
    deleted in the same poll; once the space is back the next poll
    archives the rest."""
    _spool_fault(env, "spoolfull", "size=1m,mode=0700", "No space left on "
                 "device")


def test_read_only_spool_fails_only_the_big_messages(env):
    """The same with a read-only spool directory: every message that
    outgrows spool_memory fails with "Read-only file system"."""
    _spool_fault(env, "spoolro", "ro,size=1m,mode=0700",
                 "Read-only file system")


def test_spool_full_under_run_recovers_when_space_returns(env):
    """`ingestd run` with a full spool: the big messages fail poll after
    poll and stay on the server, the small ones are archived and deleted,
    the spool's space is given back after each failure; once the tmpfs
    is grown (remount, the daemon still running) the next poll archives
    the rest, with no restart."""
    rng = random.Random("spoolrun")
    ar = Archive(env, "spoolrun")
    small = [_small(rng, "spoolrun", n) for n in range(1, 5)]
    big = [_incompressible(rng, "spoolrun", n, 1_800_000)
           for n in range(5, 7)]
    name = ar.mailbox([small[0], big[0], small[1], small[2], big[1],
                       small[3]])
    ar.snapshot()
    spool = os.path.join(ar.state, "spool")
    os.makedirs(spool, mode=0o700)
    ar.write_config(workers=2, poll_interval=1,
                    extra=dict(TIMEOUTS, spool_memory=4096,
                               spool_min_free=0))
    _mount_tmpfs(spool, "size=1m,mode=0700")
    d = None
    try:
        d = Daemon(ar.conf, os.path.join(ar.dir, "ingestd.stderr"))
        nospace = "spool write to %s: No space left on device" % spool
        _wait("the small messages archived and two polls failing on the "
              "spool", lambda: ar.dc.count(name) == 2 and
              d.stderr().count(nospace) >= 4, d, 60)
        assert ar.dc.messages(name) == big, \
            "the server should hold exactly the two big messages"
        got = sorted(r["sha256"] for r in ar.deliveries(name))
        assert got == sorted(sha256_hex(mailgen.served(m))
                             for m in small), got

        # Between polls the spool is empty again: a failed message's
        # file is closed (it was never linked).
        def spool_empty():
            st = os.statvfs(spool)
            return st.f_bfree == st.f_blocks and not os.listdir(spool)
        _wait("the spool's space given back", spool_empty, d, 30)

        p = subprocess.run(["mount", "-o", "remount,size=64m", "tmpfs",
                            spool], capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        _wait("the big messages archived once there is room",
              lambda: ar.dc.count(name) == 0 and
              len(ar.deliveries(name)) == 6, d, 60)
        d.alive("after the spool had room again")
        rc = d.terminate()
    finally:
        if d is not None:
            d.kill()
        _umount(spool)
    assert rc == 0, "exit %d after SIGTERM:\n%s" % (rc, d.stderr()[-3000:])
    ar.check_archived(name)
    ar.check_drained(name)
    polls = ar.polls(name)
    failed = [p for p in polls if p["outcome"] != "ok"]
    assert failed and all(nospace in (p["error"] or "") for p in failed), \
        polls
    assert polls[-1]["outcome"] == "ok", polls
    ar.check_export(ar.export())
    ar.ok("verify")
