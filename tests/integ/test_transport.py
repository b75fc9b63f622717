"""The link to PostgreSQL is part of the guarantee: DELE follows a COMMIT
that returned, so a link whoever sits on the path could answer (TCP
without sslmode=verify-full) is warned about, and refused while an
account deletes after archiving, unless database.insecure_transport =
true.  The refusal comes before any connection to the database or to a
mailbox.

The run's PostgreSQL listens on a Unix socket only; a forwarder of our own
on a loopback TCP port makes a TCP link to it, and counts the connections
it is asked for.
"""

import os
import socket
import threading

import harness
from test_ingest import Archive


class TcpToUnix:
    """127.0.0.1:port forwarded to a Unix socket; `accepted` counts the
    connections."""

    def __init__(self, unix_path):
        self.unix_path = unix_path
        self.accepted = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.unix_path)
            except OSError:
                c.close()
                continue
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.lsock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _setup(env, prefix, **account):
    ar = Archive(env, prefix)
    name = ar.mailbox([b"Subject: kept\n\nstill on the server\n"],
                      **account)
    fwd = TcpToUnix(os.path.join(env.pg.sockdir,
                                 ".s.PGSQL.%d" % env.pg.port))
    return ar, name, fwd


def _tcp(ar, fwd, extra=""):
    """A TCP conninfo through the forwarder to the test's database."""
    return "host=127.0.0.1 port=%d dbname=%s user=%s%s" % (
        fwd.port, ar.dbname, ar.pg.superuser, extra)


def _write(ar, conninfo, insecure=None):
    ar.conninfo = conninfo
    ar.write_config()
    if insecure is not None:
        with open(ar.conf) as f:
            text = f.read()
        text = text.replace(
            "database = { conninfo = ",
            "database = { insecure_transport = %s; conninfo = "
            % ("true" if insecure else "false"))
        with open(ar.conf, "w") as f:
            f.write(text)


def _refused(ar, cmd, name):
    rc, out, err = ar.run(cmd)
    assert rc == 3, "%s over TCP exited %d, not 3%s" % (cmd, rc,
                                                       ar.context())
    for want in ("fatal: %s: 'database.conninfo': the link to PostgreSQL "
                 "is not authenticated: TCP to " % ar.conf,
                 "account \"%s\" (%s:" % (name, ar.conf),
                 "deletes after archiving",
                 "sslmode=verify-full",
                 "database.insecure_transport = true"):
        assert want in err, "%r not in the message%s" % (want, ar.context())
    return err


def test_tcp_link_refused_while_an_account_deletes(env):
    ar, name, fwd = _setup(env, "tcpdel")
    with fwd:
        for conninfo, shown in (
                (_tcp(ar, fwd, " password=hunter2"),
                 'host "127.0.0.1" (from conninfo), '
                 'sslmode "prefer" (from libpq\'s default)'),
                ("hostaddr=127.0.0.1 port=%d dbname=%s user=%s "
                 "sslmode=require" % (fwd.port, ar.dbname, ar.pg.superuser),
                 'hostaddr "127.0.0.1" (from conninfo), sslmode "require" '
                 '(from conninfo)'),
                ("postgresql://%s@localhost:%d/%s?sslmode=verify-ca" % (
                    ar.pg.superuser, fwd.port, ar.dbname),
                 'host "localhost" (from conninfo), sslmode "verify-ca"'),
                ("host=%s,127.0.0.1 dbname=%s" % (env.pg.sockdir,
                                                   ar.dbname),
                 'host "127.0.0.1" (from conninfo)')):
            _write(ar, conninfo)
            for cmd in ("check", "once", "run"):
                err = _refused(ar, cmd, name)
                assert shown in err, "%r not in the message%s" % (
                    shown, ar.context())
                assert "hunter2" not in err, err
            _write(ar, conninfo, insecure=False)
            _refused(ar, "check", name)
        assert fwd.accepted == 0, "ingestd connected before refusing"
    assert ar.dc.count(name) == 1


def test_tcp_link_from_the_environment_refused(env):
    """What conninfo leaves out, libpq takes from PGHOST and PGPORT."""
    ar, name, fwd = _setup(env, "tcpenv")
    with fwd:
        _write(ar, "dbname=%s user=%s" % (ar.dbname, ar.pg.superuser))
        penv = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(fwd.port))
        rc, out, err = harness.run_ingestd(["-c", ar.conf, "check"],
                                           env=penv)
        assert rc == 3, "check exited %d:\n%s" % (rc, err)
        assert 'TCP to host "127.0.0.1" (from PGHOST)' in err, err
        # The same conninfo over libpq's default socket is a local link.
        penv["PGHOST"] = env.pg.sockdir
        penv["PGPORT"] = str(env.pg.port)
        rc, out, err = harness.run_ingestd(["-c", ar.conf, "check"],
                                           env=penv)
        assert rc == 0, "check exited %d:\n%s" % (rc, err)
        assert "not authenticated" not in err, err
        assert fwd.accepted == 0


def test_tcp_link_warned_when_nothing_deletes(env):
    ar, name, fwd = _setup(env, "tcpnever", delete="never")
    with fwd:
        _write(ar, _tcp(ar, fwd))
        out = ar.ok("check")
        assert ": ok:" in out, ar.context()
        err = ar.last[3]
        assert ("warning: %s: 'database.conninfo': the link to PostgreSQL "
                "is not authenticated: TCP to host \"127.0.0.1\""
                % ar.conf) in err, ar.context()
        assert "whoever is on the path could answer COMMIT" in err
        assert "refused" not in err, ar.context()
        summ = ar.once()
        assert summ[name]["archived"] == 1, summ
        assert fwd.accepted > 0
    assert ar.dc.count(name) == 1


def test_tcp_link_accepted_with_insecure_transport(env):
    ar, name, fwd = _setup(env, "tcpok")
    disabled = ar.mailbox([b"Subject: x\n\ny\n"], enabled=False)
    with fwd:
        _write(ar, _tcp(ar, fwd), insecure=True)
        ar.ok("check")
        err = ar.last[3]
        assert "'database.conninfo': the link to PostgreSQL is not " \
            "authenticated" in err, ar.context()
        assert "database.insecure_transport = true allows" in err, \
            ar.context()
        summ = ar.once()
        assert summ[name]["deleted"] == 1, summ
        assert fwd.accepted > 0
    assert ar.dc.count(name) == 0
    assert ar.dc.count(disabled) == 1


def test_disabled_account_does_not_count(env):
    ar, name, fwd = _setup(env, "tcpoff", enabled=False)
    with fwd:
        _write(ar, _tcp(ar, fwd))
        ar.ok("check")
        assert "not authenticated" in ar.last[3], ar.context()


def test_other_commands_warn_only(env):
    """migrate, export and verify delete nothing: a warning, no refusal."""
    ar, name, fwd = _setup(env, "tcpmig")
    with fwd:
        _write(ar, _tcp(ar, fwd))
        for cmd in (["migrate"], ["verify"],
                    ["export", "--out", os.path.join(ar.dir, "out")]):
            ar.ok(*cmd)
            assert "not authenticated" in ar.last[3], ar.context()
            assert "are refused over it" in ar.last[3], ar.context()


def test_verified_and_local_links_are_quiet(env):
    ar, name, fwd = _setup(env, "tcpvf")
    with fwd:
        # verify-full: accepted as a link; this server speaks no TLS, so
        # connecting fails, but not for the link's sake.
        _write(ar, _tcp(ar, fwd, " sslmode=verify-full connect_timeout=10"))
        rc, out, err = ar.run("check")
        assert rc == 3, ar.context()
        assert "not authenticated" not in err, ar.context()
        assert "database: connect:" in err, ar.context()
        assert fwd.accepted == 1
    # The run's own Unix socket.
    _write(ar, env.pg.conninfo_for(ar.dbname))
    ar.ok("check")
    assert "not authenticated" not in ar.last[3], ar.context()
    # A conninfo libpq cannot parse is refused before anything else.
    _write(ar, "host=a,b hostaddr=127.0.0.1 dbname=x")
    rc, out, err = ar.run("check")
    assert rc == 3, ar.context()
    assert ("%s: 'database.conninfo': 2 host names (host, from conninfo) "
            "for 1 addresses" % ar.conf) in err, ar.context()
