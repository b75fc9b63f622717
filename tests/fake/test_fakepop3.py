#!/usr/bin/env python3
"""Self-tests for fakepop3: each proves that a behaviour or a fault
really happens on the wire.  Run: python3 tests/fake/test_fakepop3.py
[NAME...]; prints "ok NAME" per test and "N passed, N failed"."""

import hashlib
import poplib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fakepop3  # noqa: E402
from fakepop3 import FakePop3, Scenario, ScenarioError  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---------------------------------------------------------------------------
# helpers

class Env:
    """A temporary state directory and servers started on it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fakepop3-test-"))
        self.state = self.dir / "state"
        self.state.mkdir()
        self.servers = []

    def put(self, user, name, data):
        d = self.state / user
        d.mkdir(exist_ok=True)
        (d / name).write_bytes(data)
        return d / name

    def files(self, user):
        return sorted(p.name for p in (self.state / user).iterdir()
                      if not p.name.startswith("."))

    def serve(self, scenario="", **kw):
        srv = FakePop3(self.state, scenario, **kw).start()
        self.servers.append(srv)
        return srv

    def close(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Unstuffer:
    """Dot-unstuff a multi-line response body fed in arbitrary pieces;
    stops at the terminating line.  `sink` receives the message bytes;
    what followed the terminator is left in `extra`."""

    def __init__(self, sink):
        self.sink = sink
        self.pending = b""          # an incomplete line
        self.done = False
        self.extra = b""

    def feed(self, data):
        data = self.pending + data
        k = data.rfind(b"\n")
        if k < 0:
            self.pending = data
            return
        seg, self.pending = data[:k + 1], data[k + 1:]
        pieces = (b"\n" + seg).split(b"\n.")
        out = [pieces[0]]
        for i in range(1, len(pieces)):
            p = pieces[i]
            if p.startswith(b"\r\n") or p.startswith(b"\n"):
                eol = 2 if p.startswith(b"\r\n") else 1
                out.append(b"\n")
                self.done = True
                self.extra = b"\n.".join([p[eol:]] + pieces[i + 1:]) + \
                    self.pending
                self.pending = b""
                break
            out.append(b"\n" + p)
        chunk = b"".join(out)[1:]
        if chunk:
            self.sink(chunk)


class BioSock:
    """TLS over a raw socket through memory BIOs, so TCP-level events (a
    reset, a FIN without close_notify) stay visible to the caller."""

    def __init__(self, sock, ctx, server_hostname="localhost"):
        self.raw = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname=server_hostname)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._pull()
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def _pull(self):
        data = self.raw.recv(1 << 16)     # ConnectionResetError passes up
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self._pull()
            except ssl.SSLZeroReturnError:
                return b""

    def sendall(self, data):
        self.obj.write(data)
        self._flush()

    def settimeout(self, t):
        self.raw.settimeout(t)

    def version(self):
        return self.obj.version()

    def close(self):
        self.raw.close()


class Pop:
    """A minimal raw POP3 client that sees the exact bytes."""

    def __init__(self, port, ctx=None, host="127.0.0.1", timeout=10,
                 greeting=True, bio=False):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if ctx is not None and bio:
            self.sock = BioSock(self.sock, ctx)
        elif ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost",
                                        suppress_ragged_eofs=False)
        self.buf = b""
        self.greeting = self.readline() if greeting else None

    def fill(self, n=1 << 16):
        data = self.sock.recv(n)
        if not data:
            raise EOFError("server closed")
        self.buf += data

    def readline(self, limit=1 << 16):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill()
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.status()

    def status(self):
        return self.readline().rstrip(b"\r\n").decode("utf-8", "replace")

    def body(self, sink=None):
        out = bytearray()
        u = Unstuffer(sink or out.extend)
        data, self.buf = self.buf, b""
        u.feed(data)
        while not u.done:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("server closed inside a multi-line response")
            u.feed(data)
        self.buf = u.extra
        return bytes(out)

    def multi(self, line):
        st = self.cmd(line)
        assert st.startswith("+OK"), (line, st)
        return self.body()

    def login(self, user, pw):
        assert self.cmd("USER " + user).startswith("+OK")
        st = self.cmd("PASS " + pw)
        assert st.startswith("+OK"), st
        return st

    def read_to_eof(self):
        """All bytes until the server closes; (bytes, exception or None)."""
        data = bytearray(self.buf)
        self.buf = b""
        try:
            while True:
                d = self.sock.recv(1 << 16)
                if not d:
                    return bytes(data), None
                data += d
        except (OSError, ssl.SSLError) as e:
            return bytes(data), e

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def with_eol(data):
    return data if data.endswith(b"\r\n") else data + b"\r\n"


_CERTS = {}


def certs():
    if not _CERTS:
        d = Path(tempfile.mkdtemp(prefix="fakepop3-certs-"))
        _CERTS.update(fakepop3.make_certs(d))
        _CERTS["_dir"] = d
    return _CERTS


def client_ctx():
    ctx = ssl.create_default_context(cafile=str(certs()["ca"][0]))
    # Debian 12's Python (3.11.2) sets OP_IGNORE_UNEXPECTED_EOF by
    # default, which reads a FIN without close_notify as a clean end; the
    # tests must tell the two apart, as ingestd does.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def ragged_eof(err):
    """err is what a TLS read raises at a FIN without close_notify:
    SSLEOFError, or, from a Python that does not map OpenSSL 3's reason
    to it (Debian 12's 3.11.2), an SSLError with that reason."""
    return isinstance(err, ssl.SSLEOFError) or (
        isinstance(err, ssl.SSLError) and
        getattr(err, "reason", None) == "UNEXPECTED_EOF_WHILE_READING")


def tls_kw(name="good", implicit=False):
    c, k = certs()[name]
    return {"tls_cert": str(c), "tls_key": str(k), "implicit": implicit}


MSG1 = (b"From: a@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n"
        b"..two\r\nend\r\n")
MSG2 = b"From: b@example.org\n\nbare LF body\n.dot\nno final newline"
MSG3 = bytes(range(256)) + b"\r\n\x00\xff 8-bit\r\n"


# ---------------------------------------------------------------------------
# protocol

@test
def retr_is_byte_exact_and_dot_stuffed():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("alice", "m2", MSG2)
        e.put("alice", "m3", MSG3)
        srv = e.serve("USER alice pw\n")
        p = Pop(srv.port)
        check(p.greeting.startswith(b"+OK") and b"<" in p.greeting,
              "greeting has an APOP timestamp")
        p.login("alice", "pw")
        eq(p.cmd("STAT"), "+OK 3 %d" % (len(MSG1) + len(MSG2) + len(MSG3)))
        eq(p.multi("LIST"), b"1 %d\r\n2 %d\r\n3 %d\r\n" % (
            len(MSG1), len(MSG2), len(MSG3)), "LIST")
        eq(p.multi("UIDL"), b"1 m1\r\n2 m2\r\n3 m3\r\n", "UIDL")
        eq(p.cmd("LIST 2"), "+OK 2 %d" % len(MSG2))
        eq(p.cmd("UIDL 3"), "+OK 3 m3")
        # raw wire check of stuffing for message 1
        p.send("RETR 1\r\n")
        eq(p.status(), "+OK %d octets" % len(MSG1))
        while not p.buf.endswith(b"\r\n.\r\n"):
            p.fill()
        wire, p.buf = p.buf, b""
        eq(wire, MSG1.replace(b"\r\n.", b"\r\n..") + b".\r\n", "wire")
        eq(p.multi("RETR 1"), MSG1, "msg1")
        # a file without a final CRLF gets one before the terminator
        eq(p.multi("RETR 2"), MSG2 + b"\r\n", "msg2")
        eq(p.multi("RETR 3"), MSG3, "msg3")
        eq(p.cmd("RETR 4"), "-ERR no such message")
        eq(p.cmd("QUIT")[:3], "+OK")


@test
def top_returns_header_and_n_lines():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        eq(p.multi("TOP 1 0"),
           b"From: a@example.org\r\nSubject: dots\r\n\r\n", "TOP 0")
        eq(p.multi("TOP 1 2"), b"From: a@example.org\r\nSubject: dots\r\n"
           b"\r\n.leading dot\r\n.\r\n", "TOP 2")
        eq(p.multi("TOP 1 99"), MSG1, "TOP 99")


@test
def poplib_user_apop_and_errors():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice s3cret\n")
        c = poplib.POP3("127.0.0.1", srv.port, timeout=5)
        c.apop("alice", "s3cret")
        eq(c.stat(), (1, len(MSG1)))
        resp, lines, octets = c.retr(1)
        eq(b"\r\n".join(lines) + b"\r\n", MSG1, "poplib retr")
        c.quit()
        c = poplib.POP3("127.0.0.1", srv.port, timeout=5)
        try:
            c.apop("alice", "wrong")
            raise AssertionError("bad APOP digest accepted")
        except poplib.error_proto as ex:
            check(b"[AUTH]" in ex.args[0], "APOP failure has [AUTH]")
        c.close()
        c = poplib.POP3("127.0.0.1", srv.port, timeout=5)
        c.user("alice")
        try:
            c.pass_("nope")
            raise AssertionError("bad password accepted")
        except poplib.error_proto as ex:
            check(b"[AUTH]" in ex.args[0], "PASS failure has [AUTH]")
        c.close()


@test
def auth_plain_initial_response_and_continuation():
    import base64
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\n")
        tok = base64.b64encode(b"\0alice\0pw").decode()
        p = Pop(srv.port)
        check("SASL PLAIN" in p.multi("CAPA").decode(), "CAPA has SASL PLAIN")
        eq(p.cmd("AUTH PLAIN " + tok)[:3], "+OK")
        eq(p.cmd("STAT"), "+OK 1 %d" % len(MSG1))
        p.cmd("QUIT")
        p = Pop(srv.port)
        eq(p.cmd("AUTH PLAIN"), "+ ")
        eq(p.cmd(tok)[:3], "+OK")
        p.cmd("QUIT")
        p = Pop(srv.port)
        eq(p.cmd("AUTH PLAIN"), "+ ")
        check(p.cmd("*").startswith("-ERR"), "cancel")
        bad = base64.b64encode(b"\0alice\0no").decode()
        check(p.cmd("AUTH PLAIN " + bad).startswith("-ERR [AUTH]"), "bad pw")
        check(p.cmd("AUTH CRAM-MD5").startswith("-ERR"), "unknown mech")


@test
def auth_oauth_xoauth2_and_oauthbearer():
    """OAUTH offers XOAUTH2 and OAUTHBEARER; TOKEN is what they accept,
    in one line or two steps; a longer AUTH line than 255 octets is
    refused; a refused token gets the base64 JSON error challenge, which
    the client answers with an empty line (XOAUTH2) or AQ== (OAUTHBEARER)
    before the -ERR."""
    import base64
    import json

    def xo(user, tok):
        return base64.b64encode(b"user=%s\x01auth=Bearer %s\x01\x01"
                                % (user, tok)).decode()

    def ob(user, tok):
        return base64.b64encode(b"n,a=%s,\x01host=localhost\x01port=1"
                                b"\x01auth=Bearer %s\x01\x01"
                                % (user, tok)).decode()

    with Env() as e:
        e.put("alice", "m1", MSG1)
        long_tok = "L" * 10240
        srv = e.serve("OAUTH XOAUTH2 OAUTHBEARER\nUSER alice pw\n"
                      "TOKEN good\nTOKEN %s\n" % long_tok)
        p = Pop(srv.port)
        check("SASL PLAIN XOAUTH2 OAUTHBEARER" in p.multi("CAPA").decode(),
              "CAPA lists the OAuth mechanisms")
        eq(p.cmd("AUTH XOAUTH2 " + xo(b"alice", b"good"))[:3], "+OK")
        eq(p.cmd("STAT"), "+OK 1 %d" % len(MSG1))
        p.cmd("QUIT")
        p = Pop(srv.port)
        eq(p.cmd("AUTH OAUTHBEARER " + ob(b"alice", b"good"))[:3], "+OK")
        p.cmd("QUIT")
        # Two steps, a 10 KiB token; the one-line form is refused.
        p = Pop(srv.port)
        check(p.cmd("AUTH XOAUTH2 " + xo(b"alice", long_tok.encode()))
              .startswith("-ERR [AUTH] AUTH line longer"), "long AUTH line")
        eq(p.cmd("AUTH XOAUTH2"), "+ ")
        eq(p.cmd(xo(b"alice", long_tok.encode()))[:3], "+OK")
        p.cmd("QUIT")
        # A refused token: challenge, answer, -ERR.
        for mech, resp, answer in (("XOAUTH2", xo(b"alice", b"bad"), ""),
                                   ("OAUTHBEARER", ob(b"alice", b"bad"),
                                    "AQ==")):
            p = Pop(srv.port)
            ch = p.cmd("AUTH %s %s" % (mech, resp))
            check(ch.startswith("+ "), "error challenge: %r" % ch)
            eq(json.loads(base64.b64decode(ch[2:]))["status"], "401")
            check(p.cmd(answer).startswith("-ERR [AUTH]"), "-ERR after it")
            check(p.cmd("STAT").startswith("-ERR"), "not logged in")
            p.cmd("QUIT")
        p = Pop(srv.port)
        eq(p.cmd("AUTH XOAUTH2 " + xo(b"alice", b"bad"))[:2], "+ ")
        check(p.cmd("bogus").startswith("-ERR [AUTH] wrong answer"),
              "a wrong answer to the challenge")
        p.cmd("QUIT")
        evs = [x.text for x in fakepop3.read_transcript(srv.transcript_path)
               if x.kind == "E"]
        check("XOAUTH2 token accepted" in evs, evs)
        check("OAUTHBEARER token accepted host=localhost port=1" in evs, evs)
        check("XOAUTH2 token refused" in evs, evs)
    # Without OAUTH the mechanisms are neither listed nor accepted.
    with Env() as e:
        srv = e.serve("USER alice pw\nTOKEN good\n")
        p = Pop(srv.port)
        check("XOAUTH2" not in p.multi("CAPA").decode(), "not offered")
        check(p.cmd("AUTH XOAUTH2 " + xo(b"alice", b"good"))
              .startswith("-ERR unsupported"), "not accepted")
        p.cmd("QUIT")
    try:
        Scenario.parse("OAUTH CRAM-MD5\n")
        check(False, "OAUTH CRAM-MD5 accepted")
    except ScenarioError:
        pass


@test
def deletions_only_at_quit():
    with Env() as e:
        for i in range(1, 4):
            e.put("alice", "m%d" % i, MSG1)
        srv = e.serve("USER alice pw\n")
        # dropped connection: nothing applied
        p = Pop(srv.port)
        p.login("alice", "pw")
        eq(p.cmd("DELE 1")[:3], "+OK")
        eq(p.cmd("DELE 1"), "-ERR message 1 already deleted")
        check(p.cmd("RETR 1").startswith("-ERR"), "RETR of deleted")
        eq(p.cmd("STAT"), "+OK 2 %d" % (2 * len(MSG1)))
        p.close()
        time.sleep(0.1)
        eq(e.files("alice"), ["m1", "m2", "m3"], "after drop")
        # RSET undoes
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.cmd("DELE 2")
        p.cmd("RSET")
        p.cmd("QUIT")
        eq(e.files("alice"), ["m1", "m2", "m3"], "after RSET")
        # QUIT applies
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.cmd("DELE 2")
        eq(e.files("alice"), ["m1", "m2", "m3"], "before QUIT")
        check(p.cmd("QUIT").startswith("+OK"), "QUIT +OK")
        eq(e.files("alice"), ["m1", "m3"], "after QUIT")
        # the transcript lets a test assert what the client sent
        dele = [ev.text for ev in fakepop3.client_commands(
            srv.transcript_path, "alice") if ev.text.startswith("DELE")]
        eq(dele, ["DELE 1", "DELE 1", "DELE 2", "DELE 2"], "transcript")
        check("DELE 3" not in dele, "no DELE 3")


@test
def pipelined_commands_answered_in_order():
    with Env() as e:
        for i in range(1, 51):
            e.put("alice", "m%03d" % i, b"Subject: %d\r\n\r\n%s\r\n"
                  % (i, b"x" * i))
        srv = e.serve("USER alice pw\n")
        p = Pop(srv.port)
        batch = "USER alice\r\nPASS pw\r\n"
        for i in range(1, 51):
            batch += "LIST %d\r\nUIDL %d\r\nRETR %d\r\nNOOP\r\n" % (i, i, i)
        batch += "QUIT\r\n"
        p.send(batch)
        check(p.status().startswith("+OK"), "USER")
        check(p.status().startswith("+OK"), "PASS")
        for i in range(1, 51):
            size = len(b"Subject: %d\r\n\r\n%s\r\n" % (i, b"x" * i))
            eq(p.status(), "+OK %d %d" % (i, size), "LIST %d" % i)
            eq(p.status(), "+OK %d m%03d" % (i, i), "UIDL %d" % i)
            eq(p.status(), "+OK %d octets" % size)
            eq(p.body(), b"Subject: %d\r\n\r\n%s\r\n" % (i, b"x" * i))
            eq(p.status(), "+OK")
        check(p.status().startswith("+OK bye"), "QUIT")


@test
def mailbox_lock_gives_in_use():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("bob", "m1", MSG1)
        srv = e.serve("USER alice pw\nUSER bob pw\nNO-LOCK\n")
        a = Pop(srv.port)
        a.login("alice", "pw")
        b = Pop(srv.port)
        b.cmd("USER alice")
        check(b.cmd("PASS pw").startswith("-ERR [IN-USE]"), "second login")
        a.cmd("QUIT")
        b2 = Pop(srv.port)
        b2.login("alice", "pw")
        x = Pop(srv.port)
        x.login("bob", "pw")
        y = Pop(srv.port)
        y.login("bob", "pw")    # NO-LOCK


@test
def concurrent_connections_300():
    with Env() as e:
        n = 300
        lines = []
        for i in range(n):
            e.put("u%d" % i, "m1", b"Subject: %d\r\n\r\nhi\r\n" % i)
            lines.append("USER u%d p%d" % (i, i))
        srv = e.serve("\n".join(lines) + "\n")
        conns = [Pop(srv.port, greeting=False) for _ in range(n)]
        for i, c in enumerate(conns):
            c.send("USER u%d\r\nPASS p%d\r\nSTAT\r\nRETR 1\r\n" % (i, i))
        for i, c in enumerate(conns):
            check(c.status().startswith("+OK"), "greeting %d" % i)
            c.status()
            check(c.status().startswith("+OK"), "PASS %d" % i)
            c.status()
            c.status()
            eq(c.body(), b"Subject: %d\r\n\r\nhi\r\n" % i)
        for c in conns:
            c.send("QUIT\r\n")
        for c in conns:
            check(c.status().startswith("+OK"), "QUIT")
            c.close()
        events = srv.events()
        eq(len({ev.conn for ev in events if ev.conn}), n,
           "connections in transcript")


# ---------------------------------------------------------------------------
# connection faults

def _cut_case(mode, tls=False):
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("alice", "m2", b"".join(fakepop3.generate_message(300000)))
        kw = tls_kw(implicit=True) if tls else {}
        srv = e.serve("USER alice pw\nCUT RETR:2 100000 %s\n" % mode, **kw)
        p = Pop(srv.port, ctx=client_ctx() if tls else None, bio=True)
        p.login("alice", "pw")
        eq(p.multi("RETR 1"), MSG1, "RETR 1 unaffected")
        p.cmd("DELE 1")
        eq(p.cmd("RETR 2"), "+OK 300000 octets")
        data, err = p.read_to_eof()
        eq(len(data), 100000, "bytes before the cut")
        if mode == "RST":
            check(isinstance(err, ConnectionResetError), "reset: %r" % err)
        elif tls and mode == "NOTIFY":
            check(err is None, "close_notify then FIN: %r" % err)
        elif tls:
            check(ragged_eof(err), "no close_notify: %r" % err)
        else:
            check(err is None, "clean FIN: %r" % err)
        time.sleep(0.1)
        eq(e.files("alice"), ["m1", "m2"], "nothing deleted")


@test
def cut_mid_retr_fin():
    _cut_case("FIN")


@test
def cut_mid_retr_rst():
    _cut_case("RST")


@test
def cut_mid_retr_tls_rst():
    _cut_case("RST", tls=True)


@test
def cut_mid_retr_tls_fin_without_close_notify():
    _cut_case("FIN", tls=True)


@test
def cut_mid_retr_tls_with_close_notify():
    _cut_case("NOTIFY", tls=True)


@test
def stall_mid_retr():
    with Env() as e:
        e.put("alice", "m1", b"".join(fakepop3.generate_message(100000)))
        srv = e.serve("USER alice pw\nSTALL RETR:1 5000\n")
        p = Pop(srv.port, timeout=0.6)
        p.login("alice", "pw")
        eq(p.cmd("RETR 1"), "+OK 100000 octets")
        got = b""
        t0 = time.time()
        try:
            while True:
                d = p.sock.recv(65536)
                if not d:
                    raise AssertionError("server closed during a stall")
                got += d
        except socket.timeout:
            pass
        eq(len(got), 5000, "bytes before the stall")
        check(time.time() - t0 >= 0.5, "stalled")
        p.send("NOOP\r\n")      # ignored, still no answer
        p.sock.settimeout(0.3)
        try:
            d = p.sock.recv(10)
            raise AssertionError("answer during a stall: %r" % d)
        except socket.timeout:
            pass
        p.close()
        time.sleep(0.1)
        texts = [ev.text for ev in srv.events()]
        check("stall" in texts, "stall logged")
        check(any("(ignored while stalled) NOOP" in t for t in texts),
              "ignored NOOP logged")


@test
def drip_one_byte_at_a_time():
    with Env() as e:
        msg = b"Subject: x\r\n\r\n0123456789\r\n"
        e.put("alice", "m1", msg)
        srv = e.serve("USER alice pw\nDRIP RETR 1 10\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.send("RETR 1\r\n")
        t0 = time.time()
        reads = 0
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            d = p.sock.recv(65536)
            check(d, "EOF")
            reads += 1
            data += d
        dt = time.time() - t0
        total = len(b"+OK %d octets\r\n" % len(msg)) + len(msg) + 3
        eq(len(data), total)
        check(dt >= total * 0.010 * 0.8, "took %.3fs for %d bytes" % (dt,
                                                                       total))
        check(reads >= total // 2, "arrived in %d reads" % reads)


@test
def delay_response():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\nDELAY STAT 300\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        t0 = time.time()
        p.cmd("NOOP")
        check(time.time() - t0 < 0.2, "NOOP not delayed")
        t0 = time.time()
        eq(p.cmd("STAT"), "+OK 1 %d" % len(MSG1))
        check(time.time() - t0 >= 0.3, "STAT delayed")


@test
def cut_around_quit_update():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("alice", "m2", MSG1)
        srv = e.serve("USER alice pw\n@1 CUT QUIT before\n@2 CUT QUIT after\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.cmd("DELE 1")
        p.send("QUIT\r\n")
        data, err = p.read_to_eof()
        eq((data, err), (b"", None), "no +OK before update")
        eq(e.files("alice"), ["m1", "m2"], "nothing applied")
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.cmd("DELE 1")
        p.send("QUIT\r\n")
        data, err = p.read_to_eof()
        eq((data, err), (b"", None), "no +OK after update")
        eq(e.files("alice"), ["m2"], "update applied")


@test
def cut_and_stall_before_command():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\n@1 CUT RETR before RST\n"
                      "@2 STALL LIST before\n", max_stall=0.5)
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.send("RETR 1\r\n")
        data, err = p.read_to_eof()
        check(data == b"" and isinstance(err, ConnectionResetError),
              "RST before RETR: %r %r" % (data, err))
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.send("LIST\r\n")
        t0 = time.time()
        data, err = p.read_to_eof()   # max_stall ends it after 0.5 s
        check(data == b"" and time.time() - t0 >= 0.45, "stalled LIST")


# ---------------------------------------------------------------------------
# error replies and broken responses

@test
def err_on_retr_dele_and_no_uidl():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("alice", "m2", MSG1)
        srv = e.serve("USER alice pw\nERR RETR:2 [SYS/TEMP] cannot read\n"
                      "ERR DELE\nNO-UIDL\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        caps = p.multi("CAPA").decode().split("\r\n")
        check("UIDL" not in caps and "TOP" in caps, "CAPA %r" % caps)
        check(p.cmd("UIDL").startswith("-ERR"), "UIDL refused")
        check(p.cmd("UIDL 1").startswith("-ERR"), "UIDL 1 refused")
        eq(p.multi("RETR 1"), MSG1)
        eq(p.cmd("RETR 2"), "-ERR [SYS/TEMP] cannot read")
        eq(p.cmd("DELE 1"), "-ERR fault injected")
        p.cmd("QUIT")
        eq(e.files("alice"), ["m1", "m2"], "DELE refused means kept")


@test
def login_response_codes_by_session():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        codes = ["[IN-USE] locked", "[LOGIN-DELAY] wait", "[SYS/TEMP] later",
                 "[SYS/PERM] broken", "[AUTH] no"]
        sc = "USER alice pw\n" + "".join(
            "@%d LOGIN-FAIL %s\n" % (i + 1, c) for i, c in enumerate(codes))
        srv = e.serve(sc)
        for c in codes:
            p = Pop(srv.port)
            p.cmd("USER alice")
            eq(p.cmd("PASS pw"), "-ERR " + c)
            p.close()
        p = Pop(srv.port)
        p.login("alice", "pw")
        check("AUTH-RESP-CODE" in p.multi("CAPA").decode(), "capability")


@test
def garbage_and_long_line():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\nGARBAGE STAT 5000\n"
                      "LONG-LINE RETR 1M\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.send("STAT\r\n")
        while len(p.buf) < 5000:
            p.fill()
        junk, p.buf = p.buf[:5000], p.buf[5000:]
        check(any(b > 127 for b in junk) and b"\0" in junk, "binary junk")
        p.send("RETR 1\r\n")
        while len(p.buf) < 1 << 20:
            p.fill()
        eq(len(p.buf), 1 << 20, "exactly 1 MiB")
        check(b"\n" not in p.buf and b"\r" not in p.buf, "no line end")


@test
def bare_lf_everywhere():
    with Env() as e:
        lf = b"From: a\n\n.dot\nbody\n"
        e.put("alice", "m1", lf)
        srv = e.serve("USER alice pw\nBARE-LF\n")
        p = Pop(srv.port)
        p.send("USER alice\r\nPASS pw\r\nLIST\r\nRETR 1\r\nQUIT\r\n")
        data, _ = p.read_to_eof()
        check(b"\r" not in data and p.greeting.endswith(b"\r\n"),
              "LF after login: %r" % data)
        check(data.endswith(b"\n..dot\nbody\n.\n+OK bye (1 messages left)\n"),
              "LF body and terminator: %r" % data)


@test
def no_terminator_then_close():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\nNO-TERMINATOR RETR\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        eq(p.cmd("RETR 1"), "+OK %d octets" % len(MSG1))
        data, err = p.read_to_eof()
        eq(data, MSG1.replace(b"\r\n.", b"\r\n.."))
        check(err is None, "closed")


@test
def reply_overrides_any_response():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve('REPLY GREETING "+OK custom hello"\nUSER alice pw\n'
                      "REPLY STAT +OK 99 99\n"
                      r"REPLY LIST:- +OK\r\n1 5\r\n7 7\r\n." "\n"
                      "REPLY NOOP this is not POP3\n")
        p = Pop(srv.port)
        eq(p.greeting, b"+OK custom hello\r\n")
        p.login("alice", "pw")
        eq(p.cmd("STAT"), "+OK 99 99")
        eq(p.multi("LIST"), b"1 5\r\n7 7\r\n")
        eq(p.cmd("NOOP"), "this is not POP3")
        eq(p.cmd("LIST 1"), "+OK 1 %d" % len(MSG1), "LIST 1 is not LIST")


@test
def lying_sizes_and_uidl_faults():
    with Env() as e:
        for i in range(1, 4):
            e.put("alice", "m%d" % i, MSG1)
        srv = e.serve("USER alice pw\nLIE-SIZE 1 +100\nLIE-SIZE 3 7\n"
                      "UIDL-DUP 1 2\n")
        p = Pop(srv.port)
        p.login("alice", "pw")
        n = len(MSG1)
        eq(p.multi("LIST"), b"1 %d\r\n2 %d\r\n3 7\r\n" % (n + 100, n))
        eq(p.cmd("RETR 1"), "+OK %d octets" % (n + 100))
        eq(p.body(), MSG1, "true bytes despite the lie")
        eq(p.multi("UIDL"), b"1 m1\r\n2 m1\r\n3 m3\r\n", "duplicate UIDL")
        p.cmd("QUIT")
        srv.reload("USER alice pw\nUIDL-CHANGE\nUIDL-LONG 100\n")
        seen = []
        for _ in range(2):
            p = Pop(srv.port)
            p.login("alice", "pw")
            uidls = [ln.split()[1] for ln in p.multi("UIDL").splitlines()]
            check(all(len(u) == 100 for u in uidls), "100-char UIDLs")
            seen.append(uidls)
            p.cmd("QUIT")
        check(not set(seen[0]) & set(seen[1]), "all UIDLs changed")


@test
def binary_uidls():
    with Env() as e:
        for i in range(1, 4):
            e.put("alice", "m%d" % i, MSG1)
        srv = e.serve("USER alice pw\nUIDL-BINARY 500\n")
        seen = []
        for _ in range(2):
            p = Pop(srv.port)
            p.login("alice", "pw")
            lines = p.multi("UIDL").split(b"\r\n")[:-1]
            eq([ln.split(b" ", 1)[0] for ln in lines], [b"1", b"2", b"3"])
            uidls = [ln.split(b" ", 1)[1] for ln in lines]
            check(all(len(u) == 500 for u in uidls), "500-byte UIDLs")
            check(not any(0x21 <= b <= 0x7E or b in b"\0\t\r\n "
                          for u in uidls for b in u),
                  "every byte outside 0x21..0x7E, none a blank or NUL")
            check(len(set(uidls)) == 3, "one UIDL per message")
            seen.append(uidls)
            p.cmd("QUIT")
        eq(seen[0], seen[1], "the same UIDLs at every session")
        eq(fakepop3.binary_uidl("m1", 500).encode("utf-8",
                                                  "surrogateescape"),
           seen[0][0], "binary_uidl() spells them")
        try:
            Scenario.parse("UIDL-BINARY 501\n", "s.scn")
            raise AssertionError("accepted a 501-byte UIDL-BINARY")
        except ScenarioError as ex:
            check(":1:" in str(ex), str(ex))


@test
def top_extra_lines():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("alice", "m2", MSG2)
        srv = e.serve("USER alice pw\n@1 TOP-EXTRA \"\\r\\n\"\n"
                      "@2 TOP-EXTRA \".one more line\\r\\n\"\n")
        head = b"From: a@example.org\r\nSubject: dots\r\n\r\n"
        p = Pop(srv.port)
        p.login("alice", "pw")
        eq(p.multi("TOP 1 0"), head + b"\r\n", "a blank line added")
        eq(p.multi("TOP 1 1"), head + b".leading dot\r\n\r\n",
           "after the lines TOP asked for")
        eq(p.multi("RETR 1"), MSG1, "RETR untouched")
        p.cmd("QUIT")
        p = Pop(srv.port)
        p.login("alice", "pw")
        # dot-stuffed on the wire like any body line
        p.send("TOP 1 0\r\n")
        eq(p.status(), "+OK top of message follows")
        while not p.buf.endswith(b"\r\n.\r\n"):
            p.fill()
        eq(p.buf, head + b"..one more line\r\n.\r\n", "wire")
        p.buf = b""
        # a bare-LF message: the line end the text lacks is not invented
        eq(p.multi("TOP 2 0"), b"From: b@example.org\n\n.one more line\r\n")
        p.cmd("QUIT")
        p = Pop(srv.port)
        p.login("alice", "pw")
        eq(p.multi("TOP 1 0"), head, "third session: no fault")
        p.cmd("QUIT")
        check(any("TOP-EXTRA" in ev.text for ev in srv.events()),
              "the fault is in the transcript")


@test
def expire_zero_deletes_retrieved_at_quit():
    with Env() as e:
        for i in range(1, 5):
            e.put("alice", "m%d" % i, MSG1)
        srv = e.serve('EXPIRE "30 USER"\nUSER alice pw\n@1-2 EXPIRE 0\n'
                      "@3 DELETE-RETRIEVED\n")
        p = Pop(srv.port)
        check("EXPIRE 30 USER" in p.multi("CAPA").decode(), "before login")
        p.login("alice", "pw")
        check("EXPIRE 0\r\n" in p.multi("CAPA").decode(), "after login")
        p.multi("RETR 1")
        p.multi("TOP 2 0")
        check(p.cmd("DELE 3").startswith("+OK"), "DELE 3")
        check(p.cmd("QUIT").startswith("+OK"), "QUIT")
        eq(e.files("alice"), ["m2", "m4"], "RETR 1 and DELE 3 applied")
        # No QUIT: nothing applied, retrieved or not.
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.multi("RETR 1")
        p.sock.close()
        time.sleep(0.2)
        eq(e.files("alice"), ["m2", "m4"], "no update without QUIT")
        # Unannounced, as Gmail does.
        p = Pop(srv.port)
        p.login("alice", "pw")
        check("EXPIRE 30" in p.multi("CAPA").decode(), "global value")
        p.multi("RETR 1")
        p.cmd("QUIT")
        eq(e.files("alice"), ["m4"], "DELETE-RETRIEVED")
        # EXPIRE 30: RFC 1939 at QUIT.
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.multi("RETR 1")
        p.cmd("QUIT")
        eq(e.files("alice"), ["m4"], "EXPIRE 30 keeps it")
        check(any("expire retrieved" in ev.text for ev in srv.events()),
              "the expiry is in the transcript")


@test
def login_delay_in_capa_and_stat_size():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve('LOGIN-DELAY "900 USER"\nUSER alice pw\n'
                      "LOGIN-DELAY 3600\n")
        p = Pop(srv.port)
        capa = p.multi("CAPA").decode()
        check("LOGIN-DELAY 900 USER\r\n" in capa, "before login: " + capa)
        p.login("alice", "pw")
        capa = p.multi("CAPA").decode()
        check("LOGIN-DELAY 3600\r\n" in capa, "after login: " + capa)
        check("LOGIN-DELAY 900" not in capa, "the user's replaces it")
        p.cmd("QUIT")
        # Advertised only: a second login at once is let in.
        p = Pop(srv.port)
        p.login("alice", "pw")
        p.cmd("QUIT")
        # STAT-SIZE: what STAT says, not LIST's sum.
        srv3 = e.serve("USER alice pw\nSTAT-SIZE 80M\n")
        p = Pop(srv3.port)
        p.login("alice", "pw")
        eq(p.cmd("STAT"), "+OK 1 %d" % (80 << 20), "STAT-SIZE")
        eq(p.multi("LIST"), b"1 %d\r\n" % len(MSG1), "LIST is true")
        p.cmd("QUIT")
        srv2 = e.serve("USER bob pw\n")
        p = Pop(srv2.port)
        check("LOGIN-DELAY" not in p.multi("CAPA").decode(), "not by default")
        p.cmd("QUIT")


@test
def global_session_qualifier_and_json():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        sc = Scenario.from_json({
            "global": ["@1 REPLY GREETING -ERR [SYS/TEMP] busy"],
            "users": {"alice": {"password": "pw",
                                "directives": ["ERR STAT"]}}})
        srv = e.serve(sc)
        p = Pop(srv.port)
        eq(p.greeting, b"-ERR [SYS/TEMP] busy\r\n")
        p = Pop(srv.port)
        check(p.greeting.startswith(b"+OK"), "second connection normal")
        p.login("alice", "pw")
        check(p.cmd("STAT").startswith("-ERR"), "user directive")


@test
def scenario_errors_name_the_line():
    for text, want in (("BOGUS 1\n", ":1: unknown directive"),
                       ("USER a b\nCUT RETR:1 x\n", ":2:"),
                       ("CUT FOO 1\n", "unknown command"),
                       ("GENERATE 1 1K\n", "USER block"),
                       ("USER a b\nNO-STLS\n", "before the first USER"),
                       ("USER a b\nUSER a c\n", "defined twice")):
        try:
            Scenario.parse(text, "s.scn")
            raise AssertionError("accepted %r" % text)
        except ScenarioError as ex:
            check(want in str(ex) and "s.scn:" in str(ex), str(ex))


# ---------------------------------------------------------------------------
# generated mailboxes

@test
def generated_100k_mailbox_with_persistent_deletions():
    with Env() as e:
        sc = "USER big pw\nGENERATE 100000 1K..3K seed=4\n"
        srv = e.serve(sc)
        t0 = time.time()
        p = Pop(srv.port)
        p.login("big", "pw")
        st = p.cmd("STAT").split()
        eq(st[1], "100000")
        lst = p.multi("LIST").splitlines()
        eq(len(lst), 100000, "LIST lines")
        uidl = p.multi("UIDL").splitlines()
        eq(uidl[0], b"1 g4-1")
        eq(uidl[-1], b"100000 g4-100000")
        sizes = [int(ln.split()[1]) for ln in lst]
        check(min(sizes) >= 1024 and max(sizes) <= 3072, "size range")
        eq(sum(sizes), int(st[2]), "STAT total")
        spec = srv.scenario.users["big"].gens[0]
        for i in (1, 777, 100000):
            body = p.multi("RETR %d" % i)
            eq(len(body), sizes[i - 1])
            eq(hashlib.sha256(body).hexdigest(), spec.sha256_of(i),
               "sha256 of %d" % i)
        for i in (1, 2, 500):
            p.cmd("DELE %d" % i)
        p.cmd("QUIT")
        srv.stop()
        srv2 = e.serve(sc)          # a fresh server on the same state
        p = Pop(srv2.port)
        p.login("big", "pw")
        eq(p.cmd("STAT").split()[1], "99997")
        eq(p.cmd("UIDL 1"), "+OK 1 g4-3")
        check(time.time() - t0 < 15, "fast enough")


@test
def print_sha256_cli_matches_served_bytes():
    with Env() as e:
        out = subprocess.run(
            [sys.executable, str(HERE / "fakepop3.py"), "--print-sha256",
             "2 3M seed=9"], capture_output=True, text=True, check=True)
        rows = [ln.split() for ln in out.stdout.splitlines()]
        eq(len(rows), 2)
        srv = e.serve("USER g pw\nGENERATE 2 3M seed=9\n"
                      "USER h pw\nGENERATE 1 4K seed=2 eol=lf\nBARE-LF\n")
        p = Pop(srv.port)
        p.login("g", "pw")
        for idx, uidl, size, sha in rows:
            eq(p.cmd("UIDL %s" % idx), "+OK %s %s" % (idx, uidl))
            body = p.multi("RETR " + idx)
            eq(len(body), int(size))
            eq(hashlib.sha256(body).hexdigest(), sha, "sha256")
            check(b"\r\n.\r\n" in body, "has a lone-dot line")
        p = Pop(srv.port)
        p.login("h", "pw")
        p.send("RETR 1\r\n")
        p.status()
        while not p.buf.endswith(b"\n.\n"):
            p.fill()
        body = p.buf[:-2].replace(b"\n..", b"\n.")
        eq(hashlib.sha256(body).hexdigest(),
           fakepop3.generated_sha256(4096, 2, 1, b"\n"), "LF message")
        check(b"\r" not in body, "LF message has no CR")


def _rss_kib(pid, field):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@test
def cli_500mb_message_streams_in_bounded_memory():
    with Env() as e:
        ready = e.dir / "ready"
        size = 500 << 20
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "fakepop3.py"), "--state",
             str(e.state), "--ready-file", str(ready), "-d", "USER big pw",
             "-d", "GENERATE 1 500M seed=5"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            for _ in range(200):
                if ready.exists():
                    break
                time.sleep(0.05)
            port = int(ready.read_text())
            eq(int(proc.stdout.readline()), port, "port on stdout")
            p = Pop(port, timeout=30)
            p.login("big", "pw")
            base = _rss_kib(proc.pid, "VmRSS")
            eq(p.cmd("RETR 1"), "+OK %d octets" % size)
            h = hashlib.sha256()
            n = [0]

            def sink(b):
                n[0] += len(b)
                h.update(b)
            t0 = time.time()
            p.body(sink)
            dt = time.time() - t0
            peak = _rss_kib(proc.pid, "VmHWM")
            eq(n[0], size, "bytes")
            eq(h.hexdigest(), fakepop3.generated_sha256(size, 5, 1),
               "sha256 of 500 MB")
            grew = (peak - base) / 1024.0
            check(grew < 24, "server RSS grew %.1f MiB" % grew)
            print("  500 MiB in %.1fs (%.0f MB/s), server RSS +%.1f MiB"
                  % (dt, size / dt / 1e6, grew))
            p.cmd("QUIT")
            proc.send_signal(signal.SIGTERM)
            eq(proc.wait(10), 0, "exit status after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@test
def cli_sigterm_with_open_sessions_and_sighup_reload():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        scn = e.dir / "s.scn"
        scn.write_text("USER alice pw\nSTALL RETR:1 10\n")
        bad = subprocess.run([sys.executable, str(HERE / "fakepop3.py"),
                              "--check", "-d", "CUT RETR:1 x"],
                             capture_output=True, text=True)
        eq(bad.returncode, 2, "--check on a bad scenario")
        check("<command line>:1:" in bad.stderr, bad.stderr)
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "fakepop3.py"), "--state",
             str(e.state), "--scenario", str(scn)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            stalled = Pop(port)
            stalled.login("alice", "pw")
            stalled.send("RETR 1\r\n")
            time.sleep(0.1)
            scn.write_text("USER alice pw\nERR STAT reloaded\n")
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
            stalled.sock.close()
            p = Pop(port)
            p.login("alice", "pw")
            eq(p.cmd("STAT"), "-ERR reloaded", "scenario reloaded")
            eq(p.multi("RETR 1"), MSG1, "no stall after reload")
            idle = Pop(port)
            t0 = time.time()
            proc.send_signal(signal.SIGTERM)
            eq(proc.wait(5), 0, "exit status")
            check(time.time() - t0 < 3, "prompt exit")
            data, err = idle.read_to_eof()
            check(err is None or isinstance(err, ConnectionResetError),
                  "open session ended: %r" % err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@test
def shipped_scenarios_parse_and_behave():
    scns = sorted((HERE / "scenarios").glob("*.scn"))
    check(scns, "scenario files exist")
    for f in scns:
        Scenario.load(f)
    with Env() as e:
        srv = e.serve(Scenario.load(HERE / "scenarios" / "mailbox-faults.scn"))

        def retr_all(user):
            p = Pop(srv.port)
            p.login(user, "pw")
            n = int(p.cmd("STAT").split()[1])
            return [hashlib.sha256(p.multi("RETR %d" % i)).hexdigest()
                    for i in range(1, n + 1)]
        a, b = retr_all("shared-a"), retr_all("shared-b")
        eq(a, b, "shared mailboxes hold the same messages")
        check(len(set(a + retr_all("healthy"))) == 10, "healthy differs")
        p = Pop(srv.port)
        p.login("cut-rst", "pw")
        p.cmd("RETR 3")
        data, err = p.read_to_eof()
        check(len(data) == 1000 and isinstance(err, ConnectionResetError),
              "cut-rst session 1")
        eq(len(retr_all("cut-rst")), 5, "cut-rst session 2")
        p = Pop(srv.port)
        p.cmd("USER in-use")
        check(p.cmd("PASS pw").startswith("-ERR [IN-USE]"), "in-use 1")
        eq(len(retr_all("in-use")), 3, "in-use session 2")
        p = Pop(srv.port)
        p.login("quit-after", "pw")
        p.cmd("DELE 1")
        p.send("QUIT\r\n")
        eq(p.read_to_eof(), (b"", None), "no +OK to QUIT")
        eq(len(retr_all("quit-after")), 4, "deletion applied")


# ---------------------------------------------------------------------------
# TLS

@test
def stls_with_verification_and_transcript():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\n", **tls_kw())
        c = poplib.POP3("127.0.0.1", srv.port, timeout=5)
        check("STLS" in c.capa(), "STLS offered")
        c.stls(client_ctx())
        check("STLS" not in c.capa(), "STLS gone after TLS")
        c.user("alice")
        c.pass_("pw")
        resp, lines, _ = c.retr(1)
        eq(b"\r\n".join(lines) + b"\r\n", MSG1)
        c.quit()
        ev = fakepop3.client_commands(srv.transcript_path)
        check(any(x.tls and x.text == "PASS pw" for x in ev), "PASS in TLS")
        check(not any(not x.tls and x.text.startswith("PASS") for x in ev),
              "no plaintext PASS")


@test
def implicit_tls_good_cert():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("USER alice pw\n", **tls_kw(implicit=True))
        c = poplib.POP3_SSL("127.0.0.1", srv.port, context=client_ctx(),
                            timeout=5)
        c.user("alice")
        c.pass_("pw")
        eq(c.stat(), (1, len(MSG1)))
        c.quit()
        p = Pop(srv.port, ctx=client_ctx())
        eq(p.sock.version() in ("TLSv1.2", "TLSv1.3"), True)


@test
def bad_certificates_are_rejected_by_a_verifying_client():
    with Env() as e:
        for name, want in (("expired", "expired"),
                           ("selfsigned", "self-signed"),
                           ("wronghost", "mismatch")):
            srv = e.serve("", **tls_kw(name, implicit=True))
            try:
                Pop(srv.port, ctx=client_ctx())
                raise AssertionError("%s certificate accepted" % name)
            except ssl.SSLCertVerificationError as ex:
                check(want in str(ex).lower().replace("self signed",
                                                      "self-signed"),
                      "%s: %s" % (name, ex))
            time.sleep(0.05)
            check(any("tls handshake failed" in x.text
                      for x in srv.events()), "handshake failure logged")
            # an unverifying client still gets through: the cert is served
            ctx = ssl._create_unverified_context()
            p = Pop(srv.port, ctx=ctx)
            check(p.greeting.startswith(b"+OK"), "served anyway")
            p.close()


@test
def stls_not_offered():
    with Env() as e:
        srv = e.serve("NO-STLS\n", **tls_kw())
        p = Pop(srv.port)
        check(b"STLS" not in p.multi("CAPA"), "not in CAPA")
        check(p.cmd("STLS").startswith("-ERR"), "refused")


@test
def plaintext_injected_after_stls_reply():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve('STLS-INJECT "+OK injected"\nUSER alice pw\n',
                      **tls_kw())
        p = Pop(srv.port)
        p.send("STLS\r\n")
        while b"+OK injected\r\n" not in p.buf:
            p.fill()
        eq(p.buf, b"+OK Begin TLS negotiation\r\n+OK injected\r\n",
           "one plaintext write")
        # a correct client discards what followed the +OK, then handshakes
        p.buf = b""
        p.sock = client_ctx().wrap_socket(p.sock, server_hostname="localhost")
        p.login("alice", "pw")
        eq(p.cmd("STAT"), "+OK 1 %d" % len(MSG1))
        # and a client that pipelines plaintext after STLS is not obeyed
        p2 = Pop(srv.port)
        p2.send("STLS\r\nUSER alice\r\n")
        while b"injected" not in p2.buf:
            p2.fill()
        p2.sock = client_ctx().wrap_socket(p2.sock,
                                           server_hostname="localhost")
        p2.buf = b""
        check(p2.cmd("PASS pw").startswith("-ERR"), "USER was discarded")


@test
def require_tls_refuses_plaintext_login():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        srv = e.serve("REQUIRE-TLS\nUSER alice pw\n", **tls_kw())
        p = Pop(srv.port)
        caps = p.multi("CAPA").decode().split("\r\n")
        check("USER" not in caps and "STLS" in caps, "CAPA %r" % caps)
        check(p.cmd("USER alice").startswith("-ERR [AUTH]"), "refused")
        eq(p.cmd("STLS")[:3], "+OK")
        p.sock = client_ctx().wrap_socket(p.sock, server_hostname="localhost")
        p.login("alice", "pw")


@test
def close_notify_and_its_absence():
    with Env() as e:
        e.put("alice", "m1", MSG1)
        e.put("bob", "m1", MSG1)
        srv = e.serve("USER alice pw\nUSER bob pw\nNO-CLOSE-NOTIFY\n",
                      **tls_kw(implicit=True))
        p = Pop(srv.port, ctx=client_ctx())
        p.login("alice", "pw")
        p.send("QUIT\r\n")
        data, err = p.read_to_eof()
        check(data.startswith(b"+OK") and err is None, "clean: %r" % err)
        p = Pop(srv.port, ctx=client_ctx())
        p.login("bob", "pw")
        p.send("QUIT\r\n")
        data, err = p.read_to_eof()
        check(data.startswith(b"+OK") and ragged_eof(err),
              "ragged EOF: %r" % err)


# ---------------------------------------------------------------------------

def main(argv):
    names = set(argv)
    selected = [t for t in TESTS if not names or t.__name__ in names]
    passed = failed = 0
    t_all = time.time()
    for fn in selected:
        t0 = time.time()
        try:
            fn()
        except Exception:
            failed += 1
            print("FAIL %s" % fn.__name__)
            traceback.print_exc()
        else:
            passed += 1
            print("ok %s (%.2fs)" % (fn.__name__, time.time() - t0))
        sys.stdout.flush()
    if "_dir" in _CERTS:
        shutil.rmtree(_CERTS["_dir"], ignore_errors=True)
    print("%d passed, %d failed (%.1fs)" % (passed, failed,
                                             time.time() - t_all))
    return 1 if failed or not selected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
