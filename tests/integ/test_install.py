"""make install, the systemd unit, the sysusers.d and tmpfiles.d files and
README.md agree, and the permissions README.md gives the configuration
let the service's user read it.

Nothing here needs systemd running: `make install DESTDIR=...` fills a
temporary tree, `systemd-analyze verify` parses the unit,
`systemd-sysusers --root` and `systemd-tmpfiles --root` apply their files
to that tree, and `ingestd check` runs through setpriv as the user the
unit names.  These are run as root (CI is), for chown and setpriv; the
systemd tools are in Debian's package systemd.  The user `ingestd` is
created on this machine from the installed sysusers.d file if it is
missing, as `make install` would.
"""

import grp
import os
import pwd
import shlex
import shutil
import stat
import subprocess

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
PREFIX = "/usr/local"


def _need_root():
    if not harness.is_root():
        raise AssertionError(
            "this test installs files owned by other users and runs "
            "ingestd as the user the unit names, so it must run as root "
            "(CI does); run `make test` as root")


def _need(prog, package):
    path = shutil.which(prog)
    if path is None:
        raise harness.Missing(prog, package)
    return path


def _install(dest, prefix=PREFIX):
    """make install DESTDIR=dest; returns make's output."""
    build = os.environ.get("BUILD") or os.path.join(TOP, "build")
    binary = os.path.join(build, "ingestd")
    # -o: install what is built, without remaking it here.
    p = harness.run(["make", "-C", TOP, "--no-print-directory", "-o",
                     binary, "install", "BUILD=" + build, "DESTDIR=" + dest,
                     "PREFIX=" + prefix], timeout=300, check=False)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, "make install exited %d:\n%s" % (
        p.returncode, out)
    return out


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def readme_files():
    """README.md's table after <!-- install: files -->: [{path, owner,
    group, mode}]."""
    with open(os.path.join(TOP, "README.md")) as f:
        lines = f.read().split("\n")
    i = lines.index("<!-- install: files -->")
    head = [c.strip() for c in lines[i + 1].strip("|").split("|")]
    assert head[:4] == ["path", "owner", "group", "mode"], head
    assert lines[i + 2].startswith("|---")
    rows = []
    for line in lines[i + 3:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        rows.append({"path": cells[0], "owner": cells[1],
                     "group": cells[2], "mode": int(cells[3], 8)})
    assert rows, "README.md's install table is empty"
    return rows


def readme_row(path):
    for r in readme_files():
        if r["path"] == path:
            return r
    raise AssertionError("README.md's install table has no row for %s"
                         % path)


def unit_service(path):
    """The [Service] section of a unit file: {key: [values]}."""
    keys = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            k, _, v = line.partition("=")
            if section == "[Service]":
                keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def sysusers_user(path):
    """(name, home, shell) of the one `u` line of a sysusers.d file."""
    users = []
    with open(path) as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("#"):
                w = shlex.split(line)
                assert w[0] == "u", "not a user line: %r" % line
                users.append((w[1], w[4], w[5]))
    assert len(users) == 1, users
    return users[0]


def tmpfiles_dirs(path):
    """{path: (mode, user, group)} of the `d` lines of a tmpfiles.d
    file."""
    dirs = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("#"):
                w = line.split()
                assert w[0] == "d", "not a directory line: %r" % line
                dirs[w[1]] = (int(w[2], 8), w[3], w[4])
    return dirs


def test_make_install_puts_files_with_their_modes(env):
    dest = env.tmpdir("install")
    _install(dest)
    want = {
        "usr/local/bin/ingestd": 0o755,
        "usr/local/share/man/man8/ingestd.8": 0o644,
        "usr/local/share/doc/ingestd/ingestd.conf.example": 0o644,
        "usr/local/lib/systemd/system/ingestd.service": 0o644,
        "usr/local/lib/sysusers.d/ingestd.conf": 0o644,
        "usr/local/lib/tmpfiles.d/ingestd.conf": 0o644,
        "etc/ingestd": 0o750,
        "etc/ingestd/ingestd.conf": 0o640,
        "var/lib/ingestd": 0o700,
    }
    for rel, mode in want.items():
        path = os.path.join(dest, rel)
        assert os.path.exists(path), "make install did not make /" + rel
        assert _mode(path) == mode, "/%s has mode %03o, not %03o" % (
            rel, _mode(path), mode)
    # The modes README.md tells of are those.
    for r in readme_files():
        if "*" not in r["path"]:
            rel = r["path"].lstrip("/")
            assert _mode(os.path.join(dest, rel)) == r["mode"], \
                "README.md says %s is mode %03o; make install made %03o" % (
                    r["path"], r["mode"], _mode(os.path.join(dest, rel)))
    with open(os.path.join(dest, "etc/ingestd/ingestd.conf")) as f:
        with open(os.path.join(TOP, "deploy/ingestd.conf.example")) as g:
            assert f.read() == g.read()
    unit = unit_service(os.path.join(
        dest, "usr/local/lib/systemd/system/ingestd.service"))
    assert unit["ExecStart"] == [
        "/usr/local/bin/ingestd -c /etc/ingestd/ingestd.conf run"], unit

    # Again: an edited configuration is kept, and the directory that an
    # older release made mode 700 is opened to the group.
    conf = os.path.join(dest, "etc/ingestd/ingestd.conf")
    with open(conf, "w") as f:
        f.write("# edited\n")
    os.chmod(os.path.join(dest, "etc/ingestd"), 0o700)
    out = _install(dest)
    assert "keeping %s" % conf in out, out
    with open(conf) as f:
        assert f.read() == "# edited\n"
    assert _mode(os.path.join(dest, "etc/ingestd")) == 0o750

    # PREFIX reaches the unit's commands.
    dest = env.tmpdir("install")
    _install(dest, prefix="/usr")
    unit = unit_service(os.path.join(
        dest, "usr/lib/systemd/system/ingestd.service"))
    assert unit["ExecStartPre"] == [
        "/usr/bin/ingestd -c /etc/ingestd/ingestd.conf check"], unit
    assert os.path.exists(os.path.join(dest, "usr/bin/ingestd"))
    assert os.path.exists(os.path.join(dest,
                                       "usr/lib/sysusers.d/ingestd.conf"))


def test_unit_sysusers_tmpfiles_and_readme_agree(env):
    dest = env.tmpdir("install")
    _install(dest)
    lib = os.path.join(dest, "usr/local/lib")
    unit_path = os.path.join(lib, "systemd/system/ingestd.service")
    unit = unit_service(unit_path)

    # A static user, which files can be given to; no DynamicUser=.
    assert "DynamicUser" not in unit, unit.get("DynamicUser")
    assert unit.get("User") == ["ingestd"], unit.get("User")
    assert unit.get("Group") == ["ingestd"], unit.get("Group")
    user = unit["User"][0]
    assert unit["ExecStartPre"][0].endswith(" check"), unit["ExecStartPre"]
    # The sandbox stays.
    for k, v in (("ProtectSystem", "strict"),
                 ("ReadWritePaths", "/var/lib/ingestd"),
                 ("StateDirectory", "ingestd"),
                 ("StateDirectoryMode", "0700"),
                 ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                 ("ProtectHome", "yes"), ("PrivateDevices", "yes"),
                 ("ProtectKernelTunables", "yes"),
                 ("ProtectKernelModules", "yes"),
                 ("ProtectControlGroups", "yes"),
                 ("RestrictNamespaces", "yes"),
                 ("MemoryDenyWriteExecute", "yes"),
                 ("CapabilityBoundingSet", ""), ("UMask", "0077")):
        assert unit.get(k) == [v], "%s=%s, not %s" % (k, unit.get(k), v)

    name, home, shell = sysusers_user(os.path.join(lib,
                                                   "sysusers.d/ingestd.conf"))
    assert name == user, "sysusers.d makes %s, the unit runs as %s" % (
        name, user)
    assert home == "/var/lib/ingestd" and shell == "/usr/sbin/nologin", \
        (home, shell)

    rows = {r["path"]: r for r in readme_files()}
    dirs = tmpfiles_dirs(os.path.join(lib, "tmpfiles.d/ingestd.conf"))
    assert set(dirs) == {"/etc/ingestd", "/var/lib/ingestd"}, dirs
    for path, (mode, owner, group) in dirs.items():
        r = rows[path]
        assert (r["mode"], r["owner"], r["group"]) == (mode, owner, group), \
            "README.md: %s %s:%s %03o; tmpfiles.d: %s:%s %03o" % (
                path, r["owner"], r["group"], r["mode"], owner, group, mode)
    for r in rows.values():
        assert r["owner"] in ("root", user), r
        assert r["group"] == user, r
    assert rows["/var/lib/ingestd"]["owner"] == user

    # systemd's own parser, on a copy whose commands are the installed
    # binary: not a word of complaint.
    analyze = _need("systemd-analyze", "systemd")
    check_dir = env.tmpdir("unit")
    with open(unit_path) as f:
        text = f.read().replace("/usr/local/bin/ingestd",
                                os.path.join(dest, "usr/local/bin/ingestd"))
    with open(os.path.join(check_dir, "ingestd.service"), "w") as f:
        f.write(text)
    p = subprocess.run([analyze, "verify", "--man=no",
                        os.path.join(check_dir, "ingestd.service")],
                       capture_output=True, timeout=120)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0 and out.strip() == "", \
        "systemd-analyze verify exited %d:\n%s" % (p.returncode, out)

    # What README.md tells the operator to run names the same user.
    with open(os.path.join(TOP, "README.md")) as f:
        readme = f.read()
    for cmd in ("sudo -u %s ingestd check" % user,
                "sudo install -m 640 -o root -g %s /dev/null "
                "/etc/ingestd/sales.password" % user):
        assert cmd in readme, "README.md lacks `%s`" % cmd


def _ids(root, user):
    """(uid, gid) of user in root/etc/passwd and root/etc/group."""
    def find(name, col):
        with open(os.path.join(root, "etc", name)) as f:
            for line in f:
                w = line.rstrip("\n").split(":")
                if w[0] == user:
                    return int(w[col])
        raise AssertionError("no %s in %s/etc/%s" % (user, root, name))
    return find("passwd", 2), find("group", 2)


def _owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_install_owners_in_an_image(env):
    """deploy/install-owners.sh ROOT, after make install DESTDIR=ROOT:
    the user and group in ROOT's own files, owners and modes as README.md
    lists them, and a configuration of an older release (root's, mode
    600) handed to the group."""
    _need_root()
    _need("systemd-sysusers", "systemd")
    _need("systemd-tmpfiles", "systemd")
    dest = env.tmpdir("image")
    _install(dest)
    conf = os.path.join(dest, "etc/ingestd/ingestd.conf")
    os.chmod(conf, 0o600)
    p = harness.run(["sh", os.path.join(TOP, "deploy/install-owners.sh"),
                     dest, PREFIX], check=False)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, "install-owners.sh exited %d:\n%s" % (
        p.returncode, out)
    uid, gid = _ids(dest, "ingestd")
    with open(os.path.join(dest, "etc/passwd")) as f:
        line = [l for l in f if l.startswith("ingestd:")][0]
    assert line.rstrip("\n").split(":")[5:] == ["/var/lib/ingestd",
                                                "/usr/sbin/nologin"], line
    names = {"root": 0, "ingestd": None}
    for r in readme_files():
        if "*" in r["path"]:
            continue
        want = (uid if r["owner"] == "ingestd" else names[r["owner"]],
                gid if r["group"] == "ingestd" else names[r["group"]],
                r["mode"])
        got = _owner(os.path.join(dest, r["path"].lstrip("/")))
        assert got == want, "%s is %d:%d %03o, README.md says %d:%d %03o" % (
            (r["path"],) + got + want)
    assert "600 -> " in out, out

    # Run again: nothing to change, nothing said about the file.
    p = harness.run(["sh", os.path.join(TOP, "deploy/install-owners.sh"),
                     dest, PREFIX])
    assert b"->" not in p.stdout, p.stdout


def _setpriv(user, args):
    setpriv = _need("setpriv", "util-linux")
    return subprocess.run([setpriv, "--reuid=" + user, "--regid=" + user,
                           "--init-groups", "--", harness.ingestd_binary()]
                          + args, capture_output=True, timeout=120,
                          cwd="/")


def _service_user(env):
    """The unit's user on this machine, made from the installed sysusers.d
    file if it is missing, as make install does."""
    try:
        return pwd.getpwnam("ingestd")
    except KeyError:
        pass
    dest = env.tmpdir("install")
    _install(dest)
    harness.run([_need("systemd-sysusers", "systemd"), os.path.join(
        dest, "usr/local/lib/sysusers.d/ingestd.conf")])
    return pwd.getpwnam("ingestd")


def _place(path, row, text=None):
    """Create path (a directory if text is None) with README.md's row's
    owner, group and mode."""
    if text is None:
        os.makedirs(path, exist_ok=True)
    else:
        with open(path, "w") as f:
            f.write(text)
    os.chown(path, pwd.getpwnam(row["owner"]).pw_uid,
             grp.getgrnam(row["group"]).gr_gid)
    os.chmod(path, row["mode"])


def test_readme_permissions_let_the_service_read(env):
    """The files as README.md has the operator keep them, read by
    `ingestd check` as the unit's user and as root: no error and no
    warning.  As an older release had them (root's, mode 600), the
    service's user is refused, with the file and the user named."""
    _need_root()
    pw = _service_user(env)
    user = pw.pw_name
    d = env.tmpdir("svc")
    etc = os.path.join(d, "etc", "ingestd")
    os.makedirs(os.path.dirname(etc))
    os.chmod(os.path.dirname(etc), 0o755)
    _place(etc, readme_row("/etc/ingestd"))
    pwf = os.path.join(etc, "sales.password")
    _place(pwf, readme_row("/etc/ingestd/*.password"), "s3cret\n")
    state = os.path.join(d, "state")
    _place(state, readme_row("/var/lib/ingestd"))
    conf = os.path.join(etc, "ingestd.conf")
    _place(conf, readme_row("/etc/ingestd/ingestd.conf"), (
        'state_dir = "%s";\n'
        'database = { conninfo = "%s"; };\n'
        'accounts = (\n'
        '  { name = "sales"; host = "pop.example.com";\n'
        '    user = "sales@example.com"; password = "in-the-file";\n'
        '    delete = "after-archive"; },\n'
        '  { name = "support"; host = "pop.example.com";\n'
        '    user = "support@example.com"; password_file = "%s"; }\n'
        ');\n') % (state, env.database(), pwf))

    for who, p in ((user, _setpriv(user, ["-c", conf, "check"])),
                   ("root", subprocess.run(
                       [harness.ingestd_binary(), "-c", conf, "check"],
                       capture_output=True, timeout=120))):
        out = p.stdout.decode(errors="replace")
        err = p.stderr.decode(errors="replace")
        assert p.returncode == 0, "check as %s exited %d:\n%s%s" % (
            who, p.returncode, out, err)
        assert "%s: ok: 2 accounts" % conf in out, out
        # check migrates a fresh database, and says so.
        said = [l for l in err.splitlines() if ": info: " not in l]
        assert said == [], "check as %s said:\n%s" % (who, err)

    def refused(path, prefix=""):
        p = _setpriv(user, ["-c", conf, "check"])
        err = p.stderr.decode(errors="replace")
        want = "%scannot read %s as user %s (uid %d): %s" % (
            prefix, path, user, pw.pw_uid, os.strerror(13))
        assert p.returncode == 3, "check exited %d:\n%s" % (p.returncode,
                                                             err)
        assert want in err, "%r not in:\n%s" % (want, err)

    # What the README said before: root's, mode 600, in a directory of 700.
    os.chown(pwf, 0, 0)
    os.chmod(pwf, 0o600)
    refused(pwf, "'accounts[1].password_file': ")
    os.chown(conf, 0, 0)
    os.chmod(conf, 0o600)
    refused(conf)
    os.chmod(etc, 0o700)
    os.chown(etc, 0, 0)
    refused(conf)
