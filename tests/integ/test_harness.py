"""Self-tests of the fixtures: if these fail, nothing else can be trusted."""

import os
import poplib
import socket
import ssl

import cutproxy
import harness
import mailgen


def test_postgres_up_and_psql(env):
    pg = env.pg
    assert pg.psql("SELECT 1, NULL, 'x'") == [["1", None, "x"]]
    assert pg.scalar("SHOW fsync") == "on"
    assert pg.scalar("SHOW synchronous_commit") == "on"
    assert pg.scalar("SHOW listen_addresses") == ""
    db = env.database()
    dbname = db.split("dbname=")[1].split()[0]
    pg.psql("CREATE TABLE t (a int, b text); "
            "INSERT INTO t VALUES (1, 'one'), (2, NULL);", dbname=dbname)
    assert pg.psql("SELECT a, b FROM t ORDER BY a", dbname=dbname) == \
        [["1", "one"], ["2", None]]
    if harness.is_root():
        owner = pg.scalar("SELECT pg_catalog.current_setting('data_directory')")
        assert os.stat(owner).st_uid != 0, "postgres must not run as root"


def test_postgres_restart_keeps_data(env):
    pg = env.pg
    db = env.database()
    dbname = db.split("dbname=")[1].split()[0]
    pg.psql("CREATE TABLE k (v text); INSERT INTO k VALUES ('kept');",
            dbname=dbname)
    pg.restart()
    assert pg.scalar("SELECT v FROM k", dbname=dbname) == "kept"


def test_postgres_crash_and_recovery(env):
    """kill9() then start(): committed rows survive (fsync is on)."""
    pg = env.pg
    db = env.database()
    dbname = db.split("dbname=")[1].split()[0]
    pg.psql("CREATE TABLE c (v int); INSERT INTO c VALUES (42);",
            dbname=dbname)
    pg.kill9()
    pg.start()
    assert pg.scalar("SELECT v FROM c", dbname=dbname) == "42"


def test_dovecot_pop3s_login_and_retr(env):
    dc = env.dovecot
    user = dc.add_user(env.unique("hs"), "pw-1")
    raw = b"Subject: one\n\nhello\n.\n..dots\n"
    dc.deliver(user, raw)
    # poplib, verifying the certificate and the IP SAN against our CA
    ctx = ssl.create_default_context(cafile=dc.ca_file)
    p = poplib.POP3_SSL("127.0.0.1", dc.pop3s_port, context=ctx, timeout=10)
    p.user(user)
    p.pass_("pw-1")
    assert p.stat()[0] == 1
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    assert lines == [b"Subject: one", b"", b"hello", b".", b"..dots"], lines
    p.quit()
    # the DNS SAN "localhost" verifies too
    sock = socket.create_connection(("127.0.0.1", dc.pop3s_port), timeout=10)
    with ctx.wrap_socket(sock, server_hostname="localhost") as s:
        assert s.recv(512).startswith(b"+OK")
    got = harness.fetch_all(dc.pop3s_port, user, "pw-1", dc.ca_file)
    assert [m for _, m in got] == [mailgen.served(raw)]
    assert dc.count(user) == 1  # read-only session deleted nothing


def test_dovecot_rejects_unknown_ca(env):
    dc = env.dovecot
    other_ca, _ = harness.make_ca(env.tmpdir("ca"), cn="another CA")
    try:
        harness.pop3_connect(dc.pop3s_port, ca_file=other_ca)
    except ssl.SSLCertVerificationError:
        return
    raise AssertionError("TLS handshake verified against the wrong CA")


def test_dovecot_stls_apop_and_auth_plain(env):
    dc = env.dovecot
    user = dc.add_user(env.unique("hs"), "pw-2")
    dc.deliver(user, b"Subject: two\n\nbody\n")
    p = harness.POP3("127.0.0.1", dc.pop3_port, timeout=10)
    caps = p.capa()
    assert "STLS" in caps and "PIPELINING" in caps and "UIDL" in caps, caps
    assert b"<" in p.welcome, "no APOP timestamp in %r" % p.welcome
    p.quit()
    for mode in ("starttls", "implicit"):
        for auth in ("user", "apop", "plain"):
            p = harness.pop3_connect(
                dc.pop3_port if mode == "starttls" else dc.pop3s_port,
                user, "pw-2", mode=mode, ca_file=dc.ca_file, auth=auth)
            assert p.stat()[0] == 1
            p.quit()
    logins = dc.logins(user, want=6)
    assert [l["method"] for l in logins] == \
        ["PLAIN", "APOP", "PLAIN"] * 2, logins
    assert all(l["tls"] for l in logins), logins


def test_dovecot_wrong_password_refused(env):
    dc = env.dovecot
    user = dc.add_user(env.unique("hs"), "right")
    try:
        harness.pop3_connect(dc.pop3s_port, user, "wrong", ca_file=dc.ca_file)
    except poplib.error_proto as e:
        assert b"-ERR" in e.args[0], e
        return
    raise AssertionError("login with a wrong password succeeded")


def test_delivered_bytes_come_back_as_served(env):
    """mailgen.served() predicts what Dovecot's RETR delivers, for every
    kind of generated mail and for awkward line endings."""
    dc = env.dovecot
    user = dc.add_user(env.unique("hs"), "pw-3")
    gen = mailgen.MailGen(seed=11)
    raws = [gen.message(kind=k) for k in mailgen.KINDS]
    raws += [b"Subject: cr\n\na\rb\nc\r\r\nd\n",
             b"Subject: mixed\r\n\nx\r\ny\n",
             b"Subject: nolf\n\nno line ending at the end",
             gen.message(kind="attachment", size=3_000_000)]
    for r in raws:
        dc.deliver(user, r)
    got = harness.fetch_all(dc.pop3s_port, user, "pw-3", dc.ca_file)
    assert len(got) == len(raws)
    for i, (raw, (uidl, body)) in enumerate(zip(raws, got)):
        assert body == mailgen.served(raw), \
            "message %d (%r...) differs" % (i, raw[:60])
    assert len({u for u, _ in got}) == len(raws), "UIDLs not unique"
    assert dc.messages(user) == raws, "Maildir does not hold what we gave"
    # UIDLs are stable across sessions
    again = harness.fetch_all(dc.pop3s_port, user, "pw-3", dc.ca_file)
    assert [u for u, _ in again] == [u for u, _ in got]
    sessions = dc.sessions(user, want=2)
    assert sessions[-1]["retr"] == len(raws), sessions


def test_dovecot_dele_applies_on_quit_only(env):
    dc = env.dovecot
    user = dc.add_user(env.unique("hs"), "pw-4")
    for i in range(3):
        dc.deliver(user, b"Subject: %d\n\nx\n" % i)
    p = harness.pop3_connect(dc.pop3s_port, user, "pw-4", ca_file=dc.ca_file)
    p.dele(1)
    p.sock.close()  # drop without QUIT: nothing is deleted
    assert dc.count(user) == 3
    p = harness.pop3_connect(dc.pop3s_port, user, "pw-4", ca_file=dc.ca_file)
    p.dele(1)
    p.quit()
    assert dc.count(user) == 2


def test_mailgen_is_deterministic_and_realistic(env):
    a = [mailgen.MailGen(5).message() for _ in range(1)]
    b = [mailgen.MailGen(5).message() for _ in range(1)]
    assert a == b
    gen = mailgen.MailGen(6)
    msgs = [gen.message() for _ in range(300)]
    sizes = sorted(len(m) for m in msgs)
    median = sizes[len(sizes) // 2]
    assert 12_000 <= median <= 32_000, median
    ids = [m.split(b"Message-ID: ")[1].split(b"\n")[0] for m in msgs]
    assert len(set(ids)) == len(ids)
    box = gen.mailbox(12, big=1)
    assert max(len(m) for m in box) >= 2_000_000
    dots = gen.message(kind="dots")
    assert b"\n.\n" in dots and b"\n..\n" in dots
    long = gen.message(kind="longline")
    assert max(len(l) for l in long.split(b"\n")) > 65536
    assert any(1000 < len(l) < 65536 for l in long.split(b"\n"))
    assert b"\r\n" in gen.message(kind="crlf")
    assert any(c >= 0x80 for c in gen.message(kind="latin1"))


def test_cutproxy_cuts_and_passes(env):
    dc = env.dovecot
    user = dc.add_user(env.unique("hs"), "pw-5")
    big = mailgen.MailGen(9).message(kind="attachment", size=1_000_000)
    dc.deliver(user, big)
    with cutproxy.CutProxy(dc.pop3s_port, cut_after=300_000,
                           max_cuts=1) as px:
        try:
            harness.fetch_all(px.port, user, "pw-5", dc.ca_file)
        except (poplib.error_proto, OSError, ssl.SSLError):
            pass
        else:
            raise AssertionError("RETR of 1 MB survived a cut at 300 kB")
        assert px.cuts == 1
        # the next connection is not cut
        got = harness.fetch_all(px.port, user, "pw-5", dc.ca_file)
        assert [m for _, m in got] == [mailgen.served(big)]
        assert px.connections == 2
    assert dc.count(user) == 1
