"""How a commit fails, and what it takes with it.

commit_check (a C program, tests/integ/commit_check.c) drives the store's
committer against the run's PostgreSQL: synchronous_commit lost by a
session, and locks held elsewhere until a statement times out.  It prints
"N passed, N failed" and exits non-zero on any failure.
"""

import os
import re

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


def test_commit_check(env):
    p = harness.run([_helper("commit_check"), env.pg.conninfo],
                    timeout=170, check=False)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    m = SUMMARY.search(out)
    assert p.returncode == 0 and m and m.group(2) == "0" and \
        int(m.group(1)) > 0, "commit_check exited %d:\n%s%s" % (
            p.returncode, out, err[-6000:])

