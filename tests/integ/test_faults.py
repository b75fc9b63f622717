"""Fault tests: the ingestd binary against fakepop3, a POP3 server that
misbehaves on purpose (tests/fake/README.md), and the run's PostgreSQL.

Every test puts the faulty mailboxes and at least one healthy one in the
same config and the same `once`, and checks both sides after each run:
what the archive holds (deliveries, blobs, polls, export byte for byte
against what the server sent) and what the server still holds (message
files left in the mailbox directory), plus the transcript of what
ingestd sent (no DELE for a message not archived, no password before
TLS).
"""

import base64
import hashlib
import json
import os
import subprocess

from faultlib import FaultRun, crlf, message, parse_summaries
from test_scale import _run_measured


def _files(tag, n, **kw):
    return [message(i, tag, **kw) for i in range(1, n + 1)]


def test_cut_stall_and_drip_mid_retr(env):
    """Cut by FIN and by RST in the middle of RETR 3, a server that stalls
    in the middle of RETR 3, and one that sends a message a byte at a time:
    the cut and stalled polls fail as temporary, archive only the messages
    received whole, delete none of the others; the next run completes
    without fetching again what was archived."""
    fr = FaultRun(env, "cut")
    srv = fr.server()
    big = [message(i, "cut", body_lines=400) for i in range(1, 6)]
    fin = fr.mailbox(srv, files=big,
                     directives=["@1 CUT RETR:3 3000 FIN"])
    rst = fr.mailbox(srv, files=big,
                     directives=["@1 CUT RETR:3 3000 RST"])
    stall = fr.mailbox(srv, files=_files("stall", 5, body_lines=400),
                       directives=["@1 STALL RETR:3 3000"])
    drip = fr.mailbox(srv, files=_files("drip", 1, body_lines=2),
                      directives=["DRIP RETR 1 1"])
    healthy = fr.mailbox(srv, files=_files("healthy", 4))

    summ = fr.once(expect_rc=1, command_timeout=2)
    fr.check_healthy(healthy, summ)
    fr.check_healthy(drip, summ)
    for name in (fin, rst, stall):
        msgs = fr.msgs(name)
        s = summ[name]
        assert s["errors"] >= 1 and s["outcome"] == "temporary", s
        # Messages 1 and 2 came whole before the fault; 3 was cut short.
        rows = fr.deliveries(name)
        got = {r["sha256"] for r in rows}
        assert msgs[2].sha256 not in got, \
            "%s: a message cut mid-RETR was archived" % name
        assert got <= {m.sha256 for m in msgs}, rows
        fr.check_archived(name, [m for m in msgs if m.sha256 in got])
        # Nothing deleted: QUIT never went through.
        fr.check_dele_proven(name)
        fr.check_left(name, msgs)
        assert all(r["deleted"] is None for r in rows), rows
        fr.check_poll(name, "temporary")
    fr.check_poll(stall, "temporary", ["timeout"])
    fr.check_poll(rst, "temporary", ["reset"])

    archived_before = {n: len(fr.deliveries(n)) for n in (fin, rst, stall)}
    summ = fr.once()
    for name in (fin, rst, stall):
        n = len(fr.msgs(name))
        s = summ[name]
        assert s["outcome"] == "ok" and s["errors"] == 0, s
        assert s["fetched"] == n - archived_before[name], \
            "%s: fetched %d again, %d were archived already" % (
                name, s["fetched"], archived_before[name])
        fr.check_archived(name)
        fr.check_dele_proven(name)
        fr.check_left(name, [])
        fr.check_poll(name, "ok")
    ex = fr.export()
    for name in (fin, rst, stall, drip, healthy):
        fr.check_export(ex, name)
    fr.check_no_secrets()


def test_cut_after_quit(env):
    """The server cuts the connection once QUIT arrives: before applying
    the deletions, and after applying them but before its +OK.  Either
    way ingestd cannot know; the poll is temporary, and the next one
    converges: the messages still there are proven and deleted, nothing is
    stored twice, and the ones already gone are recorded as gone."""
    fr = FaultRun(env, "quit")
    srv = fr.server()
    before = fr.mailbox(srv, files=_files("qb", 4),
                        directives=["@1 CUT QUIT before"])
    after = fr.mailbox(srv, files=_files("qa", 4),
                       directives=["@1 CUT QUIT after"])
    healthy = fr.mailbox(srv, files=_files("qh", 3))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    for name in (before, after):
        s = summ[name]
        assert s["archived"] == 4 and s["outcome"] == "temporary", s
        fr.check_archived(name)
        fr.check_poll(name, "temporary", ["quit"])
        # No +OK to QUIT: nothing may be recorded as deleted yet.
        assert all(r["deleted"] is None for r in fr.deliveries(name))
        fr.check_dele_proven(name)
    fr.check_left(before, fr.msgs(before))
    fr.check_left(after, [])
    blobs = fr.blobs()

    summ = fr.once()
    for name in (before, after):
        s = summ[name]
        assert s["outcome"] == "ok" and s["fetched"] == 0 and \
            s["archived"] == 0, s
        fr.check_archived(name)
        fr.check_dele_proven(name)
        fr.check_left(name, [])
        fr.check_poll(name, "ok")
    assert summ[before]["deleted"] == 4, summ[before]
    assert fr.blobs() == blobs, "the second poll stored something again"
    # Messages deleted by the cut QUIT are seen gone at the next poll.
    for name in (before, after):
        for r in fr.deliveries(name):
            assert r["deleted"] is not None, \
                "%s: %s is gone from the server but server_deleted_at " \
                "is NULL" % (name, r["uidl"])
    # A QUIT left unanswered is not sent again as a DELE for a message
    # the server no longer lists.
    assert [t for _, t, _ in srv.commands(after)
            if t.startswith("DELE")] == ["DELE %d" % i for i in range(1, 5)]
    ex = fr.export()
    for name in (before, after, healthy):
        fr.check_export(ex, name)


def test_err_on_retr_dele_and_no_uidl(env):
    """-ERR to RETR 2: that message stays on the server, the others are
    archived and deleted, the poll is temporary.  -ERR to DELE 2: message
    2 is archived but stays, and is not recorded as deleted.  A server
    with no UIDL: everything archived; polled again (delete "never") it is
    downloaded again but nothing is stored twice; with "after-archive" the
    server ends empty."""
    fr = FaultRun(env, "err")
    srv = fr.server()
    retr = fr.mailbox(srv, files=_files("er", 4), directives=[
        "@1 ERR RETR:2 [SYS/TEMP] cannot read message"])
    dele = fr.mailbox(srv, files=_files("ed", 4), directives=[
        "@1 ERR DELE:2 [SYS/TEMP] cannot delete message"])
    nouidl_keep = fr.mailbox(srv, files=_files("nk", 3),
                             directives=["NO-UIDL"], delete="never")
    nouidl_del = fr.mailbox(srv, files=_files("nd", 3),
                            directives=["NO-UIDL", "@1 CUT QUIT before"])
    healthy = fr.mailbox(srv, files=_files("eh", 3))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    msgs = fr.msgs(retr)
    others = [m for i, m in enumerate(msgs) if i != 1]
    s = summ[retr]
    assert s["outcome"] == "temporary" and s["archived"] == 3 and \
        s["deleted"] == 3, s
    fr.check_archived(retr, others)
    fr.check_dele_proven(retr)
    fr.check_left(retr, [msgs[1]])
    fr.check_poll(retr, "temporary", ["RETR 2", "cannot read message"])
    assert all(r["deleted"] is not None for r in fr.deliveries(retr))

    msgs = fr.msgs(dele)
    s = summ[dele]
    assert s["outcome"] == "temporary" and s["archived"] == 4 and \
        s["deleted"] == 3, s
    fr.check_archived(dele)
    fr.check_dele_proven(dele)
    fr.check_left(dele, [msgs[1]])
    fr.check_poll(dele, "temporary", ["DELE 2", "cannot delete message"])
    for r in fr.deliveries(dele):
        on_server = r["uidl"] == msgs[1].uidl
        assert (r["deleted"] is None) == on_server, \
            "%s: %s server_deleted_at %s" % (dele, r["uidl"], r["deleted"])

    for name in (nouidl_keep, nouidl_del):
        s = summ[name]
        assert s["archived"] == 3, s
        fr.check_archived(name, uidls=False)
        assert all(r["uidl"] is None for r in fr.deliveries(name))
        fr.check_dele_proven(name)
    fr.check_poll(nouidl_keep, "ok")
    fr.check_poll(nouidl_del, "temporary")
    fr.check_never_dele(nouidl_keep)
    fr.check_left(nouidl_keep, fr.msgs(nouidl_keep))
    # QUIT was cut before the deletions: all three are still there
    fr.check_left(nouidl_del, fr.msgs(nouidl_del))
    blobs = fr.blobs()

    summ = fr.once()
    for name in (retr, dele):
        assert summ[name]["outcome"] == "ok", summ[name]
        fr.check_archived(name)
        fr.check_dele_proven(name)
        fr.check_left(name, [])
        assert all(r["deleted"] is not None for r in fr.deliveries(name))
    assert summ[retr]["fetched"] == 1, summ[retr]
    assert summ[dele]["fetched"] == 0, summ[dele]
    # Without UIDL the only proof is the content: fetched again, stored
    # once, and deleted once proven so.
    for name in (nouidl_keep, nouidl_del):
        s = summ[name]
        assert s["fetched"] == 3 and s["outcome"] == "ok", s
        fr.check_archived(name, uidls=False)
        fr.check_dele_proven(name)
    fr.check_never_dele(nouidl_keep)
    fr.check_left(nouidl_keep, fr.msgs(nouidl_keep))
    fr.check_left(nouidl_del, [])
    assert summ[nouidl_del]["deleted"] == 3, summ[nouidl_del]
    for r in fr.deliveries(nouidl_del):
        assert r["deleted"] is not None, \
            "%s: deleted, but server_deleted_at is NULL" % nouidl_del
    new = set(fr.blobs()) - set(blobs)
    assert new == {m.sha256 for m in fr.msgs(retr)[1:2]}, \
        "new blobs %s: only RETR 2 of %s was missing" % (new, retr)
    ex = fr.export()
    for name in (retr, dele, nouidl_keep, nouidl_del, healthy):
        fr.check_export(ex, name)


def test_login_response_codes(env):
    """[IN-USE], [LOGIN-DELAY] and [SYS/TEMP] at login mean "try later"
    (temporary); [AUTH] and [SYS/PERM] mean "fix the config" (permanent).
    Nothing is fetched or deleted; the next poll of the temporary ones
    completes."""
    fr = FaultRun(env, "login")
    srv = fr.server()
    codes = {
        "[IN-USE] mailbox locked by another session": "temporary",
        "[LOGIN-DELAY] wait before logging in again": "temporary",
        "[SYS/TEMP] mail store unavailable": "temporary",
        "[SYS/PERM] mailbox disabled": "permanent",
        "[AUTH] invalid user name or password": "permanent",
    }
    names = {}
    for i, (text, outcome) in enumerate(codes.items()):
        q = "@1 " if outcome == "temporary" else ""
        names[fr.mailbox(srv, files=_files("lg%d" % i, 2),
                         directives=[q + "LOGIN-FAIL " + text])] = \
            (text, outcome)
    healthy = fr.mailbox(srv, files=_files("lh", 3))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    for name, (text, outcome) in names.items():
        s = summ[name]
        assert s["outcome"] == outcome and s["errors"] >= 1 and \
            s["fetched"] == 0, (text, s)
        code = text.split("]")[0] + "]"
        fr.check_poll(name, outcome, [text])
        assert fr.deliveries(name) == []
        fr.check_left(name, fr.msgs(name))
        cmds = [t.split()[0].upper() for _, t, _ in srv.commands(name)]
        assert not {"RETR", "DELE", "TOP", "UIDL"} & set(cmds), \
            "%s: commands after a refused login: %s" % (code, cmds)

    summ = fr.once(expect_rc=1)
    for name, (text, outcome) in names.items():
        if outcome == "permanent":
            fr.check_poll(name, "permanent")
            fr.check_left(name, fr.msgs(name))
            assert fr.deliveries(name) == []
        else:
            assert summ[name]["outcome"] == "ok", summ[name]
            fr.check_archived(name)
            fr.check_dele_proven(name)
            fr.check_left(name, [])
            fr.check_poll(name, "ok")


def test_broken_responses(env):
    """Text garbage, binary junk and a 1 MiB line without CRLF in answer
    to RETR 2, and a message whose terminating "." never comes before the
    server closes: each is a protocol error that archives nothing it did
    not receive whole and deletes nothing.  A server that ends every line
    with a bare LF: its messages are archived with exactly the bytes it
    sent, and deleted."""
    fr = FaultRun(env, "junk")
    srv = fr.server()
    faults = {
        "REPLY RETR:2 this is not a POP3 reply": ["not a POP3 reply"],
        "GARBAGE RETR:2 4K 7": [],
        "LONG-LINE RETR:2 1M": ["longer than"],
        "NO-TERMINATOR RETR:2": ["closed"],
        "NO-TERMINATOR RETR:4": ["closed"],
    }
    names = {}
    for i, (d, words) in enumerate(faults.items()):
        names[fr.mailbox(srv, files=_files("j%d" % i, 4),
                         directives=["@1 " + d])] = (d, words)
    # Over plaintext too, where a close is only a FIN: the body of RETR 2
    # complete but no terminator, and a cut just before the terminator.
    plain = fr.server(tls="none")
    msgs = _files("jp", 3)
    whole = len(msgs[1].replace(b"\n.", b"\n.."))
    for d in ("NO-TERMINATOR RETR:2", "CUT RETR:2 %d FIN" % whole):
        names[fr.mailbox(plain, files=msgs, directives=["@1 " + d])] = \
            (d, [])
    lf = [message(i, "lf").replace(b"\r\n", b"\n") for i in range(1, 4)]
    lf.append(b"Subject: no final line end\n\nlast line")
    bare = fr.mailbox(srv, files=lf, directives=["BARE-LF"], bare_lf=True)
    healthy = fr.mailbox(srv, files=_files("jh", 3))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    fr.check_healthy(bare, summ)
    for m in fr.msgs(bare):
        assert b"\r" not in m.bytes
    for name, (d, words) in names.items():
        s = summ[name]
        assert s["outcome"] == "temporary" and s["errors"] >= 1 and \
            s["deleted"] == 0, (d, s)
        msgs = fr.msgs(name)
        bad = 3 if "RETR:4" in d else 1
        rows = fr.deliveries(name)
        got = {r["sha256"] for r in rows}
        assert msgs[bad].sha256 not in got, \
            "%s: message %d archived though %s" % (name, bad + 1, d)
        assert got <= {m.sha256 for m in msgs[:bad]}, (d, rows)
        fr.check_archived(name, [m for m in msgs if m.sha256 in got])
        fr.check_dele_proven(name)
        fr.check_left(name, msgs)
        fr.check_poll(name, "temporary", words)

    summ = fr.once()
    for name, (d, words) in names.items():
        assert summ[name]["outcome"] == "ok", (d, summ[name])
        fr.check_archived(name)
        fr.check_dele_proven(name)
        fr.check_left(name, [])
    ex = fr.export()
    for name in list(names) + [bare, healthy]:
        fr.check_export(ex, name)


def test_listings_that_lie(env):
    """LIST sizes that are wrong (larger, smaller, zero): the archive holds
    the bytes RETR sent.  Two messages under one UIDL, different or
    identical: both archived, each deleted only once its own bytes are.
    UIDLs of 200 characters: archived under their 71-character short form
    ("sha256:" and 64 hex digits), and known at the next poll."""
    fr = FaultRun(env, "lie")
    srv = fr.server()
    lie = fr.mailbox(srv, files=_files("ls", 4), directives=[
        "LIE-SIZE 1 +1000", "LIE-SIZE 2 -100", "LIE-SIZE 3 0",
        "LIE-SIZE 4 99999999"])
    dup = fr.mailbox(srv, files=_files("du", 4), directives=[
        "UIDL-DUP 1 2"])
    same = message(1, "same")
    dup_same = fr.mailbox(srv, files=[same, same, message(3, "same")],
                          directives=["UIDL-DUP 1 2"])
    long_ = fr.mailbox(srv, files=_files("lu", 3), delete="never",
                       directives=["UIDL-LONG 200"])
    healthy = fr.mailbox(srv, files=_files("lh", 2))

    summ = fr.once()
    fr.check_healthy(healthy, summ)
    for name in (lie, dup):
        fr.check_healthy(name, summ)
    msgs = fr.msgs(dup)
    rows = fr.deliveries(dup)
    assert sorted(r["uidl"] for r in rows if r["sha256"] in
                  (msgs[0].sha256, msgs[1].sha256)) == [msgs[0].uidl] * 2
    deles, applied, _ = fr.check_dele_proven(dup)
    assert sorted(m.id for _, _, m in deles) == [m.id for m in msgs]

    msgs = fr.msgs(dup_same)
    fr.check_archived(dup_same, [msgs[0], msgs[2]])
    fr.check_dele_proven(dup_same)
    fr.check_left(dup_same, [])

    s = summ[long_]
    assert s["outcome"] == "ok" and s["archived"] == 3, s
    rows = fr.check_archived(long_, uidls=False)
    assert all(len(r["uidl"]) == 71 and r["uidl"].startswith("sha256:")
               for r in rows) and len({r["uidl"] for r in rows}) == 3, rows
    fr.check_left(long_, fr.msgs(long_))
    fr.check_never_dele(long_)

    summ = fr.once()
    s = summ[long_]
    assert s["fetched"] == 0 and s["listed"] == 3, \
        "200-character UIDLs were not recognised at the next poll: %s" % s
    ex = fr.export()
    for name in (lie, dup, long_, healthy):
        fr.check_export(ex, name)
    fr.check_export(ex, dup_same, [msgs[0], msgs[2]])


def test_uidls_change_between_sessions(env):
    """A server that gives every message a new UIDL at each session: with
    delete "never", the second poll downloads everything again and stores
    nothing twice; with "after-archive" and a first QUIT cut before the
    deletions, the second poll re-matches by content, stores nothing
    twice, and empties the mailbox."""
    fr = FaultRun(env, "chg")
    srv = fr.server()
    keep = fr.mailbox(srv, files=_files("ck", 4), delete="never",
                      directives=["UIDL-CHANGE"])
    drain = fr.mailbox(srv, files=_files("cd", 4),
                       directives=["UIDL-CHANGE", "@1 CUT QUIT before"])
    healthy = fr.mailbox(srv, files=_files("ch", 2))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    for name in (keep, drain):
        fr.check_archived(name, uidls=False)
        fr.check_left(name, fr.msgs(name))
        fr.check_dele_proven(name)
    fr.check_never_dele(keep)
    blobs = fr.blobs()
    first = {n: fr.deliveries(n) for n in (keep, drain)}

    summ = fr.once()
    assert summ[keep]["fetched"] == 4 and summ[keep]["outcome"] == "ok", \
        summ[keep]
    assert fr.blobs() == blobs, "a changed UIDL made a message stored twice"
    fr.check_never_dele(keep)
    fr.check_left(keep, fr.msgs(keep))
    fr.check_dele_proven(drain)
    fr.check_left(drain, [])
    assert summ[drain]["deleted"] == 4, summ[drain]
    for name in (keep, drain):
        rows = fr.deliveries(name)
        assert {r["sha256"] for r in rows} == \
            {m.sha256 for m in fr.msgs(name)}, rows
        # Each message is on the server under one UIDL only: the archive
        # must not say it is there twice.
        on_server = [r for r in rows if r["deleted"] is None]
        want = 4 if name == keep else 0
        assert len(on_server) == want, \
            "%s: %d deliveries marked on the server, %d messages are: %s" % (
                name, len(on_server), want, rows)
    ex = fr.export()
    for name in (keep, drain, healthy):
        fr.check_export(ex, name)


LOGIN_COMMANDS = ("USER", "PASS", "APOP", "AUTH")


def _login_lines(srv):
    """Every login command any client sent to srv: [(conn, text, tls)]."""
    return [(e.conn, e.text, e.tls) for e in srv.events()
            if e.kind == "C" and e.text.split(" ")[0].upper() in
            LOGIN_COMMANDS]


def test_bad_certificates_are_refused_before_login(env):
    """Expired, self-signed and wrong-host certificates, with implicit TLS
    and with STLS: a permanent failure naming the certificate problem, no
    login command sent, nothing fetched or deleted; the healthy accounts
    of the same run, over implicit TLS and over STLS, are archived."""
    fr = FaultRun(env, "cert")
    good = fr.server()
    good_stls = fr.server(tls="starttls")
    healthy = fr.mailbox(good, files=_files("th", 2))
    healthy_stls = fr.mailbox(good_stls, files=_files("ts", 2),
                              tls="starttls")
    problems = {"expired": "expired", "selfsigned": "self-signed",
                "wronghost": "mismatch"}
    bad = {}
    for cert, words in problems.items():
        for tls in ("implicit", "starttls"):
            srv = fr.server(tls=tls, cert=cert)
            # a host name for one, an address for the other
            host = "localhost" if tls == "implicit" else "127.0.0.1"
            name = fr.mailbox(srv, files=_files(cert, 2), tls=tls,
                              host=host)
            bad[name] = (cert, words, srv)

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    fr.check_healthy(healthy_stls, summ)
    for name, (cert, words, srv) in bad.items():
        s = summ[name]
        assert s["outcome"] == "permanent" and s["fetched"] == 0, (cert, s)
        fr.check_poll(name, "permanent", ["certificate", words])
        assert fr.deliveries(name) == []
        fr.check_left(name, fr.msgs(name))
        assert _login_lines(srv) == [], \
            "%s (%s): login sent over a bad certificate: %s" % (
                name, cert, _login_lines(srv))
        assert any(e.kind == "E" and "handshake failed" in e.text
                   for e in srv.events()), "%s: no TLS handshake" % name
    logins = _login_lines(good_stls)
    assert logins and all(tls for _, _, tls in logins), \
        "credentials in plaintext before STLS: %s" % logins
    fr.check_no_secrets()


def test_stls_not_offered_and_injected_plaintext(env):
    """tls = "starttls" and a server that does not offer STLS: a permanent
    refusal, no credentials sent.  A server that injects plaintext after
    its STLS +OK: the injected line is discarded and the session archives
    everything, logging in only under TLS."""
    fr = FaultRun(env, "stls")
    none = fr.server(tls="starttls", global_lines=["NO-STLS"])
    inject = fr.server(tls="starttls", global_lines=[
        'STLS-INJECT "+OK injected\\r\\n+OK capability list follows'
        '\\r\\nUSER\\r\\n."'])
    good = fr.server()
    refused = fr.mailbox(none, files=_files("sn", 2), tls="starttls")
    injected = fr.mailbox(inject, files=_files("si", 3), tls="starttls")
    healthy = fr.mailbox(good, files=_files("sh", 2))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    s = summ[refused]
    assert s["outcome"] == "permanent" and s["fetched"] == 0, s
    fr.check_poll(refused, "permanent", ["STLS"])
    assert fr.deliveries(refused) == []
    fr.check_left(refused, fr.msgs(refused))
    assert _login_lines(none) == [], _login_lines(none)
    cmds = [e.text for e in none.events() if e.kind == "C"]
    assert all(c.split(" ")[0].upper() in ("CAPA", "QUIT", "STLS")
               for c in cmds), "sent to a server without STLS: %s" % cmds

    fr.check_healthy(injected, summ)
    assert any(e.kind == "E" and "STLS-INJECT" in e.text
               for e in inject.events()), "the injection did not fire"
    logins = _login_lines(inject)
    assert logins and all(tls for _, _, tls in logins), logins
    ex = fr.export()
    fr.check_export(ex, injected)
    fr.check_export(ex, healthy)


# 5,000 messages in make test (about 5 s); make crashtest runs the
# issue's 100,000 (about 35 s) through FAULTS_LARGE.
LARGE = int(os.environ.get("FAULTS_LARGE", "5000"))


def test_large_mailbox(env):
    """A mailbox of LARGE small generated messages, delete "after-archive",
    next to a healthy one: every message archived byte-exact (by digest),
    every one deleted, the server's deletion state complete."""
    fr = FaultRun(env, "large")
    srv = fr.server()
    big = fr.mailbox(srv, gens=["%d 300..1500 seed=41" % LARGE])
    healthy = fr.mailbox(srv, files=_files("bh", 2))
    summ = fr.once(timeout=170)
    fr.check_healthy(healthy, summ)
    s = summ[big]
    assert s["outcome"] == "ok" and s["listed"] == LARGE and \
        s["archived"] == LARGE and s["deleted"] == LARGE, s
    rows = fr.deliveries(big)
    msgs = fr.msgs(big)
    got = sorted((r["uidl"], r["sha256"], r["size"]) for r in rows)
    want = sorted((m.uidl, m.sha256, len(m.bytes)) for m in msgs)
    assert got == want, "deliveries of %s differ from the %d messages" % (
        big, LARGE)
    assert all(r["deleted"] is not None for r in rows)
    fr.check_dele_proven(big)
    fr.check_left(big, [])
    # Generated messages are deleted in the server's state file.
    with open(os.path.join(srv.dir, big, ".fakepop3-deleted.json")) as f:
        state = json.load(f)
    (ranges,) = state.values()
    assert ranges == [[1, LARGE]], ranges
    summ = fr.once()
    assert summ[big]["listed"] == 0, summ[big]



def _odd_uidls(env, prefix, odd):
    """Two mailboxes whose messages have the UIDLs odd (one drained, one
    kept), and a healthy one: every message archived under a printable
    UIDL that is the same at the next poll, which downloads nothing."""
    fr = FaultRun(env, prefix)
    srv = fr.server()
    sets = ["SET-UIDL %d %s" % (i, u) for i, u in enumerate(odd, 1)]
    n = len(odd) + 1
    drain = fr.mailbox(srv, files=_files(prefix + "d", n), directives=sets)
    keep = fr.mailbox(srv, files=_files(prefix + "k", n), directives=sets,
                      delete="never")
    healthy = fr.mailbox(srv, files=_files(prefix + "h", 2))

    summ = fr.once()
    fr.check_healthy(healthy, summ)
    for name in (drain, keep):
        s = summ[name]
        assert s["outcome"] == "ok" and s["archived"] == n, \
            "%s: %s%s" % (name, s, fr.context())
        rows = fr.check_archived(name, uidls=False)
        uidls = [r["uidl"] for r in rows]
        assert all(u and all(0x21 <= ord(c) <= 0x7E for c in u)
                   for u in uidls), "%s: UIDLs stored %r" % (name, uidls)
        assert len(set(uidls)) == n, uidls
        fr.check_dele_proven(name)
        fr.check_poll(name, "ok")
    fr.check_left(drain, [])
    assert all(r["deleted"] is not None for r in fr.deliveries(drain))
    fr.check_left(keep, fr.msgs(keep))
    fr.check_never_dele(keep)
    stored = sorted(r["uidl"] for r in fr.deliveries(keep))

    summ = fr.once()
    s = summ[keep]
    assert s["fetched"] == 0 and s["listed"] == n and s["outcome"] == "ok", s
    assert sorted(r["uidl"] for r in fr.deliveries(keep)) == stored
    assert all(r["deleted"] is None for r in fr.deliveries(keep)), \
        "messages still on the server recorded as gone"
    ex = fr.export()
    for name in (drain, keep, healthy):
        fr.check_export(ex, name)


def test_uidls_with_8bit_bytes(env):
    """UIDLs holding Latin-1 bytes (not UTF-8), UTF-8 text and a
    backslash, outside RFC 1939's 0x21..0x7E: still archived."""
    _odd_uidls(env, "u8", ["caf\udce9-latin1", "caf\u00e9-utf8",
                           "back\\slash%41", "\udcff\udcfe"])


def test_uidls_with_control_bytes(env):
    """UIDLs holding a control byte (0x01, 0x7F): still archived,
    not a session failure that would keep the whole mailbox from being
    drained at every poll."""
    _odd_uidls(env, "uc", ["abc\x01def", "del\x7fete"])


def test_reused_uidl_is_not_proof(env):
    """A server that gives a message the UIDL of another one archived and
    deleted at an earlier poll (as servers do that number their UIDLs or
    reset them), where both have the same header block and the same size
    but different bodies: the second message must be archived before it is
    deleted, since neither the UIDL, the size nor the header proves it is
    the one archived."""
    fr = FaultRun(env, "reuse")
    srv = fr.server()
    head = crlf("From: <report@example.invalid>\nTo: <ops@example.invalid>\n"
                "Subject: nightly report\n"
                "Message-ID: <report@example.invalid>\n\n")
    a = head + crlf("status: all systems nominal\n")
    b = head + crlf("status: DISK FAILURE on db2\n")
    assert len(a) == len(b) and a != b
    name = fr.mailbox(srv, files=[a, b, message(3, "reuse")], directives=[
        "@1 ERR RETR:2 [SYS/TEMP] try later",
        # from the second session on, message 1 (the file of b) carries
        # the UIDL a had
        "@2- SET-UIDL 1 m0001"])
    healthy = fr.mailbox(srv, files=_files("rh", 2))
    msgs = fr.msgs(name)

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    fr.check_archived(name, [msgs[0], msgs[2]])
    fr.check_dele_proven(name)
    fr.check_left(name, [msgs[1]])

    summ = fr.once()
    fr.check_dele_proven(name)
    assert msgs[1].sha256 in {r["sha256"] for r in fr.deliveries(name)}, \
        "%s: message b is not archived%s" % (name, fr.context())
    fr.check_left(name, [])


def test_errors_say_where_they_happened(env):
    """The error recorded for a poll names what ingestd was doing when the
    fault struck: the message being received when a pipelined RETR is cut
    (not the last one queued), and the capability check, not the
    greeting, when STLS is missing."""
    fr = FaultRun(env, "where")
    srv = fr.server()
    nostls = fr.server(tls="starttls", global_lines=["NO-STLS"])
    cut = fr.mailbox(srv, files=_files("wc", 6, body_lines=300),
                     directives=["CUT RETR:3 2000 RST"])
    refused = fr.mailbox(nostls, files=_files("wn", 1), tls="starttls")
    healthy = fr.mailbox(srv, files=_files("wh", 2))
    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    fr.check_left(cut, fr.msgs(cut))
    fr.check_left(refused, fr.msgs(refused))
    err = fr.check_poll(cut, "temporary")["error"]
    assert "message 3" in err, \
        "%s: RETR 3 was cut, the error says %r" % (cut, err)
    err = fr.check_poll(refused, "permanent", ["STLS"])["error"]
    assert "greeting" not in err, \
        "%s: the greeting was fine, the error says %r" % (refused, err)


def test_renumbered_uidls_do_not_hide_a_message(env):
    """delete "never", messages of one size (automated notices often are),
    and a server that renumbers its UIDLs between two polls, after a first
    poll that could not fetch message 2: message 2 now carries the UIDL
    message 1 was archived under.  Same UIDL and same size prove nothing:
    message 2 must end up archived."""
    fr = FaultRun(env, "renum")
    srv = fr.server()
    notice = "Subject: disk usage notice %d\n\nusage at %d%% on host%d\n"
    files = [crlf(notice % (i, 50 + i, i)) for i in range(1, 4)]
    assert len({len(f) for f in files}) == 1
    name = fr.mailbox(srv, files=files, delete="never", directives=[
        "@1 ERR RETR:2 [SYS/TEMP] try later",
        # second session on: the server has renumbered its UIDLs
        "@2- SET-UIDL 1 renumbered-1",
        "@2- SET-UIDL 2 m0001",
        "@2- SET-UIDL 3 renumbered-3"])
    healthy = fr.mailbox(srv, files=_files("nh", 2))
    msgs = fr.msgs(name)

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    fr.check_archived(name, [msgs[0], msgs[2]], uidls=False)
    summ = fr.once()
    got = {r["sha256"] for r in fr.deliveries(name)}
    assert msgs[1].sha256 in got, \
        "%s: message 2 never archived: its new UIDL was message 1's, with " \
        "the same size; summary %s" % (name, summ[name])
    assert got == {m.sha256 for m in msgs}
    fr.check_never_dele(name)
    fr.check_left(name, msgs)


def test_top_with_more_than_the_header(env):
    """Servers whose TOP n 0 sends more than the header block: a blank
    line after the header's, a body line, and, under bare LF, a line that
    looks like a header.  The proof hashes TOP's output the way the
    archive hashed the message (up to the first empty line), so with
    delete "never" the second poll downloads nothing; with
    "after-archive" and the first QUIT cut before the deletions, the
    second poll proves each message by TOP and deletes it without
    downloading it again."""
    fr = FaultRun(env, "topx")
    srv = fr.server()
    extras = {"blank": '"\\r\\n"', "body": '"one more body line\\r\\n"'}
    keep = {}
    for tag, text in extras.items():
        keep[fr.mailbox(srv, files=_files("tk" + tag, 3), delete="never",
                        directives=["TOP-EXTRA " + text])] = tag
    lf = [message(i, "tl").replace(b"\r\n", b"\n") for i in range(1, 4)]
    keep[fr.mailbox(srv, files=lf, delete="never", bare_lf=True,
                    directives=["BARE-LF", 'TOP-EXTRA "X-Not: a header\\n"'
                                ])] = "lf"
    drain = fr.mailbox(srv, files=_files("td", 3), directives=[
        'TOP-EXTRA "\\r\\nbody line\\r\\n"', "@1 CUT QUIT before"])
    healthy = fr.mailbox(srv, files=_files("th", 2))

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    for name in list(keep) + [drain]:
        assert summ[name]["archived"] == 3, summ[name]
        fr.check_archived(name)
        fr.check_left(name, fr.msgs(name))
    blobs = fr.blobs()

    summ = fr.once()
    for name, tag in keep.items():
        s = summ[name]
        assert s["outcome"] == "ok" and s["listed"] == 3 and \
            s["fetched"] == 0, \
            "%s (TOP adds %s): downloaded again: %s" % (name, tag, s)
        fr.check_never_dele(name)
        fr.check_left(name, fr.msgs(name))
        tops = [t for _, t, _ in srv.commands(name) if t.startswith("TOP")]
        assert tops == ["TOP %d 0" % i for i in (1, 2, 3)], tops
    s = summ[drain]
    assert s["outcome"] == "ok" and s["fetched"] == 0 and \
        s["deleted"] == 3, s
    fr.check_dele_proven(drain)
    fr.check_left(drain, [])
    assert fr.blobs() == blobs, "the second poll stored something again"
    assert any(e.kind == "E" and "TOP-EXTRA" in e.text
               for e in srv.events()), "the fault did not fire"
    ex = fr.export()
    for name in list(keep) + [drain, healthy]:
        fr.check_export(ex, name)


def test_no_top_reused_uidl_is_archived(env):
    """delete "never" on a server without TOP in CAPA, messages of one
    size, and UIDLs renumbered after a first poll that could not fetch
    message 2: message 2 now carries the UIDL message 1 was archived
    under.  With no TOP to prove it by, UIDL and size prove nothing:
    message 2 must end up archived.  The price, on a mailbox where
    nothing changed: every message is downloaded again at each poll,
    and nothing is stored twice."""
    fr = FaultRun(env, "notop")
    # global: CAPA comes before the login names a user
    srv = fr.server(global_lines=["NO-CAPA TOP"])
    notice = "Subject: quota notice %d\n\nmailbox at %d%% of quota\n"
    files = [crlf(notice % (i, 80 + i)) for i in range(1, 4)]
    assert len({len(f) for f in files}) == 1
    name = fr.mailbox(srv, files=files, delete="never", directives=[
        "@1 ERR RETR:2 [SYS/TEMP] try later",
        "@2- SET-UIDL 1 renumbered-1",
        "@2- SET-UIDL 2 m0001",
        "@2- SET-UIDL 3 renumbered-3"])
    same = fr.mailbox(srv, files=_files("ns", 3), delete="never")
    healthy = fr.mailbox(fr.server(), files=_files("nh", 2))
    msgs = fr.msgs(name)

    summ = fr.once(expect_rc=1)
    fr.check_healthy(healthy, summ)
    fr.check_archived(name, [msgs[0], msgs[2]], uidls=False)
    fr.check_archived(same)
    rows_same = fr.deliveries(same)
    blobs = fr.blobs()

    summ = fr.once()
    got = {r["sha256"] for r in fr.deliveries(name)}
    assert msgs[1].sha256 in got, \
        "%s: message 2 never archived: without TOP its reused UIDL and " \
        "size were taken on trust; summary %s" % (name, summ[name])
    assert got == {m.sha256 for m in msgs}
    assert summ[name]["fetched"] == 3 and summ[name]["outcome"] == "ok", \
        summ[name]
    s = summ[same]
    assert s["fetched"] == 3 and s["outcome"] == "ok", s
    assert fr.deliveries(same) == rows_same, \
        "fetched again, but a delivery changed or was stored twice"
    assert set(fr.blobs()) == set(blobs) | {msgs[1].sha256}
    for n in (name, same):
        assert not [t for _, t, _ in srv.commands(n)
                    if t.startswith("TOP")], "TOP sent though not offered"
        fr.check_never_dele(n)
        fr.check_left(n, fr.msgs(n))
    _, _, _, err = fr.last
    assert "server offers no TOP: 3 messages archived earlier are " \
        "fetched again" in err, err[-3000:]
    ex = fr.export()
    for n in (name, same, healthy):
        fr.check_export(ex, n)


# ingestd's peak RSS while it plans a poll over 100,000 messages listed
# with 500-byte binary UIDLs.  What it must hold: the raw UIDLs once, in
# the POP3 client's listing (100,000 x 501 bytes, 48 MiB), while the plan
# takes at most 72 bytes of each (7 MiB) and the per-message arrays of
# client, plan and reconciliation (about 200 bytes a message, 19 MiB),
# over a process that idles at about 12 MiB (libpq, OpenSSL, zstd, the
# committer).  That is about 86 MiB; 150 MiB leaves room for the
# allocator and a loaded machine.  Before the listing was bounded, the
# same listing took 590 MiB (the %XX spelling triples each UIDL, and it
# was held in four copies).
LISTING_RSS_MAX_KIB = 150 * 1024
LISTING_BUDGET = 64 * 1024 * 1024   # POP3_LISTING_BYTES_DEFAULT


def test_listing_memory_is_bounded(env):
    """A mailbox of 100,000 messages listed with 500-byte UIDLs of bytes
    outside RFC 1939's range: ingestd plans the poll in bounded memory
    (peak RSS under LISTING_RSS_MAX_KIB) and keeps each UIDL as
    "sha256:" and 64 hex digits.  The poll is cut at its first RETR, as
    fetching 100,000 messages is test_large_mailbox's job.  A listing
    over the 64 MiB listing budget fails its own account, permanently,
    with an error naming the budget, and no other."""
    fr = FaultRun(env, "mem")
    srv = fr.server()
    n_big, n_over = 100000, 140000
    assert n_big * 501 < LISTING_BUDGET < n_over * 501
    big = fr.mailbox(srv, gens=["%d 300..400 seed=61" % n_big],
                     delete="never",
                     directives=["UIDL-BINARY 500", "CUT RETR before"])
    over = fr.mailbox(srv, gens=["%d 300..400 seed=62" % n_over],
                      directives=["UIDL-BINARY 500"])
    # on a server of its own: fakepop3 is one thread, busy for seconds
    # with a login to 140,000 messages
    healthy = fr.mailbox(fr.server(), files=_files("mh", 2))

    for a in fr.accounts:
        a["enabled"] = a["name"] == big
    fr.write_config()
    fr.ok("migrate")
    rc, out, err, peak, floor = _run_measured(fr, ["once"], timeout=170)
    print("# peak RSS %d KiB planning %d messages with 500-byte binary "
          "UIDLs (launcher floor %d KiB)" % (peak, n_big, floor))
    s = parse_summaries(out).get(big)
    assert rc == 1 and s is not None and s["listed"] == n_big and \
        s["outcome"] == "temporary", "once exited %d, %s%s" % (
            rc, s, fr.context())
    assert peak < LISTING_RSS_MAX_KIB, \
        "listing %d messages with 500-byte UIDLs took %d KiB of peak RSS, " \
        "more than %d KiB" % (n_big, peak, LISTING_RSS_MAX_KIB)
    fr.check_poll(big, "temporary")
    fr.check_never_dele(big)
    assert fr.deliveries(big) == []

    for a in fr.accounts:
        a["enabled"] = a["name"] != big
    summ = fr.once(expect_rc=1, timeout=170)
    fr.check_healthy(healthy, summ)
    s = summ[over]
    assert s["outcome"] == "permanent" and s["fetched"] == 0, s
    fr.check_poll(over, "permanent", [
        "listing budget of %d bytes" % LISTING_BUDGET])
    cmds = [t.split()[0].upper() for _, t, _ in srv.commands(over)]
    assert not {"RETR", "TOP", "DELE"} & set(cmds), \
        "%s: commands after the listing broke its budget: %s" % (over, cmds)
    assert fr.deliveries(over) == []


def test_long_uidls_are_kept_short(env):
    """UIDLs longer than RFC 1939's 70 characters once spelt (200
    printable characters; 100 bytes outside 0x21..0x7E, spelt %XX) are
    archived as "sha256:" and the hex SHA-256 of the spelling, 71
    characters, the same at the next poll, which downloads nothing.  An
    archive that kept the long spelling (before migration
    0002_bound_long_uidls) is rewritten by it to the short one: its
    messages are known at the next poll, not downloaded again nor taken
    for gone."""
    fr = FaultRun(env, "short")
    srv = fr.server()
    long_ = "L" * 150 + "-" + "0123456789" * 5
    binary = "\udcfe" * 100
    spelt = {1: long_, 2: "%FE" * 100, 3: "m0003"}
    name = fr.mailbox(srv, files=_files("sk", 3), delete="never",
                      directives=["SET-UIDL 1 " + long_,
                                  "SET-UIDL 2 " + binary])
    healthy = fr.mailbox(srv, files=_files("sh", 2))

    def short(u):
        if len(u) <= 70:
            return u
        return "sha256:" + hashlib.sha256(u.encode()).hexdigest()

    summ = fr.once()
    fr.check_healthy(healthy, summ)
    msgs = fr.msgs(name)
    want = sorted((short(spelt[i + 1]), m.sha256) for i, m in
                  enumerate(msgs))
    rows = fr.deliveries(name)
    assert sorted((r["uidl"], r["sha256"]) for r in rows) == want, rows
    summ = fr.once()
    assert summ[name]["fetched"] == 0 and summ[name]["outcome"] == "ok", \
        summ[name]

    # An archive from before: the long spellings, and the migration due.
    for i in (1, 2):
        fr.sql("UPDATE delivery SET uidl = '%s' WHERE uidl = '%s';" % (
            spelt[i], short(spelt[i])))
    fr.sql("DELETE FROM schema_migrations "
           "WHERE name = '0002_bound_long_uidls';")
    assert sorted(r["uidl"] for r in fr.deliveries(name)) == \
        sorted(spelt.values())
    fr.ok("migrate")
    rows = fr.deliveries(name)
    assert sorted((r["uidl"], r["sha256"]) for r in rows) == want, rows
    summ = fr.once()
    s = summ[name]
    assert s["fetched"] == 0 and s["listed"] == 3 and s["outcome"] == "ok", s
    assert all(r["deleted"] is None for r in fr.deliveries(name)), \
        "messages still on the server taken for gone"
    fr.check_never_dele(name)
    fr.check_left(name, msgs)


def _block_spool(state):
    """Makes the spool directory refuse new files, so a message whose
    compressed bytes outgrow spool_memory fails its pipe while the
    session goes on.  Returns the function that undoes it."""
    spool = os.path.join(state, "spool")
    os.makedirs(spool, exist_ok=True)
    if os.geteuid() == 0:
        # root ignores the mode bits, not the immutable flag (ext4)
        subprocess.run(["chattr", "+i", spool], check=True)
        return lambda: subprocess.run(["chattr", "-i", spool], check=True)
    os.chmod(spool, 0o500)
    return lambda: os.chmod(spool, 0o700)


def _incompressible(n, size):
    """A CRLF message whose body zstd cannot shrink below a few KiB."""
    rnd = hashlib.shake_128(b"expire %d" % n).digest(size * 3 // 4)
    body = base64.encodebytes(rnd).decode().replace("\n", "\r\n")
    return crlf("From: <a@example.invalid>\nSubject: big %d\n"
                "Message-ID: <big.%d@example.invalid>\n\n" % (n, n)) + \
        body.encode()


def test_server_that_deletes_at_quit(env):
    """A server that deletes at QUIT every message RETR delivered: one that
    says EXPIRE 0 after login (EXPIRE 30 USER before it), and one that
    says nothing and has implicit_delete = true (Gmail).  Message 2 of each
    fails its pipe (the spool refuses the file it needs): that poll must
    end without QUIT, so the server keeps every message; a server with
    EXPIRE 0 whose messages all archive gets its QUIT.  Once the spool
    works again the next poll archives and deletes everything."""
    fr = FaultRun(env, "expire")
    srv = fr.server(global_lines=['EXPIRE "30 USER"'])
    quiet = fr.server()
    files = [message(1, "ex"), _incompressible(2, 64 * 1024),
             message(3, "ex")]
    adv = fr.mailbox(srv, files=files, directives=["EXPIRE 0"])
    gmail = fr.mailbox(quiet, files=files, directives=["DELETE-RETRIEVED"],
                       implicit_delete=True)
    healthy = fr.mailbox(srv, files=_files("exh", 3),
                         directives=["EXPIRE 0"])

    unblock = _block_spool(fr.state)
    try:
        summ = fr.once(expect_rc=1, spool_memory=4096)
    finally:
        unblock()
    _, _, _, err = fr.last
    fr.check_healthy(healthy, summ)
    for name, why in ((adv, "EXPIRE 0"), (gmail, "implicit_delete")):
        msgs = fr.msgs(name)
        s = summ[name]
        assert s["outcome"] == "temporary" and s["errors"] >= 1, s
        got = {r["sha256"] for r in fr.deliveries(name)}
        assert msgs[1].sha256 not in got, "%s: %s" % (name, got)
        assert msgs[0].sha256 in got, "%s: %s" % (name, got)
        # Nothing applied: no QUIT, so no UPDATE state.
        fr.check_dele_proven(name)
        fr.check_left(name, msgs)
        cmds = [t for _, t, _ in fr.where[name].commands(name)]
        assert "QUIT" not in cmds, "%s: QUIT sent: %s" % (name, cmds)
        line = ("mbox=%s server deletes retrieved messages at QUIT (%s); "
                % (name, why))
        assert line in err and "closing without QUIT" in err, \
            "%s: no log line %r%s" % (name, line, fr.context())
    # The user's EXPIRE came from CAPA after login.
    cmds = [t for _, t, _ in srv.commands(adv)]
    assert cmds.count("CAPA") == 2, cmds
    assert cmds.index("CAPA", 1) < cmds.index("UIDL"), cmds

    summ = fr.once()
    for name in (adv, gmail):
        s = summ[name]
        assert s["outcome"] == "ok" and s["errors"] == 0, s
        fr.check_archived(name)
        fr.check_dele_proven(name)
        fr.check_left(name, [])
        fr.check_poll(name, "ok")


def _retrs(fr, name):
    return [t.upper() for _, t, _ in fr.where[name].commands(name)
            if t.upper().startswith("RETR")]


def test_endless_body_is_refused_at_the_cap(env):
    """A server whose RETR never ends: ingestd refuses the message once
    its bytes pass max_message_size, within seconds rather than at
    session_timeout, closes without QUIT so nothing is deleted, and says
    why.  A body far past its LIST size is refused the same way, long
    before max_message_size."""
    fr = FaultRun(env, "cap")
    srv = fr.server()
    # LIST says 100 MB: only max_message_size stops it.
    endless = fr.mailbox(srv, files=_files("ce", 3),
                         directives=["ENDLESS 2", "LIE-SIZE 2 100000000"])
    # LIST tells the truth: the LIST-relative bound stops it.
    endless_small = fr.mailbox(srv, files=_files("cs", 2),
                               directives=["ENDLESS 1"])
    big = message(2, "cl", body_lines=40000)
    liar = fr.mailbox(srv, files=[message(1, "cl"), big],
                      directives=["LIE-SIZE 2 1000"])
    healthy = fr.mailbox(srv, files=_files("ch", 2))

    summ = fr.once(expect_rc=1, max_message_size="4M",
                   list_size_slack="64K", timeout=100)
    fr.check_healthy(healthy, summ)

    s = summ[endless]
    assert s["outcome"] == "temporary", s
    assert "message 2 exceeds max_message_size (4 MiB)" in s["error"], s
    fr.check_poll(endless, "temporary",
                  ["message 2 exceeds max_message_size (4 MiB)"])
    fr.check_dele_proven(endless)
    left = [m.id for m in fr.where[endless].replay(endless)[2]]
    assert fr.msgs(endless)[1].id in left, left
    cmds = [t.upper() for _, t, _ in fr.where[endless].commands(endless)]
    assert "QUIT" not in cmds, cmds

    n = len(fr.msgs(endless_small)[0].bytes)
    fr.check_poll(endless_small, "temporary",
                  ["message 1: ", "LIST said %d" % n])
    fr.check_left(endless_small, fr.msgs(endless_small))

    s = summ[liar]
    assert s["outcome"] == "temporary", s
    p = fr.check_poll(liar, "temporary", ["message 2: ", "LIST said 1000"])
    assert "bytes received" in p["error"], p
    fr.check_dele_proven(liar)
    fr.check_left(liar, fr.msgs(liar))


def _retrs_by_poll(fr, name):
    """The RETR commands of each connection that named the user, in
    connection order."""
    return [[e.text.upper() for e in evs if e.kind == "C" and
             e.text.upper().startswith("RETR")]
            for _, evs in sorted(fr.where[name].conns(name).items())]


def test_restored_message_is_downloaded_once(env):
    """A message archived, then gone from the server (a poll finds it
    absent and marks its delivery gone), then back (the mailbox restored
    from a backup), is downloaded once to prove it by its bytes and is then
    known again: the polls after that prove it by TOP and download
    nothing.  Under both policies: "after-archive" deletes it again."""
    fr = FaultRun(env, "restore")
    srv = fr.server()
    keep = fr.mailbox(srv, files=_files("rk", 3), delete="never")
    drain = fr.mailbox(srv, files=_files("rd", 3))
    summ = fr.once()
    assert summ[keep]["archived"] == 3 and summ[drain]["archived"] == 3, \
        summ
    # Someone else removes message 2 of keep; drain's were all deleted.
    kdir = os.path.join(srv.dir, keep)
    held = os.path.join(fr.dir, "held-m0002")
    os.rename(os.path.join(kdir, "m0002"), held)
    fr.once()
    gone = {r["uidl"]: r["deleted"] for r in fr.deliveries(keep)}
    assert gone["m0002"] is not None and gone["m0001"] is None, gone
    # Both mailboxes restored.
    os.rename(held, os.path.join(kdir, "m0002"))
    ddir = os.path.join(srv.dir, drain)
    for i, data in enumerate(_files("rd", 3), 1):
        with open(os.path.join(ddir, "m%04d" % i), "wb") as fh:
            fh.write(data)
    n_before = {name: len(_retrs_by_poll(fr, name)) for name in (keep, drain)}
    summ3 = fr.once()
    summ4 = fr.once()
    for name, want in ((keep, 1), (drain, 3)):
        later = _retrs_by_poll(fr, name)[n_before[name]:]
        assert len(later) == 2, "%s: %d polls: %s" % (name, len(later), later)
        assert sum(len(r) for r in later) <= want and later[1] == [], \
            "%s: downloaded again at each poll: %s%s" % (name, later,
                                                         fr.context())
    assert summ4[keep]["fetched"] == 0 and summ4[keep]["errors"] == 0, summ4
    on_server = {r["uidl"]: r["deleted"] for r in fr.deliveries(keep)}
    assert all(v is None for v in on_server.values()), on_server
    assert len(fr.deliveries(keep)) == 3, fr.deliveries(keep)
    # drain: downloaded once, deleted again by the same poll.
    assert summ3[drain]["deleted"] == 3, summ3
    assert srv.files_left(drain) == [], srv.files_left(drain)
    assert len(fr.deliveries(drain)) == 3, fr.deliveries(drain)
    assert all(r["deleted"] is not None for r in fr.deliveries(drain))
