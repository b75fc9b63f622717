"""export: where it may write.

export opens --out DIR once and creates everything under it relative to
that directory, following no symbolic link and replacing nothing.  DIR is
created 0700 if missing; one that exists must be a real directory (not a
symbolic link), owned by the user running the export and writable by no
one else, or export refuses it before reaching the database (exit 3).  An
account directory that already exists under DIR, whatever it is (an
earlier export's, or a link planted there), stops the export (exit 1).
"""

import os
import stat

import harness
import mailgen
from harness import sha256_hex
from test_ingest import Archive


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
    assert "exported 3 messages to %s" % out in o, ar.context()
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
