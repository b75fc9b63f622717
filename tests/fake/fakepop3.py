#!/usr/bin/env python3
"""fakepop3: a scriptable, fault-injecting POP3/POP3S server for tests.

Correct by default (RFC 1939, RFC 2449 CAPA/PIPELINING/RESP-CODES,
RFC 2595 STLS, RFC 3206 AUTH/SYS codes, RFC 5034 AUTH PLAIN, and with
OAUTH the bearer-token mechanisms XOAUTH2 and RFC 7628 OAUTHBEARER); each
mailbox
can be given faults by a scenario (see tests/fake/README.md for the
directive syntax).  Standard library only; asyncio, one thread.

Mailboxes are directories under the state directory: STATE/<user>/.
Every regular file not starting with "." is a message, served byte for
byte, in name order.  Deletions are applied at QUIT by removing the files.
Generated ("virtual") messages come after the files; their deletions are
kept in STATE/<user>/.fakepop3-deleted.json.

As a library:

    from fakepop3 import FakePop3
    sc = "USER alice pw\\nCUT RETR:1 100 RST\\n"
    with FakePop3(state_dir, scenario=sc) as srv:
        ... connect to 127.0.0.1:srv.port ...
    read_transcript(srv.transcript_path)

As a program: python3 fakepop3.py --help
"""

import argparse
import array
import asyncio
import base64
import binascii
import errno
import fcntl
import hashlib
import json
import os
import resource
import signal
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import traceback
from pathlib import Path

__all__ = [
    "FakePop3", "Scenario", "ScenarioError", "GenSpec", "generate_message",
    "generated_sha256", "make_certs", "read_transcript", "client_commands",
    "parse_size",
]

CMDS = ("GREETING", "CAPA", "STLS", "USER", "PASS", "APOP", "AUTH", "STAT",
        "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "QUIT")
LINE_LIMIT = 64 * 1024          # longest command line accepted
AUTH_LINE_MAX = 255             # RFC 5034: an AUTH line with its CRLF
OAUTH_MECHS = ("XOAUTH2", "OAUTHBEARER")
# What the error challenge of a refused token says (RFC 7628 3.2.2).
OAUTH_CHALLENGE = {"status": "401", "schemes": "bearer",
                   "scope": "https://mail.example/"}
CHUNK = 64 * 1024               # file read size
DELETED_FILE = ".fakepop3-deleted.json"


class ScenarioError(ValueError):
    pass


def parse_size(text):
    """'500M' -> 524288000; suffixes K, M, G are powers of 1024."""
    t = str(text).strip().upper()
    mult = 1
    for suffix, m in (("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
                      ("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30),
                      ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30),
                      ("B", 1)):
        if t.endswith(suffix):
            t = t[: -len(suffix)]
            mult = m
            break
    if not t.isdigit():
        raise ValueError("bad size %r" % text)
    return int(t) * mult


def unescape(text):
    """Scenario text to bytes: optional surrounding double quotes, then
    escapes \\r \\n \\t \\0 \\\\ \\" \\xHH; other characters as UTF-8."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 == n:
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = text[i + 1]
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0",
                  "\\": b"\\", '"': b'"'}
        if nxt in simple:
            out += simple[nxt]
            i += 2
        elif nxt == "x" and i + 3 < n + 0 and _ishex(text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            raise ValueError("bad escape \\%s" % nxt)
    return bytes(out)


def _ishex(s):
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def _printable(data):
    """Bytes as one log-safe line: control bytes and backslash escaped."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b < 0x20 or b >= 0x7F:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return "".join(out)


# ---------------------------------------------------------------------------
# Generated messages

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TABLE = bytes(_B64[i % 64] for i in range(256))
_EIGHTBIT = "8-bit: caf\u00e9 \u2014 gr\u00fc\u00dfe".encode("utf-8")
UNIT_LINES = 256


def _gen_header(size, seed, index, eol):
    lines = [
        b'From: "fakepop3" <gen@fakepop3.invalid>',
        b"To: <user@fakepop3.invalid>",
        b"Subject: generated message %d (seed %d, %d bytes)" % (index, seed,
                                                                size),
        b"Message-ID: <gen.%d.%d.%d@fakepop3.invalid>" % (seed, index, size),
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
    ]
    return b"".join(line + eol for line in lines)


def _gen_unit(seed, index, k, eol, limit):
    """The first `limit` bytes (at most) of body unit k."""
    prefix = b".%08d dot-stuffed line" % k + eol
    if k % 2 == 0:
        prefix += b"." + eol
    else:
        prefix += b"..%08d two dots" % k + eol
    prefix += _EIGHTBIT + eol
    if limit <= len(prefix):
        return prefix[:limit]
    ll = 76 + len(eol)
    need = min(limit - len(prefix), ll * UNIT_LINES)
    nlines = -(-need // ll)
    key = b"fakepop3:%d:%d:%d" % (seed, index, k)
    raw = hashlib.shake_128(key).digest(ll * nlines)
    ba = bytearray(raw.translate(_TABLE))
    for off, byte in enumerate(eol):
        ba[76 + off::ll] = bytes([byte]) * nlines
    del ba[need:]
    return prefix + ba


def generate_message(size, seed=1, index=1, eol=b"\r\n"):
    """Yield the bytes of a deterministic generated message of exactly
    `size` bytes, in pieces of about 20 KiB.  Content: an RFC 5322 header,
    then units k = 0, 1, ... of: a line starting with ".", a lone "." line
    (k even) or a line starting with ".." (k odd), an 8-bit UTF-8 line, and
    256 lines of 76 base64-alphabet characters from SHAKE-128.  It is cut
    to size and always ends with `eol`."""
    if isinstance(eol, str):
        eol = eol.encode()
    if size < len(eol):
        if size > 0:
            yield b"x"
        return
    remaining = size - len(eol)
    piece = _gen_header(size, seed, index, eol)[:remaining]
    k = 0
    while True:
        if piece:
            remaining -= len(piece)
            if remaining == 0:
                if eol == b"\r\n" and piece.endswith(b"\r"):
                    piece = piece[:-1] + b"x"
                yield bytes(piece)
                break
            yield bytes(piece)
        elif remaining == 0:
            break
        piece = _gen_unit(seed, index, k, eol, remaining)
        k += 1
    yield eol


def generated_sha256(size, seed=1, index=1, eol=b"\r\n"):
    """SHA-256 hex of generate_message(size, seed, index, eol)."""
    h = hashlib.sha256()
    for piece in generate_message(size, seed, index, eol):
        h.update(piece)
    return h.hexdigest()


class GenSpec:
    """GENERATE count size [seed=S] [eol=crlf|lf] [uidl=PREFIX]
    size is N or LO..HI (uniform per message, deterministic)."""

    def __init__(self, count, size_lo, size_hi, seed=1, eol=b"\r\n",
                 uidl_prefix=None):
        self.count = count
        self.size_lo = size_lo
        self.size_hi = size_hi
        self.seed = seed
        self.eol = eol
        self.uidl_prefix = uidl_prefix if uidl_prefix is not None else \
            "g%d-" % seed
        self._sizes = None

    @classmethod
    def parse(cls, tokens):
        tokens = list(tokens)
        if tokens and tokens[0].upper() == "GENERATE":
            tokens = tokens[1:]
        if len(tokens) < 2:
            raise ValueError("GENERATE needs count and size")
        count = int(tokens[0])
        if count < 0 or count > 10_000_000:
            raise ValueError("bad count %r" % tokens[0])
        if ".." in tokens[1]:
            lo, hi = tokens[1].split("..", 1)
            lo, hi = parse_size(lo), parse_size(hi)
        else:
            lo = hi = parse_size(tokens[1])
        if hi < lo:
            raise ValueError("size range %r is empty" % tokens[1])
        kw = {}
        for tok in tokens[2:]:
            key, sep, val = tok.partition("=")
            key = key.lower()
            if not sep:
                raise ValueError("expected key=value, got %r" % tok)
            if key == "seed":
                kw["seed"] = int(val)
            elif key == "eol":
                if val.lower() not in ("crlf", "lf"):
                    raise ValueError("eol must be crlf or lf")
                kw["eol"] = b"\r\n" if val.lower() == "crlf" else b"\n"
            elif key == "uidl":
                kw["uidl_prefix"] = val
            else:
                raise ValueError("unknown GENERATE option %r" % key)
        return cls(count, lo, hi, **kw)

    @property
    def key(self):
        return "%d..%d:%d:%s:%s" % (self.size_lo, self.size_hi, self.seed,
                                    "lf" if self.eol == b"\n" else "crlf",
                                    self.uidl_prefix)

    def size_of(self, i):
        if self.size_lo == self.size_hi:
            return self.size_lo
        if self._sizes is None:
            span = self.size_hi - self.size_lo + 1
            self._sizes = array.array("Q", (
                self.size_lo + int.from_bytes(hashlib.sha256(
                    b"size:%d:%d" % (self.seed, j)).digest()[:8], "big") % span
                for j in range(1, self.count + 1)))
        return self._sizes[i - 1]

    def uidl_of(self, i):
        return "%s%d" % (self.uidl_prefix, i)

    def chunks(self, i):
        return generate_message(self.size_of(i), self.seed, i, self.eol)

    def sha256_of(self, i):
        return generated_sha256(self.size_of(i), self.seed, i, self.eol)


# ---------------------------------------------------------------------------
# Scenarios

# name: (min tokens, max tokens, text: None | "opt" | "req", scope)
_SPECS = {
    "USER": (2, 2, None, "block"),
    "MAILBOX": (1, 1, None, "user"),
    "GENERATE": (2, 5, None, "user"),
    "SET-UIDL": (2, 2, None, "user"),
    "UIDL-DUP": (2, 2, None, "user"),
    "LIE-SIZE": (2, 2, None, "user"),
    "ENDLESS": (1, 1, None, "user"),
    "GREETING": (0, 0, "req", "global"),
    "NO-APOP": (0, 0, None, "global"),
    "NO-STLS": (0, 0, None, "global"),
    "STLS-INJECT": (0, 0, "opt", "global"),
    "REQUIRE-TLS": (0, 0, None, "global"),
    "REPLY": (1, 1, "req", "any"),
    "RAW": (1, 1, "req", "any"),
    "ERR": (1, 1, "opt", "any"),
    "DELAY": (2, 2, None, "any"),
    "CUT": (2, 3, None, "any"),
    "STALL": (2, 2, None, "any"),
    "DRIP": (3, 3, None, "any"),
    "GARBAGE": (1, 3, None, "any"),
    "LONG-LINE": (1, 2, None, "any"),
    "NO-TERMINATOR": (1, 1, None, "any"),
    "BARE-LF": (0, 0, None, "any"),
    "NO-CLOSE-NOTIFY": (0, 0, None, "any"),
    "NO-UIDL": (0, 0, None, "any"),
    "NO-CAPA": (1, 1, None, "any"),
    "NO-LOCK": (0, 0, None, "any"),
    "LOGIN-FAIL": (0, 0, "req", "any"),
    "UIDL-CHANGE": (0, 0, None, "any"),
    "UIDL-LONG": (1, 1, None, "any"),
    "UIDL-BINARY": (1, 1, None, "any"),
    "TOP-EXTRA": (0, 0, "req", "any"),
    "EXPIRE": (0, 0, "req", "any"),
    "LOGIN-DELAY": (0, 0, "req", "any"),
    "STAT-SIZE": (1, 1, None, "any"),
    "DELETE-RETRIEVED": (0, 0, None, "any"),
    "OAUTH": (1, 2, None, "global"),
    "TOKEN": (1, 1, None, "user"),
}
_SELECTOR_DIRECTIVES = ("REPLY", "RAW", "ERR", "DELAY", "CUT", "STALL",
                        "DRIP", "GARBAGE", "LONG-LINE", "NO-TERMINATOR")


class Directive:
    __slots__ = ("name", "args", "text", "lo", "hi", "sels", "where")

    def __init__(self, name, args, text, lo, hi, where):
        self.name = name
        self.args = args
        self.text = text
        self.lo = lo
        self.hi = hi
        self.where = where
        self.sels = None
        if name in _SELECTOR_DIRECTIVES:
            self.sels = []
            for part in args[0].split(","):
                cmd, sep, arg = part.partition(":")
                cmd = cmd.upper()
                if cmd != "*" and cmd not in CMDS:
                    raise ScenarioError("%s: unknown command %r in selector"
                                        % (where, cmd))
                self.sels.append((cmd, arg if sep else None))

    def active(self, n):
        return self.lo <= n and (self.hi is None or n <= self.hi)

    def matches(self, cmd, arg):
        for scmd, sarg in self.sels:
            if scmd != "*" and scmd != cmd:
                continue
            if sarg is None:
                return True
            if sarg == "-" or arg is None:
                if sarg == "-" and arg is None:
                    return True
                continue
            if sarg.isdigit() and arg.isdigit():
                if int(sarg) == int(arg):
                    return True
            elif sarg == arg:
                return True
        return False

    def __repr__(self):
        return "<%s %s %r>" % (self.name, " ".join(self.args), self.text)


class UserConf:
    def __init__(self, name, password, where=None):
        self.name = name
        self.password = password
        self.mailbox = name
        self.gens = []
        self.directives = []
        self.where = where


class Scenario:
    """Parsed scenario: global directives and per-user blocks."""

    def __init__(self):
        self.directives = []
        self.users = {}

    @classmethod
    def parse(cls, text, source="<scenario>"):
        sc = cls()
        sc._feed(text, source)
        return sc

    @classmethod
    def load(cls, path):
        return cls.parse(Path(path).read_text(encoding="utf-8"), str(path))

    @classmethod
    def from_json(cls, obj, source="<json>"):
        """A list of lines, or {"global": [lines], "users": {name:
        {"password": P, "directives": [lines]}}}."""
        if isinstance(obj, (str, bytes)):
            obj = json.loads(obj)
        return cls.parse(cls.json_to_text(obj), source)

    @staticmethod
    def json_to_text(obj):
        if isinstance(obj, list):
            return "\n".join(obj) + "\n"
        if not isinstance(obj, dict):
            raise ScenarioError("JSON scenario must be a list or an object")
        lines = list(obj.get("global", []))
        for name, u in obj.get("users", {}).items():
            lines.append("USER %s %s" % (name, u.get("password", "password")))
            lines.extend(u.get("directives", []))
        return "\n".join(lines) + "\n"

    @classmethod
    def coerce(cls, value):
        if value is None:
            return cls()
        if isinstance(value, Scenario):
            return value
        if isinstance(value, Path):
            return cls.load(value)
        if isinstance(value, (list, dict)):
            return cls.from_json(value)
        return cls.parse(value)

    def _feed(self, text, source):
        cur = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            where = "%s:%d" % (source, lineno)
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            lo, hi = 1, None
            if line.startswith("@"):
                qual, _, line = line.partition(" ")
                line = line.strip()
                try:
                    a, dash, b = qual[1:].partition("-")
                    lo = int(a) if a else 1
                    hi = (int(b) if b else None) if dash else lo
                except ValueError:
                    raise ScenarioError("%s: bad session qualifier %r"
                                        % (where, qual)) from None
            name = line.split(None, 1)[0].upper()
            spec = _SPECS.get(name)
            if spec is None:
                raise ScenarioError("%s: unknown directive %r" % (where, name))
            tmin, tmax, textmode, scope = spec
            if textmode:
                parts = line.split(None, tmax + 1)
                args = parts[1:tmax + 1]
                text_ = parts[tmax + 1] if len(parts) > tmax + 1 else None
                if len(args) < tmin:
                    raise ScenarioError("%s: %s needs %d argument(s)"
                                        % (where, name, tmin))
                if textmode == "req" and text_ is None:
                    raise ScenarioError("%s: %s needs a text" % (where, name))
                if text_ is not None:
                    try:
                        text_ = unescape(text_)
                    except ValueError as e:
                        raise ScenarioError("%s: %s" % (where, e)) from None
            else:
                args = line.split()[1:]
                text_ = None
                if not tmin <= len(args) <= tmax:
                    raise ScenarioError("%s: %s takes %d..%d arguments, got %d"
                                        % (where, name, tmin, tmax, len(args)))
            if scope == "block":
                if (lo, hi) != (1, None):
                    raise ScenarioError("%s: USER takes no session qualifier"
                                        % where)
                cur = UserConf(args[0], args[1], where)
                if cur.name in self.users:
                    raise ScenarioError("%s: user %r defined twice"
                                        % (where, cur.name))
                self.users[cur.name] = cur
                continue
            if scope == "user" and cur is None:
                raise ScenarioError("%s: %s belongs in a USER block"
                                    % (where, name))
            if scope == "global" and cur is not None:
                raise ScenarioError("%s: %s must come before the first USER"
                                    % (where, name))
            if name in ("MAILBOX", "GENERATE"):
                if (lo, hi) != (1, None):
                    raise ScenarioError("%s: %s takes no session qualifier"
                                        % (where, name))
                if name == "MAILBOX":
                    cur.mailbox = args[0]
                else:
                    try:
                        cur.gens.append(GenSpec.parse(args))
                    except ValueError as e:
                        raise ScenarioError("%s: %s" % (where, e)) from None
                continue
            d = Directive(name, args, text_, lo, hi, where)
            self._check(d)
            (cur.directives if cur else self.directives).append(d)

    @staticmethod
    def _check(d):
        def num(s, what):
            if not s.isdigit():
                raise ScenarioError("%s: %s: %s must be a number, got %r"
                                    % (d.where, d.name, what, s))
            return int(s)

        a = d.args
        if d.name == "DELAY":
            num(a[1], "ms")
        elif d.name in ("CUT", "STALL"):
            if a[1].lower() not in ("before", "after"):
                num(a[1], "position")
            if d.name == "CUT" and len(a) > 2 and \
                    a[2].upper() not in ("FIN", "RST", "NOTIFY"):
                raise ScenarioError("%s: CUT mode must be FIN, RST or NOTIFY"
                                    % d.where)
        elif d.name == "DRIP":
            if num(a[1], "bytes") < 1:
                raise ScenarioError("%s: DRIP bytes must be >= 1" % d.where)
            num(a[2], "ms")
        elif d.name in ("GARBAGE", "LONG-LINE"):
            for s in a[1:]:
                try:
                    parse_size(s)
                except ValueError:
                    raise ScenarioError("%s: bad size %r" % (d.where, s)) \
                        from None
        elif d.name == "ENDLESS":
            num(a[0], "message number")
        elif d.name in ("SET-UIDL", "UIDL-DUP", "LIE-SIZE"):
            if not (a[0] == "*" and d.name == "LIE-SIZE"):
                num(a[0], "message number")
            if d.name == "UIDL-DUP":
                num(a[1], "message number")
            if d.name == "LIE-SIZE":
                v = a[1][1:] if a[1][:1] in "+-" else a[1]
                num(v, "size")
        elif d.name == "UIDL-LONG":
            num(a[0], "length")
        elif d.name == "OAUTH":
            for m in a:
                if m.upper() not in OAUTH_MECHS:
                    raise ScenarioError("%s: OAUTH mechanisms are XOAUTH2 "
                                        "and OAUTHBEARER, not %r"
                                        % (d.where, m))
        elif d.name == "STAT-SIZE":
            try:
                parse_size(a[0])
            except ValueError:
                raise ScenarioError("%s: STAT-SIZE needs a size, e.g. 80M"
                                    % d.where)
        elif d.name == "UIDL-BINARY":
            if not 1 <= num(a[0], "length") <= 500:
                raise ScenarioError("%s: UIDL-BINARY length must be 1 to "
                                    "500 (a UIDL line holds 512 octets)"
                                    % d.where)


# ---------------------------------------------------------------------------
# Mailboxes

class Message:
    __slots__ = ("num", "size", "rsize", "uidl", "path", "gen", "gidx",
                 "endless")

    def __init__(self, num, size, uidl, path=None, gen=None, gidx=0):
        self.endless = False    # RETR streams body lines without end
        self.num = num
        self.size = size        # true size
        self.rsize = size       # reported size
        self.uidl = uidl
        self.path = path
        self.gen = gen
        self.gidx = gidx

    def chunks(self):
        if self.gen is not None:
            return self.gen.chunks(self.gidx)
        return _file_chunks(self.path)


def _endless(body):
    """The message's bytes, then body lines for ever: a server that never
    ends a RETR.  Constant memory."""
    yield from body
    line = b"endless " + b"x" * 70 + b"\r\n"
    chunk = line * (65536 // len(line))
    while True:
        yield chunk


def _file_chunks(path):
    with open(path, "rb") as f:
        while True:
            data = f.read(CHUNK)
            if not data:
                return
            yield data


def _valid_uidl(s):
    return 1 <= len(s) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in s)


def _load_deleted(mdir):
    try:
        raw = json.loads((mdir / DELETED_FILE).read_text())
    except FileNotFoundError:
        return {}
    out = {}
    for key, ranges in raw.items():
        s = set()
        for lo, hi in ranges:
            s.update(range(lo, hi + 1))
        out[key] = s
    return out


def _save_deleted(mdir, deleted):
    obj = {}
    for key, s in deleted.items():
        ranges = []
        for i in sorted(s):
            if ranges and ranges[-1][1] == i - 1:
                ranges[-1][1] = i
            else:
                ranges.append([i, i])
        obj[key] = ranges
    tmp = mdir / (DELETED_FILE + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, mdir / DELETED_FILE)


def _snapshot(mdir, conf):
    msgs = []
    names = sorted(e.name for e in os.scandir(mdir)
                   if not e.name.startswith(".") and e.is_file())
    for name in names:
        p = mdir / name
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            continue
        uidl = name if _valid_uidl(name) else \
            "h" + hashlib.sha1(name.encode("utf-8", "surrogateescape"))\
            .hexdigest()
        msgs.append(Message(len(msgs) + 1, size, uidl, path=p))
    if conf is not None and conf.gens:
        deleted = _load_deleted(mdir)
        for g in conf.gens:
            gone = deleted.get(g.key, ())
            for i in range(1, g.count + 1):
                if i in gone:
                    continue
                msgs.append(Message(len(msgs) + 1, g.size_of(i), g.uidl_of(i),
                                    gen=g, gidx=i))
    return msgs


# ---------------------------------------------------------------------------
# Transcripts

class Transcript:
    """One line per event: CONN TIME USER TLS KIND TEXT, where USER is "-"
    until known, TLS is "plain" or "tls", KIND is C (line received),
    S (status line sent) or E (event: fault fired, TLS up, update, close)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a", buffering=1, encoding="utf-8",
                      errors="backslashreplace")

    def write(self, conn, user, tls, kind, text):
        self.f.write("%d %.6f %s %s %s %s\n" % (
            conn, time.time(), user or "-", "tls" if tls else "plain", kind,
            text))

    def close(self):
        self.f.close()


class Event:
    __slots__ = ("conn", "time", "user", "tls", "kind", "text")

    def __init__(self, conn, t, user, tls, kind, text):
        self.conn, self.time, self.user = conn, t, user
        self.tls, self.kind, self.text = tls, kind, text

    def __repr__(self):
        return "<%d %s %s %s %s>" % (self.conn, self.user,
                                      "tls" if self.tls else "plain",
                                      self.kind, self.text)


def read_transcript(path):
    """Parse a transcript file into a list of Event."""
    events = []
    try:
        f = open(path, encoding="utf-8", errors="backslashreplace")
    except FileNotFoundError:
        return events
    with f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 5)
            if len(parts) < 5:
                continue
            if len(parts) == 5:
                parts.append("")
            conn, t, user, tls, kind, text = parts
            events.append(Event(int(conn), float(t),
                                None if user == "-" else user, tls == "tls",
                                kind, text))
    return events


def client_commands(path, user=None):
    """The lines clients sent (Event list), optionally for one user."""
    return [e for e in read_transcript(path)
            if e.kind == "C" and (user is None or e.user == user)]


# ---------------------------------------------------------------------------
# Sessions

class _Resp:
    __slots__ = ("status", "body", "after", "close")

    def __init__(self, status, body=None, after=None, close=False):
        self.status = status    # str, without line ending
        self.body = body        # iterable of raw bytes (to be dot-stuffed)
        self.after = after      # coroutine function run after sending
        self.close = close


class _Closed(Exception):
    pass


def _stuff(chunk, at_bol):
    out = chunk.replace(b"\n.", b"\n..")
    if at_bol and out[:1] == b".":
        out = b"." + out
    return out


def _top_filter(chunks, nlines):
    """The header, the blank line, and the first nlines body lines."""
    in_header = True
    left = nlines
    head = b""
    for chunk in chunks:
        pos = 0
        n = len(chunk)
        while True:
            if not in_header and left <= 0:
                if pos:
                    yield chunk[:pos]
                return
            j = chunk.find(b"\n", pos)
            if j < 0:
                if len(head) < 2:
                    head += chunk[pos:pos + 2 - len(head)]
                yield chunk
                break
            if len(head) < 2:
                head += chunk[pos:min(j, pos + 2 - len(head))]
            if in_header:
                if head in (b"", b"\r"):
                    in_header = False
            else:
                left -= 1
            head = b""
            pos = j + 1
            if pos == n:
                if not in_header and left <= 0:
                    yield chunk
                    return
                yield chunk
                break


def _chain(chunks, extra):
    """chunks, then extra: what TOP-EXTRA adds after what TOP would send."""
    yield from chunks
    yield extra


# Bytes of UIDL-BINARY UIDLs: none of them in RFC 1939's 0x21..0x7E, and
# none a line end, a blank (trimmed at the end of a line) or NUL.
_BINARY_UIDL_BYTES = bytes(b for b in range(1, 256)
                           if not 0x21 <= b <= 0x7E and
                           b not in (0x09, 0x0A, 0x0D, 0x20))
_BINARY_UIDL_MAP = bytes(_BINARY_UIDL_BYTES[i % len(_BINARY_UIDL_BYTES)]
                         for i in range(256))


def binary_uidl(uidl, n):
    """The UIDL-BINARY spelling of uidl: n bytes outside 0x21..0x7E, the
    same at every session, different for different UIDLs.  As a str whose
    bytes are those of surrogateescape (so it goes on the wire as is)."""
    raw = hashlib.shake_256(b"uidl-binary:" + uidl.encode(
        "utf-8", "surrogateescape")).digest(n)
    return raw.translate(_BINARY_UIDL_MAP).decode("utf-8", "surrogateescape")


def _outq(fd):
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.TIOCOUTQ, buf, True)
    except OSError:
        return 0
    return buf[0]


class _Session:
    def __init__(self, server, reader, writer, conn):
        self.srv = server
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.tls = False
        self.user = None            # name identified by USER/APOP/AUTH
        self.conf = None            # its UserConf
        self.usess = 0              # that user's session number
        self.authed = False
        self.msgs = None
        self.deleted = set()
        self.retrieved = set()      # RETR answered +OK
        self.mdir = None
        self.sasl = None            # pending SASL step: PLAIN, XOAUTH2,
        # OAUTHBEARER, or ERR-<mech> after an error challenge
        self.closed = False
        self.drip = None
        self.ts = "<%d.%d.%d@fakepop3.invalid>" % (os.getpid(), conn,
                                                  int(time.time()))

    # -- scenario lookups -------------------------------------------------
    def _active(self):
        sc = self.srv.scenario
        if self.conf is not None:
            u = sc.users.get(self.user)
            if u is not None:
                for d in u.directives:
                    if d.active(self.usess):
                        yield d
        for d in sc.directives:
            if d.active(self.conn):
                yield d

    def find(self, name, cmd=None, arg=None):
        for d in self._active():
            if d.name == name and (d.sels is None or d.matches(cmd, arg)):
                return d
        return None

    def flag(self, name):
        return self.find(name) is not None

    @property
    def eol(self):
        return b"\n" if self.flag("BARE-LF") else b"\r\n"

    def log(self, kind, text):
        self.srv.transcript.write(self.conn, self.user, self.tls, kind, text)

    # -- output -----------------------------------------------------------
    async def send(self, data):
        if not data:
            return
        if self.drip:
            n, ms = self.drip
            for i in range(0, len(data), n):
                self.writer.write(data[i:i + n])
                await self.writer.drain()
                await asyncio.sleep(ms / 1000.0)
        else:
            self.writer.write(data)
            await self.writer.drain()
        # A client that hung up mid-body (ENDLESS) must not leave the
        # loop writing into a closed transport for ever, and a fast
        # reader must not starve the other sessions.
        if self.writer.transport.is_closing():
            raise _Closed()
        await asyncio.sleep(0)

    async def flush_fully(self, limit=10.0):
        """Wait until every byte written has been acknowledged by the
        peer's kernel, so a cut lands exactly where the scenario says."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        tr = self.writer.transport
        sock = tr.get_extra_info("socket")
        while loop.time() < deadline:
            pending = tr.get_write_buffer_size()
            raw = getattr(getattr(tr, "_ssl_protocol", None), "_transport",
                          None)
            if raw is not None:
                pending += raw.get_write_buffer_size()
            if pending == 0 and (sock is None or _outq(sock.fileno()) == 0):
                return
            await asyncio.sleep(0.002)

    async def close(self, mode="graceful"):
        """graceful: TLS close_notify (unless NO-CLOSE-NOTIFY) then FIN.
        fin: FIN with no close_notify.  rst: RST (SO_LINGER 0).
        notify: close_notify then FIN, even under NO-CLOSE-NOTIFY."""
        if self.closed:
            return
        self.closed = True
        tr = self.writer.transport
        sock = tr.get_extra_info("socket")
        if mode == "graceful" and self.tls and self.flag("NO-CLOSE-NOTIFY"):
            mode = "fin"
        try:
            if mode == "rst":
                await self.flush_fully()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
                tr.abort()
            elif mode == "fin" and self.tls:
                await self.flush_fully()
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                tr.abort()
            else:
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (Exception, asyncio.TimeoutError):
            tr.abort()
        raise _Closed()

    async def stall(self):
        self.log("E", "stall")
        try:
            await asyncio.wait_for(self._discard_input(), self.srv.max_stall)
        except asyncio.TimeoutError:
            self.log("E", "stall ended after %gs" % self.srv.max_stall)
        await self.close("fin")

    async def _discard_input(self):
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            self.log("C", "(ignored while stalled) " + _printable(data))

    # -- main loop --------------------------------------------------------
    async def run(self):
        peer = self.writer.get_extra_info("peername")
        self.log("E", "connect from %s" % (peer,))
        try:
            if self.srv.implicit:
                await self._start_tls()
            greeting = self.srv.scenario_greeting(self.conn)
            if not self.flag("NO-APOP"):
                greeting += " " + self.ts
            await self.command("GREETING", None,
                               lambda: _Resp("+OK " + greeting))
            while True:
                try:
                    line = await asyncio.wait_for(
                        self.reader.readuntil(b"\n"), self.srv.idle_timeout)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        self.log("C", "(partial at EOF) " +
                                 _printable(e.partial))
                    self.log("E", "client closed")
                    break
                except asyncio.LimitOverrunError:
                    self.log("E", "command line too long")
                    await self.send(b"-ERR line too long" + self.eol)
                    await self.close("graceful")
                except asyncio.TimeoutError:
                    self.log("E", "idle timeout")
                    await self.send(b"-ERR autologout: idle" + self.eol)
                    await self.close("graceful")
                await self.dispatch(line)
        except _Closed:
            pass
        except (ConnectionError, ssl.SSLError, OSError) as e:
            self.log("E", "connection error: %s" % (e,))
        except asyncio.CancelledError:
            self.log("E", "server shutdown")
            self.writer.transport.abort()
            raise
        finally:
            if self.authed:
                self.srv.unlock(self.mdir)
            if not self.closed:
                self.closed = True
                self.writer.transport.abort()
            self.log("E", "closed")

    async def _start_tls(self):
        try:
            await self.writer.start_tls(self.srv.ssl_ctx,
                                        ssl_handshake_timeout=30)
        except (ssl.SSLError, ConnectionError, OSError,
                asyncio.TimeoutError) as e:
            self.log("E", "tls handshake failed: %s" % (e,))
            self.closed = True
            self.writer.transport.abort()
            raise _Closed() from None
        self.tls = True
        obj = self.writer.get_extra_info("ssl_object")
        self.log("E", "tls up %s %s" % (obj.version() if obj else "?",
                                         obj.cipher()[0] if obj else "?"))

    async def dispatch(self, line):
        text = line[:-1]
        if text.endswith(b"\r"):
            text = text[:-1]
        self.log("C", _printable(text))
        self.line_len = len(line)
        if self.sasl:
            mode, self.sasl = self.sasl, None
            await self.command("AUTH", None,
                               lambda: self.sasl_step(mode, text))
            return
        words = text.split(b" ")
        cmd = words[0].decode("latin-1").upper()
        args = [w.decode("latin-1") for w in words[1:] if w]
        arg = args[0] if args else None
        await self.command(cmd, arg, lambda: self.execute(cmd, args))

    async def command(self, cmd, arg, execute):
        """Run one command with its faults: DELAY, CUT/STALL before,
        replacements, execution, CUT/STALL after or at a body offset."""
        d = self.find("DELAY", cmd, arg)
        if d:
            self.log("E", "fault DELAY %s ms" % d.args[1])
            await asyncio.sleep(int(d.args[1]) / 1000.0)
        d = self.find("DRIP", cmd, arg)
        self.drip = (int(d.args[1]), int(d.args[2])) if d else None
        cut = self.find("CUT", cmd, arg)
        stall = self.find("STALL", cmd, arg)
        cutpos = cut.args[1].lower() if cut else None
        stallpos = stall.args[1].lower() if stall else None
        cutmode = cut.args[2].lower() if cut and len(cut.args) > 2 else "fin"
        if cutpos == "before":
            self.log("E", "fault CUT %s before %s" % (cutmode, cmd))
            await self.close(cutmode)
        if stallpos == "before":
            await self.stall()
        if await self.replacement(cmd, arg):
            return
        resp = execute()
        if cutpos == "after":
            self.log("E", "fault CUT %s after %s" % (cutmode, cmd))
            await self.close(cutmode)
        if stallpos == "after":
            await self.stall()
        eol = self.eol
        status = resp.status.encode("utf-8") + eol
        self.log("S", resp.status)
        limit = None
        if cutpos is not None and cutpos.isdigit():
            limit = int(cutpos)
        if stallpos is not None and stallpos.isdigit():
            limit = int(stallpos) if limit is None else min(limit,
                                                             int(stallpos))
        if resp.after is not None and cmd == "STLS":
            d = self.find("STLS-INJECT")
            if d:
                inj = (d.text if d.text is not None else b"+OK injected") + eol
                self.log("E", "fault STLS-INJECT " + _printable(inj))
                status += inj
        await self.send(status)
        sent = 0
        if resp.body is not None:
            noterm = self.find("NO-TERMINATOR", cmd, arg)
            sent, complete = await self.send_body(resp.body, limit, eol,
                                                  noterm is not None)
            self.log("E", "sent %d body bytes%s" % (
                sent, "" if complete else " (cut short)"))
            if complete and noterm:
                self.log("E", "fault NO-TERMINATOR: body sent, closing")
                await self.close("graceful")
        if limit is not None:
            if cut is not None and (stall is None or int(cutpos) <= limit):
                self.log("E", "fault CUT %s after %d body bytes of %s %s"
                         % (cutmode, sent, cmd, arg or ""))
                await self.close(cutmode)
            self.log("E", "fault STALL after %d body bytes of %s %s"
                     % (sent, cmd, arg or ""))
            await self.stall()
        self.drip = None
        if resp.after is not None:
            await resp.after()
        if resp.close:
            await self.close("graceful")

    async def send_body(self, body, limit, eol, noterm):
        """Dot-stuff and send body chunks, the line end it may lack, and
        the terminator.  Stops once `limit` bytes went out.  Returns (bytes
        sent after the status line, whether the whole response went)."""
        sent = 0
        at_bol = True
        last = b""
        it = iter(body)
        try:
            while True:
                try:
                    chunk = next(it)
                except StopIteration:
                    break
                if not chunk:
                    continue
                data = _stuff(chunk, at_bol)
                at_bol = chunk[-1:] == b"\n"
                last = (last + chunk)[-2:]
                if limit is not None and sent + len(data) >= limit:
                    await self.send(data[:limit - sent])
                    return limit, False
                await self.send(data)
                sent += len(data)
        finally:
            close = getattr(it, "close", None)
            if close:
                close()
        if noterm:
            return sent, True
        tail = b""
        if last and not last.endswith(eol):
            tail = eol
        tail += b"." + eol
        if limit is not None and sent + len(tail) > limit:
            await self.send(tail[:limit - sent])
            return limit, False
        await self.send(tail)
        return sent + len(tail), True

    async def replacement(self, cmd, arg):
        eol = self.eol
        d = self.find("REPLY", cmd, arg)
        if d:
            self.log("E", "fault REPLY")
            self.log("S", _printable(d.text))
            await self.send(d.text + eol)
            return True
        d = self.find("RAW", cmd, arg)
        if d:
            self.log("E", "fault RAW " + _printable(d.text))
            await self.send(d.text)
            return True
        d = self.find("ERR", cmd, arg)
        if d:
            text = b"-ERR " + (d.text if d.text is not None else
                               b"fault injected")
            self.log("E", "fault ERR")
            self.log("S", _printable(text))
            await self.send(text + eol)
            return True
        d = self.find("GARBAGE", cmd, arg)
        if d:
            n = parse_size(d.args[1]) if len(d.args) > 1 else 4096
            seed = parse_size(d.args[2]) if len(d.args) > 2 else 1
            self.log("E", "fault GARBAGE %d bytes" % n)
            pos = 0
            while pos < n:
                blk = hashlib.shake_256(b"garbage:%d:%d" % (seed, pos))\
                    .digest(min(CHUNK, n - pos))
                await self.send(blk)
                pos += len(blk)
            return True
        d = self.find("LONG-LINE", cmd, arg)
        if d:
            n = parse_size(d.args[1]) if len(d.args) > 1 else 1 << 20
            self.log("E", "fault LONG-LINE %d bytes" % n)
            first = b"+OK " if n >= 4 else b""
            await self.send(first)
            pos = len(first)
            while pos < n:
                blk = b"A" * min(CHUNK, n - pos)
                await self.send(blk)
                pos += len(blk)
            return True
        return False

    # -- commands ---------------------------------------------------------
    def execute(self, cmd, args):
        if cmd == "CAPA":
            return self.capa()
        if cmd == "QUIT":
            return self.quit()
        if not self.authed:
            fn = {"STLS": self.c_stls, "USER": self.c_user,
                  "PASS": self.c_pass, "APOP": self.c_apop,
                  "AUTH": self.c_auth}.get(cmd)
            if fn is None:
                if cmd in CMDS:
                    return _Resp("-ERR not authenticated")
                return _Resp("-ERR unknown command")
            return fn(args)
        fn = {"STAT": self.c_stat, "LIST": self.c_list, "UIDL": self.c_uidl,
              "RETR": self.c_retr, "TOP": self.c_top, "DELE": self.c_dele,
              "RSET": self.c_rset, "NOOP": self.c_noop}.get(cmd)
        if fn is None:
            if cmd in CMDS:
                return _Resp("-ERR already authenticated")
            return _Resp("-ERR unknown command")
        return fn(args)

    def capa(self):
        caps = ["TOP"]
        plain_ok = self.tls or not self.flag("REQUIRE-TLS")
        if plain_ok and not self.authed:
            caps.append("USER")
        if not self.flag("NO-UIDL"):
            caps.append("UIDL")
        caps += ["PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"]
        if plain_ok and not self.authed:
            caps.append(" ".join(["SASL", "PLAIN"] + self.oauth_mechs()))
        if self.stls_available():
            caps.append("STLS")
        d = self.find("EXPIRE")
        if d:
            caps.append("EXPIRE " + self._text(d))
        d = self.find("LOGIN-DELAY")
        if d:
            caps.append("LOGIN-DELAY " + self._text(d))
        caps.append("IMPLEMENTATION fakepop3")
        removed = {d.args[0].upper() for d in self._active()
                   if d.name == "NO-CAPA"}
        caps = [c for c in caps if c.split()[0] not in removed]
        eol = self.eol
        return _Resp("+OK Capability list follows",
                     [b"".join(c.encode() + eol for c in caps)])

    @staticmethod
    def _text(d):
        t = d.text
        return t.decode("latin-1") if isinstance(t, bytes) else t

    def deletes_retrieved(self):
        """RFC 2449 EXPIRE 0 (the value in force for this session), or
        DELETE-RETRIEVED (Gmail's disposition, unannounced): UPDATE
        removes every message RETR delivered, DELE or not."""
        if self.flag("DELETE-RETRIEVED"):
            return True
        d = self.find("EXPIRE")
        if not d:
            return False
        words = self._text(d).split()
        return bool(words) and words[0].isdigit() and int(words[0]) == 0

    def stls_available(self):
        return (not self.authed and not self.tls and
                self.srv.ssl_ctx is not None and not self.flag("NO-STLS"))

    def c_stls(self, args):
        if self.tls:
            return _Resp("-ERR already using TLS")
        if not self.stls_available():
            return _Resp("-ERR STLS not available")
        # Whatever the client pipelined after STLS is plaintext that must
        # not be taken as a command once TLS is up (RFC 2595 section 3.2).
        buf = getattr(self.reader, "_buffer", None)
        if buf:
            self.log("E", "discarding %d plaintext bytes sent after STLS"
                     % len(buf))
            buf.clear()
        return _Resp("+OK Begin TLS negotiation", after=self.after_stls)

    async def after_stls(self):
        await self._start_tls()
        self.user = None
        self.conf = None

    def identify(self, name):
        if name == self.user:
            return
        self.user = name
        self.conf = self.srv.user_conf(name)
        if self.conf is not None:
            self.usess = self.srv.next_user_session(name)
            self.log("E", "user %s session %d" % (name, self.usess))

    def plaintext_refused(self):
        return not self.tls and self.flag("REQUIRE-TLS")

    def c_user(self, args):
        if not args:
            return _Resp("-ERR USER needs a name")
        if self.plaintext_refused():
            return _Resp("-ERR [AUTH] plaintext login refused; use STLS")
        self.identify(args[0])
        return _Resp("+OK send PASS")

    def c_pass(self, args):
        if self.user is None:
            return _Resp("-ERR USER first")
        if self.plaintext_refused():
            return _Resp("-ERR [AUTH] plaintext login refused; use STLS")
        pw = " ".join(args)
        return self.login(lambda c: c.password == pw)

    def c_apop(self, args):
        if self.flag("NO-APOP"):
            return _Resp("-ERR APOP not supported")
        if len(args) != 2:
            return _Resp("-ERR APOP needs name and digest")
        self.identify(args[0])
        digest = args[1].lower()
        return self.login(lambda c: hashlib.md5(
            (self.ts + c.password).encode("utf-8")).hexdigest() == digest)

    def oauth_mechs(self):
        """The OAuth mechanisms the OAUTH directive offers."""
        d = self.find("OAUTH")
        return [m.upper() for m in d.args] if d else []

    def c_auth(self, args):
        if not args:
            return _Resp("+OK SASL mechanisms follow",
                         [b"".join(m.encode() + self.eol for m in
                                   ["PLAIN"] + self.oauth_mechs())])
        mech = args[0].upper()
        if mech != "PLAIN" and mech not in self.oauth_mechs():
            return _Resp("-ERR unsupported SASL mechanism")
        if self.plaintext_refused():
            return _Resp("-ERR [AUTH] plaintext login refused; use STLS")
        if mech in OAUTH_MECHS and self.line_len > AUTH_LINE_MAX:
            # As Exchange Online: the initial response must not make the
            # line longer than RFC 5034 allows.
            self.log("E", "AUTH line of %d octets refused" % self.line_len)
            return _Resp("-ERR [AUTH] AUTH line longer than %d octets"
                         % AUTH_LINE_MAX)
        if len(args) == 1:
            self.sasl = mech
            return _Resp("+ ")
        return self.sasl_step(mech, args[1].encode("latin-1"))

    def sasl_step(self, mode, data):
        if mode == "PLAIN":
            return self.sasl_response(data)
        if mode.startswith("ERR-"):
            want = b"" if mode == "ERR-XOAUTH2" else b"AQ=="
            if data != want:
                self.log("E", "wrong answer to the %s error challenge"
                         % mode[4:])
                return _Resp("-ERR [AUTH] wrong answer to the challenge")
            return _Resp("-ERR [AUTH] Invalid credentials")
        return self.oauth_response(mode, data)

    def oauth_response(self, mech, data):
        """XOAUTH2: user=U ^A auth=Bearer T ^A ^A.  OAUTHBEARER (RFC 7628):
        n,a=U, ^A host=H ^A port=P ^A auth=Bearer T ^A ^A."""
        if data == b"*":
            return _Resp("-ERR [AUTH] authentication cancelled")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return _Resp("-ERR [AUTH] invalid base64")
        fields = raw.split(b"\x01")
        user = None
        if mech == "OAUTHBEARER":
            gs2 = fields.pop(0).split(b",") if fields else []
            if len(gs2) != 3 or gs2[0] != b"n" or \
                    not gs2[1].startswith(b"a=") or gs2[2] != b"":
                return _Resp("-ERR [AUTH] malformed GS2 header")
            user = gs2[1][2:].replace(b"=2C", b",").replace(b"=3D", b"=")
        if len(fields) < 3 or fields[-2:] != [b"", b""]:
            return _Resp("-ERR [AUTH] malformed %s response" % mech)
        kv = {}
        for f in fields[:-2]:
            k, sep, v = f.partition(b"=")
            if not sep:
                return _Resp("-ERR [AUTH] malformed %s response" % mech)
            kv[k.decode("latin-1")] = v
        if mech == "XOAUTH2":
            user = kv.get("user")
        auth = kv.get("auth", b"")
        if user is None or not auth.startswith(b"Bearer "):
            return _Resp("-ERR [AUTH] malformed %s response" % mech)
        token = auth[7:].decode("latin-1")
        self.identify(user.decode("utf-8", "replace"))
        extra = "".join(" %s=%s" % (k, kv[k].decode("latin-1"))
                        for k in ("host", "port") if k in kv)
        conf = self.conf
        if conf is not None and token in self.tokens():
            self.log("E", "%s token accepted%s" % (mech, extra))
            return self.login(lambda c: True)
        self.log("E", "%s token refused%s" % (mech, extra))
        self.sasl = "ERR-" + mech
        return _Resp("+ " + base64.b64encode(json.dumps(
            OAUTH_CHALLENGE, separators=(",", ":")).encode()).decode())

    def tokens(self):
        """The bearer tokens TOKEN accepts for the identified user."""
        return {d.args[0] for d in self._active() if d.name == "TOKEN"}

    def sasl_response(self, data):
        if data == b"*":
            return _Resp("-ERR [AUTH] authentication cancelled")
        if data == b"=":
            data = b""
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return _Resp("-ERR [AUTH] invalid base64")
        parts = raw.split(b"\0")
        if len(parts) != 3:
            return _Resp("-ERR [AUTH] malformed PLAIN response")
        authz, authc, pw = (p.decode("utf-8", "replace") for p in parts)
        if authz and authz != authc:
            return _Resp("-ERR [AUTH] authorization identity refused")
        self.identify(authc)
        return self.login(lambda c: c.password == pw)

    def login(self, check):
        d = self.find("LOGIN-FAIL")
        if d:
            self.log("E", "fault LOGIN-FAIL")
            return _Resp("-ERR " + d.text.decode("utf-8", "replace"))
        conf = self.conf
        if conf is None or not check(conf):
            return _Resp("-ERR [AUTH] invalid user name or password")
        mdir = (self.srv.state_dir / conf.mailbox).resolve()
        if self.srv.locks.get(mdir) and not self.flag("NO-LOCK"):
            return _Resp("-ERR [IN-USE] mailbox locked by another session")
        try:
            mdir.mkdir(parents=True, exist_ok=True)
            msgs = _snapshot(mdir, conf)
        except OSError as e:
            self.log("E", "cannot open mailbox: %s" % e)
            return _Resp("-ERR [SYS/TEMP] cannot open mailbox")
        self.shape(msgs)
        self.srv.locks[mdir] = self.srv.locks.get(mdir, 0) + 1
        self.mdir = mdir
        self.msgs = msgs
        self.authed = True
        self.log("E", "logged in, %d messages" % len(msgs))
        return _Resp("+OK maildrop has %d messages (%d octets)"
                     % (len(msgs), sum(m.rsize for m in msgs)))

    def shape(self, msgs):
        """Apply the mailbox-shaping faults to this session's listing."""
        act = list(self._active())
        for d in act:
            if d.name == "SET-UIDL":
                n = int(d.args[0])
                if 1 <= n <= len(msgs):
                    msgs[n - 1].uidl = d.args[1]
        if any(d.name == "UIDL-CHANGE" for d in act):
            for m in msgs:
                m.uidl = hashlib.sha1(("%s:%d:%s" % (
                    self.srv.nonce, self.usess, m.uidl)).encode())\
                    .hexdigest()[:24]
        for d in act:
            if d.name == "UIDL-LONG":
                n = int(d.args[0])
                for m in msgs:
                    pad = hashlib.sha256(m.uidl.encode()).hexdigest()
                    m.uidl = (m.uidl + "-" + pad * (n // 64 + 1))[:n]
                break
        for d in act:
            if d.name == "UIDL-BINARY":
                n = int(d.args[0])
                for m in msgs:
                    m.uidl = binary_uidl(m.uidl, n)
                break
        for d in act:
            if d.name == "UIDL-DUP":
                a, b = int(d.args[0]), int(d.args[1])
                if 1 <= a <= len(msgs) and 1 <= b <= len(msgs):
                    msgs[b - 1].uidl = msgs[a - 1].uidl
            elif d.name == "ENDLESS":
                n = int(d.args[0])
                if 1 <= n <= len(msgs):
                    msgs[n - 1].endless = True
            elif d.name == "LIE-SIZE":
                v = d.args[1]
                targets = msgs if d.args[0] == "*" else \
                    msgs[int(d.args[0]) - 1:int(d.args[0])]
                for m in targets:
                    if v[0] in "+-":
                        m.rsize = max(0, m.size + int(v))
                    else:
                        m.rsize = int(v)

    def msg(self, args):
        """(message, None) or (None, error response)."""
        if not args or not args[0].isdigit():
            return None, _Resp("-ERR invalid message number")
        n = int(args[0])
        if n < 1 or n > len(self.msgs):
            return None, _Resp("-ERR no such message")
        if n in self.deleted:
            return None, _Resp("-ERR message %d already deleted" % n)
        return self.msgs[n - 1], None

    def live(self):
        return (m for m in self.msgs if m.num not in self.deleted)

    def c_stat(self, args):
        live = list(self.live())
        d = self.find("STAT-SIZE")
        size = parse_size(d.args[0]) if d else sum(m.rsize for m in live)
        return _Resp("+OK %d %d" % (len(live), size))

    def _listing(self, fmt):
        eol = self.eol
        batch = []
        for m in self.live():
            batch.append(fmt(m) + eol)
            if len(batch) >= 2048:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)

    def c_list(self, args):
        if args:
            m, err = self.msg(args)
            return err or _Resp("+OK %d %d" % (m.num, m.rsize))
        live = [m for m in self.live()]
        return _Resp("+OK %d messages (%d octets)" % (
            len(live), sum(m.rsize for m in live)),
            self._listing(lambda m: b"%d %d" % (m.num, m.rsize)))

    def c_uidl(self, args):
        if self.flag("NO-UIDL"):
            return _Resp("-ERR UIDL not supported")
        if args:
            m, err = self.msg(args)
            return err or _Resp("+OK %d %s" % (m.num, m.uidl))
        return _Resp("+OK unique-id listing follows",
                     self._listing(lambda m: b"%d %s" % (
                         m.num, m.uidl.encode("utf-8", "surrogateescape"))))

    def _open(self, m):
        if m.path is not None and not m.path.exists():
            return None
        return m.chunks()

    def c_retr(self, args):
        m, err = self.msg(args)
        if err:
            return err
        body = self._open(m)
        if body is None:
            return _Resp("-ERR [SYS/TEMP] message %d is gone" % m.num)
        self.retrieved.add(m.num)
        if m.endless:
            self.log("E", "fault ENDLESS RETR %d" % m.num)
            body = _endless(body)
        return _Resp("+OK %d octets" % m.rsize, body)

    def c_top(self, args):
        m, err = self.msg(args)
        if err:
            return err
        if len(args) < 2 or not args[1].isdigit():
            return _Resp("-ERR TOP needs a message number and a line count")
        body = self._open(m)
        if body is None:
            return _Resp("-ERR [SYS/TEMP] message %d is gone" % m.num)
        body = _top_filter(body, int(args[1]))
        d = self.find("TOP-EXTRA")
        if d:
            self.log("E", "fault TOP-EXTRA " + _printable(d.text))
            body = _chain(body, d.text)
        return _Resp("+OK top of message follows", body)

    def c_dele(self, args):
        m, err = self.msg(args)
        if err:
            return err
        self.deleted.add(m.num)
        return _Resp("+OK message %d deleted" % m.num)

    def c_rset(self, args):
        self.deleted.clear()
        return _Resp("+OK maildrop has %d messages (%d octets)" % (
            len(self.msgs), sum(m.rsize for m in self.msgs)))

    def c_noop(self, args):
        return _Resp("+OK")

    def quit(self):
        if not self.authed:
            return _Resp("+OK bye", close=True)
        failed = self.update()
        if failed:
            return _Resp("-ERR some deleted messages not removed", close=True)
        return _Resp("+OK bye (%d messages left)"
                     % (len(self.msgs) - len(self.deleted)), close=True)

    def update(self):
        """UPDATE state: remove what was marked.  Returns failures."""
        failed = 0
        gen_gone = {}
        if self.deletes_retrieved() and self.retrieved - self.deleted:
            self.log("E", "update: expire retrieved messages: %s" % " ".join(
                str(n) for n in sorted(self.retrieved - self.deleted)[:1000]))
            self.deleted |= self.retrieved
        for n in sorted(self.deleted):
            m = self.msgs[n - 1]
            if m.gen is not None:
                gen_gone.setdefault(m.gen.key, set()).add(m.gidx)
                continue
            try:
                m.path.unlink()
            except OSError:
                failed += 1
        if gen_gone:
            state = _load_deleted(self.mdir)
            for key, s in gen_gone.items():
                state.setdefault(key, set()).update(s)
            try:
                _save_deleted(self.mdir, state)
            except OSError:
                failed += 1
        self.log("E", "update: deleted %d messages%s%s" % (
            len(self.deleted) - failed, ": " if self.deleted else "",
            " ".join(str(n) for n in sorted(self.deleted)[:1000])))
        return failed


# ---------------------------------------------------------------------------
# Server

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def localhost_addresses():
    """The loopback addresses the name localhost stands for here, 127.0.0.1
    first.  Debian's /etc/hosts gives it ::1 too, and a client may try that
    first, so a server for "localhost" listens on each."""
    out = ["127.0.0.1"]
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
    except OSError:
        return out
    if any(i[0] == socket.AF_INET6 and i[4][0] == "::1" for i in infos):
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
            out.append("::1")
        except OSError:
            pass
    return out


class FakePop3:
    """The server.  start() runs it on a background thread (for use from
    synchronous tests); serve() runs it on the caller's asyncio loop."""

    def __init__(self, state_dir, scenario=None, host="127.0.0.1", port=0,
                 tls_cert=None, tls_key=None, implicit=False,
                 transcript=None, default_password="password",
                 idle_timeout=600.0, max_stall=3600.0):
        if host not in _LOOPBACK:
            raise ValueError("fakepop3 listens on loopback only, not %r"
                             % host)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.scenario = Scenario.coerce(scenario)
        self.host = "127.0.0.1" if host == "localhost" else host
        # "localhost": every address that name stands for, on one port.
        self.hosts = localhost_addresses() if host == "localhost" else [host]
        self.port = port
        self.implicit = implicit
        self.ssl_ctx = None
        if tls_cert:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self.ssl_ctx.load_cert_chain(tls_cert, tls_key)
        elif implicit:
            raise ValueError("implicit TLS needs tls_cert")
        self.transcript_path = Path(transcript) if transcript else \
            self.state_dir / "transcript.log"
        self.transcript = None
        self.default_password = default_password
        self.idle_timeout = idle_timeout
        self.max_stall = max_stall
        self.nonce = os.urandom(8).hex()
        self.locks = {}
        self.user_sessions = {}
        self.connections = 0
        self._tasks = set()
        self._servers = []
        self._loop = None
        self._stop = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    # -- scenario ---------------------------------------------------------
    def reload(self, scenario):
        """Replace the scenario; sessions see it at their next command."""
        self.scenario = Scenario.coerce(scenario)

    def scenario_greeting(self, conn):
        for d in self.scenario.directives:
            if d.name == "GREETING" and d.active(conn):
                return d.text.decode("utf-8", "replace")
        return "fakepop3 ready"

    def user_conf(self, name):
        u = self.scenario.users.get(name)
        if u is not None:
            return u
        if name and not name.startswith(".") and "/" not in name and \
                (self.state_dir / name).is_dir():
            return UserConf(name, self.default_password)
        return None

    def unlock(self, mdir):
        n = self.locks.get(mdir, 0) - 1
        if n > 0:
            self.locks[mdir] = n
        else:
            self.locks.pop(mdir, None)

    def next_user_session(self, name):
        n = self.user_sessions.get(name, 0) + 1
        self.user_sessions[name] = n
        return n

    # -- asyncio side -----------------------------------------------------
    async def serve(self, ready=None):
        """Listen, call ready(port), serve until stop()."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.transcript = Transcript(self.transcript_path)
        try:
            await self._listen()
            self.transcript.write(0, None, False, "E", "listening on %s port "
                                  "%d pid %d" % (" ".join(self.hosts),
                                                 self.port, os.getpid()))
            if ready:
                ready(self.port)
            await self._stop.wait()
        finally:
            for srv in self._servers:
                srv.close()
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
            for srv in self._servers:
                try:
                    await asyncio.wait_for(srv.wait_closed(), 5)
                except asyncio.TimeoutError:
                    pass
            self.transcript.close()

    async def _listen(self):
        """A listener on each of self.hosts, all on one port: self.port, or
        the one the first picks (tried again if another address has it)."""
        for attempt in range(20):
            port = self.port
            try:
                for h in self.hosts:
                    self._servers.append(await asyncio.start_server(
                        self._accept, h, port, limit=LINE_LIMIT,
                        backlog=1024, reuse_address=True))
                    port = self._servers[-1].sockets[0].getsockname()[1]
                self.port = port
                return
            except OSError as e:
                for srv in self._servers:
                    srv.close()
                self._servers = []
                if self.port or e.errno != errno.EADDRINUSE or attempt == 19:
                    raise

    async def _accept(self, reader, writer):
        self.connections += 1
        s = _Session(self, reader, writer, self.connections)
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await s.run()
        except asyncio.CancelledError:
            pass
        except Exception as e:   # a bug in one session must not stop others
            s.log("E", "internal error: %r" % (e,))
            traceback.print_exc()
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    def request_stop(self):
        if self._loop is None or self._stop is None or self._loop.is_closed():
            return
        if threading.current_thread() is self._thread or self._thread is None:
            self._stop.set()
        else:
            self._loop.call_soon_threadsafe(self._stop.set)

    # -- thread side ------------------------------------------------------
    def start(self, timeout=10.0):
        """Serve on a background thread; return once listening."""
        def runner():
            try:
                asyncio.run(self.serve(lambda port: self._ready.set()))
            except BaseException as e:   # reported to start()
                self._error = e
                self._ready.set()

        self._thread = threading.Thread(target=runner, name="fakepop3",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("fakepop3 did not start")
        if self._error:
            raise self._error
        return self

    def stop(self, timeout=10.0):
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def events(self):
        return read_transcript(self.transcript_path)


# ---------------------------------------------------------------------------
# Certificates

_CA_CNF = """\
[ca]
default_ca = fake
[fake]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_days = 3650
policy = pol
unique_subject = no
copy_extensions = none
[pol]
commonName = supplied
[good]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
authorityKeyIdentifier = keyid
[wrong]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example.invalid
authorityKeyIdentifier = keyid
"""


def make_certs(directory, openssl="openssl"):
    """Write a test PKI into `directory` with the openssl CLI and return
    {name: (cert, key)} for: ca (trust this one), good (localhost,
    127.0.0.1, ::1; signed by ca), expired (same names, signed by ca,
    valid only in January 2020), selfsigned (same names, not signed by
    ca), wronghost (wrong.example.invalid, signed by ca)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        try:
            r = subprocess.run([openssl] + list(args), cwd=d,
                               capture_output=True, text=True)
        except FileNotFoundError:
            raise RuntimeError("%s not found: install the Debian package "
                               "openssl" % openssl) from None
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0],
                                                          r.stderr.strip()))

    def key(name):
        run("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", name + ".key")

    (d / "ca.cnf").write_text(_CA_CNF)
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "newcerts").mkdir(exist_ok=True)
    key("ca")
    run("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem",
        "-days", "3650", "-subj", "/CN=fakepop3 test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, cn, ext, dates in (
            ("good", "localhost", "good", ("-days", "3650")),
            ("expired", "localhost", "good",
             ("-startdate", "20200101000000Z", "-enddate",
              "20200201000000Z")),
            ("wronghost", "wrong.example.invalid", "wrong",
             ("-days", "3650"))):
        key(name)
        run("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn,
            "-out", name + ".csr")
        run("ca", "-batch", "-notext", "-config", "ca.cnf", "-extensions",
            ext, "-in", name + ".csr", "-out", name + ".pem", *dates)
    key("selfsigned")
    run("req", "-x509", "-new", "-key", "selfsigned.key", "-out",
        "selfsigned.pem", "-days", "3650", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1")
    out = {"ca": (d / "ca.pem", d / "ca.key")}
    for name in ("good", "expired", "wronghost", "selfsigned"):
        out[name] = (d / (name + ".pem"), d / (name + ".key"))
    return out


# ---------------------------------------------------------------------------
# Command line

def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (hard if hard != resource.RLIM_INFINITY
                                else 65536, hard))
        except (ValueError, OSError):
            pass


def _load_scenario(args):
    text = ""
    if args.scenario:
        text += Path(args.scenario).read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text += "\n"
    if args.scenario_json:
        js = args.scenario_json
        if js.startswith("@"):
            js = Path(js[1:]).read_text(encoding="utf-8")
        text += Scenario.json_to_text(json.loads(js))
    for line in args.directive or ():
        text += line + "\n"
    return Scenario.parse(text, args.scenario or "<command line>")


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="fakepop3",
        description="Scriptable fault-injecting POP3/POP3S test server. "
                    "Prints the bound port on stdout once listening.")
    p.add_argument("--host", default="127.0.0.1",
                   help="127.0.0.1 (default) or ::1")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--state", metavar="DIR",
                   help="mailboxes: DIR/<user>/<message files>")
    p.add_argument("--scenario", metavar="FILE", help="scenario file")
    p.add_argument("--scenario-json", metavar="JSON|@FILE",
                   help="scenario as JSON (appended after --scenario)")
    p.add_argument("-d", "--directive", action="append", metavar="LINE",
                   help="one scenario line (repeatable, appended last)")
    p.add_argument("--tls-cert", metavar="PEM")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--implicit", action="store_true",
                   help="TLS from the first byte (POP3S); else STLS")
    p.add_argument("--ready-file", metavar="F",
                   help="write the port here (atomically) once listening")
    p.add_argument("--transcript", metavar="F",
                   help="transcript file (default DIR/transcript.log)")
    p.add_argument("--default-password", default="password",
                   help="password of users that have a directory but no "
                        "USER line")
    p.add_argument("--idle-timeout", type=float, default=600.0)
    p.add_argument("--max-stall", type=float, default=3600.0,
                   help="seconds a STALL lasts at most")
    p.add_argument("--check", action="store_true",
                   help="parse the scenario, report errors, exit")
    p.add_argument("--make-certs", metavar="DIR",
                   help="write a test PKI (ca, good, expired, selfsigned, "
                        "wronghost) into DIR and exit")
    p.add_argument("--print-sha256", metavar="SPEC",
                   help='for a GENERATE spec such as "1 500M seed=7", print '
                        '"INDEX UIDL SIZE SHA256" per message and exit')
    args = p.parse_args(argv)

    if args.make_certs:
        for name, (cert, key) in make_certs(args.make_certs).items():
            print(name, cert, key)
        return 0
    if args.print_sha256:
        try:
            g = GenSpec.parse(args.print_sha256.split())
        except ValueError as e:
            p.error(str(e))
        out = sys.stdout
        for i in range(1, g.count + 1):
            out.write("%d %s %d %s\n" % (i, g.uidl_of(i), g.size_of(i),
                                         g.sha256_of(i)))
        return 0
    try:
        scenario = _load_scenario(args)
    except (ScenarioError, OSError, ValueError) as e:
        print("fakepop3: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        return 0
    if not args.state:
        p.error("--state DIR is required")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    _raise_nofile()
    try:
        srv = FakePop3(args.state, scenario, host=args.host, port=args.port,
                       tls_cert=args.tls_cert, tls_key=args.tls_key,
                       implicit=args.implicit, transcript=args.transcript,
                       default_password=args.default_password,
                       idle_timeout=args.idle_timeout,
                       max_stall=args.max_stall)
    except (ValueError, OSError, ssl.SSLError) as e:
        print("fakepop3: %s" % e, file=sys.stderr)
        return 2

    def ready(port):
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.replace(tmp, args.ready_file)
        print(port, flush=True)

    def reload():
        try:
            srv.reload(_load_scenario(args))
            print("fakepop3: scenario reloaded", file=sys.stderr)
        except (ScenarioError, OSError, ValueError) as e:
            print("fakepop3: reload failed: %s" % e, file=sys.stderr)

    async def run():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, srv.request_stop)
        loop.add_signal_handler(signal.SIGINT, srv.request_stop)
        loop.add_signal_handler(signal.SIGHUP, reload)
        await srv.serve(ready)

    try:
        asyncio.run(run())
    except OSError as e:
        print("fakepop3: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
