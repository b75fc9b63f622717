"""Scale, shown by structure rather than by the clock: how many sessions
are open at once, how much memory a huge message costs, how many
transactions carry many messages.

Nothing here compares a duration with a threshold: concurrency is counted
at a proxy, memory is the peak RSS the kernel reports for the ingestd
process, and transactions are PostgreSQL's own counter.
"""

import base64
import hashlib
import os
import sys
import time

import cutproxy
import harness
import mailgen
from harness import sha256_hex
from test_ingest import Archive

MIB = 1024 * 1024


def _small_mailboxes(ar, gen, n, per, **over):
    """n mailboxes of per small messages each; returns their names."""
    return [ar.mailbox([gen.message(size=1500 + 37 * i) for i in
                        range(per)], **over) for _ in range(n)]


def _check_archived_from_raw(ar, names):
    """Each mailbox's messages are archived, byte-exact (by the SHA-256 of
    what Dovecot serves for each Maildir file), and nothing else is."""
    rows = ar.deliveries()
    got = {}
    for r in rows:
        got.setdefault(r["account"], []).append((r["sha256"], int(r["size"])))
    for name in names:
        want = sorted((sha256_hex(mailgen.served(m)), len(mailgen.served(m)))
                      for m in ar.raw[name])
        have = sorted(got.get(name, []))
        assert have == want, "deliveries of %s: %s, want %s" % (
            name, have, want)
    assert sorted(got) == sorted(names), sorted(got)


# --------------------------------------------------------------------------
# Concurrency: counted at a proxy in front of Dovecot

def test_mailboxes_are_polled_concurrently(env):
    """200 mailboxes behind a proxy that holds the server's first bytes
    (TLS handshake, greeting) until 200 connections are open at once (or
    20 s pass).  With
    max_connections_per_host = 200 and two workers, at least 150 sessions
    must be open together: polled one after another, there is never more
    than one."""
    ar = Archive(env, "par")
    gen = mailgen.MailGen(800)
    n = 200
    with cutproxy.CutProxy(ar.dc.pop3s_port, hold_until=n,
                           hold_timeout=20) as px:
        names = _small_mailboxes(ar, gen, n, 1, port=px.port)
        ar.write_config(workers=2, extra={"max_connections_per_host": n})
        summ = ar.once(timeout=150)
    bad = {k: v for k, v in summ.items()
           if v["archived"] != 1 or v["deleted"] != 1 or v["errors"]}
    assert not bad, "polls that did not archive and delete their message: " \
        "%s%s" % (bad, ar.context())
    assert px.connections == n, \
        "%d connections through the proxy, want %d" % (px.connections, n)
    assert px.max_active >= 150, \
        "at most %d of %d sessions were open at once (the proxy waited %s)" \
        % (px.max_active, n, "in vain for 20 s" if px.hold_timed_out else
           "for them")
    _check_archived_from_raw(ar, names)
    for name in names[::20]:
        ar.check_drained(name)


def test_connections_per_host_are_capped(env):
    """max_connections_per_host = 5, 20 mailboxes on one host: the proxy
    holds the server's first bytes until 5 connections are open, so the
    cap is reached,
    and it never sees a sixth at the same time."""
    ar = Archive(env, "cap")
    gen = mailgen.MailGen(810)
    n, cap = 20, 5
    with cutproxy.CutProxy(ar.dc.pop3s_port, hold_until=cap,
                           hold_timeout=20, first_byte_delay=0.05) as px:
        names = _small_mailboxes(ar, gen, n, 1, port=px.port)
        ar.write_config(workers=2, extra={"max_connections_per_host": cap})
        summ = ar.once()
    assert all(s["archived"] == 1 and s["errors"] == 0
               for s in summ.values()), summ
    assert px.connections == n, px.connections
    assert px.max_active <= cap, \
        "%d connections open at once to one host, the cap is %d" % (
            px.max_active, cap)
    assert px.max_active == cap and not px.hold_timed_out, \
        "the cap of %d was never reached (at most %d at once)" % (
            cap, px.max_active)
    _check_archived_from_raw(ar, names)
    for name in names:
        ar.check_drained(name)


# --------------------------------------------------------------------------
# Memory: one 100 MB message against one small one

# The kernel's peak RSS of a process (ru_maxrss) counts the memory of the
# process it was forked from: execve keeps the larger of the old and the
# new high-water mark.  So ingestd is not started by the test process
# itself (tens of MiB), but by this small interpreter, which reports its
# own resident size at the fork (the floor under any reading) and the
# child's ru_maxrss from wait4().  Both in KiB.
_RSS_WRAPPER = r"""
import os, sys
report, argv = sys.argv[1], sys.argv[2:]
with open("/proc/self/status") as f:
    floor = int(f.read().split("VmRSS:")[1].split()[0])
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write("%d %d\n" % (ru.ru_maxrss, floor))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _run_measured(ar, args, timeout=300):
    """Run ingestd like Archive.run; also return its peak RSS in KiB."""
    report = os.path.join(ar.dir, "rss.%d" % time.monotonic_ns())
    # In a sanitizer build (make check) freed memory waits in ASan's
    # quarantine (256 MiB) before reuse, so RSS would grow with every byte
    # ever allocated; without the quarantine it measures the program.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, (
        env.get("ASAN_OPTIONS"), "quarantine_size_mb=0",
        "thread_local_quarantine_size_kb=0")))
    rc, out, err = harness.run_ingestd(
        ["-S", "-c", _RSS_WRAPPER, report, harness.ingestd_binary(), "-c",
         ar.conf] + list(args), timeout=timeout, binary=sys.executable,
        env=env)
    ar.last = (tuple(args), rc, out, err)
    with open(report) as f:
        peak, floor = map(int, f.read().split())
    # Above the floor, the reading is ingestd's own peak.
    assert peak > floor, \
        "ingestd's peak RSS (%d KiB) is not above the %d KiB its " \
        "launcher had: cannot measure it" % (peak, floor)
    return rc, out, err, peak, floor


def _write_huge_message(path, gen, size):
    """A realistic message of about size bytes written straight to path
    (never whole in memory): a text part with dot-lines, a base64 PDF of
    random bytes (incompressible) and a base64 CSV export (compressible),
    76-column base64 lines, LF line endings."""
    b = "=_mailgen_huge_%016x" % gen.rng.getrandbits(64)
    head = gen._headers("Year-end archive export (%d MB)" % (size // MIB),
                        'multipart/mixed; boundary="%s"' % b)
    text = gen._text(200_000)
    dots = "\n".join(".%s\n..%s\n.\n" % (gen._words(5), gen._words(3))
                     for _ in range(50))
    raw_block = 57 * 16384  # base64 of whole 57-byte groups: 76-col lines
    # 57 bytes make a 76-column line of base64 and its newline: 77 bytes
    pdf_raw = size * 57 // 100 * 57 // 77
    csv_raw = size * 43 // 100 * 57 // 77
    rows = ["%s,%d,%s" % (gen._words(4), gen.rng.randint(1, 99999),
                          gen._words(6)) for _ in range(3000)]
    with open(path, "wb") as f:
        f.write(head.encode())
        f.write(("This is a multi-part message in MIME format.\n\n"
                 "--%s\nContent-Type: text/plain; charset=us-ascii\n\n"
                 "%s%s\n" % (b, text, dots)).encode())
        f.write(('--%s\nContent-Type: application/pdf; name="ledger.pdf"\n'
                 'Content-Disposition: attachment; filename="ledger.pdf"\n'
                 "Content-Transfer-Encoding: base64\n\n" % b).encode())
        left = pdf_raw
        while left > 0:
            n = min(raw_block, left)
            f.write(base64.encodebytes(gen.rng.randbytes(n)))
            left -= n
        f.write(('\n--%s\nContent-Type: text/csv; name="ledger.csv"\n'
                 'Content-Disposition: attachment; filename="ledger.csv"\n'
                 "Content-Transfer-Encoding: base64\n\n" % b).encode())
        left, row, pending = csv_raw, 0, b""
        while left > 0:
            while len(pending) < raw_block:
                chunk = "".join("%09d,%s\n" % (row + i, rows[(row + i) * 7919
                                                            % len(rows)])
                                for i in range(2000))
                row += 2000
                pending += chunk.encode()
            n = min(raw_block, left)
            f.write(base64.encodebytes(pending[:n]))
            pending = pending[n:]
            left -= n
        f.write(("\n--%s--\n" % b).encode())


def _deliver_file(dc, user, fill):
    """Deliver a message written by fill(path) into user's Maildir, the way
    Dovecot.deliver() does (tmp/, then rename to new/)."""
    md = dc.maildir(user)
    name = "%d.M%06dP%dQhuge.ingestd-test" % (time.time(), 0, os.getpid())
    tmp = os.path.join(md, "tmp", name)
    fill(tmp)
    if harness.is_root():
        os.chown(tmp, dc.mail_uid, dc.mail_gid)
    os.chmod(tmp, 0o600)
    os.rename(tmp, os.path.join(md, "new", name))
    return os.path.getsize(os.path.join(md, "new", name))


def _retr_sha256(dc, user, num=1):
    """SHA-256 and length of what RETR num delivers, hashed as it streams
    (dot-unstuffed, without the terminating line)."""
    p = harness.pop3_connect(dc.pop3s_port, user, dc.users[user],
                             ca_file=dc.ca_file, timeout=120)
    h, size = hashlib.sha256(), 0
    try:
        p._shortcmd("RETR %d" % num)
        while True:
            line = p.file.readline()
            if not line:
                raise harness.HarnessError("connection closed in RETR")
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            h.update(line)
            size += len(line)
    finally:
        p.quit()
    return h.hexdigest(), size


def _file_sha256(path):
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while True:
            b = f.read(MIB)
            if not b:
                return h.hexdigest(), size
            h.update(b)
            size += len(b)


def test_huge_message_memory_is_bounded(env):
    """A 100 MB message costs ingestd less than 16 MiB of peak RSS more
    than a poll of one small message, with the same configuration; it is
    archived byte-exact, exports byte-exact and verifies."""
    ar = Archive(env, "huge")
    gen = mailgen.MailGen(900)
    small = ar.mailbox([gen.message(size=4000)])
    big = ar.mailbox([])
    size = _deliver_file(ar.dc, big, lambda p: _write_huge_message(
        p, gen, 100 * 1000 * 1000))
    assert size >= 100 * 1000 * 1000, size
    want_sha, want_len = _retr_sha256(ar.dc, big)
    assert want_len > size, (want_len, size)  # LF served as CRLF

    small_acct, big_acct = ar.account(small), ar.account(big)
    ar.write_config(accounts=[small_acct])
    ar.ok("migrate")
    rc, out, err, rss_small, floor = _run_measured(ar, ["once"])
    assert rc == 0 and "account=%s " % small in out, \
        "baseline once exited %d%s" % (rc, ar.context())
    ar.write_config(accounts=[big_acct])
    rc, out, err, rss_big, _ = _run_measured(ar, ["once"])
    assert rc == 0, "once exited %d%s" % (rc, ar.context())
    assert "account=%s listed=1 fetched=1 archived=1 " % big in out, \
        ar.context()
    print("# peak RSS: %d KiB polling one small message, %d KiB polling "
          "one of %d bytes (launcher floor %d KiB)"
          % (rss_small, rss_big, want_len, floor))
    assert rss_big - rss_small < 16 * 1024, \
        "a %d-byte message raised ingestd's peak RSS from %d KiB to %d KiB" \
        % (want_len, rss_small, rss_big)

    rows = ar.deliveries(big)
    assert [(r["sha256"], int(r["size"])) for r in rows] == \
        [(want_sha, want_len)], rows
    assert ar.dc.count(big) == 0, "the huge message is still on the server"
    out_dir = os.path.join(env.tmpdir("export"), "out")
    ar.ok("export", "--out", out_dir, "--account", big)
    assert os.listdir(out_dir) == [big], os.listdir(out_dir)
    files = os.listdir(os.path.join(out_dir, big))
    assert files == [want_sha + ".eml"], files
    got = _file_sha256(os.path.join(out_dir, big, files[0]))
    assert got == (want_sha, want_len), \
        "export differs from what RETR delivered: %s vs %s" % (
            got, (want_sha, want_len))
    ar.ok("verify")


# --------------------------------------------------------------------------
# Group commit: PostgreSQL's count of committed transactions

def _xact_commit(pg, dbname, timeout=30):
    """Committed transactions of database dbname, once every backend
    connected to it has gone (a backend flushes its counts when it exits)
    and the counter holds still.  Read from another database, so reading
    adds nothing to it."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        rows = pg.psql(
            "SELECT (SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = '%s'), "
            "(SELECT xact_commit FROM pg_stat_database "
            "WHERE datname = '%s');" % (dbname, dbname), dbname="postgres")
        busy, value = int(rows[0][0]), int(rows[0][1])
        if busy == 0 and value == last:
            return value
        if time.monotonic() > deadline:
            raise harness.HarnessError(
                "xact_commit of %s not settled after %ds (%d backends)"
                % (dbname, timeout, busy))
        last = None if busy else value
        time.sleep(0.2)


def test_messages_share_transactions(env):
    """20 mailboxes of 10 small messages in one `once`: PostgreSQL counts
    the transactions committed in the archive's database; a poll of the
    same mailboxes empty, run just before, gives what the polls cost
    without messages.  The 200 messages must take clearly fewer than 200
    transactions (group commit)."""
    ar = Archive(env, "group")
    gen = mailgen.MailGen(950)
    n, per = 20, 10
    names = _small_mailboxes(ar, gen, n, 0, delete="never")
    ar.write_config(workers=2)
    ar.once()  # migrations, account rows: the first run's own work
    c0 = _xact_commit(ar.pg, ar.dbname)
    ar.once()  # the same polls, nothing to archive
    c1 = _xact_commit(ar.pg, ar.dbname)
    for name in names:
        msgs = [gen.message(size=1500 + 53 * i) for i in range(per)]
        for m in msgs:
            ar.dc.deliver(name, m)
        ar.raw[name] = msgs
    summ = ar.once()
    c2 = _xact_commit(ar.pg, ar.dbname)
    assert all(s["archived"] == per and s["errors"] == 0
               for s in summ.values()), summ
    empty_poll = c1 - c0
    used = (c2 - c1) - empty_poll
    print("# %d messages in %d transactions (empty polls: %d)"
          % (n * per, used, empty_poll))
    _check_archived_from_raw(ar, names)
    assert used >= 1, (c0, c1, c2)
    assert used < n * per // 2, \
        "%d messages took %d transactions (empty polls %d, with messages " \
        "%d): commits are not batched" % (n * per, used, empty_poll, c2 - c1)
