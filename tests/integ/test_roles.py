"""Database roles (migration 0011, README "Database roles"), against the
run's real PostgreSQL and Dovecot.

The schema is migrated by its owner (the cluster's bootstrap role); then
login roles made members of ingestd_archiver, ingestd_reader,
ingestd_custodian and ingestd_purger run ingestd with their own conninfo,
and each is refused what its group does not grant.  Roles belong to the
cluster: each test makes its own, by unique names, and drops them.
"""

import os

import harness
from test_retention import Ret, raw


def _psql_as(ar, role, sql):
    """(exit code, stderr) of sql run as role in the test's database."""
    p = harness.run([ar.pg.psql_bin, "-X", "-A", "-t", "-q",
                     "-v", "ON_ERROR_STOP=1", "-d", _conninfo(ar, role),
                     "-c", sql], check=False)
    return p.returncode, p.stderr.decode()


def _conninfo(ar, role):
    return ar.conninfo.replace("user=%s" % ar.pg.superuser, "user=%s" % role)


class Roles:
    """Login roles, one per group asked for, dropped by drop()."""

    def __init__(self, ar):
        self.ar = ar
        self.made = []

    def make(self, group):
        name = self.ar.env.unique("login_" + group)
        self.ar.pg.psql('CREATE ROLE "%s" LOGIN IN ROLE ingestd_%s'
                        % (name, group), dbname="postgres")
        self.made.append(name)
        return name

    def owner(self, createrole):
        """A login role, not a superuser, that owns the test's database
        (so the schema it migrates)."""
        name = self.ar.env.unique("owner")
        self.ar.pg.psql('CREATE ROLE "%s" LOGIN %s; '
                        'ALTER DATABASE "%s" OWNER TO "%s";'
                        % (name, "CREATEROLE" if createrole else "",
                           self.ar.dbname, name), dbname="postgres")
        self.owner_name = name
        return name

    def drop(self):
        o = getattr(self, "owner_name", None)
        if o is not None:
            su = self.ar.pg.superuser
            self.ar.pg.psql('REASSIGN OWNED BY "%s" TO "%s"; '
                            'DROP OWNED BY "%s";' % (o, su, o),
                            dbname=self.ar.dbname)
            self.ar.pg.psql('REASSIGN OWNED BY "%s" TO "%s"; '
                            'DROP ROLE "%s";' % (o, su, o),
                            dbname="postgres")
        for name in self.made:
            self.ar.pg.psql('DROP ROLE IF EXISTS "%s"' % name,
                            dbname="postgres")


def _as(ar, role):
    """Point ar's config at role."""
    su = ar.conninfo
    ar.conninfo = _conninfo(ar, role)
    try:
        ar.configure()
    finally:
        ar.conninfo = su


ENSURE_GROUPS = """
DO $$
DECLARE r text;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ingestd_reader')
  THEN
    CREATE ROLE ingestd_reader NOLOGIN;
  END IF;
  FOREACH r IN ARRAY ARRAY['ingestd_archiver', 'ingestd_custodian',
      'ingestd_purger'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN IN ROLE ingestd_reader', r);
    END IF;
  END LOOP;
END $$;
"""


def test_each_role_does_only_its_part(env):
    ar = Ret(env, "roles")
    held = [raw("held one"), raw("held two")]
    loose = raw("loose one")
    a = ar.mailbox(held)
    b = ar.mailbox([loose])
    roles = Roles(ar)
    try:
        # The owner, not a superuser, may create roles: 0011 creates the
        # groups if they are missing.
        owner = roles.owner(createrole=True)
        _as(ar, owner)
        ar.ok("migrate")
        assert ar.sql("SELECT nspowner::regrole::text FROM pg_namespace "
                      "WHERE nspname = 'ingestd';") == [[owner]]
        # A standing hold, made before anything is archived: the
        # archiver's commits must add to it (a trigger it may not write
        # for).
        ar.ok("hold", "add", "standing", "--reason", "before", "--query",
              "account:" + a)
        arch = roles.make("archiver")
        reader = roles.make("reader")
        cust = roles.make("custodian")
        purger = roles.make("purger")
        key = os.path.join(ar.dir, "ledger.key")
        ar.extra_conf = ('ledger = { signing_key = "%s"; key_name = '
                         '"archive.test/ingestd"; };\n' % key)
        _as(ar, owner)
        ar.ok("ledger", "keygen", "--out", key)

        # The archiver archives and indexes, and the ledger has the events.
        _as(ar, arch)
        summ = ar.once()
        assert summ[a]["archived"] == 2 and summ[b]["archived"] == 1, summ
        assert len(ar.deliveries()) == 3
        rows = ar.sql("SELECT DISTINCT actor_role, actor_os <> '' "
                      "FROM delivery;")
        assert rows == [[arch, "t"]], rows
        assert ar.sql("SELECT DISTINCT actor_role FROM poll;") == [[arch]]
        assert ar.sql("SELECT DISTINCT actor_role, actor_os <> '' FROM "
                      "deliveries UNION SELECT DISTINCT actor_role, "
                      "actor_os <> '' FROM polls;") == [[arch, "t"]]
        assert ar.sql("SELECT count(*) FROM message;") == [["3"]]
        assert ar.sql("SELECT count(*) FROM ledger_pending "
                      "WHERE kind = 'ingest';") == [["3"]]
        assert ar.sql("SELECT count(*) FROM hold_member m JOIN hold h "
                      "ON h.id = m.hold_id WHERE h.name = 'standing';") \
            == [["2"]]

        # It sequences the ledger and signs checkpoints (run does).
        ar.ok("ledger", "checkpoint")
        assert ar.sql("SELECT count(*) FROM ledger WHERE kind = 'ingest';") \
            == [["3"]]
        assert ar.sql("SELECT count(*) FROM ledger_pending;") == [["0"]]

        # ... and may change nothing it wrote, nor any hold, policy or
        # ledger row.
        refused = [
            "UPDATE ingestd.blob_chunk SET data = data",
            "UPDATE ingestd.blob SET size = size",
            "DELETE FROM ingestd.blob_chunk",
            "DELETE FROM ingestd.blob",
            "TRUNCATE ingestd.blob CASCADE",
            "UPDATE ingestd.delivery SET uidl = 'x'",
            "UPDATE ingestd.delivery SET archived_at = now()",
            "UPDATE ingestd.delivery SET sha256 = sha256",
            "DELETE FROM ingestd.delivery",
            "TRUNCATE ingestd.delivery CASCADE",
            "UPDATE ingestd.message SET subject = 'x'",
            "DELETE FROM ingestd.message",
            "UPDATE ingestd.ledger SET kind = kind",
            "DELETE FROM ingestd.ledger",
            "TRUNCATE ingestd.ledger",
            "UPDATE ingestd.ledger_pending SET kind = kind",
            "DELETE FROM ingestd.ledger_checkpoint",
            "UPDATE ingestd.hold SET reason = 'x'",
            "DELETE FROM ingestd.hold",
            "TRUNCATE ingestd.hold",
            "DELETE FROM ingestd.hold_member",
            "TRUNCATE ingestd.hold_scope",
            "INSERT INTO ingestd.hold_release (hold_id, reason) "
            "SELECT id, 'x' FROM ingestd.hold",
            "UPDATE ingestd.policy_version SET keep = '0d'",
            "DELETE FROM ingestd.policy_version",
            "TRUNCATE ingestd.policy_version",
            "TRUNCATE ingestd.retention_event",
            "SELECT ingestd.hold_release('standing', 'x')",
            "SELECT ingestd.policy_add('p', '0d', 'archive', NULL, "
            "'0d'::interval)",
            "SELECT ingestd.purge_execute_batch(repeat('0', 64), 0, 1)",
        ]
        for sql in refused:
            rc, err = _psql_as(ar, arch, sql)
            assert rc != 0 and "permission denied" in err, \
                "archiver: %s: exit %d, %s" % (sql, rc, err)
        assert ar.sql("SELECT count(*) FROM hold_release;") == [["0"]]
        # What it needs: a message seen gone from the server.
        rc, err = _psql_as(ar, arch, "UPDATE ingestd.delivery SET "
                           "server_deleted_at = server_deleted_at")
        assert rc == 0, err

        # Even the owner may not rewrite message bytes or a delivery's
        # identity, nor remove chunks outside a purge (triggers).
        for sql in ["UPDATE ingestd.blob_chunk SET data = data",
                    "UPDATE ingestd.blob SET size = size",
                    "DELETE FROM ingestd.blob_chunk",
                    "TRUNCATE ingestd.blob_chunk",
                    "UPDATE ingestd.delivery SET uidl = uidl",
                    "UPDATE ingestd.delivery SET archived_at = now()",
                    "UPDATE ingestd.delivery SET actor_role = 'x'"]:
            rc, err = _psql_as(ar, owner, sql)
            assert rc != 0 and "is refused" in err, \
                "owner: %s: exit %d, %s" % (sql, rc, err)
        rc, err = _psql_as(ar, owner, "UPDATE ingestd.delivery SET "
                           "server_deleted_at = server_deleted_at")
        assert rc == 0, err

        # The reader searches, verifies and reads the views; writes
        # nothing.
        _as(ar, reader)
        out = ar.ok("search", "account:" + a)
        assert len([l for l in out.splitlines() if a in l]) == 2, out
        ar.ok("verify")
        ar.ok("ledger", "verify")
        out = ar.ok("export", "--out", os.path.join(ar.dir, "export"))
        assert "exported 3 messages" in out, out
        sha = ar.deliveries()[0]["sha256"]
        ar.ok("prove", sha, "--out", os.path.join(ar.dir, "proof.json"))
        rc, err = _psql_as(ar, reader, "SELECT count(*) FROM "
                           "ingestd.deliveries")
        assert rc == 0, err
        for sql in ["INSERT INTO ingestd.account (name) VALUES ('x')",
                    "UPDATE ingestd.delivery SET server_deleted_at = now()",
                    "SELECT ingestd.hold_add('h', 'r', ARRAY['account'], "
                    "ARRAY['x'], NULL, NULL)"]:
            rc, err = _psql_as(ar, reader, sql)
            assert rc != 0 and "permission denied" in err, \
                "reader: %s: exit %d, %s" % (sql, rc, err)

        # The custodian adds holds (a query hold too, which compiles a
        # function: no CREATE on the schema needed) and policies; each
        # event names it.
        _as(ar, cust)
        ar.ok("hold", "add", "matter-17", "--reason", "Smith v. Acme",
              "--account", a)
        ar.ok("hold", "add", "by-query", "--reason", "r", "--query",
              "subject:held")
        ar.ok("policy", "add", "loose", "--keep", "0d", "--match",
              "account:" + b)
        ar.ok("hold", "release", "by-query", "--reason", "not needed")
        assert ar.sql("SELECT released_by_role FROM holds "
                      "WHERE name = 'by-query';") == [[cust]]
        ev = ar.sql("SELECT kind, actor_role, actor_os FROM retention_events "
                    "WHERE actor_role = '%s' ORDER BY id;" % cust)
        assert [e[0] for e in ev] == ["hold-added", "hold-added",
                                      "policy-version", "hold-released"], ev
        assert all(e[2] != "" for e in ev), ev
        assert ar.sql("SELECT entry LIKE '%% role=%s %%' FROM "
                      "retention_events WHERE kind = 'hold-added' "
                      "AND actor_role = '%s' LIMIT 1;" % (cust, cust)) \
            == [["t"]]
        rc, out, err = ar.run("purge", "--plan", "--out",
                              os.path.join(ar.dir, "cust.jsonl"))
        assert rc != 0 and "permission denied" in err, ar.context()

        # The archiver may not purge; the purger may.
        _as(ar, arch)
        rc, out, err = ar.run("purge", "--plan", "--out",
                              os.path.join(ar.dir, "arch.jsonl"))
        assert rc != 0 and "permission denied" in err, ar.context()
        _as(ar, purger)
        h, lines = ar.plan()
        assert [l["account"] for l in lines] == [b], lines
        rc, out, err = ar.run("purge", "--execute", h)
        assert rc == 0, ar.context()
        assert sorted(r["account"] for r in ar.deliveries()) == [a, a]
        ev = ar.sql("SELECT DISTINCT actor_role FROM retention_events "
                    "WHERE kind IN ('purge-planned', 'delivery-purged', "
                    "'purge-executed');")
        assert ev == [[purger]], ev
    finally:
        roles.drop()


def test_pending_migrations_refuse_a_role_that_may_not_apply_them(env):
    ar = Ret(env, "rolep")
    a = ar.mailbox([raw("pending one")])
    roles = Roles(ar)
    try:
        # An owner without CREATEROLE migrates once the groups exist (an
        # administrator made them, README, Database roles).
        ar.pg.psql(ENSURE_GROUPS, dbname="postgres")
        owner = roles.owner(createrole=False)
        _as(ar, owner)
        ar.ok("migrate")
        arch = roles.make("archiver")
        # As if this ingestd were newer than the schema.
        last = ar.sql("SELECT max(name) FROM schema_migrations;")[0][0]
        assert last.startswith("0011"), last
        ar.sql("DELETE FROM schema_migrations WHERE name = '%s';" % last)
        _as(ar, arch)
        rc, out, err = ar.run("once")
        assert rc == 3, ar.context()
        assert ("migrations 0011.. are pending, and role %s may not apply "
                "them: run `ingestd migrate` as the schema owner" % arch) \
            in err, ar.context()
        assert ar.deliveries() == [] and a
        rc, out, err = ar.run("migrate")
        assert rc == 3 and "migrations 0011.. are pending" in err, \
            ar.context()
        # Nothing pending: the archiver starts without any DDL.
        ar.sql("INSERT INTO schema_migrations (name) VALUES ('%s');" % last)
        ar.once()
        assert len(ar.deliveries()) == 1
    finally:
        roles.drop()
