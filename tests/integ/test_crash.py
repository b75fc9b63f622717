"""Crash safety: `ingestd once` over 20 mailboxes (multi-megabyte and
shared messages among them) killed with SIGKILL at 30 or more moments of
its polls, some chosen at random, some while a commit is in flight;
restarted each time; checked after every kill and at the end.  The
machinery and the checks are in tests/crash/crashlib.py; `make crashtest`
runs the same loop longer.  The seed is printed; CRASH_SEED=N replays it,
CRASH_KILLS=N changes the number of kills.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "crash"))

import crashlib  # noqa: E402


def test_sigkill_at_random_moments_of_a_large_poll(env):
    crashlib.crash_test(env, "crash",
                        int(os.environ.get("CRASH_KILLS", "30")))


test_sigkill_at_random_moments_of_a_large_poll.timeout = 300
