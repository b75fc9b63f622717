"""Configuration writers for the programs ingestd is measured against.

Each writer takes the accounts to drain (dicts with user, password), the
server (host, port, ca_file), a Maildir to deliver to and a working
directory, writes the program's configuration files there, and returns
the command lines to run: one entry per process, all run at once.

Every peer verifies the server certificate against the test CA, speaks
implicit TLS (POP3S), deletes what it fetched from the server, and
delivers into a local Maildir.  Apart from that, each keeps its own
defaults, so it is measured as its users run it.  The test certificate
names `localhost` and the IP address 127.0.0.1; fetchmail and getmail6
match host names only, so they are told the name to expect
(`sslcommonname`, `ssl_cert_hostname`) while connecting to 127.0.0.1.
"""

import os


def _write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def make_maildir(path):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


def _q(s):
    """A double-quoted string for mpop's and fetchmail's config files."""
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


# --------------------------------------------------------------------------
# mpop: one config file per process, one account per mailbox; `mpop -a`
# polls the accounts of its file one after another.  Pipelining is on by
# default (mpop uses it when the server announces PIPELINING).

def mpop(accounts, server, maildir, workdir, processes=1):
    make_maildir(maildir)
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    uidls = os.path.join(workdir, "uidls")
    os.makedirs(uidls, exist_ok=True)
    cmds = []
    for p in range(processes):
        part = accounts[p::processes]
        if not part:
            continue
        lines = [
            "# mpop configuration written by tests/bench/peers.py",
            "defaults",
            "host %s" % server["host"],
            "port %d" % server["port"],
            "tls on",
            "tls_starttls off",
            "tls_trust_file %s" % server["ca_file"],
            "keep off",
            "delivery maildir %s" % maildir,
            "uidls_file %s/%%U" % uidls,
        ]
        for a in part:
            lines += ["", "account %s" % a["user"],
                      "user %s" % a["user"],
                      "password %s" % _q(a["password"])]
        conf = _write_secret(os.path.join(workdir, "mpoprc.%d" % p),
                             "\n".join(lines) + "\n")
        cmds.append(["mpop", "--quiet", "-C", conf, "--all-accounts"])
    return cmds, {"HOME": home}


# --------------------------------------------------------------------------
# fetchmail: one process, one `poll` entry with a `user` line per mailbox,
# polled one after another.  With no MTA on the machine, fetchmail hands
# each message to an MDA; maildir_mda (tests/bench/maildir_mda.c) is the
# cheapest correct Maildir delivery (tmp/, fsync, rename into new/).

def fetchmail(accounts, server, maildir, workdir, mda):
    make_maildir(maildir)
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    lines = [
        "# fetchmail configuration written by tests/bench/peers.py",
        "set no bouncemail",
        "set no syslog",
        "defaults",
        "  protocol pop3",
        "  port %d" % server["port"],
        "  ssl sslcertck sslcertfile %s sslproto %s sslcommonname %s"
        % (_q(server["ca_file"]), _q("TLS1.2+"), _q("localhost")),
        "  fetchall nokeep",
        "  mda %s" % _q("%s %s" % (mda, maildir)),
        "poll %s" % server["host"],
    ]
    for a in accounts:
        lines.append("  user %s there with password %s is %s here"
                     % (_q(a["user"]), _q(a["password"]),
                        _q(a["local_user"])))
    rc = _write_secret(os.path.join(workdir, "fetchmailrc"),
                       "\n".join(lines) + "\n")
    cmd = ["fetchmail", "--silent", "--nodetach", "--nosyslog",
           "-f", rc, "-i", os.path.join(workdir, "fetchids")]
    return [cmd], {"HOME": home}


# --------------------------------------------------------------------------
# getmail6: one rc file per mailbox (its way to hold many accounts), all
# given to one `getmail` run, which polls them one after another.
#
# getmail6 (6.18.11) delivers each message from a forked child and only
# then installs its SIGCHLD handler; a child that exits first is never
# noticed, and getmail waits out its socket timeout (`timeout`, 180 s by
# default), then abandons the rest of that mailbox ("waiting child pid N
# timed out").  On these 2 loaded cores that happens about once in 500
# messages.  The benchmark sets `timeout = 10` (ample on loopback and at
# 50 ms), so each occurrence costs 10 s rather than 3 minutes, and runs
# getmail again while messages are left, as the next poll would.

def getmail(accounts, server, maildir, workdir):
    make_maildir(maildir)
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    state = os.path.join(workdir, "state")
    os.makedirs(state, exist_ok=True)
    cmd = ["getmail", "--getmaildir", state]
    for a in accounts:
        text = "\n".join([
            "# getmail6 configuration written by tests/bench/peers.py",
            "[retriever]",
            "type = SimplePOP3SSLRetriever",
            "server = %s" % server["host"],
            "port = %d" % server["port"],
            "username = %s" % a["user"],
            "password = %s" % a["password"],
            "ca_certs = %s" % server["ca_file"],
            "ssl_cert_hostname = localhost",
            "timeout = 10",
            "",
            "[destination]",
            "type = Maildir",
            "path = %s/" % maildir.rstrip("/"),
            "",
            "[options]",
            "verbose = 0",
            "read_all = true",
            "delete = true",
            "",
        ])
        rc = _write_secret(os.path.join(workdir, "%s.getmailrc"
                                        % a["user"]), text)
        cmd += ["--rcfile", rc]
    return [cmd], {"HOME": home}
