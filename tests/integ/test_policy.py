"""Quota-clearing policies (delete = { ... }), --dry-run, and the RFC 2449
signals LOGIN-DELAY and EXPIRE: the ingestd binary against fakepop3 and
against Dovecot, with the run's PostgreSQL.

After each poll the test checks what the server still holds, and that
every DELE named a message archived before it was sent.  Time-based rules
are driven through the database, not the clock: after_days by backdating
the account's rows in ingestd.uidl_seen, older_than_days by rows in the
index table ingestd.message (written here directly: the indexer that
fills it is not part of this tree), LOGIN-DELAY by backdating
ingestd.account_capa.seen_at.
"""

import os
import re

import harness
from faultlib import FaultRun, message, parse_summaries


def _msgs(tag, n, big=()):
    """n small messages, those numbered in big (1-based) about 6 KiB."""
    return [message(i, tag, body_lines=300 if i in big else 4)
            for i in range(1, n + 1)]


def _sql(pg, dbname, q):
    return pg.psql("SET search_path = ingestd, public;\n" + q, dbname=dbname)


def _backdate_seen(pg, dbname, account, uidls, days):
    """Makes ingestd first see uidls of account days ago."""
    q = ("UPDATE ingestd.uidl_seen s SET first_seen_at = now() - "
         "interval '%d days' FROM ingestd.account a WHERE a.id = "
         "s.account_id AND a.name = '%s' AND s.uidl IN (%s);"
         % (days, account, ", ".join("'%s'" % u for u in uidls)))
    _sql(pg, dbname, q)


def _seen(pg, dbname, account):
    return sorted(r[0] for r in _sql(
        pg, dbname, "SELECT s.uidl FROM ingestd.uidl_seen s JOIN "
        "ingestd.account a ON a.id = s.account_id WHERE a.name = '%s';"
        % account))


def _index_date(pg, dbname, sha256_hex, days_ago):
    """Gives an archived message, in its index row, a Date days_ago days
    back (None: as a message without a Date header), relative to the
    time the test runs; the indexer wrote the row as the message was
    archived."""
    date = "NULL" if days_ago is None else \
        "now() - interval '%d days'" % days_ago
    _sql(pg, dbname,
         "INSERT INTO ingestd.message (sha256, parser_version, date, "
         "has_attachment, subject_fts, fts) VALUES (decode('%s', 'hex'), "
         "1, %s, false, ''::tsvector, ''::tsvector) ON CONFLICT (sha256) "
         "DO UPDATE SET date = EXCLUDED.date;" % (sha256_hex, date))


def _dele_nums(fr, name, conn=None):
    return [t.upper() for c, t, _ in fr.where[name].commands(name)
            if t.upper().startswith("DELE") and (conn is None or c == conn)]


# ---- against fakepop3

def test_policies_against_fault_server(env):
    """Every rule alone, a combination, and the caps, each on its own
    mailbox of one fakepop3; two polls, the server's messages checked
    after each."""
    fr = FaultRun(env, "pol")
    srv = fr.server()
    never = fr.mailbox(srv, files=_msgs("nv", 3), delete="never")
    big = fr.mailbox(srv, files=_msgs("bg", 4, big=(2, 4)),
                     delete={"bigger_than": "4K"})
    days = fr.mailbox(srv, files=_msgs("ad", 4),
                      delete={"after_days": 14})
    old = fr.mailbox(srv, files=_msgs("od", 5),
                     delete={"older_than_days": 365})
    sizes = [len(m) for m in _msgs("ku", 5)]
    # Under the total by one message and a bit: the two oldest go.
    keep = fr.mailbox(srv, files=_msgs("ku", 5),
                      delete={"keep_under": sum(sizes) - sizes[0] - 10})
    capped = fr.mailbox(srv, files=_msgs("cp", 5),
                        delete={"after_days": 0, "max_messages": 2})
    bytecap = fr.mailbox(srv, files=_msgs("cb", 3),
                         delete={"bigger_than": 0,
                                 "max_bytes": sizes[0] * 2 + 100})
    combo = fr.mailbox(srv, files=_msgs("co", 4, big=(4,)),
                       delete={"after_days": 30, "bigger_than": "4K"})

    summ = fr.once()
    M = fr.msgs
    for name in fr.where:
        fr.check_archived(name)
        fr.check_dele_proven(name)
        assert summ[name]["archived"] == len(M(name)), summ[name]
    fr.check_left(never, M(never))
    fr.check_never_dele(never)
    fr.check_left(big, [M(big)[0], M(big)[2]])
    fr.check_left(days, M(days))          # first seen now: not 14 days
    fr.check_left(old, M(old))            # nothing indexed yet
    fr.check_left(keep, M(keep)[2:])      # oldest: listing order on ties
    fr.check_left(capped, M(capped)[2:])  # max_messages = 2, oldest first
    fr.check_left(bytecap, M(bytecap)[2:])
    fr.check_left(combo, M(combo)[:3])
    # Every listed UIDL has a first-seen time, but those deleted.
    assert _seen(fr.pg, fr.dbname, days) == sorted(m.uidl for m in M(days))
    assert _seen(fr.pg, fr.dbname, big) == sorted(
        [M(big)[0].uidl, M(big)[2].uidl])

    # Fifteen days later for two of after_days' messages; 40 for one of
    # the combination's.  Dates for older_than_days: one old, one recent,
    # one old but without a Date, one not indexed at all.
    _backdate_seen(fr.pg, fr.dbname, days,
                   [M(days)[0].uidl, M(days)[2].uidl], 15)
    _backdate_seen(fr.pg, fr.dbname, combo, [M(combo)[1].uidl], 40)
    _backdate_seen(fr.pg, fr.dbname, combo, [M(combo)[2].uidl], 29)
    _index_date(fr.pg, fr.dbname, M(old)[0].sha256, 400)
    _index_date(fr.pg, fr.dbname, M(old)[1].sha256, 30)
    _index_date(fr.pg, fr.dbname, M(old)[2].sha256, None)
    _index_date(fr.pg, fr.dbname, M(old)[4].sha256, 366)

    summ = fr.once()
    for name in fr.where:
        fr.check_dele_proven(name)
        assert summ[name]["fetched"] == 0, summ[name]  # proven by TOP
    fr.check_left(never, M(never))
    fr.check_left(big, [M(big)[0], M(big)[2]])
    fr.check_left(days, [M(days)[1], M(days)[3]])
    fr.check_left(old, M(old)[1:4])
    fr.check_left(keep, M(keep)[2:])      # under its target now
    fr.check_left(capped, M(capped)[4:])
    fr.check_left(bytecap, [])            # the third fits the cap alone
    fr.check_left(combo, [M(combo)[0], M(combo)[2]])
    assert summ[days]["deleted"] == 2, summ[days]
    assert _seen(fr.pg, fr.dbname, days) == sorted(
        [M(days)[1].uidl, M(days)[3].uidl])
    fr.check_no_secrets()


def test_keep_under_reads_stat(env):
    """keep_under compares with what STAT says, not LIST's sum: a server
    that counts its mailbox as 10000 octets while listing four small
    messages has the two oldest deleted to get under 10000 - one message
    - 10; by LIST alone it would be under already.  A policy without
    keep_under sends no STAT."""
    fr = FaultRun(env, "st")
    srv = fr.server()
    files = _msgs("st", 4)
    s = len(files[0])
    a = fr.mailbox(srv, files=files, directives=["STAT-SIZE 10000"],
                   delete={"keep_under": 10000 - s - 10})
    b = fr.mailbox(srv, files=_msgs("sb", 2), delete={"after_days": 0})
    fr.once()
    fr.check_dele_proven(a)
    fr.check_left(a, fr.msgs(a)[2:])
    fr.check_left(b, [])
    cmds = [t for _, t, _ in srv.commands(a)]
    assert cmds.index("STAT") > cmds.index("LIST"), cmds
    assert "STAT" not in [t for _, t, _ in srv.commands(b)]


def test_unarchived_is_never_deleted(env):
    """A message whose RETR fails is not archived: no policy deletes it,
    however eager (after_days = 0, keep_under = 0, bigger_than = 0), while
    the others go."""
    fr = FaultRun(env, "un")
    srv = fr.server()
    names = [fr.mailbox(srv, files=_msgs("u%d" % i, 4),
                        directives=["ERR RETR:2 no such luck"], delete=pol)
             for i, pol in enumerate(({"after_days": 0}, {"keep_under": 0},
                                      {"bigger_than": 0}))]
    summ = fr.once(expect_rc=1)
    for name in names:
        m = fr.msgs(name)
        assert summ[name]["archived"] == 3, summ[name]
        fr.check_dele_proven(name)
        fr.check_left(name, [m[1]])
        assert "DELE 2" not in _dele_nums(fr, name), _dele_nums(fr, name)


def test_dry_run_sends_no_dele(env):
    """once --dry-run archives as usual, prints one line per message a
    policy would delete (uidl, size, reason), and sends no DELE: the
    server keeps everything.  The next plain once deletes the same."""
    fr = FaultRun(env, "dry")
    srv = fr.server()
    plain = fr.mailbox(srv, files=_msgs("dp", 3))  # after-archive
    # A server that deletes at QUIT what RETR delivered: a dry run must
    # not QUIT there.
    exp0 = fr.mailbox(fr.server(global_lines=["EXPIRE 0"]),
                      files=_msgs("de", 2))
    pol = fr.mailbox(srv, files=_msgs("dq", 4, big=(1, 3)),
                     delete={"bigger_than": "4K", "max_messages": 1})
    fr.write_config()
    rc, out, err = fr.run("once", "--dry-run")
    assert rc == 0, fr.context()
    summ = parse_summaries(out)
    for name in (plain, pol, exp0):
        fr.check_archived(name)
        fr.check_never_dele(name)
        fr.check_left(name, fr.msgs(name))
        assert summ[name]["archived"] == len(fr.msgs(name)), summ[name]
        assert summ[name]["deleted"] == 0, summ[name]
    lines = [ln for ln in out.splitlines() if ln.startswith("dry-run ")]
    for m in fr.msgs(plain):
        want = ('dry-run account=%s uidl=%s size=%d delete '
                'reason="after-archive"' % (plain, m.uidl, len(m.bytes)))
        assert want in lines, "%r not in %s" % (want, lines)
    m1, m3 = fr.msgs(pol)[0], fr.msgs(pol)[2]
    assert ("dry-run account=%s uidl=%s size=%d delete reason=\"bigger_than"
            " = 4096: %d bytes\"" % (pol, m1.uidl, len(m1.bytes),
                                     len(m1.bytes))) in lines, lines
    assert ("dry-run account=%s uidl=%s size=%d kept reason=\"bigger_than"
            " = 4096: %d bytes; kept this poll by max_messages or "
            "max_bytes\"" % (pol, m3.uidl, len(m3.bytes), len(m3.bytes))
            ) in lines, lines
    assert ("dry-run account=%s would delete 1 messages" % pol) in out, out
    assert "--dry-run" not in err

    assert "QUIT" not in [t for _, t, _ in fr.where[exp0].commands(exp0)]
    assert summ[exp0]["outcome"] == "ok", summ[exp0]

    # The real thing.
    fr.once()
    fr.check_left(exp0, [])
    fr.check_left(plain, [])
    fr.check_left(pol, [fr.msgs(pol)[1], fr.msgs(pol)[2], fr.msgs(pol)[3]])
    for name in (plain, pol):
        fr.check_dele_proven(name)

    # --dry-run is for once only.
    rc, _, err = fr.run("run", "--dry-run")
    assert rc == 2 and "--dry-run is for once only" in err, fr.context()


def test_login_delay_spaces_polls(env):
    """LOGIN-DELAY 3600 in CAPA after login: a second once right away
    does not log in (one poll in the database, one session at the
    server); once the recorded login is an hour old, it does.  The value
    shows in account_status; an account without it is polled each time."""
    fr = FaultRun(env, "ld")
    srv = fr.server(global_lines=['LOGIN-DELAY "60 USER"'])
    slow = fr.mailbox(srv, files=_msgs("ld", 2), directives=[
        "LOGIN-DELAY 3600"])
    free = fr.mailbox(srv, files=_msgs("lf", 1), directives=[
        "LOGIN-DELAY 0"])
    fr.once()
    summ = fr.once()
    assert summ[slow].get("skipped") == "login-delay", summ[slow]
    assert "listed" not in summ[slow], summ[slow]
    assert summ[free]["listed"] == 0, summ[free]

    def polls(name):
        return int(fr.sql("SELECT count(*) FROM polls WHERE account = '%s';"
                          % name)[0][0])

    def logins(name):
        return sum(1 for _, t, _ in srv.commands(name)
                   if t.upper().startswith(("PASS", "AUTH")))

    assert polls(slow) == 1 and logins(slow) == 1, (polls(slow),
                                                    logins(slow))
    assert polls(free) == 2 and logins(free) == 2
    row = fr.sql("SELECT server_login_delay, server_expire, "
                 "capa_seen_at IS NOT NULL FROM account_status "
                 "WHERE account = '%s';" % slow)
    assert row == [["3600", None, "t"]], row
    # The user's value after login replaced the global "60 USER".
    cmds = [t for _, t, _ in srv.commands(slow)]
    assert cmds.count("CAPA") == 2, cmds

    # A restart does not forget it: the delay is read from the database.
    # An hour later it polls again.
    _sql(fr.pg, fr.dbname,
         "UPDATE ingestd.account_capa c SET seen_at = seen_at - "
         "interval '3601 seconds' FROM ingestd.account a WHERE "
         "a.id = c.account_id AND a.name = '%s';" % slow)
    summ = fr.once()
    assert summ[slow]["listed"] == 0, summ[slow]
    assert polls(slow) == 2 and logins(slow) == 2


def test_expire_recorded_and_warned(env):
    """EXPIRE from CAPA after login is recorded in account_status; a
    policy that keeps mail longer than the server's EXPIRE is warned
    about, once per run; one that deletes sooner is not."""
    fr = FaultRun(env, "ex")
    srv = fr.server(global_lines=['EXPIRE "30 USER"'])
    keeps = fr.mailbox(srv, files=_msgs("ek", 2), delete="never",
                       directives=["EXPIRE 5"])
    quick = fr.mailbox(srv, files=_msgs("eq", 2),
                       delete={"after_days": 3}, directives=["EXPIRE 5"])
    nev = fr.mailbox(srv, files=_msgs("en", 1), delete="never",
                     directives=["EXPIRE NEVER"])
    fr.once()
    _, _, _, err = fr.last
    assert err.count("mbox=%s server says EXPIRE 5" % keeps) == 1, err
    assert "mbox=%s server says EXPIRE" % quick not in err, err
    assert "mbox=%s server says EXPIRE" % nev not in err, err
    rows = dict((r[0], r[1]) for r in fr.sql(
        "SELECT account, server_expire FROM account_status;"))
    assert rows[keeps] == "5" and rows[quick] == "5", rows
    assert rows[nev] == "NEVER", rows
    fr.check_left(keeps, fr.msgs(keeps))
    fr.check_left(quick, fr.msgs(quick))


# ---- against Dovecot

class Dove:
    """A fresh database and config over mailboxes on the run's Dovecot."""

    def __init__(self, env, prefix):
        self.env = env
        self.pg = env.pg
        self.dc = env.dovecot
        self.prefix = prefix
        self.conninfo = env.database()
        self.dbname = self.conninfo.split("dbname=")[1].split()[0]
        self.dir = env.tmpdir(prefix)
        self.conf = os.path.join(self.dir, "ingestd.conf")
        self.accounts = []
        self.pop = {}  # account -> [(uidl, bytes)] as RETR gives them

    def mailbox(self, messages, **over):
        name = self.env.unique(self.prefix)
        self.dc.add_user(name, "pw-" + name)
        for m in messages:
            self.dc.deliver(name, m)
        self.accounts.append(self.dc.account(name, **over))
        self.pop[name] = harness.fetch_all(
            self.dc.pop3s_port, name, self.dc.users[name], self.dc.ca_file)
        return name

    def once(self, *args):
        harness.write_config(self.conf, self.accounts,
                             os.path.join(self.dir, "state"), self.conninfo)
        rc, out, err = harness.run_ingestd(["-c", self.conf, "once"] +
                                           list(args), timeout=150)
        assert rc == 0, "once: %d\n%s\n%s" % (rc, out, err)
        self.err = err
        return out

    def left(self, name):
        """The subjects of the messages still in the mailbox."""
        out = []
        for raw in self.dc.messages(name):
            m = re.search(rb"^Subject: (.*)$", raw, re.M)
            out.append(m.group(1).decode().strip())
        return sorted(out)

    def sql(self, q):
        return _sql(self.pg, self.dbname, q)


def _dmsgs(tag, n, big=()):
    out = []
    for i in range(1, n + 1):
        body = ("line %d\n" % i) * (800 if i in big else 3)
        out.append(("From: <a@example.invalid>\nTo: <b@example.invalid>\n"
                    "Subject: %s %d\nMessage-ID: <%s.%d@example.invalid>\n"
                    "\n%s" % (tag, i, tag, i, body)).encode())
    return out


def _subjects(tag, nums):
    return sorted("%s %d" % (tag, i) for i in nums)


def test_policies_against_dovecot(env):
    """The same rules on real Dovecot mailboxes: what the server holds
    after each of two polls, and nothing unarchived deleted."""
    d = Dove(env, "dpol")
    never = d.mailbox(_dmsgs("nv", 2), delete="never")
    big = d.mailbox(_dmsgs("bg", 3, big=(2,)),
                    delete={"bigger_than": "4K"})
    days = d.mailbox(_dmsgs("ad", 3), delete={"after_days": 14})
    old = d.mailbox(_dmsgs("od", 3), delete={"older_than_days": 365})
    keep = d.mailbox(_dmsgs("ku", 3))
    # keep_under: the mailbox's total less one message and a bit, so
    # the two oldest go.
    kb = [len(b) for _, b in d.pop[keep]]
    next(a for a in d.accounts if a["name"] == keep)["delete"] = \
        {"keep_under": sum(kb) - kb[0] - 10}
    capped = d.mailbox(_dmsgs("cp", 3),
                       delete={"after_days": 0, "max_messages": 1})

    d.once()
    assert d.left(never) == _subjects("nv", (1, 2))
    assert d.left(big) == _subjects("bg", (1, 3))
    assert d.left(days) == _subjects("ad", (1, 2, 3))
    assert d.left(old) == _subjects("od", (1, 2, 3))
    assert d.left(keep) == _subjects("ku", (3,)), d.left(keep)
    assert d.left(capped) == _subjects("cp", (2, 3))

    uidl = {name: [u for u, _ in d.pop[name]] for name in d.pop}
    sha = {name: [harness.sha256_hex(b) for _, b in d.pop[name]]
           for name in d.pop}
    _backdate_seen(d.pg, d.dbname, days, [uidl[days][1]], 20)
    _index_date(d.pg, d.dbname, sha[old][0], 1000)
    _index_date(d.pg, d.dbname, sha[old][2], 100)

    out = d.once()
    assert d.left(never) == _subjects("nv", (1, 2))
    assert d.left(big) == _subjects("bg", (1, 3))
    assert d.left(days) == _subjects("ad", (1, 3))
    assert d.left(old) == _subjects("od", (2, 3))
    assert d.left(capped) == _subjects("cp", (3,)), (d.left(capped), d.sql(
        "SELECT s.uidl, s.first_seen_at FROM ingestd.uidl_seen s;"), out,
        [ln for ln in d.err.splitlines() if capped in ln])

    # Every message deleted was archived, byte for byte, before.
    for name in d.pop:
        archived = {r[0] for r in d.sql(
            "SELECT sha256 FROM deliveries WHERE account = '%s';" % name)}
        assert archived == set(sha[name]), name
        gone = set(sha[name]) - {harness.sha256_hex(b) for _, b in
                                 harness.fetch_all(
                                     d.dc.pop3s_port, name,
                                     d.dc.users[name], d.dc.ca_file)}
        assert gone <= archived


def test_dry_run_against_dovecot(env):
    """--dry-run on Dovecot: archived, listed as would-delete, all kept."""
    d = Dove(env, "ddry")
    a = d.mailbox(_dmsgs("dr", 3, big=(3,)), delete={"bigger_than": "4K"})
    b = d.mailbox(_dmsgs("ds", 2))
    out = d.once("--dry-run")
    assert d.left(a) == _subjects("dr", (1, 2, 3))
    assert d.left(b) == _subjects("ds", (1, 2))
    u3, b3 = d.pop[a][2]
    assert ('dry-run account=%s uidl=%s size=%d delete reason="bigger_than'
            % (a, u3, len(b3))) in out, out
    assert out.count("dry-run account=%s uidl=" % b) == 2, out
    n = int(d.sql("SELECT count(*) FROM deliveries WHERE account IN "
                  "('%s', '%s');" % (a, b))[0][0])
    assert n == 5, n
    d.once()
    assert d.left(a) == _subjects("dr", (1, 2))
    assert d.left(b) == []


def test_operator_needed_is_logged_once(env):
    """[AUTH] and [SYS/PERM] at login need the operator: the account's
    state in account_status says 'permanent' with the server's text, the
    warning comes once, and the same failure at the next poll (another
    once, as from cron) is not logged again.  [LOGIN-DELAY] at login is
    temporary.  Once the server lets it in, the account polls normally."""
    fr = FaultRun(env, "op")
    srv = fr.server()
    auth = fr.mailbox(srv, files=_msgs("oa", 1), directives=[
        "@1-2 LOGIN-FAIL [AUTH] invalid user name or password"])
    perm = fr.mailbox(srv, files=_msgs("op", 1), directives=[
        "@1-2 LOGIN-FAIL [SYS/PERM] mailbox disabled"])
    later = fr.mailbox(srv, files=_msgs("ol", 1), directives=[
        "@1 LOGIN-FAIL [LOGIN-DELAY] not so soon"])
    fr.once(expect_rc=1)
    err = fr.last[3]
    for name, code in ((auth, "[AUTH]"), (perm, "[SYS/PERM]")):
        assert err.count("mbox=%s needs the operator: " % name) == 1, err
        row = fr.sql("SELECT last_outcome, last_error FROM account_status "
                     "WHERE account = '%s';" % name)[0]
        assert row[0] == "permanent" and code in row[1], row
    assert "mbox=%s needs the operator" % later not in err, err
    fr.check_poll(later, "temporary", ["[LOGIN-DELAY]"])

    summ = fr.once(expect_rc=1)
    err = fr.last[3]
    for name in (auth, perm):
        assert summ[name]["outcome"] == "permanent", summ[name]
        assert "mbox=%s " % name not in err, err
    assert summ[later]["outcome"] == "ok", summ[later]

    summ = fr.once()
    for name in (auth, perm):
        assert summ[name]["outcome"] == "ok", summ[name]
        fr.check_left(name, [])


def test_login_delay_in_run_mode(env):
    """Under `run` with poll_interval = 1, an account whose server says
    LOGIN-DELAY 3 is polled no more often than every 3 seconds (poll start
    times in the database), while its neighbour is polled every second."""
    from faultlib import TIMEOUTS
    from test_daemon import Daemon, wait_for

    fr = FaultRun(env, "ldr")
    srv = fr.server(global_lines=['LOGIN-DELAY "0 USER"'])
    slow = fr.mailbox(srv, files=_msgs("lr", 1), directives=[
        "LOGIN-DELAY 3"])
    free = fr.mailbox(srv, files=_msgs("lq", 1))
    harness.write_config(fr.conf, fr.accounts, fr.state, fr.conninfo,
                         poll_interval=1, extra=TIMEOUTS)

    def starts(name):
        return [float(r[0]) for r in fr.sql(
            "SELECT extract(epoch FROM started_at) FROM polls WHERE "
            "account = '%s' ORDER BY started_at;" % name)]

    d = Daemon(fr.conf)
    try:
        wait_for("three polls of the delayed account",
                 lambda: len(starts(slow)) >= 3, timeout=60)
        rc, err = d.terminate()
    finally:
        d.kill()
    assert rc == 0, err[-3000:]
    s, f = starts(slow), starts(free)
    gaps = [b - a for a, b in zip(s, s[1:])]
    assert all(g >= 3 for g in gaps), (gaps, err[-2000:])
    assert len(f) > len(s), (len(f), len(s))
    assert "LOGIN-DELAY 3 s between logins" in err, err[-2000:]
