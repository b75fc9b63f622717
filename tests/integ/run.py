#!/usr/bin/env python3
"""Integration test runner: real PostgreSQL, real Dovecot, the real binary.

    python3 tests/integ/run.py [-k SUBSTRING] [FILE...]

Runs every `test_*` function of tests/integ/test_*.py (or of the FILEs
given), in file and definition order.  Each test function takes one
argument, `env` (an Env below): a private PostgreSQL cluster and a private
Dovecot shared by the whole run and started on first use, plus fresh
databases, directories and names for the test's own use.

Prints `ok NAME` or `FAIL NAME: reason` per test and ends with one line
`N passed, M failed`; exits 1 if anything failed.  A missing program is
a failure naming the Debian package to install, never a skip.

Environment: INGESTD (the binary, default $BUILD/ingestd), BUILD (the
build directory, default build/), KEEP_TMP=1 keeps the temporary
directory even when everything passed (it is always kept on failure),
TEST_TIMEOUT (seconds per test, default 180).
"""

import argparse
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class TestTimeout(Exception):
    pass


class Env:
    """What a test gets.  Services are shared by the run; everything else
    is fresh per call."""

    def __init__(self, root):
        self.root = root
        self._pg = None
        self._pg_error = None
        self._dc = None
        self._dc_error = None
        self._n = 0
        self.test = None  # name of the running test

    @property
    def pg(self):
        """The run's Postgres (harness.Postgres)."""
        if self._pg is None:
            if self._pg_error is not None:
                raise harness.HarnessError("could not start earlier: %s"
                                           % self._pg_error)
            try:
                self._pg = harness.Postgres(os.path.join(self.root, "pg"))
            except Exception as e:
                self._pg_error = e
                raise
        return self._pg

    @property
    def dovecot(self):
        """The run's Dovecot (harness.Dovecot)."""
        if self._dc is None:
            if self._dc_error is not None:
                raise harness.HarnessError("could not start earlier: %s"
                                           % self._dc_error)
            try:
                self._dc = harness.Dovecot(os.path.join(self.root, "dc"))
            except Exception as e:
                self._dc_error = e
                raise
        return self._dc

    @property
    def ingestd(self):
        """Path of the binary under test (fails the test if missing)."""
        return harness.ingestd_binary()

    def unique(self, prefix="t"):
        """A name no other call in this run returns ([a-z0-9-] only)."""
        self._n += 1
        return "%s%03d" % (prefix, self._n)

    def tmpdir(self, prefix="t"):
        """A fresh directory the service user can use too."""
        d = os.path.join(self.root, "tests", self.unique(prefix))
        os.makedirs(d)
        harness.open_tree(d)
        os.chmod(d, 0o755)
        return d

    def database(self):
        """A fresh empty database in the run's cluster; its conninfo."""
        return self.pg.create_database(self.unique("db"))


def discover(files):
    tests = []
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:
            tests.append(("%s.<import>" % name, None, traceback.format_exc()))
            continue
        for attr, fn in vars(mod).items():
            if attr.startswith("test_") and callable(fn):
                tests.append(("%s.%s" % (name, attr), fn, None))
    return tests


def _alarm(signum, frame):
    raise TestTimeout("test still running after its time limit")


def reason_of(exc):
    """A short reason plus the location in the test file."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    for fr in reversed(tb):
        if os.path.basename(fr.filename).startswith("test_"):
            where = " (%s:%d)" % (os.path.basename(fr.filename), fr.lineno)
            break
    if isinstance(exc, (AssertionError, harness.Missing,
                        harness.HarnessError, TestTimeout)):
        msg = str(exc) or "assertion failed: " + (tb[-1].line or "")
        return msg + where
    return "".join(traceback.format_exception(exc)).rstrip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", dest="pattern", help="only tests whose name "
                    "contains this")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args(argv)
    files = a.files or sorted(
        os.path.join(HERE, f) for f in os.listdir(HERE)
        if f.startswith("test_") and f.endswith(".py"))
    tests = discover(files)
    if a.pattern:
        tests = [t for t in tests if a.pattern in t[0]]
    limit = int(os.environ.get("TEST_TIMEOUT", "180"))

    harness.install_signal_cleanup()
    root = tempfile.mkdtemp(prefix="ingestd-integ-")
    harness.open_tree(root)
    os.chmod(root, 0o755)
    env = Env(root)
    passed = failed = 0
    started = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    try:
        for name, fn, import_error in tests:
            if fn is None:
                failed += 1
                print("FAIL %s: cannot import:\n%s" % (name, import_error),
                      flush=True)
                continue
            env.test = name
            t0 = time.monotonic()
            signal.alarm(getattr(fn, "timeout", limit))
            try:
                fn(env)
            except BaseException as e:  # report and go on
                signal.alarm(0)
                if isinstance(e, KeyboardInterrupt):
                    raise
                failed += 1
                text = reason_of(e).replace("\n", "\n    ")
                print("FAIL %s: %s" % (name, text), flush=True)
            else:
                signal.alarm(0)
                passed += 1
                print("ok %s (%.1fs)" % (name, time.monotonic() - t0),
                      flush=True)
    finally:
        signal.alarm(0)
        harness.cleanup_all()
    if failed or os.environ.get("KEEP_TMP") == "1":
        print("# test files kept in %s" % root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    print("# integration tier took %.0fs" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
