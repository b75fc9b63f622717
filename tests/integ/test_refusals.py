"""Refusals: a message a poll refused is recorded (table refusal, view
ingestd.refusals, migration 0003) and skipped by the polls after, instead
of being downloaded again, up to the cap, at each one.  It is never
deleted.  The rule is plan_refused() in ingestd/plan.c.

- A message over the size cap is downloaded once; the next poll leaves it
  on the server and archives the rest; a raised cap has it tried again,
  and archived, and its row goes.
- On an account whose server deletes at QUIT what was retrieved (EXPIRE
  0), a message that fails to archive at every poll makes each poll end
  without QUIT; after 3 such polls it is skipped, and the next poll
  archives and deletes the others and sends QUIT again.
"""

from faultlib import FaultRun, message
from test_faults import _block_spool, _files, _incompressible


def _retrs_by_poll(fr, name):
    """The RETR commands of each connection that named the user, in
    connection order."""
    return [[e.text.upper() for e in evs if e.kind == "C" and
             e.text.upper().startswith("RETR")]
            for _, evs in sorted(fr.where[name].conns(name).items())]


def _refusals(fr, name):
    rows = fr.sql("SELECT uidl, list_size, reason, size_limit, failures, "
                  "coalesce(error, '') FROM refusals WHERE account = '%s' "
                  "ORDER BY uidl;" % name)
    return [{"uidl": r[0], "list_size": int(r[1]), "reason": r[2],
             "size_limit": int(r[3]), "failures": int(r[4]),
             "error": r[5]} for r in rows]


def test_over_cap_message_is_downloaded_once(env):
    """Message 2 is past max_message_size: the first poll downloads it up
    to the cap and refuses it (closing without QUIT, as before); the
    second sends no RETR for it, archives and deletes messages 1 and 3,
    and QUITs; the view lists it with its reason and the cap.  With the
    cap raised it is tried again, archived, deleted, and its row goes."""
    fr = FaultRun(env, "refcap")
    srv = fr.server()
    big = message(2, "refcap", body_lines=4000)
    files = [message(1, "refcap"), big, message(3, "refcap")]
    name = fr.mailbox(srv, files=files)
    healthy = fr.mailbox(srv, files=_files("refcaph", 2))

    summ = fr.once(expect_rc=1, max_message_size="64K")
    fr.check_healthy(healthy, summ)
    assert summ[name]["outcome"] == "temporary", summ[name]
    fr.check_poll(name, "temporary",
                  ["message 2 exceeds max_message_size (64 KiB)"])
    rows = _refusals(fr, name)
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["uidl"] == "m0002" and r["reason"] == "too_large" and \
        r["size_limit"] == 64 * 1024 and r["failures"] == 1 and \
        r["list_size"] == len(fr.msgs(name)[1].bytes) and \
        "exceeds max_message_size" in r["error"], rows
    first = _retrs_by_poll(fr, name)
    assert "RETR 2" in first[0], first

    summ = fr.once(max_message_size="64K")
    s = summ[name]
    # Message 1 was archived by the first poll, and is proven by TOP.
    assert s["outcome"] == "ok" and s["fetched"] == 1 and \
        s["deleted"] == 2 and s["errors"] == 0, s
    polls = _retrs_by_poll(fr, name)
    assert len(polls) == 2 and "RETR 2" not in polls[1], polls
    cmds = [t.upper() for c, t, _ in srv.commands(name)
            if c == max(c for c, _, _ in srv.commands(name))]
    assert "QUIT" in cmds, cmds
    fr.check_dele_proven(name)
    fr.check_left(name, [fr.msgs(name)[1]])
    _, _, _, err = fr.last
    assert ("mbox=%s 1 messages refused earlier are left on the server"
            % name) in err, fr.context()
    assert len(_refusals(fr, name)) == 1, _refusals(fr, name)
    fr.check_poll(name, "ok")

    summ = fr.once(max_message_size="8M")
    s = summ[name]
    assert s["outcome"] == "ok" and s["archived"] == 1 and \
        s["deleted"] == 1, s
    # The only message left on the server is now number 1.
    polls = _retrs_by_poll(fr, name)
    assert polls[2] == ["RETR 1"], polls
    fr.check_archived(name)
    fr.check_left(name, [])
    assert _refusals(fr, name) == [], _refusals(fr, name)


def test_failing_message_stops_blocking_expire_0(env):
    """A server that says EXPIRE 0 (it deletes at QUIT what RETR
    delivered).  Message 2 fails to archive at every poll (the spool
    refuses the file it needs): each poll ends without QUIT, so the server
    keeps everything, including message 1, archived and marked with DELE.
    After 3 such polls message 2 is skipped: the fourth poll sends no RETR
    for it, archives message 3, QUITs, and the server deletes 1 and 3 and
    keeps 2, which the view lists as failed 3 times."""
    fr = FaultRun(env, "reffail")
    srv = fr.server(global_lines=['EXPIRE "30 USER"'])
    files = [message(1, "reffail"), _incompressible(2, 64 * 1024),
             message(3, "reffail")]
    name = fr.mailbox(srv, files=files, directives=["EXPIRE 0"])

    unblock = _block_spool(fr.state)
    try:
        for i in range(1, 4):
            summ = fr.once(expect_rc=1, spool_memory=4096)
            assert summ[name]["outcome"] == "temporary", summ[name]
            polls = _retrs_by_poll(fr, name)
            assert "RETR 2" in polls[-1], polls
            cmds = [t.upper() for c, t, _ in srv.commands(name)
                    if c == max(c for c, _, _ in srv.commands(name))]
            assert "QUIT" not in cmds, cmds
            rows = _refusals(fr, name)
            assert len(rows) == 1 and rows[0]["uidl"] == "m0002" and \
                rows[0]["reason"] == "failed" and \
                rows[0]["failures"] == i, rows
        fr.check_left(name, fr.msgs(name))

        summ = fr.once(spool_memory=4096)
    finally:
        unblock()
    s = summ[name]
    assert s["outcome"] == "ok" and s["errors"] == 0, s
    polls = _retrs_by_poll(fr, name)
    assert len(polls) == 4 and "RETR 2" not in polls[3], polls
    cmds = [t.upper() for c, t, _ in srv.commands(name)
            if c == max(c for c, _, _ in srv.commands(name))]
    assert "QUIT" in cmds, cmds
    fr.check_dele_proven(name)
    fr.check_left(name, [fr.msgs(name)[1]])
    got = {r["sha256"] for r in fr.deliveries(name)}
    assert fr.msgs(name)[0].sha256 in got and \
        fr.msgs(name)[2].sha256 in got and \
        fr.msgs(name)[1].sha256 not in got, got
    rows = _refusals(fr, name)
    assert len(rows) == 1 and rows[0]["failures"] == 3, rows
