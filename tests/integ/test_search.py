"""The search language: `ingestd search`, ingestd.search() in SQL, and
`export --query`.

Index rows are written with SQL (tests/integ/searchfix.py), so that each
operator can be checked against an exact set of deliveries, named by
UIDL, over a fixture built for its edges: roles kept apart, domains
against look-alikes, midnight UTC on both sides of after:/before:, sizes
at the K boundary, phrases in and out of order.  The same queries, and
queries with syntax errors, run through the C parser (the CLI) and
through ingestd.search(): rows and error messages, columns included,
must be identical.  EXPLAIN over a generated archive shows every
operator on an index.  export --query round-trips real archived mail.
"""

import json
import os
import pty
import re
import select
import subprocess

import harness
import mailgen
import searchfix
from harness import sha256_hex

ISO_US = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
ISO_S = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
FIELDS = ["account", "uidl", "sha256", "size", "archived_at", "date", "from",
          "to", "cc", "subject", "message_id", "attachments"]


class SearchDB:
    """A fresh database with the schema, a config reaching it, and the
    fixture loaded."""

    def __init__(self, env, fixture_sql, prefix="search"):
        self.env = env
        self.pg = env.pg
        conninfo = env.database()
        self.db = conninfo.split("dbname=")[1].split()[0]
        d = env.tmpdir(prefix)
        self.conf = os.path.join(d, "ingestd.conf")
        harness.write_config(self.conf, [{
            "name": "unused", "host": "127.0.0.1", "port": 1,
            "user": "u", "password": "p", "tls": "none",
            "allow_plaintext": True, "enabled": False}],
            os.path.join(d, "state"), conninfo)
        rc, out, err = self.run("migrate")
        assert rc == 0, "migrate: %s" % err
        self.pg.psql(fixture_sql, dbname=self.db, timeout=600)

    def run(self, *args):
        return harness.run_ingestd(["-c", self.conf] + list(args))

    def psql_rows(self, sql):
        return self.pg.psql(sql, dbname=self.db)

    def cli(self, query, *opts):
        """(rc, [row dict], stderr) of search --format jsonl."""
        rc, out, err = self.run("search", "--format", "jsonl", *opts, "--",
                                query)
        rows = [json.loads(line) for line in out.splitlines()] \
            if rc == 0 else None
        return rc, rows, err

    def cli_uidls(self, query):
        rc, rows, err = self.cli(query)
        assert rc == 0, "search %r exited %d: %s" % (query, rc, err)
        return sorted(r["uidl"] for r in rows)

    def sql_search(self, query):
        """(rows as dicts, None) or (None, error message)."""
        q = "$Q$%s$Q$" % query
        sql = ("SELECT account, uidl, sha256, size, to_char(archived_at AT"
               " TIME ZONE 'UTC', '%s'), to_char(date AT TIME ZONE 'UTC',"
               " '%s'), \"from\", \"to\", cc, subject, message_id,"
               " attachments::text FROM ingestd.search(%s);"
               % (ISO_US, ISO_S, q))
        p = subprocess.run(
            [self.pg.psql_bin, "-X", "-A", "-t", "-q", "-F", "\x1f", "-R",
             "\x1e", "-P", "null=\\N", "-d", self.pg.conninfo_for(self.db),
             "-c", sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if p.returncode != 0:
            m = re.search(r"ERROR:  (.*)", p.stderr.decode())
            return None, m.group(1) if m else p.stderr.decode()
        rows = []
        for line in p.stdout.decode().split("\x1e"):
            if line.strip("\n") == "":
                continue
            v = [None if x == "\\N" else x for x in line.split("\x1f")]
            r = dict(zip(FIELDS, v))
            r["size"] = int(r["size"])
            r["attachments"] = json.loads(r["attachments"])
            rows.append(r)
        return rows, None


def semantic_fixture():
    fx = searchfix.Fixture()
    fx.message("m1", 10240, [("legal", "u1", "2025-01-02T10:00:00Z"),
                             ("sales", "u2", "2024-12-31T23:59:59Z")],
               date="2024-03-01T00:00:00Z", message_id="q1@example.com",
               subject="Quarterly report Q1",
               addresses=[("from", "alice@example.com", "Alice Example"),
                          ("sender", "bob@example.com", None),
                          ("to", "carol@supplier.org", None),
                          ("cc", "dave@example.com", "Dave")],
               parts=[("1", "text/plain", None, None, 100, False),
                      ("2", "application/pdf", "attachment", "Contract.PDF",
                       5000, True)],
               text="please find the quarterly report attached")
    fx.message("m2", 10241, [("legal", "u3", "2025-01-01T00:00:00Z")],
               date="2024-02-29T23:59:59Z", message_id="lunch@example.com",
               subject="Re: lunch", list_id="team.example.com",
               addresses=[("from", "bob@example.com", None),
                          ("to", "alice@example.com", None),
                          ("bcc", "eve@secret.net", None)],
               parts=[("1", "text/plain", None, None, 50, False)],
               text="lunch at noon, bring the report")
    fx.message("m3", 500, [("ops", "u4", "2025-02-01T12:00:00Z")],
               date="2024-04-01T00:00:00Z",
               message_id="Sig.Ned@Supplier.org", subject="signed",
               addresses=[("from", "carol@supplier.org", None),
                          ("to", "alice@example.com", None),
                          ("cc", "bob@example.com", None),
                          ("delivered-to", "archive@corp.example", None),
                          ("x-original-to", "legal@corp.example", None)],
               parts=[("1", "text/plain", None, None, 10, False),
                      ("2", "image/png", "inline", "Logo.png", 300, True)],
               text="signed report quarterly")
    fx.message("m4", 1048576, [("ops", "u5", "2025-03-01T00:00:00Z"),
                               ("legal", "u6", "2025-03-01T00:00:01Z")],
               date=None, subject='Zed\'s "weekly" \\ digest\ttab',
               list_id="weekly.other.net",
               addresses=[("from", "zed@other.net", None),
                          ("to", "alice@example.com", None)],
               text="weekly digest straße")
    fx.message("m5", 2000, [("sales", "u7", "2025-01-15T08:00:00Z")],
               index=False)
    fx.message("m6", 10239, [("sales", "u8", "2024-06-01T00:00:00Z")],
               date="2023-12-31T23:59:59Z", subject="quarterly",
               addresses=[("from", "alice@example.org", None),
                          ("to", "x@example.com.evil", None)],
               text="the report")
    return fx


ALL = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]


def expected(fx):
    """Query -> the UIDLs it must find."""
    m5 = fx.sha("m5")
    return {
        "from:alice@example.com": ["u1", "u2"],
        "from:ALICE@Example.COM": ["u1", "u2"],
        "from:example.com": ["u1", "u2", "u3"],
        "from:@example.com": ["u1", "u2", "u3"],
        "from:alice": ["u1", "u2", "u8"],
        "from:alice@": ["u1", "u2", "u8"],
        "from:bob@example.com": ["u3"],  # Sender is not From
        "to:alice@example.com": ["u3", "u4", "u5", "u6"],
        "to:dave@example.com": [],  # Cc is not To
        "cc:dave@example.com": ["u1", "u2"],
        "cc:example.com": ["u1", "u2", "u4"],
        "bcc:eve@secret.net": ["u3"],
        "deliveredto:archive@corp.example": ["u4"],
        "deliveredto:legal@corp.example": [],  # X-Original-To only
        "addr:legal@corp.example": ["u4"],
        "addr:example.com": ["u1", "u2", "u3", "u4", "u5", "u6"],
        "to:example.com.evil": ["u8"],
        "to:example.com": ["u3", "u4", "u5", "u6"],
        "account:legal": ["u1", "u3", "u6"],
        "account:LEGAL": [],
        "subject:quarterly": ["u1", "u2", "u8"],
        "subject:QUARTERLY": ["u1", "u2", "u8"],
        'subject:"quarterly report"': ["u1", "u2"],
        'subject:"report quarterly"': [],
        "subject:weekly": ["u5", "u6"],
        "filename:contract.pdf": ["u1", "u2"],
        'filename:"LOGO.PNG"': ["u4"],
        "filename:contract": [],
        "has:attachment": ["u1", "u2", "u4"],
        "HAS:Attachment": ["u1", "u2", "u4"],
        "msgid:q1@example.com": ["u1", "u2"],
        "msgid:<q1@example.com>": ["u1", "u2"],
        "msgid:<sig.ned@supplier.org>": ["u4"],
        "list:team.example.com": ["u3"],
        "list:<Team.Example.com>": ["u3"],
        "sha256:" + m5: ["u7"],
        "sha256:" + m5.upper(): ["u7"],
        "after:2024-03-01": ["u1", "u2", "u4"],
        "before:2024-03-01": ["u3", "u8"],
        "after:2024-03-01 before:2024-04-01": ["u1", "u2"],
        "after:2024-04-02": [],
        "received-after:2025-01-01": ["u1", "u3", "u4", "u5", "u6", "u7"],
        "received-before:2025-01-01": ["u2", "u8"],
        "received-after:2025-03-01 received-before:2025-03-02": ["u5",
                                                                 "u6"],
        "larger:10K": ["u3", "u5", "u6"],
        "smaller:10k": ["u4", "u7", "u8"],
        "larger:10240": ["u3", "u5", "u6"],
        "larger:1M": [],
        "smaller:1M": ["u1", "u2", "u3", "u4", "u7", "u8"],
        "report": ["u1", "u2", "u3", "u4", "u8"],
        "REPORT": ["u1", "u2", "u3", "u4", "u8"],
        '"quarterly report"': ["u1", "u2"],
        '"report quarterly"': ["u4"],
        "straße": ["u5", "u6"],
        "quarterly\x0bsigned\x0c\r\n": ["u4"],  # all white space
        # Words are whole tokens: an address is one, a display name is
        # words.
        "alice": ["u1", "u2"],
        "alice@example.com": ["u1", "u2", "u3", "u4", "u5", "u6"],
        '"Alice Example"': ["u1", "u2"],
        "from:alice@example.com OR from:carol@supplier.org": ["u1", "u2",
                                                              "u4"],
        "report -has:attachment": ["u3", "u8"],
        "-has:attachment": ["u3", "u5", "u6", "u7", "u8"],
        "--has:attachment": ["u1", "u2", "u4"],
        "(from:alice OR from:bob@example.com) account:legal": ["u1", "u3"],
        "account:legal -(subject:quarterly OR list:team.example.com)":
            ["u6"],
        "addr:example.com -to:alice@example.com": ["u1", "u2"],
        "from:alice@example.com report": ["u1", "u2"],
        "account:sales OR account:ops -larger:1K": ["u2", "u4", "u7",
                                                    "u8"],
        "(account:sales OR account:ops) -smaller:1K": ["u2", "u5", "u7",
                                                       "u8"],
        "report OR -report": ALL,
        "-(a OR b) has:attachment": ["u1", "u2", "u4"],
        "account:\"legal\" received-after:2025-01-02": ["u1", "u6"],
    }


BAD = [
    ("", "column 1: empty query"),
    ("   ", "column 1: empty query"),
    ("from:alice form:bob", "column 12: unknown operator 'form:'; did "
     "you mean 'from:'?"),
    ("http://example.com", "column 1: unknown operator 'http:' (a word "
     "with ':' must be quoted)"),
    ("from: alice", "column 6: expected a value after 'from:'"),
    ('subject:""', "column 9: expected a value after 'subject:'"),
    ("a OR", "column 5: expected a term before the end of the query"),
    ("OR a", "column 1: expected a term before 'OR'"),
    ("a OR OR b", "column 6: expected a term before 'OR'"),
    ("(a", "column 3: expected ')' to close the '(' at column 1"),
    ("a)", "column 2: unexpected ')'"),
    ("()", "column 2: expected a term before ')'"),
    ("- a", "column 1: expected a term right after '-'"),
    ("a -)", "column 4: expected a term after '-'"),
    ('x "abc', "column 3: unterminated quote"),
    ('""', "column 1: empty phrase"),
    ("a AND b", "column 3: 'AND' is implied between terms: leave it out"),
    ("after:2024-02-30", "column 7: expected a date as YYYY-MM-DD after "
     "'after:'"),
    ("before:2024-2-3", "column 8: expected a date as YYYY-MM-DD after "
     "'before:'"),
    ("received-after:0000-01-01", "column 16: expected a date as "
     "YYYY-MM-DD after 'received-after:'"),
    ("after:2023-02-29", "column 7: expected a date as YYYY-MM-DD after "
     "'after:'"),
    ("larger:10X", "column 8: expected a size (digits, then optionally K, "
     "M or G) after 'larger:'"),
    ("smaller:K", "column 9: expected a size (digits, then optionally K, "
     "M or G) after 'smaller:'"),
    ("larger:99999999999G", "column 8: size after 'larger:' too large"),
    ("has:pdf", "column 5: expected 'attachment' after 'has:'"),
    ("sha256:abc", "column 8: expected 64 hexadecimal digits after "
     "'sha256:'"),
    ("msgid:<>", "column 7: expected a Message-ID after 'msgid:'"),
    ("list:<>", "column 6: expected a list id after 'list:'"),
    ("to:@", "column 4: expected an address, a domain or a local part "
     "after 'to:'"),
    ("ünïcödé frm:x", "column 9: unknown operator 'frm:'; did you mean "
     "'from:'?"),
    ("(" * 33 + "a" + ")" * 33, "column 33: nested too deeply (at most 32 "
     "levels of '(' and '-')"),
    ("-" * 40 + "a", "column 33: nested too deeply (at most 32 levels of "
     "'(' and '-')"),
    (" ".join("w%d" % i for i in range(130)), "column %d: more than 128 "
     "terms" % (len(" ".join("w%d" % i for i in range(128))) + 2)),
    ("x" * 4097, "column 4097: query longer than 4096 characters"),
    ("averyveryverylongoperatornamethatgoesonandon:x",
     "column 1: unknown operator"),
]


def test_operators_find_exactly(env):
    """Each operator, and AND/OR/NOT combinations, find exactly the
    expected deliveries through `ingestd search`."""
    fx = semantic_fixture()
    s = SearchDB(env, fx.sql())
    wrong = []
    for q, want in expected(fx).items():
        got = s.cli_uidls(q)
        if got != sorted(want):
            wrong.append("%r: got %s, want %s" % (q, got, sorted(want)))
    assert not wrong, "\n".join(wrong)


def test_cli_and_sql_agree(env):
    """The C parser (the CLI) and ingestd.search() return identical rows
    for every query, and the same error, column included, for every bad
    one."""
    fx = semantic_fixture()
    s = SearchDB(env, fx.sql())
    queries = list(expected(fx))
    assert len(queries) >= 40
    diffs = []
    for q in queries:
        rc, crow, err = s.cli(q)
        assert rc == 0, "search %r: %s" % (q, err)
        srow, serr = s.sql_search(q)
        assert serr is None, "ingestd.search(%r): %s" % (q, serr)
        if crow != srow:
            diffs.append("%r:\n  cli %s\n  sql %s" % (q, crow, srow))
    assert not diffs, "\n".join(diffs)
    # ingestd.search_count() counts what ingestd.search() returns.
    want = expected(fx)
    rows = s.psql_rows(
        "SELECT v.n, ingestd.search_count(v.q) FROM (VALUES %s) v(n, q)"
        " ORDER BY v.n;" % ", ".join("(%d, $Q$%s$Q$)" % (i, q)
                                     for i, q in enumerate(queries)))
    assert [int(r[1]) for r in rows] == [len(want[q]) for q in queries]
    for q, msg in BAD:
        rc, _, err = s.cli(q)
        assert rc == 2, "search %r exited %d, not 2: %s" % (q, rc, err)
        assert "ingestd: search: %s\n" % msg in err, \
            "search %r: %r, want %r" % (q, err, msg)
        srow, serr = s.sql_search(q)
        assert serr == msg, "ingestd.search(%r): %r, want %r" % (
            q, serr, msg)


def test_cli_formats(env):
    """jsonl carries every field, JSON-escaped (quotes, backslash, tab),
    and nothing else on stdout; --count and --limit; a table in a pipe is
    tab-separated, on a terminal aligned under a header."""
    fx = semantic_fixture()
    s = SearchDB(env, fx.sql())
    rc, rows, err = s.cli("subject:weekly")
    assert rc == 0, err
    assert [r["uidl"] for r in rows] == ["u5", "u6"]  # archive order
    r = rows[0]
    assert set(FIELDS) <= set(r), sorted(r)
    assert r["subject"] == 'Zed\'s "weekly" \\ digest\ttab'
    assert r["account"] == "ops" and r["size"] == 1048576
    assert r["sha256"] == fx.sha("m4") and r["date"] is None
    assert r["from"] == "zed@other.net" and r["to"] == "alice@example.com"
    assert r["archived_at"] == "2025-03-01T00:00:00.000000Z"
    rc, rows, err = s.cli("has:attachment")
    att = {r["uidl"]: r["attachments"] for r in rows}
    assert [a["filename"] for a in att["u1"]] == ["Contract.PDF"]
    assert [a["filename"] for a in att["u4"]] == ["Logo.png"]
    assert rows[0]["message_id"] is not None

    rc, out, err = s.run("search", "--count", "report")
    assert (rc, out) == (0, "5\n"), (rc, out, err)
    rc, out, err = s.run("search", "--count", "--limit", "2", "report")
    assert (rc, out) == (0, "2\n"), (rc, out, err)
    rc, rows, err = s.cli("report", "--limit", "3")
    assert [r["uidl"] for r in rows] == ["u8", "u2", "u3"], rows

    rc, out, err = s.run("search", "from:alice@example.com")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all(len(x.split("\t")) == 7
                                   for x in lines), out
    assert lines[0].split("\t")[0] == "sales"
    assert lines[0].split("\t")[6] == fx.sha("m1")

    rc, out, err = s.run("search", "--format", "xml", "a")
    assert rc == 2 and "--format must be table or jsonl" in err
    rc, out, err = s.run("search", "--limit", "-1", "a")
    assert rc == 2 and "--limit must be" in err

    # On a terminal.
    master, slave = pty.openpty()
    p = subprocess.Popen([env.ingestd, "-c", s.conf, "search",
                          "from:alice@example.com"], stdout=slave,
                         stderr=subprocess.PIPE, start_new_session=True)
    os.close(slave)
    got = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    p.wait(timeout=30)
    os.close(master)
    text = got.decode().replace("\r\n", "\n")
    lines = text.splitlines()
    assert lines[0].split() == ["ACCOUNT", "ARCHIVED_AT", "DATE", "FROM",
                                "SUBJECT", "SIZE", "SHA256"], text
    assert len(lines) == 3 and "\t" not in text, text
    assert lines[1].startswith("sales ") and lines[1].endswith(
        fx.sha("m1")), text
    assert "2024-03-01 00:00:00" in lines[1], text


def test_explain_uses_indexes(env):
    """Over 30,000 generated messages (33,000 deliveries), ANALYZEd, the
    plan of every operator and of AND, OR and NOT combinations scans no
    big table sequentially, as the CLI runs them (rows and --count) and
    as ingestd.search() builds them.  A negation with no positive term beside it
    subtracts from every delivery: counting its matches may scan delivery,
    and only delivery."""
    s = SearchDB(env, searchfix.big_sql(30000), prefix="explain")
    sha = s.psql_rows("SELECT encode(sha256('big777'::bytea), 'hex')")[0][0]
    queries = [
        "from:user5@dom5.example", "from:dom7.example", "from:user77",
        "to:user15@dom15.example", "cc:dom21.example", "bcc:user33@",
        "deliveredto:user13@dom13.example", "addr:user5@dom5.example",
        "addr:dom9.example", "account:acct7", "subject:s123",
        'subject:"s123 t4"', "filename:file500.pdf", "has:attachment",
        "msgid:<mid77@big.example>", "list:list100.example",
        "sha256:" + sha, "after:2025-04-01", "before:2015-01-05",
        "received-after:2022-02-09", "received-before:2020-01-02",
        "larger:200900", "smaller:1100", "w123", '"w123 x123"',
        # Combinations.
        "from:user5@dom5.example subject:s5",
        "from:user5@dom5.example OR to:user6@dom6.example",
        "(subject:s1 OR subject:s2) has:attachment",
        "w123 -x123", "has:attachment -from:dom5.example",
        "(w1 OR w2 OR w3) -(subject:s1 OR list:list100.example)",
        "account:acct3 received-after:2022-02-09",
        "msgid:mid1@big.example OR filename:file1000.pdf OR sha256:" + sha,
    ]
    big = ("delivery", "blob", "message", "message_address",
           "message_part")
    bad = []
    for q in queries:
        rc, out, err = s.run("search", "--explain", "--", q)
        assert rc == 0, "explain %r: %s" % (q, err)
        seq = [t for t in re.findall(r"Seq Scan on (\w+)", out) if t in big]
        if seq:
            bad.append("%r: Seq Scan on %s\n%s" % (q, seq, out))
        rc, out, err = s.run("search", "--count", "--explain", "--", q)
        seq = [t for t in re.findall(r"Seq Scan on (\w+)", out) if t in big]
        if seq:
            bad.append("--count %r: Seq Scan on %s\n%s" % (q, seq, out))
        # ingestd.search()'s statement, its parameters in place.
        plan = "\n".join(r[0] for r in s.psql_rows(
            "SELECT 'EXPLAIN SELECT count(*) FROM ' || replace(sql, '$1',"
            " '(' || quote_literal(params::text) || '::text[])') || ' s'"
            " FROM ingestd.search_sql($Q$%s$Q$) \\gexec" % q))
        seq = [t for t in re.findall(r"Seq Scan on (\w+)", plan)
               if t in big]
        if seq or "Index" not in plan:
            bad.append("ingestd.search_sql(%r): Seq Scan on %s\n%s" % (
                q, seq, plan))
    assert not bad, "\n".join(bad)
    # Nearly every delivery: counting them reads delivery alone (listing
    # them reads the whole archive, and may well scan it).
    rc, out, err = s.run("search", "--count", "--explain", "--", "-w123")
    seq = set(re.findall(r"Seq Scan on (\w+)", out))
    assert rc == 0 and seq <= {"delivery"}, out


def run_tty(cmd):
    """(rc, stdout, what went to stderr) with stderr on a terminal."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    got = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    out = p.stdout.read()
    p.wait(timeout=60)
    os.close(master)
    return p.returncode, out.decode(), got.decode().replace("\r\n", "\n")


def indexed_archive(env):
    """Real mail archived from Dovecot, with index rows added by SQL."""
    from test_ingest import Archive
    ar = Archive(env, "sexp")
    gen = mailgen.MailGen(4242)
    msgs = [gen.message(kind="plain", size=2000),
            gen.message(kind="dots"), gen.message(kind="crlf"),
            gen.message(kind="plain", size=70000)]
    a = ar.mailbox(msgs)
    b = ar.mailbox([msgs[0], gen.message(kind="plain", size=500)])
    ar.snapshot()
    ar.write_config()
    ar.once()
    shas = {acct: [sha256_hex(x) for _, x in ar.expected[acct]]
            for acct in (a, b)}
    # a's first message (also in b), and a's last: subject "matter 17".
    # These rows replace what the indexer wrote, so that the test names
    # every field it searches.
    sql = ["DELETE FROM ingestd.message;"]
    for i, h in enumerate(sorted(set(shas[a] + shas[b]))):
        hit = h in (shas[a][0], shas[a][3])
        sql.append(searchfix.message_sql(
            h, date="2024-05-0%dT10:00:00Z" % (i + 1),
            message_id="m%d@example.com" % i,
            subject="matter 17" if hit else "other",
            addresses=[("from", "alice@example.com", "Alice \"A\"")],
            parts=[("1", "text/plain", None, None, 10, False),
                   ("2", "application/pdf", "attachment", "c%d.pdf" % i,
                    99, True)] if hit else []))
    ar.pg.psql("\n".join(sql), dbname=ar.dbname)
    return ar, a, b, shas


def test_export_query_round_trip(env):
    """export --query writes each matching blob once, byte-exact, a
    manifest line per delivery, query.json, and SHA256SUMS that
    `sha256sum -c` accepts; the --account form still works; a second
    export into the same DIR is refused."""
    ar, a, b, shas = indexed_archive(env)
    out = os.path.join(env.tmpdir("sexp"), "matter-17")
    q = 'subject:"matter 17"'
    o = ar.ok("export", "--query", q, "--out", out)
    assert "exported 2 messages (3 deliveries) to %s: 0 damaged" % out \
        in o, ar.context()
    byhash = {sha256_hex(x): x for acct in (a, b)
              for _, x in ar.expected[acct]}
    want = sorted([shas[a][0], shas[a][3]])
    files = sorted(os.listdir(os.path.join(out, "messages")))
    assert files == [h + ".eml" for h in want], files
    for h in want:
        with open(os.path.join(out, "messages", h + ".eml"), "rb") as f:
            assert f.read() == byhash[h], "%s.eml is not byte-exact" % h
    with open(os.path.join(out, "manifest.jsonl")) as f:
        man = [json.loads(line) for line in f]
    assert sorted((m["account"], m["sha256"]) for m in man) == sorted(
        [(a, shas[a][0]), (b, shas[a][0]), (a, shas[a][3])]), man
    for m in man:
        assert set(FIELDS) <= set(m), sorted(m)
        assert m["size"] == len(byhash[m["sha256"]])
        assert m["subject"] == "matter 17" and m["from"] == \
            "alice@example.com"
        assert len(m["attachments"]) == 1
    with open(os.path.join(out, "query.json")) as f:
        qj = json.load(f)
    assert qj["query"] == q and qj["deliveries"] == 3 and \
        qj["messages"] == 2, qj
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", qj["ran_at"])
    with open(os.path.join(out, "SHA256SUMS")) as f:
        sums = f.read().splitlines()
    assert sorted(x.split("  ")[1] for x in sums) == sorted(
        ["messages/%s.eml" % h for h in want] + ["manifest.jsonl",
                                                 "query.json"]), sums
    p = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"],
                       cwd=out, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout.decode()
    # Tampering shows.
    with open(os.path.join(out, "manifest.jsonl"), "a") as f:
        f.write("\n")
    p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode != 0

    # The same DIR again is refused, and leaves it as it was.
    rc, o, e = ar.run("export", "--query", q, "--out", out)
    assert rc == 1 and "%s/messages already exists" % out in e, \
        ar.context()
    # A syntax error: usage, before anything is written.
    out2 = os.path.join(env.tmpdir("sexp"), "bad")
    rc, o, e = ar.run("export", "--query", "subject:", "--out", out2)
    assert rc == 2 and "column 9: expected a value after 'subject:'" in e
    assert not os.path.exists(out2)
    rc, o, e = ar.run("export", "--query", "x", "--account", a, "--out",
                      out2)
    assert rc == 2 and "not both" in e
    # Progress: on a terminal only, one line redrawn, ended before the
    # summary; in a pipe none.
    assert "\r" not in e and "left" not in o + e
    out5 = os.path.join(env.tmpdir("sexp"), "tty")
    rc, o, tty = run_tty([env.ingestd, "-c", ar.conf, "export", "--query",
                          q, "--out", out5])
    assert rc == 0, (o, tty)
    assert re.search(r"\rexport: 2 of 2 messages, [0-9.]+ [KM]?i?B of "
                     r"[0-9.]+ [KM]?i?B.*\n$", tty), repr(tty)
    rc, o, tty = run_tty([env.ingestd, "-c", ar.conf, "verify"])
    assert rc == 0 and re.search(r"\rverify: \d+ messages", tty), \
        repr(tty)
    rc, o, e = ar.run("verify")
    assert rc == 0 and "\r" not in e, e
    # The account form is unchanged.
    out3 = os.path.join(env.tmpdir("sexp"), "acct")
    o = ar.ok("export", "--account", b, "--out", out3)
    assert sorted(os.listdir(os.path.join(out3, b))) == sorted(
        h + ".eml" for h in shas[b])
    # Nothing matches: an empty, still verifiable export.
    out4 = os.path.join(env.tmpdir("sexp"), "none")
    ar.ok("export", "--query", "subject:nothing", "--out", out4)
    assert os.listdir(os.path.join(out4, "messages")) == []
    p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out4,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout.decode()


def test_export_query_damaged_blob(env):
    """A blob whose bytes no longer hash to its SHA-256 is reported, left
    out of messages/ and SHA256SUMS, the others exported, exit 1."""
    ar, a, b, shas = indexed_archive(env)
    bad = shas[a][3]  # 70,000 bytes: a byte inside its zstd frame
    ar.pg.psql("UPDATE ingestd.blob_chunk SET data = set_byte(data, 200,"
               " get_byte(data, 200) # 1) WHERE sha256 = decode('%s',"
               " 'hex') AND seq = 0;" % bad, dbname=ar.dbname)
    out = os.path.join(env.tmpdir("sexp"), "damaged")
    rc, o, e = ar.run("export", "--query", 'subject:"matter 17"', "--out",
                      out)
    assert rc == 1, ar.context()
    assert bad in e and "1 damaged" in o, ar.context()
    assert os.listdir(os.path.join(out, "messages")) == [
        shas[a][0] + ".eml"]
    with open(os.path.join(out, "SHA256SUMS")) as f:
        assert bad not in f.read()
    p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout.decode()
