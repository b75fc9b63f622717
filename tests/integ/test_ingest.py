"""End to end: the ingestd binary against a real Dovecot and PostgreSQL.

Each test gets a fresh database and fresh mailboxes on the run's shared
servers.  What the archive must hold is fetched with a read-only POP3
session (no DELE) before ingestd runs: the exact bytes RETR delivers,
after dot-unstuffing, without the terminating line.

ingestd's `once` prints one line per account on stdout:

  account=NAME listed=N fetched=N archived=N deduplicated=N deleted=N
  bytes=N errors=N [more key=value fields]

listed: messages the server listed; fetched: downloaded in full;
archived: committed in this poll; deduplicated: of those, how many had
bytes already stored (no new blob); deleted: deletions confirmed by the
server; bytes: sum of the sizes of the fetched messages; errors: 0 for a
successful poll.
"""

import os
import re

import cutproxy
import harness
import mailgen
from harness import sha256_hex

SUMMARY = re.compile(
    r"^account=(?P<account>\S+) listed=(?P<listed>\d+) "
    r"fetched=(?P<fetched>\d+) archived=(?P<archived>\d+) "
    r"deduplicated=(?P<deduplicated>\d+) deleted=(?P<deleted>\d+) "
    r"bytes=(?P<bytes>\d+) errors=(?P<errors>\d+)(?: .*)?$")
COUNTS = ("listed", "fetched", "archived", "deduplicated", "deleted",
          "bytes", "errors")


class Archive:
    """One test's ingestd: a fresh database and state directory, the
    accounts of its config, and what each mailbox held before ingestd
    ran."""

    def __init__(self, env, prefix):
        self.env = env
        self.pg = env.pg
        self.dc = env.dovecot
        self.prefix = prefix
        self.conninfo = env.database()
        self.dbname = self.conninfo.split("dbname=")[1].split()[0]
        self.dir = env.tmpdir(prefix)
        self.state = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "ingestd.conf")
        self.accounts = []
        self.expected = {}  # account -> [(uidl, bytes)] in POP3 order
        self.raw = {}  # account -> [maildir bytes] as delivered
        self.last = None  # (args, rc, stdout, stderr) of the last run

    # ---- set-up

    def mailbox(self, messages, **over):
        """A new mailbox holding messages, and its config account (implicit
        TLS, auth auto, delete after-archive unless over says otherwise).
        Returns the account name (also the POP3 user name)."""
        name = self.env.unique(self.prefix)
        self.dc.add_user(name, "pw-" + name)
        for m in messages:
            self.dc.deliver(name, m)
        self.raw[name] = list(messages)
        self.accounts.append(self.dc.account(name, **over))
        return name

    def account(self, name):
        return next(a for a in self.accounts if a["name"] == name)

    def snapshot(self):
        """Record what RETR delivers for every mailbox (read-only)."""
        for a in self.accounts:
            name = a["name"]
            self.expected[name] = harness.fetch_all(
                self.dc.pop3s_port, name, self.dc.users[name],
                self.dc.ca_file)
            got = [b for _, b in self.expected[name]]
            want = [mailgen.served(r) for r in self.raw[name]]
            assert got == want, "fixture: %s serves unexpected bytes" % name

    def write_config(self, accounts=None, **kw):
        harness.write_config(self.conf, accounts or self.accounts,
                             self.state, self.conninfo, **kw)
        return self.conf

    # ---- running ingestd

    def run(self, *args, timeout=180):
        rc, out, err = harness.run_ingestd(["-c", self.conf] + list(args),
                                           timeout=timeout)
        self.last = (args, rc, out, err)
        return rc, out, err

    def context(self):
        """The last run's output, for assertion messages."""
        if self.last is None:
            return ""
        args, rc, out, err = self.last
        return ("\n--- ingestd %s: exit %d\n--- stdout:\n%s--- stderr:\n%s"
                % (" ".join(args), rc, out[-6000:], err[-6000:]))

    def once(self, expect_rc=0, timeout=180):
        """Run `once`; check its exit code and that it printed one summary
        line per enabled account.  Returns {account: {count: int}}."""
        rc, out, err = self.run("once", timeout=timeout)
        summ = {}
        for line in out.splitlines():
            m = SUMMARY.match(line)
            if m:
                assert m.group("account") not in summ, \
                    "two summary lines for %s%s" % (m.group("account"),
                                                    self.context())
                summ[m.group("account")] = {k: int(m.group(k))
                                            for k in COUNTS}
        if expect_rc == 0:
            assert rc == 0, "once exited %d%s" % (rc, self.context())
        else:
            assert rc == expect_rc, "once exited %d, expected %d%s" % (
                rc, expect_rc, self.context())
        names = {a["name"] for a in self.accounts
                 if a.get("enabled", True)}
        assert set(summ) == names, "summary lines for %s, accounts %s%s" % (
            sorted(summ), sorted(names), self.context())
        return summ

    def ok(self, *args, timeout=180):
        rc, out, err = self.run(*args, timeout=timeout)
        assert rc == 0, "ingestd %s exited %d%s" % (" ".join(args), rc,
                                                   self.context())
        return out

    # ---- what the archive holds

    def sql(self, query):
        return self.pg.psql("SET search_path = ingestd, public;\n" + query,
                            dbname=self.dbname)

    def deliveries(self, account=None):
        """[{account, uidl, sha256, size, archived_at, server_deleted_at}]"""
        q = ("SELECT account, uidl, sha256, size, archived_at, "
             "server_deleted_at FROM deliveries")
        if account is not None:
            q += " WHERE account = '%s'" % account
        rows = self.sql(q + " ORDER BY account, uidl;")
        keys = ("account", "uidl", "sha256", "size", "archived_at",
                "server_deleted_at")
        return [dict(zip(keys, r)) for r in rows]

    def blobs(self):
        """{sha256: (size, stored_size)}"""
        return {r[0]: (int(r[1]), int(r[2])) for r in
                self.sql("SELECT sha256, size, stored_size FROM blobs;")}

    def polls(self, account):
        keys = ("outcome", "error") + COUNTS[:-1]
        rows = self.sql(
            "SELECT outcome, error, listed, fetched, archived, deduplicated, "
            "deleted, bytes FROM polls WHERE account = '%s' "
            "ORDER BY started_at;" % account)
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            for k in COUNTS[:-1]:
                d[k] = int(d[k])
            out.append(d)
        return out

    def export(self, account=None):
        """Run export into a fresh directory; returns
        {account: {file name: bytes}}."""
        out = os.path.join(self.env.tmpdir("export"), "out")
        args = ["export", "--out", out]
        if account is not None:
            args += ["--account", account]
        self.ok(*args)
        result = {}
        for acct in sorted(os.listdir(out)):
            d = os.path.join(out, acct)
            assert os.path.isdir(d), "export wrote a file %s at the top" % d
            result[acct] = {}
            for f in os.listdir(d):
                with open(os.path.join(d, f), "rb") as fh:
                    result[acct][f] = fh.read()
        return result

    # ---- checks shared by the tests

    def check_archived(self, account):
        """The archive holds exactly the messages the mailbox had, each
        once, byte-exact in deliveries and blobs."""
        exp = self.expected[account]
        rows = self.deliveries(account)
        want = sorted((u, sha256_hex(b), len(b)) for u, b in exp)
        got = sorted((r["uidl"], r["sha256"], int(r["size"])) for r in rows)
        assert got == want, "deliveries of %s:\n got %s\nwant %s" % (
            account, got, want)
        assert all(r["archived_at"] for r in rows)
        blobs = self.blobs()
        for _, b in exp:
            h = sha256_hex(b)
            assert h in blobs, "no blob %s (%s)" % (h, account)
            size, stored = blobs[h]
            assert size == len(b), "blob %s size %d, message has %d" % (
                h, size, len(b))
            assert stored > 0, "blob %s stored_size %d" % (h, stored)

    def check_export(self, exported, accounts=None):
        """export wrote DIR/<account>/<sha256>.eml for exactly the archived
        messages, byte-exact."""
        accounts = accounts or [a["name"] for a in self.accounts]
        want_accounts = sorted(a for a in accounts if self.expected.get(a))
        assert sorted(exported) == want_accounts, \
            "export has accounts %s, want %s" % (sorted(exported),
                                                  want_accounts)
        for acct in want_accounts:
            want = {sha256_hex(b) + ".eml": b for _, b in
                    self.expected[acct]}
            got = exported[acct]
            assert sorted(got) == sorted(want), \
                "export of %s: files %s, want %s" % (acct, sorted(got),
                                                    sorted(want))
            for f, b in want.items():
                assert got[f] == b, "export %s/%s differs from what RETR " \
                    "delivered (%d vs %d bytes)" % (acct, f, len(got[f]),
                                                    len(b))

    def check_drained(self, account):
        assert self.dc.count(account) == 0, \
            "%s still holds %d messages" % (account, self.dc.count(account))
        for r in self.deliveries(account):
            assert r["server_deleted_at"], \
                "%s: %s deleted but server_deleted_at is NULL" % (
                    account, r["uidl"])

    def check_untouched(self, account):
        assert self.dc.messages(account) == self.raw[account], \
            "%s: the server's mailbox changed" % account
        for r in self.deliveries(account):
            assert r["server_deleted_at"] is None, \
                "%s: %s marked deleted but still on the server" % (
                    account, r["uidl"])

    def check_summary(self, summ, account, **want):
        got = summ[account]
        bad = {k: (got[k], v) for k, v in want.items() if got[k] != v}
        assert not bad, "summary of %s: %s (got, want)%s" % (
            account, bad, self.context())

    def check_no_secrets(self):
        args, rc, out, err = self.last
        for a in self.accounts:
            pw = a.get("password") or self.dc.users[a["name"]]
            assert pw not in out and pw not in err, \
                "the password of %s appears in ingestd's output" % a["name"]


def _mixed_mailbox(seed, count, big=0):
    return mailgen.MailGen(seed).mailbox(count, big=big,
                                         big_size=(2_000_000, 3_500_000))


# --------------------------------------------------------------------------

def test_once_archives_many_mailboxes_byte_exact(env):
    """12 mailboxes of varied mail (multi-MB attachments, dot lines, long
    lines, 8-bit, CRLF): check/migrate work, `once` archives everything
    byte-exact, drains the after-archive mailboxes and leaves the "never"
    ones untouched; export and verify agree; a second `once` downloads
    nothing."""
    ar = Archive(env, "many")
    never = set()
    for i in range(12):
        over = {}
        if i % 3 == 1:
            over["tls"] = "starttls"
        if i in (3, 7, 11):
            over["delete"] = "never"
        name = ar.mailbox(_mixed_mailbox(100 + i, 6 + i % 5,
                                         big=1 if i in (0, 5, 10) else 0),
                          **over)
        if i in (3, 7, 11):
            never.add(name)
    ar.snapshot()
    everything = [b for msgs in ar.expected.values() for _, b in msgs]
    assert any(len(l) > 65536 for b in everything for l in b.split(b"\n"))
    assert any(b"\r\n.\r\n" in b for b in everything)
    assert any(b"\r\n..\r\n" in b for b in everything)
    assert any(max(b) >= 0x80 for b in everything)
    assert max(len(b) for b in everything) > 2_000_000

    ar.write_config()
    ar.ok("check")
    ar.ok("migrate")
    ar.ok("migrate")  # nothing left to apply is not an error

    summ = ar.once()
    ar.check_no_secrets()
    for a in ar.accounts:
        name = a["name"]
        exp = ar.expected[name]
        n = len(exp)
        ar.check_summary(summ, name, listed=n, fetched=n, archived=n,
                         deduplicated=0, deleted=0 if name in never else n,
                         bytes=sum(len(b) for _, b in exp), errors=0)
        ar.check_archived(name)
        if name in never:
            ar.check_untouched(name)
        else:
            ar.check_drained(name)
        # each message was downloaded once: the snapshot's session and then
        # ingestd's, which RETRieved every message exactly once
        sessions = ar.dc.sessions(name, want=2)
        assert len(sessions) == 2 and sessions[1]["retr"] == n, \
            "%s: Dovecot saw sessions %s, want one RETR of each of %d" % (
                name, sessions, n)
        polls = ar.polls(name)
        assert len(polls) == 1 and polls[0]["outcome"] == "ok", polls
        for k in COUNTS[:-1]:
            assert polls[0][k] == summ[name][k], \
                "%s: polls.%s = %d, summary says %d" % (
                    name, k, polls[0][k], summ[name][k])
    distinct = {sha256_hex(b) for b in everything}
    assert set(ar.blobs()) == distinct

    ar.check_export(ar.export())
    one = ar.accounts[5]["name"]
    ar.check_export(ar.export(account=one), accounts=[one])
    ar.ok("verify")

    # A second poll: nothing new, nothing downloaded, nothing changed.
    before = sorted((r["account"], r["uidl"], r["sha256"])
                    for r in ar.deliveries())
    summ = ar.once()
    for a in ar.accounts:
        name = a["name"]
        n = len(ar.expected[name])
        ar.check_summary(summ, name, listed=n if name in never else 0,
                         fetched=0, archived=0, deduplicated=0, deleted=0,
                         bytes=0, errors=0)
        sessions = ar.dc.sessions(name, want=3)
        assert sessions[-1]["retr"] == 0, \
            "%s: second poll downloaded again: %s" % (name, sessions[-1])
        assert len(ar.polls(name)) == 2
        if name in never:
            ar.check_untouched(name)
    after = sorted((r["account"], r["uidl"], r["sha256"])
                   for r in ar.deliveries())
    assert after == before, "the second poll changed the deliveries"
    assert set(ar.blobs()) == distinct


def test_message_in_five_mailboxes_is_stored_once(env):
    ar = Archive(env, "dup")
    gen = mailgen.MailGen(200)
    shared = gen.message(kind="attachment", size=300_000,
                         subject="Sent to five mailboxes")
    names = []
    for i in range(5):
        own = [gen.message(), gen.message()]
        names.append(ar.mailbox(own[:1] + [shared] + own[1:]))
    loner = ar.mailbox([gen.message(), gen.message()])
    ar.snapshot()
    h = sha256_hex(mailgen.served(shared))
    ar.write_config()
    summ = ar.once()
    for name in names + [loner]:
        ar.check_archived(name)
        ar.check_drained(name)
    rows = [r for r in ar.deliveries() if r["sha256"] == h]
    assert sorted(r["account"] for r in rows) == sorted(names), rows
    blobs = ar.blobs()
    assert h in blobs and blobs[h][0] == len(mailgen.served(shared))
    distinct = {sha256_hex(b) for msgs in ar.expected.values()
                for _, b in msgs}
    assert len(blobs) == len(distinct) == 5 * 2 + 2 + 1, len(blobs)
    archived = sum(s["archived"] for s in summ.values())
    dedup = sum(s["deduplicated"] for s in summ.values())
    assert archived == 17, summ
    assert archived - dedup == len(blobs), \
        "archived %d - deduplicated %d should be the %d new blobs: %s" % (
            archived, dedup, len(blobs), summ)

    # The same message arriving later, in a mailbox already polled and in a
    # new one, adds deliveries and no blob.
    ar.dc.deliver(loner, shared)
    ar.raw[loner] = [shared]
    late = ar.mailbox([shared])
    ar.expected[loner] = harness.fetch_all(
        ar.dc.pop3s_port, loner, ar.dc.users[loner], ar.dc.ca_file)
    ar.expected[late] = harness.fetch_all(
        ar.dc.pop3s_port, late, ar.dc.users[late], ar.dc.ca_file)
    ar.write_config()
    summ = ar.once()
    for name in (loner, late):
        ar.check_summary(summ, name, listed=1, fetched=1, archived=1,
                         deduplicated=1, deleted=1, errors=0)
    rows = [r for r in ar.deliveries() if r["sha256"] == h]
    assert len(rows) == 7, rows
    assert len(ar.blobs()) == len(blobs), "a known message made a new blob"


def test_tls_modes_and_authentication_methods(env):
    """Implicit TLS and STLS, each with USER/PASS, APOP and AUTH PLAIN
    (and auto), host names verified for an IP and for "localhost"."""
    ar = Archive(env, "tls")
    gen = mailgen.MailGen(300)
    combos = [("implicit", "auto"), ("starttls", "auto"),
              ("implicit", "user"), ("implicit", "apop"),
              ("implicit", "plain"), ("starttls", "user"),
              ("starttls", "apop"), ("starttls", "plain")]
    kinds = {}
    for tls, auth in combos:
        name = ar.mailbox([gen.message(), gen.message(kind="dots")],
                          tls=tls, auth=auth)
        kinds[name] = auth
    by_name = ar.mailbox([gen.message()], host="localhost")
    kinds[by_name] = "auto"
    # a password read from a file (its first line)
    pwfile_user = ar.mailbox([gen.message()])
    pwfile = os.path.join(ar.dir, "pw.txt")
    with open(pwfile, "w") as f:
        f.write(ar.dc.users[pwfile_user] + "\nnot part of the password\n")
    os.chmod(pwfile, 0o600)
    acct = ar.account(pwfile_user)
    del acct["password"]
    acct["password_file"] = pwfile
    kinds[pwfile_user] = "auto"
    ar.snapshot()
    ar.write_config()
    summ = ar.once()
    ar.check_no_secrets()
    for name, auth in kinds.items():
        n = len(ar.expected[name])
        ar.check_summary(summ, name, listed=n, fetched=n, archived=n,
                         deleted=n, errors=0)
        ar.check_archived(name)
        ar.check_drained(name)
        logins = ar.dc.logins(name, want=2)
        assert len(logins) == 2, logins
        ing = logins[1]
        assert ing["tls"], "%s logged in without TLS: %s" % (name, ing)
        if auth == "apop":
            assert ing["method"] == "APOP", (name, ing)
        elif auth in ("user", "plain"):
            assert ing["method"] == "PLAIN", (name, ing)
    ar.check_export(ar.export())


def test_plaintext_auth_commands_on_the_wire(env):
    """With tls = "none" (allowed explicitly) the commands can be seen: auth
    "user" sends USER/PASS, "apop" sends APOP, "plain" sends AUTH PLAIN."""
    ar = Archive(env, "wire")
    gen = mailgen.MailGen(400)
    proxies = {}
    try:
        for auth in ("user", "apop", "plain"):
            px = cutproxy.CutProxy(ar.dc.pop3_port, record=True)
            proxies[auth] = px
            ar.mailbox([gen.message()], tls="none", allow_plaintext=True,
                       auth=auth, port=px.port)
        ar.snapshot()
        ar.write_config()
        summ = ar.once()
    finally:
        for px in proxies.values():
            px.stop()
    for a, auth in zip(ar.accounts, ("user", "apop", "plain")):
        name = a["name"]
        ar.check_summary(summ, name, listed=1, fetched=1, archived=1,
                         deleted=1, errors=0)
        ar.check_archived(name)
        sent = proxies[auth].client_bytes()
        assert b"STLS" not in sent, sent
        has = {"user": b"USER %s\r\n" % name.encode() in sent
               and b"\r\nPASS " in sent,
               "apop": re.search(rb"(^|\r\n)APOP %s [0-9a-f]{32}\r\n"
                                 % name.encode(), sent) is not None,
               "plain": re.search(rb"(^|\r\n)AUTH PLAIN", sent) is not None}
        assert has[auth] and sum(has.values()) == 1, \
            "auth %s sent: %r" % (auth, sent[:600])
        if auth != "user":
            assert b"PASS " not in sent, sent


def test_plaintext_refused_unless_allowed(env):
    ar = Archive(env, "plain")
    name = ar.mailbox([b"Subject: x\n\ny\n"], tls="none")
    ar.write_config()
    rc, out, err = ar.run("check")
    assert rc != 0, "check accepted tls = \"none\" without " \
        "allow_plaintext%s" % ar.context()
    assert "allow_plaintext" in out + err, ar.context()
    assert ar.dc.count(name) == 1


def test_wrong_password_fails_only_that_account(env):
    ar = Archive(env, "authfail")
    gen = mailgen.MailGen(500)
    good1 = ar.mailbox([gen.message() for _ in range(3)])
    bad = ar.mailbox([gen.message() for _ in range(2)])
    good2 = ar.mailbox([gen.message() for _ in range(3)],
                       tls="starttls")
    ar.snapshot()
    wrong = "not-the-password-%s" % bad
    ar.account(bad)["password"] = wrong
    ar.write_config()
    summ = ar.once(expect_rc=1)
    for name in (good1, good2):
        n = len(ar.expected[name])
        ar.check_summary(summ, name, listed=n, fetched=n, archived=n,
                         deleted=n, errors=0)
        ar.check_archived(name)
        ar.check_drained(name)
    ar.check_summary(summ, bad, fetched=0, archived=0, deleted=0, bytes=0)
    assert summ[bad]["errors"] >= 1, summ[bad]
    assert ar.deliveries(bad) == []
    ar.check_untouched(bad)
    polls = ar.polls(bad)
    assert len(polls) == 1 and polls[0]["outcome"] == "permanent", polls
    assert polls[0]["error"], "no error text recorded for %s" % bad
    assert wrong not in polls[0]["error"]
    args, rc, out, err = ar.last
    assert wrong not in out and wrong not in err, \
        "the wrong password was printed"
    ar.check_no_secrets()


def test_unknown_ca_is_refused(env):
    """A server whose certificate does not chain to ca_file is not spoken
    to; the other accounts carry on."""
    ar = Archive(env, "ca")
    gen = mailgen.MailGen(600)
    good = ar.mailbox([gen.message()])
    other_ca, _ = harness.make_ca(ar.dir, name="other-ca", cn="not our CA")
    bad_implicit = ar.mailbox([gen.message()], ca_file=other_ca)
    bad_stls = ar.mailbox([gen.message()], ca_file=other_ca,
                          tls="starttls")
    ar.snapshot()
    ar.write_config()
    summ = ar.once(expect_rc=1)
    ar.check_archived(good)
    ar.check_drained(good)
    for bad in (bad_implicit, bad_stls):
        ar.check_summary(summ, bad, fetched=0, archived=0, deleted=0)
        assert summ[bad]["errors"] >= 1
        assert ar.deliveries(bad) == []
        ar.check_untouched(bad)
        polls = ar.polls(bad)
        assert len(polls) == 1 and polls[0]["outcome"] == "permanent", \
            polls
        # no login reached Dovecot: only the snapshot's
        assert len(ar.dc.logins(bad, want=1)) == 1


def _cut_mid_retr(env, prefix, rst):
    ar = Archive(env, prefix)
    gen = mailgen.MailGen(700 + rst)
    small = [gen.message(size=3000 + 1000 * i) for i in range(3)]
    big = gen.message(kind="attachment", size=4_000_000)
    tail = [gen.message(size=5000) for i in range(2)]
    name = ar.mailbox(small + [big] + tail)
    ar.snapshot()
    exp = ar.expected[name]
    assert [b for _, b in exp][3] == mailgen.served(big)
    # Cut once the small ones and half the big one have gone through.
    before_big = sum(len(b) for _, b in exp[:3])
    cut_at = before_big + len(mailgen.served(big)) // 2
    with cutproxy.CutProxy(ar.dc.pop3s_port, cut_after=cut_at,
                           rst=rst) as px:
        ar.account(name)["port"] = px.port
        ar.write_config()
        summ = ar.once(expect_rc=1)
        assert px.cuts >= 1, "the proxy never cut (%d connections)" % (
            px.connections)
    # Nothing was deleted: the server still has every message.
    assert ar.dc.messages(name) == ar.raw[name], \
        "messages left the server after a cut session"
    rows = ar.deliveries(name)
    big_h = sha256_hex(mailgen.served(big))
    assert big_h not in {r["sha256"] for r in rows}, \
        "a message cut mid-RETR was archived"
    first3 = {sha256_hex(b) for _, b in exp[:3]}
    assert {r["sha256"] for r in rows} <= first3, rows
    assert all(r["server_deleted_at"] is None for r in rows), rows
    assert summ[name]["errors"] >= 1 and summ[name]["deleted"] == 0, \
        summ[name]
    polls = ar.polls(name)
    assert len(polls) == 1 and polls[0]["outcome"] == "temporary", polls
    done_before = len(rows)

    # The next poll, direct: finishes the work without downloading again
    # what is already archived.
    ar.account(name)["port"] = ar.dc.pop3s_port
    ar.write_config()
    summ = ar.once()
    rest = len(exp) - done_before
    ar.check_summary(summ, name, listed=len(exp), fetched=rest,
                     archived=rest, deleted=len(exp), errors=0)
    ar.check_archived(name)
    ar.check_drained(name)
    last = ar.dc.sessions(name)[-1]
    assert last["retr"] == rest, \
        "second poll RETRieved %d, %d were missing" % (last["retr"], rest)
    ar.check_export(ar.export())


def test_session_cut_mid_retr_deletes_nothing(env):
    _cut_mid_retr(env, "cut", rst=False)


def test_session_reset_mid_retr_deletes_nothing(env):
    _cut_mid_retr(env, "rst", rst=True)


def _top_counts(dc, user):
    """TOP commands of each ended POP3 session of user, oldest first (from
    Dovecot's logout line: top=COMMANDS/BYTES)."""
    rx = re.compile(r"pop3\(%s\)<[^:]*: Info: .*? top=(\d+)/\d+ retr="
                    % re.escape(user))
    try:
        with open(dc.log, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [int(m.group(1)) for m in map(rx.search, text.splitlines()) if m]


def test_switch_from_never_to_after_archive(env):
    """A mailbox archived with delete = "never" and later switched to
    "after-archive" is emptied by the next poll without downloading again
    what is archived: each such message is proven by TOP n 0 and deleted,
    and its server_deleted_at is set; only mail that arrived since is
    RETRieved.  Enough messages to fill the pipelining window several
    times, and header blocks at their edges: none at all, no end of line,
    an empty first line, header lines starting with ".", a lone CR."""
    ar = Archive(env, "switch")
    gen = mailgen.MailGen(1000)
    msgs = [gen.message(kind=k) for k in ("plain", "dots", "crlf", "utf8",
                                          "alternative", "longline",
                                          "latin1", "html")]
    msgs.append(gen.message(kind="attachment", size=1_500_000))
    msgs += [gen.message(size=1200 + 10 * i) for i in range(12)]
    msgs += [b"Subject: only a header\nX-Id: switch-1\n",
             b"Subject: no end of line, X-Id: switch-2",
             b"\nX-Id: switch-3, no header at all\n",
             b"Subject: dots\n.Hidden: a\n..Two: b\n.\n\nbody\n.\n",
             b"Subject: lone CR\rX-Id: switch-5\n\nbody\n",
             b"Subject: empty body\nX-Id: switch-6\n\n"]
    name = ar.mailbox(msgs, delete="never")
    ar.snapshot()
    n = len(msgs)
    ar.write_config()
    summ = ar.once()
    ar.check_summary(summ, name, listed=n, fetched=n, archived=n, deleted=0,
                     errors=0)
    ar.check_archived(name)
    ar.check_untouched(name)
    before = sorted((r["uidl"], r["sha256"], r["archived_at"])
                    for r in ar.deliveries(name))

    # Mail that arrives in between, then the switch.
    new = [gen.message(kind="dots"), gen.message()]
    for m in new:
        ar.dc.deliver(name, m)
    ar.raw[name] = msgs + new
    ar.snapshot()
    ar.account(name)["delete"] = "after-archive"
    ar.write_config()
    summ = ar.once()
    ar.check_summary(summ, name, listed=n + 2, fetched=2, archived=2,
                     deduplicated=0, deleted=n + 2,
                     bytes=sum(len(b) for _, b in ar.expected[name][n:]),
                     errors=0)
    sessions = ar.dc.sessions(name, want=4)
    assert len(sessions) == 4, sessions
    last = sessions[-1]
    assert last["retr"] == 2, \
        "the poll after the switch RETRieved %d messages, 2 were new: %s" \
        % (last["retr"], last)
    assert last["deleted"] == n + 2, "Dovecot deleted %d of %d: %s" % (
        last["deleted"], n + 2, last)
    tops = _top_counts(ar.dc, name)
    assert len(tops) == 4 and tops[-1] == n, \
        "TOP commands per session: %s; want %d in the last" % (tops, n)
    ar.check_archived(name)
    ar.check_drained(name)
    after = {(r["uidl"], r["sha256"], r["archived_at"])
             for r in ar.deliveries(name)}
    assert set(before) <= after, "deliveries archived before changed: " \
        "%s" % sorted(set(before) - after)
    ar.check_export(ar.export())
    ar.ok("verify")


def test_export_one_account_and_verify_detects_damage(env):
    """export --account writes that account's messages only, named by
    their SHA-256; verify passes, then fails with exit 1 naming exactly
    the damaged blobs once their chunks are changed in PostgreSQL (a byte
    flipped, a byte cut off), while an account that refers to neither
    still verifies."""
    ar = Archive(env, "damage")
    gen = mailgen.MailGen(1100)
    shared = gen.message(kind="alternative", subject="To A and B")
    # 4 MB of random base64: several 1 MiB chunks once compressed
    big = gen.message(kind="attachment", size=4_000_000)
    while b"application/pdf" not in big:
        big = gen.message(kind="attachment", size=4_000_000)
    a = ar.mailbox([gen.message(), big, shared])
    b = ar.mailbox([gen.message(kind="dots"), shared])
    c = ar.mailbox([gen.message(kind="crlf"), gen.message()])
    ar.snapshot()
    ar.write_config()
    ar.once()
    for name in (a, b, c):
        ar.check_archived(name)

    exported = ar.export(account=a)
    assert list(exported) == [a], "export --account %s wrote %s" % (
        a, sorted(exported))
    ar.check_export(exported, accounts=[a])
    assert all(re.fullmatch(r"[0-9a-f]{64}\.eml", f)
               for f in exported[a]), sorted(exported[a])
    rc, out, err = ar.run("export", "--out",
                          os.path.join(ar.dir, "none"), "--account",
                          "no-such-account")
    assert rc == 1, "export of an unknown account exited %d%s" % (
        rc, ar.context())
    out = ar.ok("verify")
    assert "0 damaged" in out, out

    h = sha256_hex(mailgen.served(big))
    chunks = int(ar.sql("SELECT count(*) FROM blob_chunk "
                        "WHERE sha256 = decode('%s', 'hex');" % h)[0][0])
    assert chunks >= 2, "the big message has %d chunks" % chunks
    # One byte flipped in the middle of the big message's second chunk,
    # and the one chunk of a small message of b's one byte short.
    ar.sql("UPDATE blob_chunk SET data = set_byte(data, 5000, "
           "get_byte(data, 5000) # 255) WHERE sha256 = decode('%s', 'hex') "
           "AND seq = 1;" % h)
    h2 = sha256_hex(ar.expected[b][0][1])
    ar.sql("UPDATE blob_chunk SET data = substring(data FROM 1 FOR "
           "length(data) - 1) WHERE sha256 = decode('%s', 'hex');" % h2)
    rc, out, err = ar.run("verify")
    assert rc == 1, "verify exited %d after damage%s" % (rc, ar.context())
    for damaged in (h, h2):
        assert damaged in out + err, "verify did not name blob %s%s" % (
            damaged, ar.context())
    others = {sha256_hex(m) for _, m in
              ar.expected[a] + ar.expected[b] + ar.expected[c]} - {h, h2}
    named = set(re.findall(r"[0-9a-f]{64}", out + err))
    assert not named & others, "verify named intact blobs %s%s" % (
        sorted(named & others), ar.context())
    assert "2 damaged" in out, ar.context()
    rc, out, err = ar.run("verify", "--account", c)
    assert rc == 0, "verify --account %s failed for a blob it does not " \
        "refer to%s" % (c, ar.context())
    # The damaged message is never exported under its name.
    dest = os.path.join(ar.env.tmpdir("export"), "out")
    rc, out, err = ar.run("export", "--out", dest, "--account", a)
    assert rc == 1, "export of damaged %s exited %d%s" % (a, rc,
                                                         ar.context())
    assert h in out + err, ar.context()
    assert not os.path.exists(os.path.join(dest, a, h + ".eml")), \
        "export wrote the damaged message as %s.eml" % h
