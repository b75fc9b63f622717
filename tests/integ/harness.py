#!/usr/bin/env python3
"""Private services for the integration tests: PostgreSQL and Dovecot.

Everything here runs from a temporary directory the caller owns, listens
only on loopback (Dovecot) or a Unix socket (PostgreSQL), and is stopped
by the object that started it, by PID or by the service's own stop
command.  Python 3 standard library only.

    pg = Postgres(tmpdir)          # initdb + pg_ctl start
    pg.psql("SELECT 1")            # -> [["1"]]
    dc = Dovecot(tmpdir)           # POP3 (STLS) + POP3S on free ports
    dc.add_user("alice", "secret")
    dc.deliver("alice", b"Subject: hi\\n\\nbody\\n")
    fetch_all(dc.pop3s_port, "alice", "secret", ca_file=dc.ca_file)
    pg.stop(); dc.stop()           # or cleanup_all() / atexit

As root, PostgreSQL and the Dovecot mail processes run as the system user
`ingestd-test` (created if missing); Dovecot's own login and internal
processes use the packaged `dovenull` and `dovecot` users.  As any other
user, everything runs as that user.

Command line (used by deploy/demo.sh):
    harness.py demo-server DIR [USER]
                                  start a demo POP3S server with sample
                                  mail under DIR, write DIR/ingestd.conf
                                  (owned by USER, with its state_dir
                                  DIR/state) and print its path
    harness.py demo-stop DIR      stop the demo server started in DIR
    harness.py self-test          start both services and exercise them
"""

import atexit
import base64
import errno
import glob
import hashlib
import os
import poplib
import pwd
import grp
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TEST_USER = "ingestd-test"
DEFAULT_TIMEOUT = 60


class Missing(Exception):
    """A program the tests need is not installed; names the package."""

    def __init__(self, what, package):
        super().__init__("%s not found: install it with "
                         "`apt-get install %s`" % (what, package))
        self.package = package


class HarnessError(Exception):
    pass


# --------------------------------------------------------------------------
# Process hygiene: everything started here is registered, and stopped by
# its own stop method at exit, even when a test fails.

_started = []


def _register(obj):
    _started.append(obj)


def _unregister(obj):
    if obj in _started:
        _started.remove(obj)


def cleanup_all():
    """Stop every service this process started, newest first."""
    while _started:
        obj = _started.pop()
        try:
            obj.stop()
        except Exception as e:  # keep stopping the others
            print("harness: stopping %r failed: %s" % (obj, e),
                  file=sys.stderr)


atexit.register(cleanup_all)


def _on_signal(signum, frame):
    cleanup_all()
    sys.exit(128 + signum)


def install_signal_cleanup():
    """Stop our services on SIGTERM/SIGINT/SIGHUP too (main thread only)."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)


# --------------------------------------------------------------------------
# Small helpers

def is_root():
    return os.geteuid() == 0


# One answer for the harness's servers and the fault server: fakepop3 is
# stdlib-only, so importing it costs nothing.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fake"))
from fakepop3 import localhost_addresses  # noqa: E402


def free_port(hosts=None):
    """A TCP port that was free a moment ago on each of hosts (default:
    localhost_addresses()): port 0 bound on the first, then that port on
    the others, tried again if one has it."""
    hosts = hosts or localhost_addresses()
    for _ in range(50):
        socks = []
        try:
            port = 0
            for h in hosts:
                fam = socket.AF_INET6 if ":" in h else socket.AF_INET
                socks.append(socket.socket(fam, socket.SOCK_STREAM))
                socks[-1].bind((h, port))
                port = socks[-1].getsockname()[1]
            return port
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
        finally:
            for so in socks:
                so.close()
    raise HarnessError("no TCP port free on all of %s" % ", ".join(hosts))


def wait_port(port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise HarnessError("nothing listens on %s:%d after %ds"
                                   % (host, port, timeout))
            time.sleep(0.05)


def run(cmd, timeout=DEFAULT_TIMEOUT, check=True, user=None, input=None,
        env=None, cwd=None):
    """subprocess.run with a timeout, capturing output as bytes.

    user: run as that system user (we must be root).
    """
    kw = {}
    if user is not None and is_root():
        pw = pwd.getpwnam(user)
        kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        if env is None:
            env = dict(os.environ, HOME=cwd or "/", USER=user, LOGNAME=user)
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env,
                       cwd=cwd, **kw)
    if check and p.returncode != 0:
        raise HarnessError("%s exited %d:\n%s%s" % (
            " ".join(map(str, cmd)), p.returncode,
            p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace")))
    return p


def ensure_test_user(name=TEST_USER):
    """As root, create an unprivileged system user (and group) `name`."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if not is_root():
        raise HarnessError("user %s does not exist and we are not root"
                           % name)
    if shutil.which("useradd") is None:
        raise Missing("useradd", "passwd")
    p = run(["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
             name], check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:  # not made by a concurrent run either
        raise HarnessError("useradd %s failed: %s" % (
            name, p.stderr.decode(errors="replace")))


def service_user():
    """(name, uid, gid) of the user the services' own processes run as."""
    if is_root():
        pw = ensure_test_user()
    else:
        pw = pwd.getpwuid(os.geteuid())
    return pw.pw_name, pw.pw_uid, pw.pw_gid


def make_shared_dir(path):
    """Create path so the service user can use it and we can read it."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    if is_root():
        _, uid, gid = service_user()
        os.chown(path, uid, gid)
    return path


def open_tree(path):
    """Let the service user traverse every parent of path (mode o+x)."""
    path = os.path.abspath(path)
    parts = []
    while path not in ("/", ""):
        parts.append(path)
        path = os.path.dirname(path)
    for p in parts:
        st = os.stat(p)
        if not st.st_mode & 0o001 and st.st_uid == os.geteuid():
            os.chmod(p, st.st_mode | 0o011)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours is not alive.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _exists(pid):
    """pid names a process, even a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _children(pid):
    """PIDs whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def stop_pid(pid, must_contain, timeout=20):
    """SIGTERM pid (only if its command line contains must_contain), wait,
    then SIGKILL.  Returns True if a process was stopped."""
    if not _pid_alive(pid) or must_contain not in _cmdline(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            break
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------
# PostgreSQL

def pg_bindir():
    """The newest /usr/lib/postgresql/N/bin that has initdb."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        v = d.split("/")[-2]
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            try:
                found.append((float(v), d))
            except ValueError:
                pass
    if not found:
        raise Missing("PostgreSQL server (initdb)", "postgresql")
    return max(found)[1]


NULL = "\\N"


class Postgres:
    """A private PostgreSQL cluster in tmpdir/pg, reachable only through a
    Unix socket in tmpdir/pg.  fsync and synchronous_commit stay on.

    The bootstrap superuser is `ingestd` and a database `ingestd` exists.
    """

    superuser = "ingestd"
    dbname = "ingestd"

    def __init__(self, tmpdir, start=True, settings=None):
        self.bindir = pg_bindir()
        psql = os.path.join(self.bindir, "psql")
        self.psql_bin = psql if os.access(psql, os.X_OK) else \
            shutil.which("psql")
        if self.psql_bin is None:
            raise Missing("psql", "postgresql-client")
        self.user, self.uid, self.gid = service_user()
        os.makedirs(tmpdir, exist_ok=True)
        open_tree(tmpdir)
        self.dir = make_shared_dir(os.path.join(tmpdir, "pg"))
        self.datadir = os.path.join(self.dir, "data")
        self.sockdir = self.dir
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = 5432  # only names the socket file; no TCP
        self.running = False
        self._initdb(settings or {})
        if start:
            self.start()
            self.psql("CREATE DATABASE %s" % self.dbname, dbname="postgres")

    def __repr__(self):
        return "Postgres(%s)" % self.dir

    def _as_user(self, cmd, timeout=DEFAULT_TIMEOUT, check=True):
        return run(cmd, timeout=timeout, check=check,
                   user=self.user if is_root() else None, cwd=self.dir)

    def _initdb(self, settings):
        self._as_user([os.path.join(self.bindir, "initdb"),
                       "-D", self.datadir, "-U", self.superuser,
                       "--auth=trust", "-E", "UTF8", "--locale=C",
                       "--no-instructions"], timeout=120)
        conf = {
            "listen_addresses": "''",
            "unix_socket_directories": "'%s'" % self.sockdir,
            "port": str(self.port),
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        conf.update(settings)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# ingestd integration tests\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))

    def conninfo_for(self, dbname=None):
        return "host=%s port=%d dbname=%s user=%s" % (
            self.sockdir, self.port, dbname or self.dbname, self.superuser)

    @property
    def conninfo(self):
        return self.conninfo_for()

    def start(self):
        if self.running:
            return
        self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                       self.datadir, "-l", self.logfile, "-w", "-t", "60",
                       "start"], timeout=90)
        self.running = True
        _register(self)

    def stop(self, mode="fast"):
        if not self.running:
            return
        self._as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                       self.datadir, "-m", mode, "-w", "-t", "60", "stop"],
                      timeout=90, check=False)
        self.running = False
        _unregister(self)

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def kill9(self):
        """Crash the server: SIGKILL to the postmaster (by the PID in
        postmaster.pid), then wait until its children, which notice and
        exit, are gone, so that start() can recover."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            pid = int(f.readline())
        children = _children(pid)
        if "postgres" in _cmdline(pid):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_pid_alive(p) for p in [pid] + children):
            if time.monotonic() > deadline:
                raise HarnessError("postgres children of %d still alive"
                                   % pid)
            time.sleep(0.05)
        # PostgreSQL's lock file check takes a zombie for a live
        # postmaster; where init is slow to reap, clear the stale file.
        deadline = time.monotonic() + 5
        while _exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _exists(pid):
            os.unlink(os.path.join(self.datadir, "postmaster.pid"))
        self.running = False
        _unregister(self)

    def psql(self, sql, dbname=None, timeout=DEFAULT_TIMEOUT):
        """Run sql (one or more statements); return the rows of every
        result as lists of strings, SQL NULL as None.  Values must not
        contain tabs or newlines."""
        p = run([self.psql_bin, "-X", "-A", "-t", "-q", "-F", "\t",
                 "-P", "null=" + NULL, "-v", "ON_ERROR_STOP=1",
                 "-d", self.conninfo_for(dbname), "-f", "-"],
                input=sql.encode(), timeout=timeout)
        # Every row, even one empty value, is one line ending in "\n".
        out = p.stdout.decode()
        return [[None if v == NULL else v for v in line.split("\t")]
                for line in out.split("\n")[:-1]]

    def scalar(self, sql, dbname=None):
        rows = self.psql(sql, dbname=dbname)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise HarnessError("expected one value from %r, got %r"
                               % (sql, rows))
        return rows[0][0]

    def create_database(self, name):
        """A fresh empty database; returns its conninfo."""
        self.psql('CREATE DATABASE "%s"' % name, dbname="postgres")
        return self.conninfo_for(name)

    def log_tail(self, n=40):
        return _tail(self.logfile, n)


def _tail(path, n):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# TLS material, made with the openssl command line

def make_ca(dirpath, name="ca", cn="ingestd test CA"):
    """A self-signed CA: returns (cert path, key path)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Missing("openssl", "openssl")
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    run([openssl, "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "3650", "-subj", "/CN=" + cn,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"])
    os.chmod(cert, 0o644)
    return cert, key


def make_server_cert(dirpath, ca_cert, ca_key, name="server",
                     cn="localhost", san="DNS:localhost,IP:127.0.0.1"):
    """A server certificate signed by the CA: returns (cert, key)."""
    openssl = shutil.which("openssl")
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    csr = os.path.join(dirpath, name + ".csr")
    ext = os.path.join(dirpath, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n"
                "subjectAltName=%s\n" % san)
    run([openssl, "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
         "-out", csr, "-subj", "/CN=" + cn])
    run([openssl, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey",
         ca_key, "-CAcreateserial", "-out", cert, "-days", "3650",
         "-extfile", ext])
    os.chmod(cert, 0o644)
    os.chmod(key, 0o600)
    return cert, key


# --------------------------------------------------------------------------
# Dovecot

DOVECOT_CONF = """\
# Private Dovecot for the ingestd tests; nothing outside {dir} is used.
instance_name = {instance}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
debug_log_path = {dir}/dovecot.log
protocols = pop3
listen = {listen}
shutdown_clients = yes

default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {mail_uid}
last_valid_uid = {mail_uid}
first_valid_gid = 1
default_process_limit = {process_limit}
default_client_limit = {client_limit}
default_vsz_limit = 512M
mail_max_userip_connections = 1000

ssl = yes
ssl_cert = <{dir}/tls/server.pem
ssl_key = <{dir}/tls/server.key
ssl_min_protocol = TLSv1.2

# Plaintext over loopback is used by some tests; STLS is still offered.
disable_plaintext_auth = no
auth_mechanisms = plain login apop
auth_verbose = yes
auth_failure_delay = {auth_failure_delay}
login_log_format_elements = user=<%u> method=%m rip=%r lip=%l mpid=%e %c

# One file per user: a file read once is cached, so a user added while
# the server runs gets a new file rather than a line in an old one.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={dir}/mail/%u
}}
mail_location = maildir:~/Maildir
mail_fsync = optimized

pop3_uidl_format = %08Xu%08Xv
pop3_logout_format = top=%t/%p retr=%r/%b del=%d/%m size=%s

service pop3-login {{
  inet_listener pop3 {{
    address = {listen}
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = {listen}
    port = {pop3s_port}
    ssl = yes
  }}
{login_extra}}}
service pop3 {{
  process_limit = {process_limit}
}}
{service_extra}
{penalty}"""

# Dovecot delays logins from an IP that failed to authenticate (2 s, then
# up to 15 s).  That would let one test's wrong password slow the next
# tests, so it is off unless asked for.
NO_AUTH_PENALTY = """\
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""

# Dovecot started by a non-root user cannot chroot or change user.
NONROOT_LOGIN = "  chroot =\n"
NONROOT_SERVICES = """\
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
service submission-login {
  chroot =
}
service managesieve-login {
  chroot =
}
"""


def dovecot_binaries():
    dovecot = "/usr/sbin/dovecot"
    if not os.access(dovecot, os.X_OK):
        raise Missing("dovecot", "dovecot-core")
    if not os.access("/usr/lib/dovecot/pop3", os.X_OK):
        raise Missing("Dovecot POP3 server", "dovecot-pop3d")
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    return dovecot, doveadm


class Dovecot:
    """A private Dovecot POP3 server on 127.0.0.1 (and ::1, where localhost
    stands for it too) in tmpdir/dovecot.

    pop3_port offers STLS; pop3s_port is implicit TLS.  Its certificate
    (CN and SAN localhost, SAN IP 127.0.0.1) is signed by the CA in
    ca_file.  Users live in a passwd-file with plaintext passwords, so
    USER/PASS, APOP and AUTH PLAIN all work; mail is in
    tmpdir/dovecot/mail/USER/Maildir.
    """

    def __init__(self, tmpdir, start=True, process_limit=1000,
                 client_limit=4000, auth_failure_delay="0 secs",
                 auth_penalty=False, name="dovecot"):
        self.dovecot, self.doveadm = dovecot_binaries()
        self.mail_user, self.mail_uid, self.mail_gid = service_user()
        if is_root():
            for u in ("dovenull", "dovecot"):
                try:
                    pwd.getpwnam(u)
                except KeyError:
                    raise Missing("system user %s" % u, "dovecot-core")
            login_user, internal_user, internal_group = \
                "dovenull", "dovecot", "dovecot"
            login_extra, service_extra = "", ""
        else:
            login_user = internal_user = self.mail_user
            internal_group = grp.getgrgid(self.mail_gid).gr_name
            login_extra, service_extra = NONROOT_LOGIN, NONROOT_SERVICES
        os.makedirs(tmpdir, exist_ok=True)
        open_tree(tmpdir)
        self.dir = os.path.join(os.path.abspath(tmpdir), name)
        os.makedirs(self.dir, mode=0o755)
        os.chmod(self.dir, 0o755)
        for sub in ("run", "state", "tls"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o755)
        self.maildir_root = make_shared_dir(os.path.join(self.dir, "mail"))
        tls = os.path.join(self.dir, "tls")
        self.ca_file, self.ca_key = make_ca(tls)
        make_server_cert(tls, self.ca_file, self.ca_key)
        self.passwd_dir = os.path.join(self.dir, "passwd.d")
        os.makedirs(self.passwd_dir, mode=0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.instance = "ingestd-test-%d-%s" % (
            os.getpid(), os.path.basename(os.path.dirname(self.dir)))
        self._fmt = dict(
            dir=self.dir, instance=self.instance,
            listen=", ".join(localhost_addresses()), login_user=login_user,
            internal_user=internal_user, internal_group=internal_group,
            mail_uid=self.mail_uid, mail_gid=self.mail_gid,
            process_limit=process_limit, client_limit=client_limit,
            auth_failure_delay=auth_failure_delay,
            login_extra=login_extra, service_extra=service_extra,
            penalty="" if auth_penalty else NO_AUTH_PENALTY)
        self.users = {}
        self.pid = None
        self._seq = 0
        if start:
            self.start()

    def __repr__(self):
        return "Dovecot(%s)" % self.dir

    host = "127.0.0.1"

    @property
    def ports(self):
        return {"pop3": self.pop3_port, "pop3s": self.pop3s_port}

    def _write_conf(self):
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(pop3_port=self.pop3_port,
                                        pop3s_port=self.pop3s_port,
                                        **self._fmt))

    def start(self):
        last = None
        for _ in range(5):  # a free port can be taken before we bind it
            self.pop3_port = free_port()
            self.pop3s_port = free_port()
            if self.pop3_port == self.pop3s_port:
                continue
            self._write_conf()
            # The daemon keeps its stdio open, so no pipes here.
            errfile = os.path.join(self.dir, "dovecot.stderr")
            with open(errfile, "wb") as err:
                try:
                    rc = subprocess.call([self.dovecot, "-c", self.conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, timeout=30)
                except subprocess.TimeoutExpired:
                    rc = -1
            if rc == 0:
                try:
                    wait_port(self.pop3s_port, timeout=20)
                    wait_port(self.pop3_port, timeout=20)
                except HarnessError as e:
                    last = str(e)
                    self._stop_master()
                    continue
                self.pid = self._master_pid()
                _register(self)
                return
            last = _tail(errfile, 20)
            self._stop_master()
        raise HarnessError("dovecot did not start: %s\n%s"
                           % (last, _tail(self.log, 30)))

    def _master_pid(self):
        try:
            with open(os.path.join(self.dir, "run", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _stop_master(self):
        pid = self._master_pid()
        if pid is not None:
            stop_pid(pid, "dovecot")

    def stop(self):
        """Stop the master we started (by its PID file) and its children."""
        if self.pid is not None:
            stop_pid(self.pid, "dovecot")
            self.pid = None
        _unregister(self)

    def log_tail(self, n=40):
        return _tail(self.log, n)

    # ---- the server's log: what clients really did

    def _log_matches(self, regex, want, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.log, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                text = ""
            found = [m for m in (regex.search(l) for l in text.splitlines())
                     if m]
            if len(found) >= want or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def logins(self, user, want=0, timeout=10):
        """Successful logins of user: [{"method": "PLAIN"|"APOP"|...,
        "tls": bool}], oldest first.  USER/PASS shows as PLAIN.  Waits up
        to timeout seconds for at least want of them to be logged."""
        rx = re.compile(r"pop3-login: Info: Login: user=<%s>, method=(\S+?),"
                        r".*?(, TLS|, secured)?$" % re.escape(user))
        return [{"method": m.group(1), "tls": m.group(2) == ", TLS"}
                for m in self._log_matches(rx, want, timeout)]

    def sessions(self, user, want=0, timeout=10):
        """Ended POP3 sessions of user: [{"reason", "retr", "retr_bytes",
        "deleted", "messages"}], oldest first (after waiting as logins)."""
        rx = re.compile(r"pop3\(%s\)<[^:]*: Info: (.*?) ?top=\d+/\d+ "
                        r"retr=(\d+)/(\d+) del=(\d+)/(\d+)"
                        % re.escape(user))
        return [{"reason": m.group(1), "retr": int(m.group(2)),
                 "retr_bytes": int(m.group(3)), "deleted": int(m.group(4)),
                 "messages": int(m.group(5))}
                for m in self._log_matches(rx, want, timeout)]

    # ---- mailboxes

    def maildir(self, user):
        return os.path.join(self.maildir_root, user, "Maildir")

    def add_user(self, name, password):
        """Add a mailbox with an empty Maildir."""
        if (not name or name.startswith(".") or any(
                c in name for c in ":/\n\0%") or "\n" in password):
            raise ValueError("bad user name or password")
        if name in self.users:
            raise ValueError("user %s exists" % name)
        self.users[name] = password
        path = os.path.join(self.passwd_dir, name)
        with open(path + ".tmp", "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (name, password))
        os.chmod(path + ".tmp", 0o644)
        os.rename(path + ".tmp", path)
        home = os.path.join(self.maildir_root, name)
        for d in (home, self.maildir(name)) + tuple(
                os.path.join(self.maildir(name), s)
                for s in ("cur", "new", "tmp")):
            make_shared_dir(d)
            os.chmod(d, 0o700 if d != home else 0o755)
        return name

    def deliver(self, user, raw):
        """Put exactly the bytes raw into user's Maildir/new, the way an
        MDA does (write to tmp/, rename to new/).  Returns the file name."""
        self._seq += 1
        now = time.time()
        name = "%d.M%06dP%dQ%06d.ingestd-test" % (
            int(now), int((now % 1) * 1e6), os.getpid(), self._seq)
        md = self.maildir(user)
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(raw)
        if is_root():
            os.chown(tmp, self.mail_uid, self.mail_gid)
        os.chmod(tmp, 0o600)
        os.rename(tmp, os.path.join(md, "new", name))
        return name

    def _files(self, user):
        md = self.maildir(user)
        out = []
        for sub in ("cur", "new"):
            d = os.path.join(md, sub)
            for n in os.listdir(d):
                out.append((n.split(":")[0], os.path.join(d, n)))
        out.sort()
        return out

    def count(self, user):
        """Messages in the mailbox now (cur/ and new/)."""
        return len(self._files(user))

    def messages(self, user):
        """The stored bytes of each message, in delivery order."""
        out = []
        for _, path in self._files(user):
            with open(path, "rb") as f:
                out.append(f.read())
        return out

    def clear(self, user):
        for _, path in self._files(user):
            os.unlink(path)

    def account(self, user, **over):
        """A config account for user on this server (implicit TLS)."""
        a = {"name": user, "host": self.host, "port": self.pop3s_port,
             "tls": "implicit", "ca_file": self.ca_file, "user": user,
             "password": self.users[user], "auth": "auto",
             "delete": "after-archive"}
        a.update(over)
        if a.get("tls") == "starttls" and "port" not in over:
            a["port"] = self.pop3_port
        return a

    def ssl_context(self):
        return client_ssl_context(self.ca_file)


# --------------------------------------------------------------------------
# A POP3 client that keeps the exact bytes RETR delivers

def client_ssl_context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class RawPOP3Mixin:
    def retr_raw(self, which):
        """RETR which; return the message after dot-unstuffing, without the
        terminating line, with the line endings the server sent."""
        resp = self._shortcmd("RETR %s" % which)
        parts = []
        while True:
            line = self.file.readline()
            if not line:
                raise poplib.error_proto("connection closed in RETR")
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            parts.append(line)
        return resp, b"".join(parts)

    def auth_plain(self, user, password):
        tok = base64.b64encode(b"\0" + user.encode() + b"\0"
                               + password.encode()).decode()
        return self._shortcmd("AUTH PLAIN " + tok)

    def uidl_map(self):
        """{message number: uidl}."""
        out = {}
        for line in self.uidl()[1]:
            n, u = line.decode().split(" ", 1)
            out[int(n)] = u
        return out


class POP3(RawPOP3Mixin, poplib.POP3):
    pass


class POP3_SSL(RawPOP3Mixin, poplib.POP3_SSL):
    pass


def pop3_connect(port, user=None, password=None, mode="implicit",
                 ca_file=None, host="127.0.0.1", auth="user", timeout=30):
    """Log in to a POP3 server on loopback.  mode: implicit|starttls|none;
    auth: user|apop|plain.  Returns the client object."""
    if mode == "implicit":
        p = POP3_SSL(host, port, context=client_ssl_context(ca_file),
                     timeout=timeout)
    else:
        p = POP3(host, port, timeout=timeout)
        if mode == "starttls":
            p.stls(client_ssl_context(ca_file))
    if user is not None:
        if auth == "user":
            p.user(user)
            p.pass_(password)
        elif auth == "apop":
            p.apop(user, password)
        elif auth == "plain":
            p.auth_plain(user, password)
        else:
            raise ValueError(auth)
    return p


def fetch_all(port, user, password, ca_file, mode="implicit",
              host="127.0.0.1"):
    """Read-only session (no DELE): [(uidl, bytes RETR delivered)] in
    message-number order."""
    p = pop3_connect(port, user, password, mode=mode, ca_file=ca_file,
                     host=host)
    try:
        out = []
        for n, uidl in sorted(p.uidl_map().items()):
            out.append((uidl, p.retr_raw(n)[1]))
        return out
    finally:
        p.quit()


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------
# ingestd config and invocation

def _conf_str(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def _conf_value(v):
    if isinstance(v, dict):  # a group: oauth = { ... }
        return "{ %s }" % " ".join("%s = %s;" % (k, _conf_value(x))
                                   for k, x in v.items())
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):  # a group, e.g. delete = { after_days = 3; }
        return "{ %s }" % " ".join("%s = %s;" % (k, _conf_value(x))
                                   for k, x in v.items())
    return _conf_str(v)


def config_text(accounts, state_dir, conninfo=None, workers=2,
                poll_interval=300, extra=None):
    """The libconfig text of an ingestd config.  accounts: list of dicts
    with the account settings (name, host, port, tls, ca_file, user,
    password or password_file, auth, delete, ...).  conninfo None leaves
    `database` out (ingestd then runs its own cluster under state_dir).
    extra: more top-level settings {name: value}."""
    lines = ["# written by tests/integ/harness.py",
             "state_dir = %s;" % _conf_str(state_dir)]
    if conninfo is not None:
        lines.append("database = { conninfo = %s; };" % _conf_str(conninfo))
    lines.append("workers = %d;" % workers)
    lines.append("poll_interval = %d;" % poll_interval)
    for k, v in (extra or {}).items():
        lines.append("%s = %s;" % (k, _conf_value(v)))
    lines.append("accounts = (")
    for i, a in enumerate(accounts):
        fields = "\n".join("    %s = %s;" % (k, _conf_value(v))
                           for k, v in a.items())
        lines.append("  {\n%s\n  }%s" % (fields,
                                         "," if i < len(accounts) - 1
                                         else ""))
    lines.append(");")
    return "\n".join(lines) + "\n"


def write_config(path, accounts, state_dir, conninfo=None, workers=2,
                 poll_interval=300, extra=None, owner=None):
    """Write an ingestd config file (mode 0600, since it holds passwords).
    owner: a user name to chown it to (as root)."""
    os.makedirs(state_dir, exist_ok=True)
    text = config_text(accounts, state_dir, conninfo, workers,
                       poll_interval, extra)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    if owner is not None and is_root():
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def ingestd_binary():
    path = os.environ.get("INGESTD")
    if not path:
        build = os.environ.get("BUILD") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
        path = os.path.join(build, "ingestd")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise HarnessError("ingestd binary %s not found: run `make` first"
                           % path)
    return path


def run_ingestd(args, timeout=120, binary=None, user=None, env=None):
    """Run ingestd with args (a list); returns (rc, stdout, stderr) as
    text.  On timeout the process group it started is killed and
    HarnessError raised."""
    cmd = [binary or ingestd_binary()] + list(args)
    kw = {}
    if user is not None and is_root():
        pw = pwd.getpwnam(user)
        kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, env=env, **kw)
    group = _ProcessGroup(p)
    _register(group)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        group.stop()
        out, err = p.communicate(timeout=30)
        raise HarnessError("`%s` still running after %ds; killed.\n"
                           "stdout:\n%s\nstderr:\n%s" % (
                               " ".join(cmd), timeout,
                               out.decode(errors="replace")[-4000:],
                               err.decode(errors="replace")[-4000:]))
    except BaseException:  # the test's time limit, ^C: leave nothing behind
        group.stop()
        raise
    finally:
        _unregister(group)
    return (p.returncode, out.decode(errors="replace"),
            err.decode(errors="replace"))


class _ProcessGroup:
    """A child started in its own session: stopping it kills that process
    group (the child and anything it started), and nothing else."""

    def __init__(self, popen):
        self.popen = popen

    def __repr__(self):
        return "process group %d" % self.popen.pid

    def stop(self):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


# --------------------------------------------------------------------------
# Demo server (deploy/demo.sh)

def _here():
    return os.path.dirname(os.path.abspath(__file__))


def demo_server(demo_dir, state_dir=None, owner=None):
    """Start a Dovecot POP3S server under demo_dir/server with sample mail
    in four mailboxes, and write demo_dir/ingestd.conf for it."""
    sys.path.insert(0, _here())
    import mailgen
    demo_dir = os.path.abspath(demo_dir)
    os.makedirs(demo_dir, exist_ok=True)
    os.chmod(demo_dir, 0o755)
    srv = os.path.join(demo_dir, "server")
    demo_stop(demo_dir)  # a server left from an earlier run
    if os.path.exists(srv):
        shutil.rmtree(srv)
    os.makedirs(srv)
    os.chmod(srv, 0o755)
    dc = Dovecot(srv, auth_failure_delay="2 secs")
    gen = mailgen.MailGen(seed=int(time.time()))
    fixed = mailgen.MailGen(seed=2024)
    shared = fixed.message(kind="alternative", size=120_000,
                           subject="Quarterly report (sent to everyone)")
    boxes = {
        "sales": ("implicit", "after-archive"),
        "support": ("starttls", "after-archive"),
        "legal": ("implicit", "never"),
        "billing": ("implicit", "after-archive"),
    }
    accounts = []
    for i, (name, (tls, delete)) in enumerate(boxes.items()):
        dc.add_user(name, "demo-%s-pw" % name)
        msgs = [fixed.message() for _ in range(3)]  # same every run
        msgs += [gen.message() for _ in range(4 + i)]  # new every run
        if name == "billing":
            msgs.append(gen.message(kind="attachment", size=3_000_000))
        if name == "support":
            msgs.append(gen.message(kind="dots"))
        msgs.append(shared)
        for m in msgs:
            dc.deliver(name, m)
        accounts.append(dc.account(name, tls=tls, delete=delete))
    state_dir = state_dir or os.path.join(demo_dir, "state")
    conf = os.path.join(demo_dir, "ingestd.conf")
    write_config(conf, accounts, state_dir, conninfo=None, owner=owner)
    if owner is not None and is_root():
        pw = pwd.getpwnam(owner)
        os.chown(state_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(state_dir, 0o700)
    with open(os.path.join(demo_dir, "server.pid"), "w") as f:
        f.write("%d\n" % dc.pid)
    # The server outlives this process: demo-stop ends it.
    _unregister(dc)
    return conf


def demo_stop(demo_dir):
    path = os.path.join(os.path.abspath(demo_dir), "server.pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    stopped = stop_pid(pid, "dovecot")
    os.unlink(path)
    return stopped


# --------------------------------------------------------------------------

def self_test():
    tmp = tempfile.mkdtemp(prefix="ingestd-harness-")
    try:
        pg = Postgres(tmp)
        assert pg.psql("SELECT 1, NULL, 'x'") == [["1", None, "x"]]
        dc = Dovecot(tmp)
        dc.add_user("alice", "secret")
        raw = b"Subject: hello\n\n.line\nbody\n"
        dc.deliver("alice", raw)
        got = fetch_all(dc.pop3s_port, "alice", "secret", dc.ca_file)
        assert [m for _, m in got] == [raw.replace(b"\n", b"\r\n")], got
        print("ok: postgres at %s, dovecot pop3 %d pop3s %d"
              % (pg.conninfo, dc.pop3_port, dc.pop3s_port))
    finally:
        cleanup_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    if len(argv) >= 2 and argv[1] == "self-test":
        install_signal_cleanup()
        self_test()
        return 0
    if len(argv) >= 3 and argv[1] == "demo-server":
        owner = argv[3] if len(argv) > 3 else None
        print(demo_server(argv[2], owner=owner))
        return 0
    if len(argv) == 3 and argv[1] == "demo-stop":
        demo_stop(argv[2])
        return 0
    print(__doc__.split("Command line")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
