#!/usr/bin/env python3
"""Deterministic, realistic test mail.

    gen = MailGen(seed=7)
    raw = gen.message()                   # bytes, as stored in a Maildir
    raw = gen.message(kind="attachment", size=3_000_000)
    box = gen.mailbox(20)                 # a varied mailbox
    served(raw)                           # what Dovecot's RETR delivers

The same seed always gives the same messages.  Sizes are drawn from a
log-normal distribution with a median near 20 KB (clipped to 1 KB..8 MB),
unless a size is asked for.

Kinds (KINDS): plain ASCII text; utf8 and latin1 8-bit bodies sent
without any transfer encoding (and a raw UTF-8 Subject); html alone;
alternative (text + HTML); attachment (multipart/mixed with a base64
attachment, random bytes or compressible text); dots (lines that start
with "." or "..", a line that is only "."); longline (one line over
1,000 characters and one over 64 KiB); crlf (stored with CRLF line
endings instead of LF).  Every message ends with a line ending and has a
unique Message-ID.

Command line:  mailgen.py [--seed N] [--count N] [--out DIR]
writes DIR/NNNN.eml (or prints size statistics without --out).
"""

import argparse
import base64
import math
import os
import random
import sys

KINDS = ("plain", "utf8", "latin1", "html", "alternative", "attachment",
         "dots", "longline", "crlf")
WEIGHTS = (28, 9, 7, 10, 18, 10, 8, 4, 6)
MEDIAN = 20_000
MIN_SIZE, MAX_SIZE = 1_000, 8_000_000

WORDS = (
    "the of and to in is that for it as was with be by on not he this are "
    "or his from at which but have an they you were her she there been one "
    "all we their has would when if so no will more can out other into "
    "time only new some could these two may first then do any like my now "
    "over such our man me even most made after also did many before must "
    "through back years where much your way well down should because each "
    "just those people how too little state good very make world still own "
    "see men work long get here between both life being under never day "
    "same another know while last might us great old year off come since "
    "invoice quarterly shipment contract meeting agenda attached please "
    "regards thanks review approval budget forecast customer order account "
    "delivery schedule support ticket renewal license compliance audit "
    "report figures revenue margin pipeline archive retention policy").split()
WORDS = tuple(WORDS)
UTF8_WORDS = ("été naïve façade Zürich Ærøskøbing straße Kraków Łódź "
              "Ελληνικά русский 日本語 中文 한국어 עברית العربية emoji🙂 "
              "café crème brûlée piñata São Paulo").split()
LATIN1_WORDS = ("été naïve façade Zürich straße café crème brûlée piñata "
                "São Paulo señor garçon déjà vu über Größe").split()
NAMES = ("Alice Martin", "Bob Nguyen", "Carla Rossi", "Dmitri Ivanov",
         "Eve Dubois", "Farid Haddad", "Grace Lee", "Hugo Schmidt",
         "Inès Moreau", "Jun Tanaka", "Karin Olsen", "Luis García")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example")


def served(raw):
    """The bytes a POP3 client gets from Dovecot's RETR for a Maildir file
    holding raw, after dot-unstuffing and without the terminating ".CRLF":
    every LF not already preceded by CR becomes CRLF (a lone CR stays),
    and a CRLF is added if raw does not end with a line ending."""
    out = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # replace() above also turned "\r\r\n"-style bytes consistently; a
    # lone CR never touches an LF so it is kept.
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


class MailGen:
    def __init__(self, seed=1):
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = 0

    # ---- pieces

    def sample_size(self):
        s = int(math.exp(self.rng.gauss(math.log(MEDIAN), 1.1)))
        return max(MIN_SIZE, min(MAX_SIZE, s))

    def _person(self):
        name = self.rng.choice(NAMES)
        user = name.split()[0].lower().encode("ascii", "ignore").decode()
        return name, "%s@%s" % (user or "user", self.rng.choice(DOMAINS))

    def _words(self, n, vocab=WORDS):
        return " ".join(self.rng.choice(vocab) for _ in range(n))

    def _text(self, size, vocab=WORDS, width=(40, 76)):
        """Paragraphs of wrapped text, about size characters."""
        lines, total = [], 0
        while total < size:
            para = []
            for _ in range(self.rng.randint(2, 8)):
                w = self.rng.randint(*width)
                line = self._words(max(1, w // 6), vocab)[:w].rstrip()
                para.append(line)
                total += len(line) + 1
            lines.extend(para)
            lines.append("")
            total += 1
        return "\n".join(lines) + "\n"

    def _headers(self, subject, ctype, cte=None, extra=()):
        self.n += 1
        fname, faddr = self._person()
        tname, taddr = self._person()
        day = 1 + (self.seed + self.n) % 28
        hh, mm, ss = self.rng.randint(0, 23), self.rng.randint(0, 59), \
            self.rng.randint(0, 59)
        mid = "<%x.%d.%08x@mailgen.example>" % (
            self.seed & 0xffffffff, self.n, self.rng.getrandbits(32))
        h = [
            "Return-Path: <%s>" % faddr,
            "Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])"
            % (self.n % 7, self.n % 7, 1 + self.n % 250),
            "\tby pop.example.com with ESMTPS id %08X;"
            % self.rng.getrandbits(32),
            "\tMon, %d Mar 2025 %02d:%02d:%02d +0000" % (day, hh, mm, ss),
            "From: %s <%s>" % (fname, faddr),
            "To: %s <%s>" % (tname, taddr),
            "Subject: %s" % subject,
            "Date: Mon, %d Mar 2025 %02d:%02d:%02d +0100" % (day, hh, mm, ss),
            "Message-ID: %s" % mid,
            "MIME-Version: 1.0",
            "Content-Type: %s" % ctype,
        ]
        if cte:
            h.append("Content-Transfer-Encoding: %s" % cte)
        h.extend(extra)
        return "\n".join(h) + "\n\n"

    def _subject(self):
        return self._words(self.rng.randint(3, 8)).capitalize()

    def _boundary(self):
        return "=_mailgen_%016x" % self.rng.getrandbits(64)

    def _html(self, size):
        parts, total = ["<html><body>"], 12
        while total < size:
            p = "<p>%s</p>" % self._words(self.rng.randint(10, 60))
            if self.rng.random() < 0.2:
                p = "<table><tr><td>%s</td><td>%d</td></tr></table>" % (
                    self._words(3), self.rng.randint(1, 99999))
            parts.append(p)
            total += len(p) + 1
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    # ---- kinds

    def _plain(self, size, subject):
        h = self._headers(subject, "text/plain; charset=us-ascii", "7bit")
        return (h + self._text(max(0, size - len(h)))).encode()

    def _utf8(self, size, subject):
        h = self._headers("%s %s" % (subject, self.rng.choice(UTF8_WORDS)),
                          "text/plain; charset=utf-8", "8bit")
        body = self._text(max(0, size - len(h)) // 2,
                          WORDS[:40] + tuple(UTF8_WORDS) * 3)
        return (h + body).encode("utf-8")

    def _latin1(self, size, subject):
        h = self._headers(subject, "text/plain; charset=iso-8859-1", "8bit")
        body = self._text(max(0, size - len(h)),
                          WORDS[:40] + tuple(LATIN1_WORDS) * 3)
        return h.encode() + body.encode("latin-1")

    def _htmlonly(self, size, subject):
        h = self._headers(subject, "text/html; charset=us-ascii", "7bit")
        return (h + self._html(max(0, size - len(h)))).encode()

    def _alternative(self, size, subject):
        b = self._boundary()
        h = self._headers(subject,
                          'multipart/alternative; boundary="%s"' % b)
        n = max(200, size - len(h)) // 2
        body = ("This is a multi-part message in MIME format.\n\n"
                "--%s\nContent-Type: text/plain; charset=us-ascii\n"
                "Content-Transfer-Encoding: 7bit\n\n%s\n"
                "--%s\nContent-Type: text/html; charset=us-ascii\n"
                "Content-Transfer-Encoding: 7bit\n\n%s\n--%s--\n"
                % (b, self._text(n // 2), b, self._html(n), b))
        return (h + body).encode()

    def _attachment(self, size, subject):
        b = self._boundary()
        h = self._headers(subject, 'multipart/mixed; boundary="%s"' % b)
        text = self._text(self.rng.randint(300, 3000))
        payload_len = max(100, (size - len(h) - len(text) - 400) * 3 // 4)
        if self.rng.random() < 0.6:
            data = self.rng.randbytes(payload_len)  # like JPEG or ZIP
            fname, ctype = "scan-%04d.pdf" % self.n, "application/pdf"
        else:
            data = self._text(payload_len, width=(20, 120)).encode()
            fname, ctype = "export-%04d.csv" % self.n, "text/csv"
        enc = base64.encodebytes(data).decode()  # 76-column lines
        body = ("This is a multi-part message in MIME format.\n\n"
                "--%s\nContent-Type: text/plain; charset=us-ascii\n\n%s\n"
                "--%s\nContent-Type: %s; name=\"%s\"\n"
                "Content-Disposition: attachment; filename=\"%s\"\n"
                "Content-Transfer-Encoding: base64\n\n%s\n--%s--\n"
                % (b, text, b, ctype, fname, fname, enc, b))
        return (h + body).encode()

    def _dots(self, size, subject):
        h = self._headers(subject, "text/plain; charset=us-ascii", "7bit")
        special = [".", "..", "...", ".hidden line", "..two dots", ". ",
                   ".\t", "a line then", ".", "", ".", "end."]
        lines = []
        text = self._text(max(0, size - len(h) - 80)).split("\n")
        for i, line in enumerate(text):
            lines.append(line)
            if i % 7 == 3:
                lines.append(self.rng.choice(special))
        lines += special + ["."]  # a "." line right before the end
        return (h + "\n".join(lines) + "\n").encode()

    def _longline(self, size, subject):
        h = self._headers(subject, "text/plain; charset=us-ascii", "7bit")
        long1 = self._words(250)  # > 1000 characters
        while len(long1) <= 1000:
            long1 += " " + self._words(20)
        long2 = "".join(self.rng.choice("abcdefghij0123456789")
                        for _ in range(70_000))  # > 64 KiB
        body = (self._text(500) + long1 + "\n" + self._text(300) + long2
                + "\n." + long2[:2000] + "\n" + self._text(
                    max(0, size - len(h) - len(long1) - len(long2) - 3000)))
        return (h + body).encode()

    def _crlf(self, size, subject):
        kind = self.rng.choice(("plain", "alternative", "dots"))
        raw = getattr(self, "_" + kind)(size, subject)
        return raw.replace(b"\n", b"\r\n")

    # ---- public

    def message(self, kind=None, size=None, subject=None):
        """One message as the bytes of a Maildir file (LF line endings,
        except kind "crlf")."""
        if kind is None:
            kind = self.rng.choices(KINDS, WEIGHTS)[0]
        if size is None:
            size = self.sample_size()
            if kind == "attachment":
                size = max(size, 30_000)
        subject = subject or self._subject()
        fn = {"plain": self._plain, "utf8": self._utf8,
              "latin1": self._latin1, "html": self._htmlonly,
              "alternative": self._alternative,
              "attachment": self._attachment, "dots": self._dots,
              "longline": self._longline, "crlf": self._crlf}[kind]
        raw = fn(size, subject)
        assert raw.endswith(b"\n")
        return raw

    def mailbox(self, count, big=0, big_size=(2_000_000, 5_000_000)):
        """count messages: every kind at least once when count allows, the
        rest random; big of them are multi-MB attachments."""
        out = []
        kinds = list(KINDS)
        self.rng.shuffle(kinds)
        for i in range(count - big):
            out.append(self.message(kind=kinds[i] if i < len(kinds)
                                    else None))
        for _ in range(big):
            out.append(self.message(kind="attachment",
                                    size=self.rng.randint(*big_size)))
        self.rng.shuffle(out)
        return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    gen = MailGen(a.seed)
    msgs = [gen.message() for _ in range(a.count)]
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        for i, m in enumerate(msgs):
            with open(os.path.join(a.out, "%04d.eml" % i), "wb") as f:
                f.write(m)
    sizes = sorted(len(m) for m in msgs)
    print("%d messages, %d bytes, min %d, median %d, max %d"
          % (len(sizes), sum(sizes), sizes[0], sizes[len(sizes) // 2],
             sizes[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
