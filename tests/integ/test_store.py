"""The store's own checks, C programs run against the run's PostgreSQL.

store_check: the database layer, the committer thread, export and verify
(it creates its own databases in the cluster).  pgembed_check: the embedded
cluster, refused as root and run end to end as the service user.  Both print
"N passed, N failed" and exit non-zero on any failure.
"""

import os
import re
import shlex
import shutil

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def _helper(name):
    build = os.environ.get("BUILD") or os.path.join(HERE, "..", "..",
                                                    "build")
    path = os.path.abspath(os.path.join(build, "tests", "integ", name))
    if not os.access(path, os.X_OK):
        raise harness.HarnessError("%s not built: run `make` first" % path)
    return path


def _expect_pass(p, what):
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    m = SUMMARY.search(out)
    assert p.returncode == 0 and m and m.group(2) == "0" and \
        int(m.group(1)) > 0, "%s exited %d:\n%s%s" % (what, p.returncode,
                                                      out, err)


def test_store_check(env):
    p = harness.run([_helper("store_check"), env.pg.conninfo],
                    timeout=120, check=False)
    _expect_pass(p, "store_check")


def test_store_check_restart(env):
    """The same, plus a database restart under a running committer."""
    pg = env.pg
    pg_ctl = os.path.join(harness.pg_bindir(), "pg_ctl")
    as_user = ("runuser -u %s -- " % shlex.quote(pg.user)
               if harness.is_root() else "")
    restart = "%s%s -D %s -m fast -w stop >/dev/null; sleep 2; " \
        "%s%s -D %s -l %s -w -t 60 start >/dev/null" % (
            as_user, shlex.quote(pg_ctl), shlex.quote(pg.datadir),
            as_user, shlex.quote(pg_ctl), shlex.quote(pg.datadir),
            shlex.quote(pg.logfile))
    p = harness.run([_helper("store_check"), pg.conninfo, restart],
                    timeout=150, check=False)
    _expect_pass(p, "store_check with a restart")


def test_pgembed_refuses_root(env):
    if not harness.is_root():
        return
    state = env.tmpdir("pgembed")
    p = harness.run([_helper("pgembed_check"), state], check=False)
    _expect_pass(p, "pgembed_check as root")


def test_pgembed(env):
    user, uid, gid = harness.service_user()
    top = env.tmpdir("pgembed")
    state = os.path.join(top, "state")
    os.makedirs(state)
    os.chmod(state, 0o700)
    if harness.is_root():
        os.chown(state, uid, gid)
    # The service user runs a copy of its own: the checkout, and so the
    # build directory, may be closed to it (a clone in /root, say).
    helper = os.path.join(top, "pgembed_check")
    shutil.copy(_helper("pgembed_check"), helper)
    os.chmod(helper, 0o755)
    try:
        p = harness.run([helper, state], timeout=150, check=False,
                        user=user)
    finally:
        # A check that failed half-way may leave its server running.
        pgdata = os.path.join(state, "pgdata")
        if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
            harness.run([os.path.join(harness.pg_bindir(), "pg_ctl"),
                         "stop", "-m", "immediate", "-D", pgdata],
                        check=False, user=user)
    _expect_pass(p, "pgembed_check as %s" % user)
