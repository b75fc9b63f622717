"""export and verify: where export may write, and what a damaged blob does.

export opens --out DIR once and creates everything under it relative to
that directory, following no symbolic link and replacing nothing.  DIR is
created 0700 if missing; one that exists must be a real directory (not a
symbolic link), owned by the user running the export and writable by no
one else, or export refuses it before reaching the database (exit 3).  An
account directory that already exists under DIR, whatever it is (an
earlier export's, or a link planted there), stops the export (exit 1).

A damaged blob stops neither export nor verify: each reports it with its
account, its SHA-256 and what is wrong, goes on with every other blob,
prints its summary line and exits 1.
"""

import os
import re
import stat

import harness
import mailgen
from harness import sha256_hex
from test_ingest import Archive

HEX = re.compile(r"[0-9a-f]{64}")


def tree(path):
    """{relative path: (file type and mode, content or link target)} of
    everything under path, without following links."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what = f.read()
            else:
                what = None
            out[os.path.relpath(p, path)] = (st.st_mode, what)
    return out


def exported(out):
    """{account directory: {file: bytes}} of an export into out."""
    return {acct: {f: content for (f, content) in
                   ((os.path.basename(p), v[1]) for p, v in tree(
                       os.path.join(out, acct)).items())}
            for acct in sorted(os.listdir(out))}


def mkdir(path, mode):
    os.mkdir(path)
    os.chmod(path, mode)  # whatever the umask
    return path


# --------------------------------------------------------------------------

def test_export_directory_rules(env):
    """A fresh DIR is created 0700 and gets byte-exact files of mode 0600;
    an existing one of ours works too.  DIR as a symbolic link (with or
    without a trailing slash), owned by another user, writable by its
    group or by everyone (sticky too), or not a directory is refused,
    naming DIR and the reason, and nothing is written anywhere.  A
    symbolic link planted in DIR where the account directory goes is not
    followed: the file or directory outside is unchanged.  Exporting into
    the same DIR again is refused and leaves the first export as it
    was."""
    ar = Archive(env, "exdir")
    gen = mailgen.MailGen(1300)
    a = ar.mailbox([gen.message(kind="plain", size=3000),
                    gen.message(kind="dots"), gen.message(kind="crlf")])
    ar.snapshot()
    ar.write_config()
    ar.once()
    ar.check_archived(a)
    want = {a: {sha256_hex(b) + ".eml": b for _, b in ar.expected[a]}}
    base = env.tmpdir("exdir")

    # A fresh DIR.
    out = os.path.join(base, "fresh")
    o = ar.ok("export", "--out", out)
    assert "exported 3 messages to %s: 0 damaged" % out in o, ar.context()
    assert exported(out) == want, "export into a fresh DIR is not %s" % (
        sorted(want[a]))
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(out, a)).st_mode) == 0o700
    for f in want[a]:
        m = stat.S_IMODE(os.stat(os.path.join(out, a, f)).st_mode)
        assert m == 0o600, "%s has mode %o" % (f, m)

    # The same DIR again: refused, the first export untouched.
    before = tree(out)
    rc, o, e = ar.run("export", "--out", out)
    assert rc == 1, "export into the same DIR exited %d%s" % (
        rc, ar.context())
    assert "%s/%s already exists (a directory)" % (out, a) in e, \
        ar.context()
    assert tree(out) == before, "a second export changed the first"

    # An existing directory of ours, mode 0755, empty.
    mine = mkdir(os.path.join(base, "mine"), 0o755)
    ar.ok("export", "--out", mine)
    assert exported(mine) == want

    # What DIR may not be.
    outside = mkdir(os.path.join(base, "outside"), 0o755)
    victim = os.path.join(outside, "victim")
    with open(victim, "wb") as f:
        f.write(b"must stay as it is\n")
    for name in want[a]:  # where a followed link would write
        with open(os.path.join(outside, name), "wb") as f:
            f.write(b"not the archived message\n")
    outside_before = tree(outside)
    link = os.path.join(base, "link")
    os.symlink(outside, link)
    other = mkdir(os.path.join(base, "other"), 0o700)
    if harness.is_root():
        user, uid, gid = harness.service_user()
        os.chown(other, uid, gid)
        other_reason = "is owned by user %s (uid %d), not by user root " \
            "(uid 0) running the export" % (user, uid)
    else:  # a directory we cannot own: the root of the file system
        other = "/"
        other_reason = "is owned by user root (uid 0)"
    refusals = [
        (link, link, "is a symbolic link"),
        (link + "/", link, "is a symbolic link"),
        (link + "//", link, "is a symbolic link"),
        (other, other, other_reason),
        (mkdir(os.path.join(base, "group"), 0o770),
         os.path.join(base, "group"),
         "is writable by its group (mode 0770)"),
        (mkdir(os.path.join(base, "world"), 0o777),
         os.path.join(base, "world"), "is writable by others (mode 0777)"),
        (mkdir(os.path.join(base, "sticky"), 0o1777),
         os.path.join(base, "sticky"),
         "is writable by others (mode 1777)"),
        (victim, victim, "is not a directory"),
    ]
    for arg, named, reason in refusals:
        rc, o, e = ar.run("export", "--out", arg)
        assert rc == 3, "export --out %s exited %d, want 3%s" % (
            arg, rc, ar.context())
        assert "export: %s %s" % (named, reason) in e, \
            "export --out %s: the refusal does not say \"%s %s\"%s" % (
                arg, named, reason, ar.context())
        assert "exported" not in o, ar.context()
        if os.path.isdir(named) and not os.path.islink(named) and \
                named != "/":
            assert os.listdir(named) == [], \
                "export wrote into refused %s" % named
    assert tree(outside) == outside_before, \
        "export changed %s through a link" % outside

    # A symbolic link planted in DIR where the account's directory goes,
    # to a directory outside and to a file outside.
    for target in (outside, victim):
        planted = mkdir(os.path.join(base, "planted-%s" %
                                     os.path.basename(target)), 0o700)
        os.symlink(target, os.path.join(planted, a))
        rc, o, e = ar.run("export", "--out", planted)
        assert rc == 1, "export with a planted link exited %d%s" % (
            rc, ar.context())
        assert "%s/%s already exists (a symbolic link)" % (planted, a) \
            in e, ar.context()
        assert tree(planted) == {a: (os.lstat(os.path.join(planted, a))
                                     .st_mode, target)}, \
            "export wrote into %s: %s" % (planted, sorted(tree(planted)))
        assert tree(outside) == outside_before, \
            "export changed %s through a planted link" % outside


# --------------------------------------------------------------------------

def save_blob(ar, h):
    ar.sql("CREATE TABLE saved_blob AS SELECT * FROM blob "
           "WHERE sha256 = decode('%s', 'hex');"
           "CREATE TABLE saved_chunk AS SELECT * FROM blob_chunk "
           "WHERE sha256 = decode('%s', 'hex');" % (h, h))


def restore_blob(ar, h):
    ar.sql("DELETE FROM blob_chunk WHERE sha256 = decode('%s', 'hex');"
           "INSERT INTO blob_chunk SELECT * FROM saved_chunk;"
           "UPDATE blob b SET size = s.size, stored_size = s.stored_size,"
           " dict_id = s.dict_id, chunks = s.chunks FROM saved_blob s"
           " WHERE b.sha256 = s.sha256;"
           "DROP TABLE saved_blob, saved_chunk;" % h)


def named_blobs(text):
    """The blobs a report names, leaving out the hash a SHA-256 mismatch
    says the bytes read back have."""
    return set(HEX.findall(re.sub(r"hash to [0-9a-f]{64}", "", text)))


def test_damaged_blob_is_reported_and_the_rest_processed(env):
    """One blob damaged at a time in PostgreSQL, in each way a blob can
    be: a chunk row deleted, a byte of a chunk flipped (zstd notices), a
    chunk cut short of the recorded stored size, the recorded size
    changed, another blob's chunks in its place (SHA-256 mismatch).  Each
    time verify and export name exactly that blob, with each account that
    holds it and what is wrong, check or export every other blob
    byte-exact, print their summary line and exit 1.  Restored, the
    archive verifies again."""
    ar = Archive(env, "exdmg")
    gen = mailgen.MailGen(1400)
    shared = gen.message(kind="alternative", subject="To A and B")
    # 4 MB of random base64: several 1 MiB chunks once compressed
    big = gen.message(kind="attachment", size=4_000_000)
    while b"application/pdf" not in big:
        big = gen.message(kind="attachment", size=4_000_000)
    small = gen.message(kind="plain", size=3000)
    other = gen.message(kind="plain", size=5000)
    a = ar.mailbox([gen.message(kind="plain", size=2000), big,
                    gen.message(kind="dots"), shared, small])
    b = ar.mailbox([gen.message(kind="crlf"), shared])
    c = ar.mailbox([other, gen.message(kind="plain", size=4000)])
    ar.snapshot()
    ar.write_config()
    ar.once()
    holders = {}
    for acct in (a, b, c):
        ar.check_archived(acct)
        for _, m in ar.expected[acct]:
            holders.setdefault(sha256_hex(m), set()).add(acct)
    pairs = sum(len(v) for v in holders.values())
    want = {acct: {sha256_hex(m) + ".eml": m for _, m in ar.expected[acct]}
            for acct in (a, b, c)}
    hbig = sha256_hex(mailgen.served(big))
    hsmall = sha256_hex(mailgen.served(small))
    hother = sha256_hex(mailgen.served(other))
    hshared = sha256_hex(mailgen.served(shared))
    chunks = int(ar.sql("SELECT chunks FROM blob WHERE sha256 = "
                        "decode('%s', 'hex');" % hbig)[0][0])
    assert chunks >= 3, "the big message has %d chunks" % chunks

    cases = [
        ("a chunk deleted", hbig,
         "DELETE FROM blob_chunk WHERE sha256 = decode('{h}', 'hex') "
         "AND seq = 1;", r"chunk 1 of %d missing" % chunks),
        ("a byte flipped", hbig,
         "UPDATE blob_chunk SET data = set_byte(data, 5000, "
         "get_byte(data, 5000) # 255) WHERE sha256 = decode('{h}', 'hex') "
         "AND seq = 1;", r"zstd decompress: \S"),
        ("a chunk cut short", hsmall,
         "UPDATE blob_chunk SET data = substring(data FROM 1 FOR "
         "length(data) - 1) WHERE sha256 = decode('{h}', 'hex');",
         r"fewer bytes in chunks, \d+ recorded"),
        ("the size changed", hsmall,
         "UPDATE blob SET size = size + 1 "
         "WHERE sha256 = decode('{h}', 'hex');",
         r"size mismatch: (\d+) bytes read back, \d+ recorded"),
        ("another blob's chunks", hsmall,
         "DELETE FROM blob_chunk WHERE sha256 = decode('{h}', 'hex');"
         "INSERT INTO blob_chunk SELECT decode('{h}', 'hex'), seq, data "
         "FROM blob_chunk WHERE sha256 = decode('%s', 'hex');"
         "UPDATE blob SET (stored_size, chunks) = (SELECT stored_size, "
         "chunks FROM blob WHERE sha256 = decode('%s', 'hex')) "
         "WHERE sha256 = decode('{h}', 'hex');" % (hother, hother),
         r"SHA-256 mismatch: the bytes read back hash to %s" % hother),
        ("a chunk of a shared blob deleted", hshared,
         "DELETE FROM blob_chunk WHERE sha256 = decode('{h}', 'hex');",
         r"chunk 0 of 1 missing"),
    ]
    for what, h, damage, why in cases:
        ctx = "\n(damage: %s to %s)" % (what, h)
        save_blob(ar, h)
        ar.sql(damage.replace("{h}", h))

        rc, o, e = ar.run("verify")
        assert rc == 1, "verify exited %d%s%s" % (rc, ctx, ar.context())
        assert "verified %d messages: 1 damaged" % (len(holders) - 1) in o, \
            "verify's summary%s%s" % (ctx, ar.context())
        assert named_blobs(o + e) == {h}, "verify named %s%s%s" % (
            sorted(named_blobs(o + e)), ctx, ar.context())
        for acct in holders[h]:
            assert re.search(r"verify: damaged blob %s of account %s: %s"
                             % (h, re.escape(acct), why), e), \
                "verify did not report %s of %s as \"%s\"%s%s" % (
                    h, acct, why, ctx, ar.context())

        acct = sorted(holders[h])[0]
        n = len(want[acct])
        rc, o, e = ar.run("verify", "--account", acct)
        assert rc == 1 and "verified %d messages: 1 damaged" % (n - 1) in o \
            and re.search(r"verify: damaged blob %s of account %s: %s" % (
                h, re.escape(acct), why), e), \
            "verify --account %s%s%s" % (acct, ctx, ar.context())

        out = os.path.join(env.tmpdir("export"), "out")
        rc, o, e = ar.run("export", "--out", out)
        assert rc == 1, "export exited %d%s%s" % (rc, ctx, ar.context())
        assert "exported %d messages to %s: %d damaged" % (
            pairs - len(holders[h]), out, len(holders[h])) in o, \
            "export's summary%s%s" % (ctx, ar.context())
        assert named_blobs(o + e) == {h}, "export named %s%s%s" % (
            sorted(named_blobs(o + e)), ctx, ar.context())
        for acct in holders[h]:
            assert re.search(r"export: damaged blob %s of account %s not "
                             r"exported: %s" % (h, re.escape(acct), why),
                             e), \
                "export did not report %s of %s as \"%s\"%s%s" % (
                    h, acct, why, ctx, ar.context())
        expect = {acct: {f: m for f, m in files.items()
                         if f != h + ".eml"}
                  for acct, files in want.items()}
        got = exported(out)
        assert got == expect, \
            "export wrote %s, want %s (byte-exact)%s%s" % (
                {k: sorted(v) for k, v in got.items()},
                {k: sorted(v) for k, v in expect.items()}, ctx,
                ar.context())

        restore_blob(ar, h)

    o = ar.ok("verify")
    assert "verified %d messages: 0 damaged" % len(holders) in o, o
