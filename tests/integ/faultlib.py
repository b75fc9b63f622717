"""The fault tests' fixture: ingestd against tests/fake/fakepop3.py.

    fr = FaultRun(env, "cut")                  # fresh database and config
    srv = fr.server()                          # fakepop3, implicit TLS
    a = fr.mailbox(srv, files=msgs, directives=["@1 CUT RETR:2 500 RST"])
    ok = fr.mailbox(srv, files=more)           # a healthy account
    summ = fr.once(expect_rc=1)
    fr.check_archived(ok); fr.check_left(ok, [])
    fr.check_dele_proven(a)                    # every DELE was archived first

Each server keeps, per user, a model of its mailbox: the messages in
listing order (files by name, then generated ones) with the exact bytes
RETR delivers (the stored bytes, plus the line end fakepop3 adds when a
file lacks one).  The transcript maps every DELE back to a message of that
model, and every applied update removes messages from it, so a test can
say which message a DELE named and what the server must still hold.
"""

import hashlib
import logging
import os
import re
import sys

import harness
from harness import sha256_hex

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fake"))

import fakepop3  # noqa: E402
from fakepop3 import FakePop3, GenSpec, read_transcript  # noqa: E402

# Short enough that a stalled or silent server costs seconds, long enough
# for a loaded machine to answer.
TIMEOUTS = {"connect_timeout": 5, "command_timeout": 10,
            "session_timeout": 120}

SUMMARY_START = re.compile(r"^account=(\S+) ")
SUMMARY_FIELD = re.compile(r"(\w+)=(\S*)")
COUNTS = ("listed", "fetched", "archived", "deduplicated", "deleted",
          "bytes", "errors")

# fakepop3 keeps writing a long junk reply after ingestd has hung up on
# it; asyncio warns about each such write.  Expected here: keep the
# test output readable.
logging.getLogger("asyncio").setLevel(logging.ERROR)

_pki = {}


def pki(env):
    """The run's test PKI from fakepop3 (made once per run):
    {name: (cert, key)} for ca, good, expired, selfsigned, wronghost."""
    if env.root not in _pki:
        d = os.path.join(env.root, "fake-pki")
        _pki[env.root] = {k: (str(c), str(k_))
                          for k, (c, k_) in fakepop3.make_certs(d).items()}
        harness.open_tree(d)
    return _pki[env.root]


def crlf(text):
    """A message written with \\n as CRLF bytes."""
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message(n, tag="m", body_lines=8, extra=b""):
    """A small CRLF message, distinct for each (tag, n)."""
    lines = ["From: <sender@example.invalid>",
             "To: <%s@example.invalid>" % tag,
             "Subject: %s message %d" % (tag, n),
             "Message-ID: <%s.%d@example.invalid>" % (tag, n),
             ""]
    lines += ["line %d of %s %d" % (i, tag, n) for i in range(body_lines)]
    lines += [".a line starting with a dot", ".", "..", "end"]
    return crlf("\n".join(lines) + "\n") + extra


class Msg:
    """One message as the server lists it: an id (file name or g<i>), its
    UIDL as the server computes it, and the bytes RETR delivers."""

    __slots__ = ("id", "uidl", "data", "file")

    def __init__(self, id_, uidl, data, file=None):
        self.id = id_
        self.uidl = uidl
        self.data = data
        self.file = file

    @property
    def bytes(self):
        d = self.data
        return d.get() if isinstance(d, GeneratedBytes) else d

    @property
    def sha256(self):
        return sha256_hex(self.bytes)

    def __repr__(self):
        return "<msg %s %d bytes>" % (self.id, len(self.bytes))


class User:
    def __init__(self, name, password, directives, bare_lf):
        self.name = name
        self.password = password
        self.directives = list(directives)
        self.gens = []
        self.msgs = []  # listing order: files by name, then generated
        self.bare_lf = bare_lf


class Server:
    """A fakepop3 server on 127.0.0.1 (and ::1, where localhost stands for
    it too) serving some of a FaultRun's mailboxes.  tls: "implicit"
    (POP3S), "starttls" (STLS offered) or "none"; cert: a name from pki()
    ("good", "expired", ...)."""

    def __init__(self, fr, tls="implicit", cert="good", global_lines=()):
        self.fr = fr
        self.tls = tls
        self.cert = cert
        self.global_lines = list(global_lines)
        self.dir = os.path.join(fr.dir, "pop-%d" % len(fr.servers))
        os.makedirs(self.dir)
        self.users = {}
        kw = {}
        if tls != "none":
            c, k = pki(fr.env)[cert]
            kw = {"tls_cert": c, "tls_key": k,
                  "implicit": tls == "implicit"}
        self.srv = FakePop3(self.dir, scenario=self.scenario_text(),
                            host="localhost", max_stall=60, idle_timeout=120,
                            **kw)
        self.srv.start()
        harness._register(self)
        self.port = self.srv.port

    def __repr__(self):
        return "fakepop3(%s port %d)" % (self.dir, self.port)

    def stop(self):
        harness._unregister(self)
        self.srv.stop()

    # ---- mailboxes

    def scenario_text(self):
        lines = list(self.global_lines)
        for u in self.users.values():
            lines.append("USER %s %s" % (u.name, u.password))
            lines += ["GENERATE " + g for g in u.gens]
            lines += u.directives
        return "\n".join(lines) + "\n"

    def add_user(self, name, password, files=(), gens=(), directives=(),
                 bare_lf=False):
        """files: [(file name, bytes)] or [bytes] (named m0001...);
        gens: GENERATE specs ("5 2K..40K seed=3")."""
        u = User(name, password, directives, bare_lf)
        mdir = os.path.join(self.dir, name)
        os.makedirs(mdir)
        eol = b"\n" if bare_lf else b"\r\n"
        named = []
        for i, f in enumerate(files, 1):
            fname, data = f if isinstance(f, tuple) else ("m%04d" % i, f)
            named.append((fname, data))
        for fname, data in sorted(named):
            with open(os.path.join(mdir, fname), "wb") as fh:
                fh.write(data)
            served = data
            if data and not data.endswith(eol):
                served += eol
            uidl = fname if fakepop3._valid_uidl(fname) else \
                "h" + hashlib.sha1(fname.encode()).hexdigest()
            u.msgs.append(Msg(fname, uidl, served, file=fname))
        for spec in gens:
            g = GenSpec.parse(spec.split())
            u.gens.append(spec)
            for i in range(1, g.count + 1):
                u.msgs.append(Msg("%s#%d" % (g.key, i), g.uidl_of(i),
                                  GeneratedBytes(g, i)))
        self._shape_uidls(u)
        self.users[name] = u
        self.srv.reload(self.scenario_text())
        return u

    @staticmethod
    def _shape_uidls(u):
        """The UIDLs the server lists, as far as the scenario fixes them
        for every session (None: they change, or are not known here)."""
        for d in u.directives:
            w = d.split()
            if not w or w[0].startswith("@"):
                continue
            kw = w[0].upper()
            if kw in ("UIDL-CHANGE", "UIDL-LONG", "UIDL-BINARY", "NO-UIDL"):
                for m in u.msgs:
                    m.uidl = None
            elif kw == "SET-UIDL":
                u.msgs[int(w[1]) - 1].uidl = w[2]
            elif kw == "UIDL-DUP":
                u.msgs[int(w[2]) - 1].uidl = u.msgs[int(w[1]) - 1].uidl

    def reload(self):
        self.srv.reload(self.scenario_text())

    def files_left(self, user):
        """Message files still in the mailbox directory, sorted."""
        mdir = os.path.join(self.dir, user)
        return sorted(e for e in os.listdir(mdir) if not e.startswith("."))

    # ---- the transcript

    def events(self, user=None):
        return [e for e in read_transcript(self.srv.transcript_path)
                if user is None or e.user == user]

    def conns(self, user):
        """{conn: [events]} of the connections that named user, in order.
        A connection's events before USER/APOP/AUTH named the user have
        user "-" and are included (the greeting, CAPA, STLS)."""
        evs = read_transcript(self.srv.transcript_path)
        mine = {e.conn for e in evs if e.user == user}
        out = {}
        for e in evs:
            if e.conn in mine:
                out.setdefault(e.conn, []).append(e)
        return out

    def commands(self, user):
        """Every line the client sent on user's connections: [(conn,
        text, tls)]."""
        return [(c, e.text, e.tls) for c, evs in self.conns(user).items()
                for e in evs if e.kind == "C"]

    def replay(self, user):
        """Replays user's sessions against the model of the mailbox.
        Returns (deles, applied, left): deles [(conn, time, Msg)] for every
        DELE the client sent, answered or not, applied [(conn, Msg)] for
        every deletion an update carried out, left [Msg] what the model
        still holds."""
        u = self.users[user]
        live = list(u.msgs)
        deles, applied = [], []
        for conn, evs in sorted(self.conns(user).items()):
            listing = None
            sent = []  # message numbers this connection sent DELE for
            for e in evs:
                if e.kind == "E" and e.text.startswith("logged in,"):
                    listing = list(live)
                    n = int(e.text.split()[2])
                    assert n == len(listing), \
                        "model of %s has %d messages, server listed %d" % (
                            user, len(listing), n)
                elif e.kind == "C" and e.text.upper().startswith("DELE"):
                    assert listing is not None, \
                        "%s: DELE before login: %s" % (user, e.text)
                    n = int(e.text.split()[1])
                    assert 1 <= n <= len(listing), \
                        "%s: %s, %d listed" % (user, e.text, len(listing))
                    deles.append((conn, e.time, listing[n - 1]))
                    sent.append(n)
                elif e.kind == "E" and e.text.startswith("update: deleted"):
                    # "update: deleted N messages: n1 n2 ..." names the
                    # first 1000 only; past that, they are those DELE named
                    count = int(e.text.split()[2])
                    nums = [int(x) for x in e.text.split(":", 2)[2].split()] \
                        if e.text.count(":") >= 2 else []
                    if count > len(nums):
                        nums = sorted(set(sent))
                        assert len(nums) == count, \
                            "%s: update deleted %d, DELE sent for %d" % (
                                user, count, len(nums))
                    for num in nums:
                        m = listing[num - 1]
                        applied.append((conn, m))
                        live.remove(m)
        return deles, applied, live


class GeneratedBytes:
    """The bytes of a generated message, produced on first use."""

    def __init__(self, gen, i):
        self.gen, self.i = gen, i
        self._data = None

    def get(self):
        if self._data is None:
            self._data = b"".join(self.gen.chunks(self.i))
        return self._data


class FaultRun:
    """One test: a fresh database, state directory and config; fakepop3
    servers; the accounts of the config (one per mailbox)."""

    def __init__(self, env, prefix):
        self.env = env
        self.pg = env.pg
        self.prefix = prefix
        self.conninfo = env.database()
        self.dbname = self.conninfo.split("dbname=")[1].split()[0]
        self.dir = env.tmpdir(prefix)
        self.state = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "ingestd.conf")
        self.servers = []
        self.accounts = []
        self.where = {}  # account -> Server
        self.last = None

    def server(self, **kw):
        s = Server(self, **kw)
        self.servers.append(s)
        return s

    def mailbox(self, srv, files=(), gens=(), directives=(), bare_lf=False,
                **over):
        """A new user on srv and its account.  Returns the name."""
        name = self.env.unique(self.prefix)
        pw = "pw-" + name
        srv.add_user(name, pw, files=files, gens=gens,
                     directives=directives, bare_lf=bare_lf)
        a = {"name": name, "host": "127.0.0.1", "port": srv.port,
             "tls": srv.tls, "user": name, "password": pw, "auth": "auto",
             "delete": "after-archive"}
        if srv.tls != "none":
            a["ca_file"] = pki(self.env)["ca"][0]
        else:
            a["allow_plaintext"] = True
        a.update(over)
        self.accounts.append(a)
        self.where[name] = srv
        return name

    def account(self, name):
        return next(a for a in self.accounts if a["name"] == name)

    def msgs(self, name):
        """The model's messages of a mailbox as first filled."""
        return self.where[name].users[name].msgs

    def write_config(self, **extra):
        settings = dict(TIMEOUTS)
        settings.update(extra)
        harness.write_config(self.conf, self.accounts, self.state,
                             self.conninfo, extra=settings)

    # ---- running ingestd

    def run(self, *args, timeout=150):
        rc, out, err = harness.run_ingestd(["-c", self.conf] + list(args),
                                           timeout=timeout)
        self.last = (args, rc, out, err)
        return rc, out, err

    def context(self):
        if self.last is None:
            return ""
        args, rc, out, err = self.last
        return ("\n--- ingestd %s: exit %d\n--- stdout:\n%s--- stderr:\n%s"
                % (" ".join(args), rc, out[-5000:], err[-5000:]))

    def once(self, expect_rc=0, timeout=150, **config):
        """Write the config (with config as extra top-level settings), run
        `once`; check the exit code and one summary line per account.
        Returns {account: {field: value}} (counts as int)."""
        self.write_config(**config)
        rc, out, err = self.run("once", timeout=timeout)
        summ = {}
        for line in out.splitlines():
            m = SUMMARY_START.match(line)
            if not m:
                continue
            fields = {}
            head, sep, error = line.partition(' error="')
            for k, v in SUMMARY_FIELD.findall(head):
                fields[k] = int(v) if k in COUNTS else v
            if sep:  # the last field, quoted, quotes inside left as is
                fields["error"] = error[:-1] if error.endswith('"') \
                    else error
            assert m.group(1) not in summ, "two summary lines for %s%s" % (
                m.group(1), self.context())
            summ[m.group(1)] = fields
        assert rc == expect_rc, "once exited %d, expected %d%s" % (
            rc, expect_rc, self.context())
        names = {a["name"] for a in self.accounts if a.get("enabled", True)}
        assert set(summ) == names, "summary lines for %s, accounts %s%s" % (
            sorted(summ), sorted(names), self.context())
        return summ

    def ok(self, *args):
        rc, out, err = self.run(*args)
        assert rc == 0, "ingestd %s exited %d%s" % (" ".join(args), rc,
                                                   self.context())
        return out

    # ---- the archive

    def sql(self, query):
        return self.pg.psql("SET search_path = ingestd, public;\n" + query,
                            dbname=self.dbname)

    def deliveries(self, account):
        """[{uidl, sha256, size, archived, deleted}] (epoch seconds, or
        None for server_deleted_at NULL)."""
        rows = self.sql(
            "SELECT uidl, sha256, size, extract(epoch FROM archived_at), "
            "extract(epoch FROM server_deleted_at) FROM deliveries "
            "WHERE account = '%s' ORDER BY archived_at, uidl;" % account)
        return [{"uidl": r[0], "sha256": r[1], "size": int(r[2]),
                 "archived": float(r[3]),
                 "deleted": None if r[4] is None else float(r[4])}
                for r in rows]

    def blobs(self):
        """{sha256: size}"""
        return {r[0]: int(r[1]) for r in
                self.sql("SELECT sha256, size FROM blobs;")}

    def polls(self, account):
        rows = self.sql(
            "SELECT outcome, coalesce(error, ''), listed, fetched, archived, "
            "deduplicated, deleted, bytes FROM polls WHERE account = '%s' "
            "ORDER BY started_at, finished_at;" % account)
        keys = ("outcome", "error") + COUNTS[:-1]
        return [{k: (int(v) if k in COUNTS else v) for k, v in zip(keys, r)}
                for r in rows]

    def export(self):
        """Runs export into a fresh directory: {account: {file: bytes}}."""
        out = os.path.join(self.env.tmpdir("export"), "out")
        self.ok("export", "--out", out)
        result = {}
        if not os.path.isdir(out):
            return result
        for acct in sorted(os.listdir(out)):
            d = os.path.join(out, acct)
            result[acct] = {}
            for f in os.listdir(d):
                with open(os.path.join(d, f), "rb") as fh:
                    result[acct][f] = fh.read()
        return result

    # ---- checks

    def check_archived(self, account, msgs=None, uidls=True):
        """The account's deliveries are exactly msgs (default: every
        message the mailbox was filled with), each once, with a blob of the
        right size.  uidls: also compare the UIDLs with the server's."""
        msgs = self.msgs(account) if msgs is None else msgs
        if any(m.uidl is None for m in msgs):
            uidls = False
        rows = self.deliveries(account)
        got = sorted((r["sha256"], r["size"]) + ((r["uidl"],) if uidls
                                                 else ()) for r in rows)
        want = sorted((m.sha256, len(m.bytes)) + ((m.uidl,) if uidls
                                                  else ()) for m in msgs)
        assert got == want, "deliveries of %s:\n got %s\nwant %s" % (
            account, got, want)
        blobs = self.blobs()
        for m in msgs:
            assert blobs.get(m.sha256) == len(m.bytes), \
                "blob %s of %s: %s, want %d bytes" % (
                    m.sha256, account, blobs.get(m.sha256), len(m.bytes))
        return rows

    def check_export(self, exported, account, msgs=None):
        """export wrote exactly msgs for account, byte for byte."""
        msgs = self.msgs(account) if msgs is None else msgs
        want = {m.sha256 + ".eml": m.bytes for m in msgs}
        got = exported.get(account, {})
        assert sorted(got) == sorted(want), \
            "export of %s: %s, want %s" % (account, sorted(got),
                                            sorted(want))
        for f, b in want.items():
            assert got[f] == b, "export %s/%s differs from the bytes the " \
                "server sent (%d vs %d bytes)" % (account, f, len(got[f]),
                                                  len(b))

    def check_dele_proven(self, account):
        """Every DELE the server accepted for account named a message whose
        exact bytes were archived for that account before the DELE was
        sent; every deletion applied was such a message.  Returns (deles,
        applied, left) from Server.replay()."""
        srv = self.where[account]
        deles, applied, left = srv.replay(account)
        rows = self.deliveries(account)
        first = {}
        for r in rows:
            first[r["sha256"]] = min(first.get(r["sha256"], r["archived"]),
                                     r["archived"])
        for conn, t, m in deles:
            assert m.sha256 in first, \
                "%s: DELE of %s (connection %d) but it is not archived" % (
                    account, m, conn)
            assert first[m.sha256] <= t, \
                "%s: DELE of %s at %.6f, before its transaction began " \
                "(%.6f)" % (account, m, t, first[m.sha256])
        for conn, m in applied:
            assert m.sha256 in first, \
                "%s: the server deleted %s, which is not archived" % (
                    account, m)
        return deles, applied, left

    def check_left(self, account, msgs):
        """The server still holds exactly msgs (message files in the
        mailbox directory, and the model agrees)."""
        srv = self.where[account]
        _, _, left = srv.replay(account)
        assert [m.id for m in left] == [m.id for m in msgs], \
            "%s: model holds %s, want %s" % (account, left, msgs)
        want_files = sorted(m.file for m in msgs if m.file is not None)
        got = srv.files_left(account)
        assert got == want_files, "%s: files left %s, want %s" % (
            account, got, want_files)

    def check_never_dele(self, account):
        cmds = [t for _, t, _ in self.where[account].commands(account)
                if t.upper().startswith("DELE")]
        assert not cmds, "%s: DELE sent: %s" % (account, cmds)

    def check_poll(self, account, outcome, error_words=(), index=-1):
        """The account's poll (last by default) has this outcome and an
        error naming each of error_words (case-insensitive)."""
        polls = self.polls(account)
        assert polls, "no poll recorded for %s" % account
        p = polls[index]
        assert p["outcome"] == outcome, "%s: poll %s, want outcome %s" % (
            account, p, outcome)
        if outcome == "ok":
            assert p["error"] == "", "%s: ok poll with error %r" % (
                account, p["error"])
        else:
            assert p["error"], "%s: %s poll with no error text" % (
                account, outcome)
        for w in error_words:
            assert w.lower() in p["error"].lower(), \
                "%s: error %r does not mention %r" % (account, p["error"], w)
        return p

    def check_healthy(self, account, summ):
        """A healthy account of a run with faulty ones: everything archived
        byte-exact, the server emptied, the poll ok."""
        n = len(self.msgs(account))
        s = summ[account]
        assert s["errors"] == 0 and s["archived"] == n and \
            s["deleted"] == n, "%s: %s" % (account, s)
        self.check_archived(account)
        self.check_dele_proven(account)
        self.check_left(account, [])
        self.check_poll(account, "ok")
        for r in self.deliveries(account):
            assert r["deleted"] is not None, \
                "%s: %s deleted but server_deleted_at is NULL" % (
                    account, r["uidl"])

    def check_no_secrets(self):
        """No password in the last run's output or in any poll's error."""
        _, _, out, err = self.last
        errors = " ".join(r[0] for r in self.sql(
            "SELECT coalesce(error, '') FROM polls;"))
        for a in self.accounts:
            assert a["password"] not in out + err, \
                "the password of %s appears in ingestd's output" % a["name"]
            assert a["password"] not in errors, \
                "the password of %s appears in polls.error" % a["name"]


def parse_summaries(out):
    """The summary lines of `once` in out: {account: {field: value}}
    (counts as int, error unquoted), as FaultRun.once() reads them."""
    summ = {}
    for line in out.splitlines():
        m = SUMMARY_START.match(line)
        if not m:
            continue
        fields = {}
        head, sep, error = line.partition(' error="')
        for k, v in SUMMARY_FIELD.findall(head):
            fields[k] = int(v) if k in COUNTS else v
        if sep:
            fields["error"] = error[:-1] if error.endswith('"') else error
        summ[m.group(1)] = fields
    return summ
