"""`ingestd check` as a user that cannot read what the configuration
names: the message says which file, as which user (name and uid), and
why, and the exit status is 3 (a startup error).

As root the checks run as `nobody`; as anyone else, as that user, who
cannot read a file of mode 000 either.
"""

import errno
import os
import pwd
import shutil

import harness

MESSAGE = "cannot read %s as user %s (uid %d): %s"


def _user():
    """(name, uid) of the unprivileged user the checks run as."""
    pw = pwd.getpwnam("nobody") if harness.is_root() else \
        pwd.getpwuid(os.geteuid())
    return pw.pw_name, pw.pw_uid


def _check(env, conf):
    """`ingestd check` of conf as the unprivileged user, run from a copy
    of the binary in the run's own directory: the checkout may lie under
    a directory that user cannot enter (a clone in /root, mode 0700)."""
    name, _ = _user()
    binary = os.path.join(env.tmpdir("bin"), "ingestd")
    shutil.copy2(harness.ingestd_binary(), binary)
    return harness.run_ingestd(["-c", conf, "check"], binary=binary,
                               user=name if harness.is_root() else None)


def _write(path, text, mode=None):
    """A file with text: the checking user's own, mode 600, unless mode
    says otherwise (then root's, as the files ingestd must not read)."""
    with open(path, "w") as f:
        f.write(text)
    if mode is None:
        os.chmod(path, 0o600)
        if harness.is_root():
            _, uid = _user()
            os.chown(path, uid, -1)
    else:
        os.chmod(path, mode)
    return path


def _config(d, account, conninfo=None, state=None, mode=None):
    """A config (the checking user's own unless mode is given)."""
    text = 'state_dir = "%s";\n' % (state or os.path.join(d, "state"))
    if conninfo:
        text += 'database = { conninfo = "%s"; };\n' % conninfo
    text += ('accounts = (\n  { name = "sales"; host = "pop.example.com";'
             ' user = "u";\n    %s }\n);\n' % account)
    return _write(os.path.join(d, "ingestd.conf"), text, mode)


def _expect(rc, out, err, want):
    assert rc == 3, "check exited %d, not 3:\n%s%s" % (rc, out, err)
    assert want in err, "%r not in:\n%s" % (want, err)
    assert err.count("\n") == 1, "more than the one message:\n" + err


def test_unreadable_config_file(env):
    d = env.tmpdir("files")
    name, uid = _user()
    pwf = _write(os.path.join(d, "pw"), "secret\n")
    conf = _config(d, 'password_file = "%s";' % pwf, mode=0o000)
    rc, out, err = _check(env, conf)
    _expect(rc, out, err, "fatal: " + MESSAGE % (
        conf, name, uid, os.strerror(errno.EACCES)))

    # A directory on the way that the user cannot enter (root's).
    if harness.is_root():
        sub = os.path.join(d, "private")
        os.mkdir(sub, 0o700)
        conf = _config(sub, 'password_file = "%s";' % pwf)
        rc, out, err = _check(env, conf)
        _expect(rc, out, err, MESSAGE % (conf, name, uid,
                                         os.strerror(errno.EACCES)))

    missing = os.path.join(d, "missing.conf")
    rc, out, err = _check(env, missing)
    _expect(rc, out, err, MESSAGE % (missing, name, uid,
                                     os.strerror(errno.ENOENT)))


def test_unreadable_password_file(env):
    d = env.tmpdir("files")
    name, uid = _user()
    pwf = _write(os.path.join(d, "sales.password"), "secret\n", 0o000)
    conf = _config(d, 'password_file = "%s";' % pwf)
    rc, out, err = _check(env, conf)
    _expect(rc, out, err, "fatal: %s:4: 'accounts[0].password_file': %s" % (
        conf, MESSAGE % (pwf, name, uid, os.strerror(errno.EACCES))))

    missing = os.path.join(d, "missing.password")
    conf = _config(d, 'password_file = "%s";' % missing)
    rc, out, err = _check(env, conf)
    _expect(rc, out, err, "'accounts[0].password_file': " + MESSAGE % (
        missing, name, uid, os.strerror(errno.ENOENT)))


def test_unreadable_ca_file(env):
    d = env.tmpdir("files")
    name, uid = _user()
    ca = _write(os.path.join(d, "ca.pem"), "not read\n", 0o000)
    pwf = _write(os.path.join(d, "pw"), "secret\n")
    conf = _config(d, 'password_file = "%s"; ca_file = "%s";' % (pwf, ca))
    rc, out, err = _check(env, conf)
    _expect(rc, out, err, "fatal: %s:4: 'accounts[0].ca_file': %s" % (
        conf, MESSAGE % (ca, name, uid, os.strerror(errno.EACCES))))


def test_state_dir_not_writable(env):
    """The embedded cluster lives in state_dir, so it must be writable;
    with a database of its own, ingestd needs it only for the spool of
    messages larger than spool_memory, and check warns."""
    d = env.tmpdir("files")
    name, uid = _user()
    state = os.path.join(d, "state")
    os.mkdir(state, 0o555)
    if harness.is_root():
        os.chown(state, uid, -1)
    pwf = _write(os.path.join(d, "pw"), "secret\n")
    conf = _config(d, 'password_file = "%s";' % pwf, state=state)
    rc, out, err = _check(env, conf)
    _expect(rc, out, err, "fatal: cannot write in state_dir %s as user %s "
            "(uid %d): %s" % (state, name, uid, os.strerror(errno.EACCES)))

    conf = _config(d, 'password_file = "%s";' % pwf,
                   conninfo=env.database(), state=state)
    rc, out, err = _check(env, conf)
    assert rc == 0, "check exited %d:\n%s%s" % (rc, out, err)
    want = ("warning: cannot write in %s as user %s (uid %d): %s; once and "
            "run will fail every message larger than spool_memory "
            "(65536 bytes)" % (state, name, uid, os.strerror(errno.EACCES)))
    assert want in err, "%r not in:\n%s" % (want, err)

    # One it cannot create, in a directory it cannot write to.
    state = os.path.join(d, "ro", "state")
    os.mkdir(os.path.dirname(state), 0o555)
    conf = _config(d, 'password_file = "%s";' % pwf,
                   conninfo=env.database(), state=state)
    rc, out, err = _check(env, conf)
    _expect(rc, out, err, "fatal: cannot create state_dir %s as user %s "
            "(uid %d): %s" % (state, name, uid, os.strerror(errno.EACCES)))
