"""OAuth 2.0: accounts that log in with SASL XOAUTH2 or OAUTHBEARER and a
bearer token, against fakepop3 (OAUTH, TOKEN) and a local HTTPS token
endpoint (tokenserver.py), with the run's PostgreSQL.

Each test checks what the archive holds, what the POP3 server saw (the
transcript: which mechanism, one line or two, never a password) and what
the token endpoint saw (which grant, which refresh token, how often).
"""

import base64
import os
import stat
import time

import harness
from faultlib import FaultRun, message
from test_daemon import Daemon, wait_for
from tokenserver import TokenServer


def _files(tag, n):
    return [message(i, tag) for i in range(1, n + 1)]


def _token_account(fr, srv, tag, n=2, tokens=(), directives=(), **over):
    """A mailbox on srv whose account logs in with a token (over gives the
    token source); tokens: what the server accepts for it."""
    name = fr.mailbox(srv, files=_files(tag, n),
                      directives=["TOKEN %s" % t for t in tokens] +
                      list(directives))
    a = fr.account(name)
    del a["password"]
    a.update(over)
    return name


def _auth_lines(srv, name):
    """What the client sent on name's connections to log in: each AUTH,
    USER, PASS or APOP line and the SASL lines that followed an AUTH until
    the server's +OK or -ERR."""
    out = []
    for evs in srv.conns(name).values():
        in_auth = False
        for e in evs:
            word = e.text.split(" ")[0].upper()
            if e.kind == "C" and (in_auth or word in ("AUTH", "USER", "PASS",
                                                     "APOP")):
                out.append(e.text)
                in_auth = in_auth or word == "AUTH"
            elif e.kind == "S" and (e.text.startswith("+OK") or
                                    e.text.startswith("-ERR")):
                in_auth = False
    return out


def _xoauth2(user, token):
    return base64.b64encode(b"user=%s\x01auth=Bearer %s\x01\x01" % (
        user.encode(), token.encode())).decode()


def _status(fr, name):
    rows = fr.sql("SELECT needs_reauth, needs_reauth_since IS NOT NULL "
                  "FROM account_status WHERE account = '%s';" % name)
    assert len(rows) == 1, rows
    return rows[0][0] == "t", rows[0][1] == "t"


def _reauth_now(fr, name):
    """account_status.needs_reauth, or None while the account has no row
    (the daemon has not reached the database yet)."""
    rows = fr.sql("SELECT needs_reauth FROM account_status "
                  "WHERE account = '%s';" % name)
    return rows[0][0] == "t" if rows else None


def _write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def test_token_command_login(env):
    """token_command, without a shell and with sh -c: its first output line
    is the token, stderr is logged, a failing command is a temporary error
    that never reaches the server; XOAUTH2 where the server offers it,
    OAUTHBEARER (with host and port) where only that is offered."""
    fr = FaultRun(env, "otc")
    xo = fr.server(global_lines=["OAUTH XOAUTH2"])
    ob = fr.server(global_lines=["OAUTH OAUTHBEARER"])
    plain = _token_account(fr, xo, "otc-a", tokens=["tok-plain"],
                           token_command="/bin/echo tok-plain")
    shell = _token_account(fr, ob, "otc-b", tokens=["tok-shell"],
                           token_command="sh -c 'echo tok-shell; "
                           "echo hello from the helper >&2'")
    broken = _token_account(fr, xo, "otc-c", tokens=["x"],
                            token_command="sh -c 'echo oops >&2; exit 3'")
    summ = fr.once(expect_rc=1)
    for name in (plain, shell):
        assert summ[name]["outcome"] == "ok", summ[name]
        fr.check_archived(name)
        fr.check_left(name, [])
    lines = _auth_lines(xo, plain)
    assert lines == ["AUTH XOAUTH2 " + _xoauth2(plain, "tok-plain")], lines
    lines = _auth_lines(ob, shell)
    assert len(lines) == 1 and lines[0].startswith("AUTH OAUTHBEARER "), \
        lines
    evs = [e.text for c in ob.conns(shell).values() for e in c]
    assert "OAUTHBEARER token accepted host=127.0.0.1 port=%d" % ob.port \
        in evs, evs
    err = fr.last[3]
    assert "token_command: hello from the helper" in err, err[-3000:]
    assert "tok-plain" not in err and "tok-shell" not in err, \
        "a token in the log"
    s = summ[broken]
    assert s["outcome"] == "temporary", s
    assert "token_command exited with status 3: oops" in s["error"], s
    assert xo.conns(broken) == {}, "connected without a token"
    assert _status(fr, broken) == (False, False)


def test_refresh_rotates_and_archives(env):
    """grant refresh_token: one form-encoded POST with the file's refresh
    token; the rotated token is in the file (same mode) before the server
    sees AUTH; the old one is never sent again."""
    fr = FaultRun(env, "ort")
    ep = TokenServer(fr.dir)
    ep.add_client("app", "app-secret")
    ep.add_refresh("rt-0")
    ep.rotate = True
    srv = fr.server(global_lines=["OAUTH XOAUTH2 OAUTHBEARER"])
    rtf = _write(os.path.join(fr.dir, "refresh"), "rt-0\n", 0o640)
    owner = (os.getuid(), os.getgid())
    if harness.is_root():  # the rotated file keeps another owner too
        owner = (4242, 4243)
        os.chown(rtf, *owner)
    csf = _write(os.path.join(fr.dir, "secret"), "app-secret\n")
    name = _token_account(fr, srv, "ort", n=3, tokens=["at-1", "at-2"],
                          oauth={"token_url": ep.url, "client_id": "app",
                                 "client_secret_file": csf,
                                 "scope": "https://mail.example/ pop",
                                 "refresh_token_file": rtf,
                                 "ca_file": ep.ca_file})
    summ = fr.once()
    assert summ[name]["outcome"] == "ok", summ
    fr.check_archived(name)
    assert len(ep.requests) == 1, ep.requests
    r = ep.requests[0]
    assert r.form == {"grant_type": "refresh_token", "refresh_token": "rt-0",
                      "client_id": "app", "client_secret": "app-secret",
                      "scope": "https://mail.example/ pop"}, r
    with open(rtf) as f:
        assert f.read() == "rt-1\n"
    st = os.stat(rtf)
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == owner, (st.st_uid, st.st_gid)
    assert not [f for f in os.listdir(fr.dir) if f.startswith("refresh.")]
    # The file held the new token before AUTH reached the server.
    auth = [e for c in srv.conns(name).values() for e in c
            if e.kind == "C" and e.text.startswith("AUTH")]
    assert len(auth) == 1 and auth[0].text == \
        "AUTH XOAUTH2 " + _xoauth2(name, "at-1"), auth
    assert r.time <= auth[0].time
    assert st.st_mtime_ns <= int(auth[0].time * 1e9), \
        "refresh token written at %d, AUTH at %.6f" % (st.st_mtime_ns,
                                                        auth[0].time)
    # A new run refreshes again, with the rotated token.
    summ = fr.once()
    assert summ[name]["outcome"] == "ok", summ
    assert [q.form["refresh_token"] for q in ep.requests] == ["rt-0",
                                                              "rt-1"]
    with open(rtf) as f:
        assert f.read() == "rt-2\n"
    for secret in ("at-1", "at-2", "rt-0", "rt-1", "rt-2", "app-secret"):
        assert secret not in fr.last[2] + fr.last[3], \
            "%s in the output" % secret


def test_daemon_caches_until_expiry(env):
    """ingestd run: a token that lives an hour is requested once for many
    polls; one that lives a second, before every poll."""
    fr = FaultRun(env, "oca")
    ep = TokenServer(fr.dir)
    ep.add_client("long")
    ep.add_client("short")
    srv = fr.server(global_lines=["OAUTH XOAUTH2"])
    toks = ["at-%d" % i for i in range(1, 60)]
    rt_long = _write(os.path.join(fr.dir, "rt-long"), "rt-long\n")
    rt_short = _write(os.path.join(fr.dir, "rt-short"), "rt-short\n")
    ep.add_refresh("rt-long")
    ep.add_refresh("rt-short")
    common = {"token_url": ep.url, "ca_file": ep.ca_file}
    lng = _token_account(fr, srv, "oca-l", n=1, tokens=toks,
                         oauth=dict(common, client_id="long",
                                    refresh_token_file=rt_long))
    sht = _token_account(fr, srv, "oca-s", n=1, tokens=toks,
                         oauth=dict(common, client_id="short",
                                    refresh_token_file=rt_short))
    harness.write_config(fr.conf, fr.accounts, fr.state, fr.conninfo,
                         poll_interval=1,
                         extra={"connect_timeout": 5, "command_timeout": 10,
                                "session_timeout": 60})
    orig = ep._decide

    def decide(form, ctype):  # the short client's tokens live 1 s
        ep.expires_in = 1 if form.get("client_id") == "short" else 3600
        return orig(form, ctype)
    ep._decide = decide
    d = Daemon(fr.conf)
    try:
        def polls(name):
            return int(fr.sql("SELECT count(*) FROM polls WHERE account = "
                              "'%s' AND outcome = 'ok';" % name)[0][0])
        wait_for("3 polls of each", lambda: polls(lng) >= 3 and
                 polls(sht) >= 3)
    finally:
        rc, err = d.terminate()
    assert rc == 0, err[-3000:]
    by = {}
    for q in ep.requests:
        by.setdefault(q.form["client_id"], []).append(q)
    ok_l, ok_s = polls(lng), polls(sht)
    assert len(by["long"]) == 1, (ok_l, by)
    assert len(by["short"]) == ok_s, (ok_s, by["short"])
    logins = [e for c in srv.conns(lng).values() for e in c
              if e.kind == "E" and e.text == "XOAUTH2 token accepted"]
    assert len(logins) == ok_l


def test_daemon_renewed_grant_polls_again(env):
    """ingestd run: an account in needs_reauth is polled again as soon as
    its refresh_token_file changes (not after the hour a permanent
    failure waits), logs in, and account_status clears needs_reauth."""
    fr = FaultRun(env, "orn")
    ep = TokenServer(fr.dir)
    ep.add_client("app")
    ep.add_refresh("rt-good")
    srv = fr.server(global_lines=["OAUTH XOAUTH2"])
    rtf = _write(os.path.join(fr.dir, "rt"), "rt-revoked\n")
    name = _token_account(fr, srv, "orn", n=2,
                          tokens=["at-%d" % i for i in range(1, 30)],
                          oauth={"token_url": ep.url, "client_id": "app",
                                 "refresh_token_file": rtf,
                                 "ca_file": ep.ca_file})
    harness.write_config(fr.conf, fr.accounts, fr.state, fr.conninfo,
                         poll_interval=1,
                         extra={"connect_timeout": 5, "command_timeout": 10,
                                "session_timeout": 60})
    d = Daemon(fr.conf)
    try:
        wait_for("needs_reauth", lambda: _reauth_now(fr, name) is True)
        assert srv.conns(name) == {}
        _write(rtf, "rt-good\n")
        wait_for("a poll after the renewal",
                 lambda: any(p["outcome"] == "ok" for p in fr.polls(name)))
        wait_for("needs_reauth cleared",
                 lambda: _reauth_now(fr, name) is False)
    finally:
        rc, err = d.terminate()
    assert rc == 0, err[-3000:]
    fr.check_archived(name)
    assert [q.form["refresh_token"] for q in ep.requests][:2] == [
        "rt-revoked", "rt-good"], ep.requests
    assert err.count("needs_reauth: token endpoint") == 1, err[-3000:]
    assert "credentials changed: polling again" in err


def test_daemon_revoked_cached_token_is_replaced(env):
    """ingestd run: the server refuses a cached token that worked before
    (revoked early): the poll fails as temporary, the token is forgotten,
    the next poll asks the endpoint for a new one and logs in; the grant
    is not taken for dead."""
    fr = FaultRun(env, "orv")
    ep = TokenServer(fr.dir)
    ep.add_client("app")
    ep.add_refresh("rt")
    srv = fr.server(global_lines=["OAUTH XOAUTH2"])
    rtf = _write(os.path.join(fr.dir, "rt"), "rt\n")
    # at-1 works in the user's first session only; at-2 always.
    name = _token_account(fr, srv, "orv", n=1, tokens=["at-2"],
                          directives=["@1 TOKEN at-1"],
                          oauth={"token_url": ep.url, "client_id": "app",
                                 "refresh_token_file": rtf,
                                 "ca_file": ep.ca_file})
    harness.write_config(fr.conf, fr.accounts, fr.state, fr.conninfo,
                         poll_interval=1,
                         extra={"connect_timeout": 5, "command_timeout": 10,
                                "session_timeout": 60})
    d = Daemon(fr.conf)
    try:
        wait_for("ok, temporary, ok", lambda: [
            p["outcome"] for p in fr.polls(name)][:3] == [
                "ok", "temporary", "ok"])
    finally:
        rc, err = d.terminate()
    assert rc == 0, err[-3000:]
    assert len(ep.requests) == 2, ep.requests
    tokens = [base64.b64decode(t.split(" ")[2]).split(b"Bearer ")[1][:4]
              for t in _auth_lines(srv, name) if t.startswith("AUTH")]
    assert tokens[:3] == [b"at-1", b"at-1", b"at-2"], tokens
    assert "(challenge: status=401" in fr.polls(name)[1]["error"]
    assert _reauth_now(fr, name) is False
    assert "needs_reauth" not in err


def test_client_credentials_shared(env):
    """grant client_credentials: two accounts with the same token_url,
    client_id and scope share one token, requested once; user names each
    mailbox."""
    fr = FaultRun(env, "occ")
    ep = TokenServer(fr.dir)
    ep.add_client("org", "org-secret")
    srv = fr.server(global_lines=["OAUTH XOAUTH2"])
    csf = _write(os.path.join(fr.dir, "secret"), "org-secret\n")
    oauth = {"token_url": ep.url, "client_id": "org",
             "client_secret_file": csf, "scope": "pop",
             "grant": "client_credentials", "ca_file": ep.ca_file}
    names = [_token_account(fr, srv, "occ-%d" % i, tokens=["cc-1"],
                            oauth=dict(oauth)) for i in (1, 2)]
    summ = fr.once()
    for name in names:
        assert summ[name]["outcome"] == "ok", summ
        fr.check_archived(name)
        assert _auth_lines(srv, name) == [
            "AUTH XOAUTH2 " + _xoauth2(name, "cc-1")]
    assert len(ep.requests) == 1, ep.requests
    assert ep.requests[0].form == {"grant_type": "client_credentials",
                                   "client_id": "org",
                                   "client_secret": "org-secret",
                                   "scope": "pop"}


def test_refused_grant_needs_reauth(env):
    """invalid_grant from the endpoint, or a new token the server refuses:
    needs_reauth in account_status, no password ever sent; a 5xx is only
    temporary; a renewed refresh token clears needs_reauth."""
    fr = FaultRun(env, "ore")
    ep = TokenServer(fr.dir)
    ep.add_client("app")
    ep.add_refresh("rt-good")
    srv = fr.server(global_lines=["OAUTH XOAUTH2"])
    rt_bad = _write(os.path.join(fr.dir, "rt-bad"), "rt-revoked\n")
    rt_ok = _write(os.path.join(fr.dir, "rt-ok"), "rt-good\n")
    common = {"token_url": ep.url, "client_id": "app",
              "ca_file": ep.ca_file}
    revoked = _token_account(fr, srv, "ore-r", tokens=["at-1", "at-2"],
                             oauth=dict(common, refresh_token_file=rt_bad))
    refused = _token_account(fr, srv, "ore-s", tokens=["nothing"],
                             token_command="/bin/echo wrong-token")
    busy = _token_account(fr, srv, "ore-b", tokens=["at-1", "at-2"],
                          oauth=dict(common, refresh_token_file=rt_ok))
    # Requests run in account order on one thread: only busy's gets 503.
    orig = ep._decide

    def decide(form, ctype):
        if form.get("refresh_token") == "rt-good" and not any(
                q.status == 503 for q in ep.requests):
            return 503, {"error": "temporarily_unavailable"}
        return orig(form, ctype)
    ep._decide = decide
    summ = fr.once(expect_rc=1)
    s = summ[revoked]
    assert s["outcome"] == "permanent", s
    assert "invalid_grant" in s["error"] and "revoked" in s["error"], s
    assert srv.conns(revoked) == {}, "connected with no token"
    assert _status(fr, revoked) == (True, True)
    s = summ[refused]
    assert s["outcome"] == "permanent", s
    assert "[AUTH]" in s["error"] and "status=401" in s["error"], s
    assert _auth_lines(srv, refused) == [
        "AUTH XOAUTH2 " + _xoauth2(refused, "wrong-token"), ""], \
        _auth_lines(srv, refused)
    assert _status(fr, refused) == (True, True)
    s = summ[busy]
    assert s["outcome"] == "temporary" and "HTTP 503" in s["error"], s
    assert _status(fr, busy) == (False, False)
    assert "needs_reauth" in fr.last[3]
    assert "wrong-token" not in fr.last[3], "a token in the log"
    # The operator renews the grant: the next run logs in and clears it.
    _write(rt_bad, "rt-good\n")
    summ = fr.once(expect_rc=1)
    for name in (revoked, busy):
        assert summ[name]["outcome"] == "ok", summ
        fr.check_archived(name)
        assert _status(fr, name) == (False, False)
    assert _status(fr, refused) == (True, True)
    for name in (revoked, refused, busy):
        for _, t, _ in srv.commands(name):
            assert not t.upper().startswith(("USER", "PASS", "APOP",
                                             "AUTH PLAIN")), t


def test_long_tokens(env):
    """A token that makes the AUTH line longer than 255 octets goes in two
    steps (the server refuses the long line); a 10 KiB token works."""
    fr = FaultRun(env, "olt")
    srv = fr.server(global_lines=["OAUTH XOAUTH2 OAUTHBEARER"])
    mid = "m" * 300
    big = "".join("abcdefghijklmnopqrstuvwxyz0123456789-._~+/"[i % 42]
                  for i in range(10240))
    bigf = _write(os.path.join(fr.dir, "big-token"), big + "\n")
    a = _token_account(fr, srv, "olt-a", tokens=[mid],
                       token_command="/bin/echo " + mid)
    b = _token_account(fr, srv, "olt-b", tokens=[big],
                       token_command="/bin/cat " + bigf, auth="oauthbearer")
    summ = fr.once()
    for name in (a, b):
        assert summ[name]["outcome"] == "ok", summ
        fr.check_archived(name)
    lines = _auth_lines(srv, a)
    assert lines[0] == "AUTH XOAUTH2" and len(lines) == 2 and \
        lines[1] == _xoauth2(a, mid), lines[:1]
    lines = _auth_lines(srv, b)
    assert lines[0] == "AUTH OAUTHBEARER" and len(lines) == 2, lines[:1]
    raw = base64.b64decode(lines[1])
    assert raw.endswith(b"auth=Bearer " + big.encode() + b"\x01\x01")
    assert len(lines[1]) > 13000


class _OAuthDovecot(harness.Dovecot):
    """A private Dovecot whose oauth2 passdb checks XOAUTH2 and
    OAUTHBEARER tokens by RFC 7662 introspection at the test's token
    endpoint; the other mechanisms keep the passwd-file passdb."""

    def __init__(self, tmpdir, ep):
        super().__init__(tmpdir, start=False, name="dovecot-oauth")
        self.ext = os.path.join(self.dir, "oauth2.conf.ext")
        with open(self.ext, "w") as f:
            f.write("introspection_mode = post\n"
                    "introspection_url = https://localhost:%d/introspect\n"
                    "tls_ca_cert_file = %s\n"
                    "username_attribute = username\n"
                    "active_attribute = active\n"
                    "active_value = true\n"
                    "force_introspection = yes\n" % (ep.port, ep.ca_file))
        os.chmod(self.ext, 0o644)
        self.start()

    def _write_conf(self):
        text = harness.DOVECOT_CONF.format(pop3_port=self.pop3_port,
                                           pop3s_port=self.pop3s_port,
                                           **self._fmt)
        text = text.replace("auth_mechanisms = plain login apop",
                            "auth_mechanisms = plain login apop xoauth2 "
                            "oauthbearer")
        text = text.replace("passdb {", "passdb {\n  driver = oauth2\n"
                            "  mechanisms = xoauth2 oauthbearer\n"
                            "  args = %s\n}\npassdb {\n"
                            "  mechanisms = plain login apop" % self.ext, 1)
        with open(self.conf, "w") as f:
            f.write(text)


def test_dovecot_xoauth2(env):
    """A real server: Dovecot's oauth2 passdb introspects the token that
    ingestd got from the endpoint; both mechanisms log in and archive."""
    fr = FaultRun(env, "odv")
    ep = TokenServer(fr.dir)
    ep.add_client("app")
    ep.add_refresh("rt-0")
    dc = _OAuthDovecot(fr.dir, ep)
    try:
        names = []
        for mech in ("xoauth2", "oauthbearer"):
            name = env.unique("odv")
            dc.add_user(name, "unused-" + name)
            raws = [message(i, name) for i in (1, 2)]
            for raw in raws:
                dc.deliver(name, raw)
            rtf = _write(os.path.join(fr.dir, "rt-" + name), "rt-0\n")
            fr.accounts.append({
                "name": name, "host": "127.0.0.1", "port": dc.pop3s_port,
                "tls": "implicit", "ca_file": dc.ca_file, "user": name,
                "auth": mech, "delete": "after-archive",
                "oauth": {"token_url": ep.url, "client_id": "app",
                          "refresh_token_file": rtf,
                          "ca_file": ep.ca_file}})
            names.append((name, mech, raws))
        # Introspection names whoever asks: one account at a time.
        for i, (name, mech, raws) in enumerate(names):
            ep.username = name
            for a in fr.accounts:
                a["enabled"] = a["name"] == name
            summ = fr.once()
            assert summ[name]["outcome"] == "ok", summ
            got = sorted(r["sha256"] for r in fr.deliveries(name))
            assert got == sorted(harness.sha256_hex(r) for r in raws), got
            assert dc.count(name) == 0
            logins = dc.logins(name, want=1)
            assert [x["method"] for x in logins] == [mech.upper()], logins
        assert ep.introspections == ["at-1", "at-2"], ep.introspections
    finally:
        dc.stop()
