"""Retention policies, legal holds and the two-step purge, over real mail
archived from Dovecot into a real PostgreSQL.

Due-ness is reached by moving archived_at back with SQL rather than by
waiting.  The message index rows of archived mail are written with SQL
(tests/integ/searchfix.py), as `reindex` would, where a test needs them
for a query by subject or sender.  Each test checks what the archive holds after each step, the
plan file and its hash, and the events recorded.
"""

import hashlib
import json
import os

import harness
from harness import sha256_hex
from test_ingest import Archive

import mailgen
import searchfix


def raw(subject, frm="someone@example.org", body="hello",
        date="Mon, 1 Jan 2024 10:00:00 +0000"):
    m = ("From: %s\r\nTo: archive@example.org\r\nSubject: %s\r\n"
            "Date: %s\r\n"
            "Message-ID: <%s@test>\r\n\r\n%s\r\n"
            % (frm, subject, date, hashlib.sha256(
                (subject + frm + body).encode()).hexdigest()[:16],
               body)).encode()
    INFO[m] = (subject, frm)
    return m


INFO = {}


class Ret(Archive):
    """An Archive with the retention commands."""

    def __init__(self, env, prefix, extra_conf=""):
        super().__init__(env, prefix)
        self.extra_conf = extra_conf

    def configure(self, extra_conf=None):
        if extra_conf is not None:
            self.extra_conf = extra_conf
        self.write_config()
        with open(self.conf, "a") as f:
            f.write(self.extra_conf)

    def must(self, *args):
        return self.ok(*args)

    def fails(self, *args, rc=1):
        got, out, err = self.run(*args)
        assert got == rc, "ingestd %s exited %d, expected %d%s" % (
            " ".join(args), got, rc, self.context())
        return out, err

    def index(self, *msgs):
        """The archive indexed msgs as it stored them, in the commit:
        the subject and From the queries below match on."""
        for m in msgs:
            got = self.sql("SELECT subject, \"from\" FROM messages "
                           "WHERE sha256 = '%s' LIMIT 1;" % sha_of(m))
            assert got == [list(INFO[m])], (got, INFO[m])

    def backdate(self, interval, where="true"):
        self.sql("UPDATE delivery SET archived_at = archived_at - "
                 "interval '%s' WHERE %s;" % (interval, where))

    def plan(self):
        """purge --plan: (hash printed last, [plan lines])."""
        path = os.path.join(self.dir, "plan-%s.jsonl" % self.env.unique("p"))
        out = self.must("purge", "--plan", "--out", path)
        last = out.strip().splitlines()[-1]
        with open(path, "rb") as f:
            data = f.read()
        assert last == hashlib.sha256(data).hexdigest(), \
            "last line %r is not the plan's SHA-256%s" % (last,
                                                          self.context())
        return last, [json.loads(l) for l in data.decode().splitlines()]

    def present(self):
        """{(account, uidl): sha256} of the deliveries."""
        return {(r["account"], r["uidl"]): r["sha256"]
                for r in self.deliveries()}

    def events(self, kind=None):
        q = "SELECT kind, entry FROM retention_events"
        if kind is not None:
            q += " WHERE kind = '%s'" % kind
        return self.sql(q + " ORDER BY id;")


def sha_of(m):
    return sha256_hex(mailgen.served(m))


def test_policies_longest_wins_unmatched_kept_blob_shared(env):
    ar = Ret(env, "retp")
    plain, keep, other, shared = (raw("plain one"), raw("keepme please"),
                                  raw("other box"), raw("shared copy"))
    a = ar.mailbox([plain, keep, shared])
    b = ar.mailbox([other, shared])
    ar.configure()
    ar.once()
    ar.index(plain, keep, other, shared)
    ar.backdate("3 years")

    # Bad input is named.
    _, err = ar.fails("policy", "add", "x", "--keep", "7x", rc=2)
    assert "period '7x': expected a number followed by d, w, m or y" in err
    _, err = ar.fails("policy", "add", "x", "--keep", "1y", "--clock",
                      "mtime", rc=2)
    assert "--clock 'mtime': expected archive, date or end-of-year" in err
    _, err = ar.fails("policy", "add", "no good", "--keep", "1y", rc=2)
    assert "name 'no good': expected 1 to 64 letters" in err, err
    _, err = ar.fails("hold", "add", "h", "--reason", "r", "--account", a,
                      "--from", "2024-02-01", "--to", "2024-01-01", rc=2)
    assert "--from 2024-02-01 is after --to 2024-01-01" in err, err

    # Nothing matches yet: nothing is due.
    ar.must("policy", "add", "short", "--keep", "1y", "--match",
            "account:" + a)
    ar.must("policy", "add", "long", "--keep", "5y", "--match",
            "subject:keepme")
    h, lines = ar.plan()
    due = sorted((l["account"], l["sha256"]) for l in lines)
    # plain and shared in a are due (1y over); keepme is kept by the
    # longest (5y); b's mail is under no policy.
    assert due == sorted([(a, sha_of(plain)), (a, sha_of(shared))]), lines
    for l in lines:
        assert l["policy"] == "short" and l["version"] == 1, l
        assert l["uidl"] and l["due_at"] and l["why"], l
    out = ar.must("policy", "list")
    assert "short\t1\t1y\tarchive\taccount:" + a in out, out

    h_again, again = ar.plan()
    assert h_again != h and len(again) == len(lines)
    due = ar.sql("SELECT plan, policy, version FROM retention_due "
                 "ORDER BY plan;")
    assert sorted(r[0] for r in due) == sorted([h, h, h_again, h_again]), due
    _, err = ar.fails("purge", "--execute", "0" * 64)
    assert "no purge plan " + "0" * 64 in err, err
    ar.must("purge", "--execute", h)
    plans = {r[0]: r[1:] for r in ar.sql(
        "SELECT sha256, items, executed_at IS NOT NULL, purged_deliveries, "
        "purged_blobs FROM purge_plans;")}
    assert plans[h] == ["2", "t", "2", "1"], plans
    assert plans[h_again] == ["2", "f", None, None], plans
    assert ar.sql("SELECT count(*) FROM retention_due;") == [["0"]]
    # The same items planned twice: the second plan finds them gone.
    _, err = ar.fails("purge", "--execute", h_again)
    assert err.count("the delivery is gone") == 2, err
    left = ar.present()
    assert set(sha for sha in left.values()) == {
        sha_of(keep), sha_of(other), sha_of(shared)}, left
    blobs = ar.blobs()
    # plain's blob went with its last delivery; shared's stays for b.
    assert sha_of(plain) not in blobs and sha_of(shared) in blobs, blobs
    assert sha_of(keep) in blobs
    kinds = [k for k, _ in ar.events()]
    assert kinds.count("delivery-purged") == 2, kinds
    assert kinds.count("blob-purged") == 1, kinds
    assert kinds[-1] == "purge-executed", kinds
    _, err = ar.fails("purge", "--execute", h)
    assert "executed already" in err, err

    # b's copy of shared goes under a policy of b: now its blob goes too.
    ar.must("policy", "add", "bee", "--keep", "0d", "--match",
            "account:" + b)
    h, lines = ar.plan()
    assert sorted(l["sha256"] for l in lines) == sorted(
        [sha_of(other), sha_of(shared)]), lines
    ar.must("purge", "--execute", h)
    assert sha_of(shared) not in ar.blobs()
    # Message index rows went with the blob.
    assert ar.sql("SELECT count(*) FROM message WHERE sha256 = "
                  "decode('%s', 'hex');" % sha_of(shared)) == [["0"]]
    # Every event is in the ledger, and every deletion a purge made is an
    # authorized tombstone there (migrations 0008 and 0010).
    kinds = [r[0] for r in ar.sql("SELECT kind FROM ledger_pending "
                                  "ORDER BY id;")]
    assert kinds.count("retention") == len(ar.events()), kinds
    assert kinds.count("delete") == 4 and kinds.count("blob-delete") == 3, \
        kinds
    assert not [k for k in kinds if k.endswith("-unauthorized")], kinds


def test_holds_query_standing_account_message_release(env):
    ar = Ret(env, "reth")
    smith1, plain, acct, pinned = (
        raw("from smith", frm="smith@acme.example"), raw("plain"),
        raw("in legal"), raw("pinned message"))
    a = ar.mailbox([smith1, plain, pinned])
    legal = ar.mailbox([acct])
    ar.configure()
    ar.once()
    ar.index(smith1, plain, acct, pinned)
    ar.must("policy", "add", "default", "--keep", "1y")
    ar.must("hold", "add", "matter-17", "--reason", "Smith v. Acme",
            "--query", "from:smith@acme.example", "--account", legal,
            "--query", "larger:3000")
    ar.must("hold", "add", "pin", "--reason", "regulator",
            "--message", sha_of(pinned))
    rc, out, err = ar.run("hold", "add", "typo", "--reason", "r",
                          "--account", "no-such-box")
    assert rc == 0 and "hold typo added: 0 deliveries" in out, (out, err)
    assert 'no account named "no-such-box" is in the archive yet' in err
    _, err = ar.fails("hold", "add", "bad", "--reason", "r", "--message",
                      "xyz", rc=2)
    assert "expected a SHA-256" in err, err

    # A message archived later that matches is held by the standing
    # hold, decided when it was committed (larger:3000 needs no index row).
    smith2 = raw("smith again", frm="smith@acme.example", body="x" * 4000)
    ar.dc.deliver(a, smith2)
    ar.once()
    # The same, at the SQL level, for a query on the index: rows written
    # after the delivery in the same transaction, as commit.c writes them.
    late = "ab" * 32
    ar.pg.psql(
        "BEGIN;"
        "INSERT INTO ingestd.blob (sha256, size, stored_size, chunks) "
        "VALUES (decode('%s', 'hex'), 1, 1, 0);"
        "INSERT INTO ingestd.delivery (account_id, uidl, sha256, list_size,"
        " head_sha256) SELECT id, 'late', decode('%s', 'hex'), 1,"
        " decode('%s', 'hex') FROM ingestd.account WHERE name = '%s';"
        "%s COMMIT;" % (late, late, late, a, searchfix.message_sql(
            late, subject="late", addresses=[
                ("from", "smith@acme.example", None)])),
        dbname=ar.dbname)
    held = {r[0] for r in ar.sql(
        "SELECT sha256 FROM held_deliveries WHERE hold = 'matter-17';")}
    assert held == {sha_of(smith1), sha_of(smith2), sha_of(acct), late}, \
        held
    # Outside a purge, deliveries and blobs cannot be deleted...
    for stmt in ("DELETE FROM delivery WHERE uidl = 'late'",
                 "DELETE FROM blob WHERE sha256 = decode('%s', 'hex')" % late,
                 "TRUNCATE delivery, blob CASCADE"):
        try:
            ar.sql(stmt + ";")
        except harness.HarnessError as e:
            assert "only through ingestd purge" in str(e), e
        else:
            raise AssertionError("%s was allowed" % stmt)
    # ...unless one says it is purging (what purge_execute_batch does).
    ar.sql("BEGIN; SELECT set_config('ingestd.purge', 'test', true); "
           "DELETE FROM delivery WHERE uidl = 'late'; "
           "DELETE FROM blob WHERE sha256 = decode('%s', 'hex'); COMMIT;"
           % late)
    ar.backdate("2 years")

    h, lines = ar.plan()
    assert [l["sha256"] for l in lines] == [sha_of(plain)], lines
    out = ar.must("hold", "list")
    assert "matter-17\tactive\t3\t" in out, out
    ar.must("purge", "--execute", h)

    _, err = ar.fails("hold", "release", "nope", "--reason", "x")
    assert "no hold named 'nope'" in err, err
    ar.must("hold", "release", "matter-17", "--reason", "settled")
    _, err = ar.fails("hold", "release", "matter-17", "--reason", "again")
    assert "released already" in err, err
    out = ar.must("hold", "list")
    assert "matter-17\treleased\t0\t" in out and "settled" in out, out
    h, lines = ar.plan()
    assert sorted(l["sha256"] for l in lines) == sorted(
        [sha_of(smith1), sha_of(smith2), sha_of(acct)]), lines
    ar.must("purge", "--execute", h)
    # The message hold still protects its message.
    assert set(ar.present().values()) == {sha_of(pinned)}
    kinds = [k for k, _ in ar.events()]
    assert kinds.count("hold-added") == 3 and "hold-released" in kinds
    # Entries carry hashes of free text, not the text.
    entry = ar.events("hold-added")[0][1]
    assert "Smith" not in entry and "smith@" not in entry, entry
    assert ("reason-sha256=" + hashlib.sha256(b"Smith v. Acme")
            .hexdigest()) in entry, entry


def test_execute_refuses_what_changed_and_tables_are_append_only(env):
    ar = Ret(env, "retx")
    m1, m2 = raw("first"), raw("second", frm="boss@acme.example")
    a = ar.mailbox([m1, m2])
    ar.configure()
    ar.once()
    ar.index(m1, m2)
    ar.backdate("2 years")
    ar.must("policy", "add", "default", "--keep", "1y")
    h, lines = ar.plan()
    assert len(lines) == 2

    # A hold added between plan and execute: refused, naming the item.
    ar.must("hold", "add", "late", "--reason", "r", "--query",
            "from:boss@acme.example")
    _, err = ar.fails("purge", "--execute", h)
    assert "held by late now" in err and sha_of(m2) in err, err
    assert "refused" in err and "nothing was removed" in err, err
    assert len(ar.present()) == 2
    ar.must("hold", "release", "late", "--reason", "mistake")

    # A longer policy between plan and execute: refused too.
    ar.must("policy", "add", "default", "--keep", "10y")
    _, err = ar.fails("purge", "--execute", h)
    assert "policy default version 2 now keeps it until" in err, err
    assert len(ar.present()) == 2

    # A shortening within its cooling-off (30d by default) is not applied.
    ar.must("policy", "add", "default", "--keep", "1y")  # cools off
    h2, lines = ar.plan()
    assert lines == [], "a shortening applied within its cooling-off"

    # Append-only, even for a superuser and under replica mode.
    for stmt in ("UPDATE retention_event SET kind = 'x'",
                 "DELETE FROM retention_event",
                 "TRUNCATE retention_event",
                 "DELETE FROM hold_release",
                 "UPDATE policy_version SET keep = '1d'",
                 "SET session_replication_role = replica; "
                 "DELETE FROM retention_event"):
        try:
            ar.sql(stmt + ";")
        except harness.HarnessError as e:  # psql exits non-zero
            assert "append-only" in str(e), e
        else:
            raise AssertionError("%s was allowed" % stmt)
    assert int(ar.sql("SELECT count(*) FROM retention_event;")[0][0]) > 5
    # entry is built by the database, whatever a client sends.
    ar.sql("INSERT INTO retention_event (kind, fields, entry) VALUES "
           "('note', ARRAY['k', 'a b=c'], 'forged');")
    e = ar.sql("SELECT entry FROM retention_event WHERE kind = 'note';")
    assert e[0][0].startswith("ingestd-retention/1 id=") and \
        e[0][0].endswith(" kind=note role=%s os-user= k=a%%20b%%3Dc"
                         % ar.pg.superuser), e


def test_cooling_off_and_two_approvals(env):
    ar = Ret(env, "reta", "purge = { approvals = 2; };\n")
    m1 = raw("old one")
    a = ar.mailbox([m1])
    ar.configure()
    ar.once()
    ar.backdate("3 years")
    ar.must("policy", "add", "default", "--keep", "5y")
    out = ar.must("policy", "add", "default", "--keep", "2y")
    assert "shortens retention" in out, out
    h, lines = ar.plan()
    assert lines == [], lines
    # With no cooling-off, a new shortening applies at once.
    ar.configure('purge = { approvals = 2; };\n'
                 'retention = { cooling_off = "0d"; };\n')
    ar.must("policy", "add", "default", "--keep", "2y")
    h, lines = ar.plan()
    assert len(lines) == 1 and lines[0]["version"] == 3, lines

    _, err = ar.fails("purge", "--execute", h)
    assert "needs the approval of a PostgreSQL role other than" in err, err
    _, err = ar.fails("purge", "--approve", h)
    assert "different PostgreSQL role" in err, err
    role = ar.env.unique("approver")
    ar.pg.psql('CREATE ROLE "%s" LOGIN SUPERUSER;' % role)
    other = Ret(env, "reta2")
    other.conf = os.path.join(other.dir, "ingestd.conf")
    other.accounts = ar.accounts
    other.conninfo = ar.conninfo.replace("user=" + ar.pg.superuser,
                                         "user=" + role)
    assert other.conninfo != ar.conninfo
    other.configure('purge = { approvals = 2; };\n')
    out = other.must("purge", "--approve", h)
    assert role in out, out
    ar.must("purge", "--execute", h)
    assert ar.present() == {}
    ent = [e for k, e in ar.events() if k == "purge-approved"]
    assert len(ent) == 1 and ("role=" + role) in ent[0], ent


def test_clocks_date_clamped_and_end_of_year(env):
    ar = Ret(env, "retc")
    d70 = raw("forged old", date="Thu, 1 Jan 1970 00:00:00 +0000")
    d99 = raw("forged new", date="Thu, 1 Jan 2099 00:00:00 +0000")
    a = ar.mailbox([d70, d99])
    e3, e2 = raw("three years"), raw("two years")
    b = ar.mailbox([e3])
    c = ar.mailbox([e2])
    ar.configure()
    ar.once()
    # The indexer read the Date headers as they are written.
    for m, when in ((d70, "1970-01-01 00:00:00"),
                    (d99, "2099-01-01 00:00:00")):
        got = ar.sql("SELECT date AT TIME ZONE 'UTC' FROM messages "
                     "WHERE sha256 = '%s';" % sha_of(m))
        assert got == [[when]], (got, when)
    ar.backdate("15 days", "true")
    ar.backdate("3 years", "account_id <> (SELECT id FROM account "
                "WHERE name = '%s')" % a)
    # date clock: Date 1970 counts from 30 days before archiving (15 + 30
    # > 40: due); Date 2099 from the archive time (15 < 40: kept).
    ar.must("policy", "add", "dc", "--keep", "40d", "--clock", "date",
            "--match", "account:" + a)
    # end-of-year: archived 3 years ago; counted from January 1 after that
    # year, 3y is not over (the archive clock's would be), 2y is.
    ar.must("policy", "add", "eb", "--keep", "3y", "--clock", "end-of-year",
            "--match", "account:" + b)
    ar.must("policy", "add", "ec", "--keep", "2y", "--clock", "end-of-year",
            "--match", "account:" + c)
    h, lines = ar.plan()
    got = sorted((l["policy"], l["sha256"], l["clock"]) for l in lines)
    assert got == sorted([("dc", sha_of(d70), "date"),
                          ("ec", sha_of(e2), "end-of-year")]), lines
    ec = [l for l in lines if l["policy"] == "ec"][0]
    assert ec["due_at"].endswith("-01-01T00:00:00Z"), ec
