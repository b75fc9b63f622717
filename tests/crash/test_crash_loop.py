"""`make crashtest`: the crash loop of tests/integ/test_crash.py, longer.

CRASH_KILLS (default 100) SIGKILLs at random moments of large polls,
CRASH_SEED to replay a sequence (see crashlib.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crashlib  # noqa: E402


def test_sigkill_soak(env):
    crashlib.crash_test(env, "soak",
                        int(os.environ.get("CRASH_KILLS", "100")))


test_sigkill_soak.timeout = 1800
