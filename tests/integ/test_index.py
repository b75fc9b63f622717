"""The message index: rows written with the blob, views, reindex.

Messages of known content go through a real Dovecot into a real
PostgreSQL; what the index holds is read back with SQL and compared with
what the messages say.  Expected values are written out by hand here, not
computed by the code under test.
"""

import hashlib
import os
import re
import signal
import subprocess
import time

import harness
import mailgen
from test_ingest import Archive

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PDF_B64 = __import__("base64").encodebytes(PDF).replace(b"\n", b"\r\n")

KNOWN = (
    b"Return-Path: <bounce@lists.example.org>\r\n"
    b"Delivered-To: archive@example.com\r\n"
    b"Date: Tue, 5 Mar 2024 14:30:00 +0100\r\n"
    b"From: =?utf-8?q?Alice_M=C3=BCller?= <Alice@Example.COM>\r\n"
    b"To: Bob <bob@supplier.example>, carol@example.org\r\n"
    b"Cc: \"Dave, D.\" <dave@example.net>\r\n"
    b"Subject: =?utf-8?B?UXVhcnRlcmx5IHJlcG9ydCDigJMgUTE=?=\r\n"
    b"Message-ID: <abc.123@example.com>\r\n"
    b"In-Reply-To: <prev@example.com>\r\n"
    b"List-Id: Finance team <finance.lists.example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=FC=DFe, the figures for zanzibarquux are attached.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf; name=\"contract.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"contract.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + PDF_B64 +
    b"--b1--\r\n"
    b"epilogue\r\n")


def _rows(ar, sql):
    return ar.sql(sql)


def _index_snapshot(ar):
    """Everything the index holds, in a comparable form."""
    msgs = ar.sql(
        "SELECT encode(sha256, 'hex'), parser_version, flags, date, "
        "date_raw, message_id, in_reply_to, refs, subject, subject_raw, "
        "list_id, auto_submitted, has_attachment, subject_fts::text, "
        "fts::text FROM message ORDER BY 1;")
    addrs = ar.sql("SELECT sha256, role, address, domain, name FROM "
                   "addresses ORDER BY 1, 2, 3;")
    parts = ar.sql("SELECT encode(sha256, 'hex'), path, content_type, "
                   "disposition, filename, size, encode(part_sha256, "
                   "'hex'), attachment FROM message_part ORDER BY 1, 2;")
    return msgs, addrs, parts


def _scalar(ar, sql):
    rows = ar.sql(sql)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def _archive(env, prefix, messages, **over):
    ar = Archive(env, prefix)
    name = ar.mailbox(messages, **over)
    ar.snapshot()
    ar.write_config()
    ar.once()
    ar.check_archived(name)
    return ar, name


def test_every_archived_message_is_indexed_with_it(env):
    gen = mailgen.MailGen(901)
    box = gen.mailbox(12) + [KNOWN]
    ar, name = _archive(env, "idx", box)
    n = len({hashlib.sha256(b).hexdigest()
             for _, b in ar.expected[name]})
    assert int(_scalar(ar, "SELECT count(*) FROM message;")) == n
    assert _scalar(ar, "SELECT unindexed FROM archive_totals;") == "0"
    # Every delivery has its row in messages, marked indexed.
    rows = ar.sql("SELECT indexed FROM messages WHERE account = '%s';"
                  % name)
    assert len(rows) == len(box) and all(r[0] == "t" for r in rows), rows

    h = hashlib.sha256(mailgen.served(KNOWN)).hexdigest()
    row = ar.sql(
        "SELECT date AT TIME ZONE 'UTC', date_raw, message_id, "
        "in_reply_to, subject, \"from\", \"to\", cc, list_id, "
        "has_attachment, indexed FROM messages WHERE sha256 = '%s';" % h)
    assert row == [["2024-03-05 13:30:00", "Tue, 5 Mar 2024 14:30:00 +0100",
                    "abc.123@example.com", "<prev@example.com>",
                    "Quarterly report \u2013 Q1", "alice@example.com",
                    "bob@supplier.example, carol@example.org",
                    "dave@example.net", "finance.lists.example.org",
                    "t", "t"]], row
    addrs = ar.sql("SELECT role, address, domain, coalesce(name, '-') "
                   "FROM addresses WHERE sha256 = '%s' ORDER BY role, "
                   "address;" % h)
    assert addrs == [
        ["cc", "dave@example.net", "example.net", "Dave, D."],
        ["delivered-to", "archive@example.com", "example.com", "-"],
        ["from", "alice@example.com", "example.com", "Alice M\u00fcller"],
        ["return-path", "bounce@lists.example.org", "lists.example.org",
         "-"],
        ["to", "bob@supplier.example", "supplier.example", "Bob"],
        ["to", "carol@example.org", "example.org", "-"],
    ], addrs
    att = ar.sql("SELECT path, content_type, filename, size, part_sha256 "
                 "FROM attachments WHERE sha256 = '%s';" % h)
    assert att == [["2", "application/pdf", "contract.pdf", str(len(PDF)),
                    hashlib.sha256(PDF).hexdigest()]], att
    # The text of the latin-1 body, decoded, is searchable.
    hits = ar.sql("SELECT encode(sha256, 'hex') FROM message WHERE fts @@ "
                  "to_tsquery('simple', 'zanzibarquux');")
    assert hits == [[h]], hits
    hits = ar.sql("SELECT encode(sha256, 'hex') FROM message WHERE fts @@ "
                  "to_tsquery('simple', 'gr\u00fc\u00dfe');")
    assert hits == [[h]], hits


def test_a_message_in_two_mailboxes_is_indexed_once(env):
    ar = Archive(env, "idxdup")
    a = ar.mailbox([KNOWN])
    b = ar.mailbox([KNOWN])
    ar.snapshot()
    ar.write_config()
    ar.once()
    assert _scalar(ar, "SELECT count(*) FROM message;") == "1"
    rows = ar.sql("SELECT account FROM messages ORDER BY account;")
    assert rows == sorted([[a], [b]]), rows


def test_index_rows_the_server_refuses_do_not_cost_the_message(env):
    """A value of the index that PostgreSQL refuses (here a constraint the
    test adds) must not keep the message from being archived, nor fail the
    messages committed with it: it is stored, flagged index_refused."""
    gen = mailgen.MailGen(902)
    bad = gen.message(subject="refuse this index row")
    box = gen.mailbox(6) + [bad]
    ar = Archive(env, "idxref")
    name = ar.mailbox(box)
    ar.snapshot()
    ar.write_config()
    ar.ok("migrate")
    ar.sql("ALTER TABLE message ADD CONSTRAINT test_refuse CHECK "
           "(subject IS DISTINCT FROM 'refuse this index row');")
    ar.once()
    ar.check_archived(name)
    ar.check_drained(name)
    h = hashlib.sha256(mailgen.served(bad)).hexdigest()
    rows = ar.sql("SELECT encode(sha256, 'hex'), flags, subject IS NULL "
                  "FROM message ORDER BY flags = '{index_refused}', 1;")
    assert len(rows) == len(box), rows
    assert rows[-1] == [h, "{index_refused}", "t"], rows
    assert all(r[1] != "{index_refused}" for r in rows[:-1]), rows


def _unindex(ar):
    """The archive as a version without the index left it."""
    ar.sql("DELETE FROM message;")
    return int(_scalar(ar, "SELECT unindexed FROM archive_totals;"))


def test_reindex_indexes_what_an_older_version_archived(env):
    gen = mailgen.MailGen(903)
    box = gen.mailbox(30) + [KNOWN]
    ar, name = _archive(env, "reidx", box)
    before = _index_snapshot(ar)
    blobs = len(ar.blobs())
    assert _unindex(ar) == blobs
    rows = ar.sql("SELECT count(*) FROM messages WHERE NOT indexed;")
    assert rows == [[str(len(box))]], rows
    # On a terminal: a progress line with the totals, ended before the
    # summary; in a pipe (the second run below) none.
    from test_search import run_tty
    rc, out, tty = run_tty([env.ingestd, "-c", ar.conf, "reindex"])
    assert rc == 0 and "reindexed %d messages" % blobs in out, (out, tty)
    assert re.search(r"\rreindex: %d of %d messages, [0-9.]+ [KM]?i?B of "
                     r"[0-9.]+ [KM]?i?B.*\n$" % (blobs, blobs), tty), repr(tty)
    assert _scalar(ar, "SELECT unindexed FROM archive_totals;") == "0"
    after = _index_snapshot(ar)
    assert after == before, "reindex wrote other rows than the commit did"
    # Nothing left to do: a second run indexes nothing.
    rc, out, err = ar.run("reindex")
    assert rc == 0 and "reindexed 0 messages" in out, out
    assert "\r" not in err, err


def test_reindex_replaces_an_older_parsers_rows(env):
    ar, name = _archive(env, "reold", [KNOWN] +
                        mailgen.MailGen(904).mailbox(5))
    before = _index_snapshot(ar)
    ar.sql("UPDATE message SET parser_version = 0, subject = 'stale';"
           "DELETE FROM message_address WHERE role = 'to';")
    out = ar.ok("reindex")
    assert "reindexed 6 messages" in out, out
    assert _index_snapshot(ar) == before


def test_reindex_resumes_after_a_kill(env):
    """A kill at any moment loses at most the batch in progress: the next
    run indexes the rest, and the result is what one run gives."""
    gen = mailgen.MailGen(905)
    box = [gen.message(kind="plain", size=1500) for _ in range(450)]
    ar, name = _archive(env, "rekill", box)
    before = _index_snapshot(ar)
    total = _unindex(ar)
    cmd = [harness.ingestd_binary(), "-c", ar.conf, "reindex"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    done = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        done = int(_scalar(ar, "SELECT count(*) FROM message;"))
        if done > 0:
            break
        time.sleep(0.01)
    killed = p.poll() is None
    if killed:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    left = int(_scalar(ar, "SELECT unindexed FROM archive_totals;"))
    assert left < total, "nothing was committed before the kill"
    out = ar.ok("reindex")
    assert "reindexed %d messages" % left in out, (out, left, killed)
    assert _index_snapshot(ar) == before
