"""Limits: how often a failing mailbox is tried again, and how long a
server may take before its session is given up.

Against fakepop3 (tests/fake/) and listening sockets of the test's own
that never answer.  Each test checks both sides: the polls ingestd
recorded and the archive, and what the server saw and still holds; and
each has a healthy mailbox in the same run that must not notice.

No test compares a duration with a threshold.  The retry test counts
polls relative to each other: with poll_interval = 1, a healthy mailbox
is polled once a second, a temporary failure is retried about as often
(30 s capped at poll_interval), and a failure that needs the operator is
not retried for an hour, so within a run of a few seconds it is polled
exactly once, however slow the machine.
"""

import errno
import os
import select
import socket
import time

import harness
from faultlib import TIMEOUTS, FaultRun, message
from test_daemon import Daemon, wait_for

LOGIN_COMMANDS = ("PASS", "APOP", "AUTH")


def _files(tag, n, **kw):
    return [message(i, tag, **kw) for i in range(1, n + 1)]


def _login_attempts(srv, user):
    """The login commands a client sent for user: PASS, APOP, and AUTH
    with a mechanism (AUTH alone only lists the mechanisms)."""
    out = []
    for conn, text, _ in srv.commands(user):
        w = text.split(" ")
        if w[0].upper() in ("PASS", "APOP") or \
                (w[0].upper() == "AUTH" and len(w) > 1):
            out.append((conn, w[0].upper()))
    return out


# --------------------------------------------------------------------------
# Retries

def test_retries_back_off_and_never_hammer(env):
    """`ingestd run`, poll_interval = 1, four mailboxes on one server: a
    healthy one; a wrong password and a LOGIN-FAIL [AUTH] (permanent:
    tried again only after an hour); a LOGIN-FAIL [IN-USE] at every
    session (temporary: 30 s doubling, capped at poll_interval).  Stopped
    by SIGTERM once the healthy mailbox has been polled six times and six
    seconds have passed: each permanent one was polled once, with one
    login; the temporary one was retried about as often as the healthy
    one was polled (at least half as often: without the cap it would
    have been tried once, its next try due 22 s or more later)."""
    fr = FaultRun(env, "retry")
    srv = fr.server()
    healthy = fr.mailbox(srv, files=_files("rh", 3))
    wrong = fr.mailbox(srv, files=_files("rw", 2), password="not-this-one")
    refused = fr.mailbox(srv, files=_files("ra", 2), directives=[
        "LOGIN-FAIL [AUTH] invalid user name or password"])
    inuse = fr.mailbox(srv, files=_files("ri", 2), directives=[
        "LOGIN-FAIL [IN-USE] mailbox locked by another session"])
    permanent = (wrong, refused)
    harness.write_config(fr.conf, fr.accounts, fr.state, fr.conninfo,
                         poll_interval=1, extra=TIMEOUTS)
    fr.ok("migrate")

    d = Daemon(fr.conf)
    try:
        t0 = time.monotonic()
        wait_for("six polls of the healthy mailbox and six seconds",
                 lambda: time.monotonic() - t0 >= 6 and
                 len(fr.polls(healthy)) >= 6, timeout=120)
        rc, err = d.terminate()
    finally:
        d.kill()
    assert rc == 0, "exit %d after SIGTERM:\n%s" % (rc, err[-3000:])

    polls = {n: fr.polls(n) for n in (healthy, wrong, refused, inuse)}
    counts = {n: len(p) for n, p in polls.items()}
    conns = {n: len(srv.conns(n)) for n in polls}
    print("# polls in the run: healthy %d, wrong password %d, [AUTH] %d, "
          "[IN-USE] %d" % (counts[healthy], counts[wrong], counts[refused],
                           counts[inuse]))

    # The healthy mailbox: drained by its first poll, polled on and on.
    assert all(p["outcome"] == "ok" for p in polls[healthy]), polls[healthy]
    fr.check_archived(healthy)
    fr.check_dele_proven(healthy)
    fr.check_left(healthy, [])

    # Each poll is one connection: no retry hidden inside a poll.
    for n in polls:
        assert conns[n] == counts[n], \
            "%s: %d connections to the server, %d polls recorded" % (
                n, conns[n], counts[n])

    # Permanent: one poll, one login attempt, in the whole run.
    for n in permanent:
        assert counts[n] == 1, \
            "%s: a refused login was polled %d times in a run of %d " \
            "polls of the healthy mailbox (%s)" % (
                n, counts[n], counts[healthy], polls[n][0]["error"])
        fr.check_poll(n, "permanent", ["[AUTH]"])
        logins = _login_attempts(srv, n)
        assert len(logins) == 1, \
            "%s: %d login attempts after [AUTH]: %s" % (n, len(logins),
                                                        logins)
        assert fr.deliveries(n) == []
        fr.check_left(n, fr.msgs(n))

    # Temporary: retried, at least half as often as the healthy one.
    assert all(p["outcome"] == "temporary" and "[IN-USE]" in p["error"]
               for p in polls[inuse]), polls[inuse]
    assert counts[inuse] >= 2 and counts[inuse] >= counts[healthy] // 2, \
        "[IN-USE] was tried %d times while the healthy mailbox was " \
        "polled %d times (poll_interval 1): its backoff is not capped at " \
        "poll_interval" % (counts[inuse], counts[healthy])
    assert len(_login_attempts(srv, inuse)) == counts[inuse], \
        _login_attempts(srv, inuse)
    assert fr.deliveries(inuse) == []
    fr.check_left(inuse, fr.msgs(inuse))
    fr.last = (("run",), rc, "", err)
    fr.check_no_secrets()


# --------------------------------------------------------------------------
# Timeouts

def test_session_timeout_ends_a_trickling_session(env):
    """session_timeout = 3 and a server that sends message 2 64 bytes
    every 50 ms (about a minute for the whole message): the idle timeout
    (command_timeout = 2) never fires, the session timeout does.  The
    poll is temporary and says so; message 2 is not archived and nothing
    is deleted; a healthy mailbox of the same run is drained.  Without the
    trickle the next poll finishes the job."""
    fr = FaultRun(env, "sess")
    srv = fr.server()
    msgs = [message(1, "ss"), message(2, "ss", body_lines=4000),
            message(3, "ss")]
    slow = fr.mailbox(srv, files=msgs, directives=["DRIP RETR:2 64 50"])
    healthy = fr.mailbox(srv, files=_files("sh", 3))

    summ = fr.once(expect_rc=1, session_timeout=3, command_timeout=2)
    fr.check_healthy(healthy, summ)
    s = summ[slow]
    assert s["outcome"] == "temporary" and s["deleted"] == 0, s
    err = fr.check_poll(slow, "temporary",
                        ["session timeout after 3 s"])["error"]
    assert "idle" not in err, \
        "%s: bytes came every 50 ms, yet the error is %r" % (slow, err)
    model = fr.msgs(slow)
    rows = fr.deliveries(slow)
    got = {r["sha256"] for r in rows}
    assert model[1].sha256 not in got, \
        "%s: the message cut short by the session timeout was archived" % slow
    fr.check_archived(slow, [m for m in model if m.sha256 in got])
    assert all(r["deleted"] is None for r in rows), rows
    fr.check_dele_proven(slow)
    fr.check_left(slow, model)
    # The server sent part of message 2, then the client hung up.
    evs = [e for evs in srv.conns(slow).values() for e in evs]
    assert any(e.kind == "C" and e.text == "RETR 2" for e in evs), evs
    assert not any(e.kind == "C" and e.text.upper() == "QUIT"
                   for e in evs), "%s: QUIT sent" % slow

    # The server holds the mailbox lock until it notices the hang-up (its
    # next write fails); then, without the trickle, a poll completes.
    wait_for("fakepop3 to close the timed-out session", lambda: any(
        e.kind == "E" and e.text == "closed"
        for evs in srv.conns(slow).values() for e in evs), timeout=60)
    srv.users[slow].directives.clear()
    srv.reload()
    summ = fr.once()
    s = summ[slow]
    assert s["outcome"] == "ok" and s["fetched"] == 3 - len(got), s
    fr.check_archived(slow)
    fr.check_dele_proven(slow)
    fr.check_left(slow, [])


class _Silent:
    """A TCP listener on 127.0.0.1 that never accepts.

    full=True: listen(0) with one connection of the test's own waiting in
    the accept queue, so the queue is full and the kernel drops every
    further SYN: a connect to it never completes.  full=False: a roomy
    backlog, so the kernel completes connections and takes their bytes,
    and nobody ever answers."""

    def __init__(self, full):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(0 if full else 16)
        self.port = self.ls.getsockname()[1]
        self.fillers = []
        if full:
            c = socket.create_connection(("127.0.0.1", self.port),
                                         timeout=30)
            self.fillers.append(c)
            if self._completes():
                self.close()
                raise AssertionError(
                    "a listen(0) socket with a connection queued still "
                    "completes connections (tcp_abort_on_overflow?)")

    def _completes(self):
        """Whether a new connection completes (or is refused) within a
        second; with the queue full it stays in SYN-SENT."""
        p = socket.socket()
        p.setblocking(False)
        try:
            rc = p.connect_ex(("127.0.0.1", self.port))
            if rc != errno.EINPROGRESS:
                return True
            _, w, _ = select.select([], [p], [], 1.0)
            return bool(w)
        finally:
            p.close()

    def accepted(self):
        """Accepts whatever is queued: [(peer address, bytes received)]."""
        self.ls.setblocking(False)
        out = []
        while True:
            try:
                c, peer = self.ls.accept()
            except BlockingIOError:
                return out
            c.setblocking(False)
            data = b""
            while True:
                try:
                    b = c.recv(65536)
                except BlockingIOError:
                    break
                except ConnectionResetError:
                    break
                if not b:
                    break
                data += b
            c.close()
            out.append((peer, data))

    def close(self):
        for c in self.fillers:
            c.close()
        self.ls.close()


def test_connect_and_tls_handshake_timeouts(env):
    """connect_timeout = 2: an address whose accept queue is full (the
    connect never completes), and a listener that completes the TCP
    connection but never speaks TLS (tls = "implicit").  Both polls are
    temporary and name the step that timed out; neither listener got any
    POP3 command; the fakepop3 mailboxes the accounts are named after are
    untouched; a healthy mailbox of the same run is drained."""
    fr = FaultRun(env, "conn")
    srv = fr.server()
    full = _Silent(full=True)
    mute = _Silent(full=False)
    try:
        nosyn = fr.mailbox(srv, files=_files("cn", 2), port=full.port)
        notls = fr.mailbox(srv, files=_files("ct", 2), port=mute.port)
        healthy = fr.mailbox(srv, files=_files("ch", 3))
        summ = fr.once(expect_rc=1, connect_timeout=2)
        fillers = [c.getsockname() for c in full.fillers]
        got_full = full.accepted()
        got_mute = mute.accepted()
    finally:
        full.close()
        mute.close()

    fr.check_healthy(healthy, summ)
    for name, words in ((nosyn, ["connect to", "timed out after 2 s"]),
                        (notls, ["TLS handshake", "timed out after 2 s"])):
        s = summ[name]
        assert s["outcome"] == "temporary" and s["fetched"] == 0, s
        fr.check_poll(name, "temporary", words)
        assert fr.deliveries(name) == []
        fr.check_left(name, fr.msgs(name))
        assert srv.conns(name) == {}, \
            "%s: fakepop3 saw this account" % name
    # The full queue held only the test's own connection: ingestd never
    # got in.
    assert [p for p, _ in got_full] == fillers, got_full
    # The mute listener: one connection (no retry within a poll), which
    # sent a TLS handshake record and nothing in plaintext.
    assert len(got_mute) == 1, got_mute
    data = got_mute[0][1]
    assert data[:1] == b"\x16" and b"USER" not in data and \
        b"CAPA" not in data, "sent to a server that never spoke: %r" % (
            data[:64],)


def test_command_timeout_waiting_for_the_greeting(env):
    """command_timeout = 2 and servers that accept and complete TLS, then
    never greet (STALL GREETING) or greet after 10 s (DELAY GREETING): the
    polls are temporary, naming the timeout and the greeting; no command
    reached either server; a healthy mailbox of the same run is
    drained."""
    fr = FaultRun(env, "greet")
    stall_srv = fr.server(global_lines=["STALL GREETING before"])
    delay_srv = fr.server(global_lines=["DELAY GREETING 10000"])
    good = fr.server()
    stalled = fr.mailbox(stall_srv, files=_files("gs", 2))
    delayed = fr.mailbox(delay_srv, files=_files("gd", 2))
    healthy = fr.mailbox(good, files=_files("gh", 3))

    summ = fr.once(expect_rc=1, command_timeout=2)
    fr.check_healthy(healthy, summ)
    for name, srv in ((stalled, stall_srv), (delayed, delay_srv)):
        s = summ[name]
        assert s["outcome"] == "temporary" and s["fetched"] == 0, s
        err = fr.check_poll(name, "temporary",
                            ["timeout after 2 s", "greeting"])["error"]
        assert "session" not in err, \
            "%s: the command timeout did not end it: %r" % (name, err)
        assert fr.deliveries(name) == []
        fr.check_left(name, fr.msgs(name))
        evs = srv.events()
        assert sum(1 for e in evs if e.kind == "E" and
                   e.text.startswith("tls up")) == 1, \
            "%s: not one TLS session: %s" % (name, evs)
        cmds = [e.text for e in evs if e.kind == "C"
                and not e.text.startswith("(ignored while stalled)")]
        assert cmds == [], "%s: commands before the greeting: %s" % (
            name, cmds)
    # The stalled server saw the client hang up, long before its own
    # limit (60 s) ended the stall.
    wait_for("fakepop3 to close the stalled session", lambda: any(
        e.kind == "E" and e.text == "closed" for e in stall_srv.events()),
        timeout=60)
    evs = stall_srv.events()
    assert any(e.kind == "E" and e.text == "stall" for e in evs), evs
    assert not any(e.kind == "E" and e.text.startswith("stall ended")
                   for e in evs), evs
