"""The daemon: `ingestd run` polls again and again, and SIGTERM drains.

A drain may stop at any moment of a poll; whatever that moment, nothing
may be deleted from the server that is not archived byte-exact, and the
process must exit 0 once the polls in flight are finished.
"""

import os
import signal
import subprocess
import time

import harness
import mailgen
from harness import sha256_hex
from test_ingest import Archive


class Daemon:
    """`ingestd -c CONF run` in its own process group, stopped by PID."""

    def __init__(self, conf):
        self.p = subprocess.Popen(
            [harness.ingestd_binary(), "-c", conf, "run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self._wait_signals_blocked()

    def _wait_signals_blocked(self, timeout=30):
        """Until ingestd has blocked SIGTERM, which it then reads from its
        signalfd.  A SIGTERM before that, while the process is still being
        loaded, ends it as it would any program; on a busy machine that
        can take longer than the first delay below."""
        bit = 1 << (signal.SIGTERM - 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.p.poll() is None:
            try:
                with open("/proc/%d/status" % self.p.pid) as f:
                    for line in f:
                        if line.startswith("SigBlk:"):
                            if int(line.split()[1], 16) & bit:
                                return
                            break
            except OSError:
                return
            time.sleep(0.002)

    def terminate(self, timeout=60):
        """SIGTERM; returns (exit code, stderr)."""
        self.p.send_signal(signal.SIGTERM)
        try:
            _, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            _, err = self.p.communicate(timeout=30)
            raise AssertionError("ingestd did not exit %ds after SIGTERM:\n%s"
                                 % (timeout, err.decode(errors="replace")
                                    [-4000:]))
        return self.p.returncode, err.decode(errors="replace")

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.communicate(timeout=30)


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except harness.HarnessError:
            pass  # e.g. the schema is not there until ingestd migrates
        time.sleep(0.1)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout,
                                                                  what))


def test_run_polls_again_and_stops_on_sigterm(env):
    ar = Archive(env, "run")
    gen = mailgen.MailGen(900)
    a = ar.mailbox([gen.message() for _ in range(3)])
    b = ar.mailbox([gen.message() for _ in range(2)])
    ar.snapshot()
    ar.write_config(poll_interval=1)
    d = Daemon(ar.conf)
    try:
        wait_for("the first poll", lambda: len(ar.deliveries()) == 5 and
                 ar.dc.count(a) == 0 and ar.dc.count(b) == 0)
        ar.check_archived(a)
        ar.check_archived(b)
        # mail that arrives later is picked up by a later poll
        late = gen.message()
        ar.dc.deliver(a, late)
        wait_for("the later message", lambda: ar.dc.count(a) == 0 and
                 len(ar.deliveries(a)) == 4)
        rc, err = d.terminate()
    finally:
        d.kill()
    assert rc == 0, "exit %d after SIGTERM:\n%s" % (rc, err[-3000:])
    assert sha256_hex(mailgen.served(late)) in {
        r["sha256"] for r in ar.deliveries(a)}
    assert len(ar.polls(a)) >= 2, ar.polls(a)
    assert all(p["outcome"] == "ok" for p in ar.polls(a) + ar.polls(b))


def test_sigterm_at_any_moment_loses_nothing(env):
    """SIGTERM at several moments of a poll of large and small messages:
    each time ingestd exits 0; at the end every message is either still
    on the server or archived byte-exact, never neither, and never stored
    twice."""
    ar = Archive(env, "term")
    gen = mailgen.MailGen(901)
    msgs = [gen.message(size=4 << 20)] + [gen.message() for _ in range(30)]
    a = ar.mailbox(msgs)
    ar.snapshot()
    want = {sha256_hex(b) for _, b in ar.expected[a]}
    ar.write_config(poll_interval=1)
    for delay in (0.05, 0.2, 0.5, 1.0):
        d = Daemon(ar.conf)
        try:
            time.sleep(delay)
            rc, err = d.terminate()
        finally:
            d.kill()
        assert rc == 0, "exit %d after SIGTERM at %.2fs:\n%s" % (
            rc, delay, err[-3000:])
        left = {sha256_hex(mailgen.served(m))
                for m in ar.dc.messages(a)}
        archived = [r["sha256"] for r in ar.deliveries(a)]
        assert len(archived) == len(set(archived)), "stored twice"
        lost = want - left - set(archived)
        assert not lost, "%d messages neither on the server nor archived" \
            % len(lost)
    # a last, undisturbed poll finishes the job
    ar.once()
    ar.check_archived(a)
    ar.check_drained(a)
    ar.check_export(ar.export(a), [a])
