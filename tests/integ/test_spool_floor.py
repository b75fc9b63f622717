"""spool_min_free: while the spool's file system has less than the floor
available, sessions pause (no RETR, no failure, nothing spooled) and
resume once space returns; the episode is logged once when it starts and
once when it ends.

The spool directory is a 4 MiB tmpfs the test mounts (root, as in CI),
filled to leave less than the 2 MiB floor.
"""

import os
import subprocess
import time

import harness
from faultlib import FaultRun, message, parse_summaries

PAUSE = "sessions pause receiving until space returns"
RESUME = "receiving resumes"


def _mount_tmpfs(path, size):
    if os.geteuid() != 0:
        raise harness.HarnessError(
            "test_spool_floor mounts a small tmpfs and must run as root "
            "(as CI does)")
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                    "tmpfs", path], check=True)
    return lambda: subprocess.run(["umount", path], check=True)


def test_sessions_pause_under_spool_min_free(env):
    fr = FaultRun(env, "floor")
    srv = fr.server()
    name = fr.mailbox(srv, files=[message(i, "floor") for i in (1, 2, 3)])
    fr.write_config(spool_min_free="2M")
    spool = os.path.join(fr.state, "spool")
    unmount = _mount_tmpfs(spool, "4m")
    try:
        filler = os.path.join(spool, "filler")
        with open(filler, "wb") as fh:
            fh.write(b"\0" * (3 << 20))
        st = os.statvfs(spool)
        assert st.f_bavail * st.f_frsize < 2 << 20, st

        p = subprocess.Popen([harness.ingestd_binary(), "-c", fr.conf,
                              "once"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        group = harness._ProcessGroup(p)
        harness._register(group)
        try:
            seen = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = p.stderr.readline().decode(errors="replace")
                if not line:
                    break
                seen.append(line)
                if PAUSE in line:
                    break
            assert any(PAUSE in s for s in seen), \
                "no pause logged:\n%s" % "".join(seen)
            # Paused after the listing: logged in, nothing retrieved.
            cmds = [t.upper() for _, t, _ in srv.commands(name)]
            assert "UIDL" in cmds and \
                not any(c.startswith("RETR") for c in cmds), cmds
            assert p.poll() is None, "once ended while paused"
            os.unlink(filler)
            out, err = p.communicate(timeout=120)
        finally:
            group.stop()
            harness._unregister(group)
        err = "".join(seen) + err.decode(errors="replace")
        out = out.decode(errors="replace")
        fr.last = (("once",), p.returncode, out, err)
        assert p.returncode == 0, fr.context()
        s = parse_summaries(out)[name]
        assert s["archived"] == 3 and s["deleted"] == 3 and \
            s["errors"] == 0 and s["outcome"] == "ok", s
        assert err.count(PAUSE) == 1 and err.count(RESUME) == 1, \
            fr.context()
        assert "spool: " in err and "under spool_min_free (2 MiB)" in err, \
            fr.context()
        fr.check_archived(name)
        fr.check_left(name, [])
    finally:
        unmount()
