"""How a commit fails, and what it takes with it.

commit_check (a C program, tests/integ/commit_check.c) drives the store's
committer against the run's PostgreSQL: values the server refuses,
synchronous_commit lost by a session, locks held elsewhere until a
statement times out, and messages whose stored bytes do not read back as
received.  It prints "N passed, N failed" and exits non-zero on any
failure.

The end-to-end test runs `ingestd once` against fakepop3 with a value the
database refuses in one mailbox: only that message fails, at once; every
other message of every mailbox is archived and deleted in the same poll.
"""

import os
import re
import time

import harness
from faultlib import FaultRun, message

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


def test_refused_value_fails_only_its_message(env):
    """A delivery the database refuses (here a CHECK constraint an
    operator added; in the field, any SQLSTATE class 22 or 23 error) in
    one mailbox, next to a healthy mailbox of 40 messages: the poll takes
    seconds, not the committer's 60 s retry period; the refused message
    fails alone with the server's reason and stays on the server; every
    other message is archived and deleted.  Once the constraint is gone,
    the next poll archives the last one."""
    fr = FaultRun(env, "refused")
    srv = fr.server()
    healthy = fr.mailbox(srv, files=[message(i, "refused-ok")
                                     for i in range(1, 41)])
    poisoned = fr.mailbox(srv, files=[("m%04d" % i, message(i, "refused"))
                                      for i in range(1, 5)] +
                          [("poison", message(99, "refused"))])
    fr.write_config()
    fr.ok("migrate")
    fr.sql("ALTER TABLE delivery ADD CONSTRAINT test_no_poison "
           "CHECK (uidl IS DISTINCT FROM 'poison') NOT VALID;")

    t0 = time.monotonic()
    summ = fr.once(expect_rc=1)
    took = time.monotonic() - t0
    print("# once with a refused value: %.1f s" % took)
    assert took < 40, "once took %.1f s: the refused value was retried " \
        "like an outage%s" % (took, fr.context())

    fr.check_healthy(healthy, summ)
    msgs = fr.msgs(poisoned)
    poison = [m for m in msgs if m.uidl == "poison"]
    rest = [m for m in msgs if m.uidl != "poison"]
    s = summ[poisoned]
    assert s["archived"] == 4 and s["deleted"] == 4 and \
        s["errors"] == 1, "%s: %s%s" % (poisoned, s, fr.context())
    fr.check_archived(poisoned, rest)
    fr.check_dele_proven(poisoned)
    fr.check_left(poisoned, poison)
    fr.check_poll(poisoned, "temporary", ["test_no_poison", "23514"])
    _, _, _, err = fr.last
    assert "retrying" not in err, \
        "a refused value was retried as if the database were down%s" % (
            fr.context())

    fr.sql("ALTER TABLE delivery DROP CONSTRAINT test_no_poison;")
    summ = fr.once()
    s = summ[poisoned]
    assert s["fetched"] == 1 and s["archived"] == 1 and \
        s["deleted"] == 1, "%s: %s%s" % (poisoned, s, fr.context())
    fr.check_archived(poisoned)
    fr.check_left(poisoned, [])
    fr.check_poll(poisoned, "ok")
