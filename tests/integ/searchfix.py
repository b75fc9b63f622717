"""Search fixtures: index rows written straight into the tables of
migrations/0004 (with the account, blob and delivery rows they hang from),
so that the search language can be tested without the indexer.

    fx = Fixture()
    fx.message("m1", size=10240, date="2024-03-01T00:00:00Z",
               subject="Quarterly report", addresses=[("from", "a@b.c")],
               deliveries=[("legal", "u1", "2025-01-02T10:00:00Z")])
    env.pg.psql(fx.sql(), dbname=db)

Deliveries are named by their UIDLs, which a fixture keeps unique, so a
test compares sets of UIDLs.  A message given index=False gets blob and
delivery rows only, like one archived before the index existed.  The
blobs have no chunks (searching never reads them); tests that export
archive real mail instead and add index rows with message_sql().

big_sql(n) generates n messages and deliveries with one INSERT ... SELECT
per table, for plans that must use the indexes, then VACUUM ANALYZE.
"""

import hashlib


def lit(v):
    """v as an SQL literal (test data only)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def key_sha(key):
    return hashlib.sha256(("searchfix:" + key).encode()).hexdigest()


def message_sql(sha, date=None, message_id=None, subject=None,
                list_id=None, addresses=(), parts=(), text=""):
    """The index rows of one message (blob sha, hex): message,
    message_address (role, address, name) in order, message_part (path,
    content_type, disposition, filename, size, attachment)."""
    has_att = any(p[5] for p in parts)
    names = " ".join(a[2] or "" for a in addresses)
    addrs = " ".join(a[1] for a in addresses)
    files = " ".join(p[3] or "" for p in parts)
    full = "\n".join([subject or "", names, addrs, text, files])
    out = ["INSERT INTO ingestd.message (sha256, parser_version, date,"
           " message_id, subject, list_id, has_attachment, subject_fts,"
           " fts) VALUES (decode(%s, 'hex'), 1, %s::timestamptz, %s, %s,"
           " %s, %s, to_tsvector('simple', %s), to_tsvector('simple', %s))"
           ";" % (lit(sha), lit(date), lit(message_id), lit(subject),
                  lit(list_id), lit(has_att), lit(subject or ""),
                  lit(full))]
    for pos, (role, addr, name) in enumerate(addresses):
        out.append("INSERT INTO ingestd.message_address (sha256, role, pos,"
                   " address, domain, name) VALUES (decode(%s, 'hex'), %s,"
                   " %d, %s, %s, %s);" % (
                       lit(sha), lit(role), pos, lit(addr),
                       lit(addr.rsplit("@", 1)[1] if "@" in addr else ""),
                       lit(name)))
    for (path, ctype, disp, fname, size, att) in parts:
        out.append("INSERT INTO ingestd.message_part (sha256, path,"
                   " content_type, disposition, filename, size,"
                   " part_sha256, attachment) VALUES (decode(%s, 'hex'),"
                   " %s, %s, %s, %s, %d, sha256(%s::bytea), %s);" % (
                       lit(sha), lit(path), lit(ctype), lit(disp),
                       lit(fname), size, lit(sha + path), lit(att)))
    return "\n".join(out)


class Fixture:
    def __init__(self):
        self.accounts = []
        self.messages = []  # (key, sha, kwargs)
        self.uidls = {}  # uidl -> key

    def message(self, key, size, deliveries, index=True, **kw):
        """deliveries: [(account, uidl, archived_at)]."""
        sha = key_sha(key)
        for acct, uidl, _ in deliveries:
            assert uidl not in self.uidls, "fixture: uidl %s twice" % uidl
            self.uidls[uidl] = key
            if acct not in self.accounts:
                self.accounts.append(acct)
        self.messages.append((key, sha, size, deliveries, index, kw))
        return sha

    def sha(self, key):
        return key_sha(key)

    def sql(self):
        out = ["BEGIN;"]
        for a in self.accounts:
            out.append("INSERT INTO ingestd.account (name) VALUES (%s);"
                       % lit(a))
        for key, sha, size, deliveries, index, kw in self.messages:
            out.append("INSERT INTO ingestd.blob (sha256, size, stored_size,"
                       " chunks) VALUES (decode(%s, 'hex'), %d, 0, 0);"
                       % (lit(sha), size))
            for acct, uidl, at in deliveries:
                out.append(
                    "INSERT INTO ingestd.delivery (account_id, uidl, sha256,"
                    " list_size, head_sha256, archived_at) SELECT id, %s,"
                    " decode(%s, 'hex'), %d, sha256('h'::bytea), %s FROM"
                    " ingestd.account WHERE name = %s;" % (
                        lit(uidl), lit(sha), size, lit(at), lit(acct)))
            if index:
                out.append(message_sql(sha, **kw))
        out.append("COMMIT;")
        return "\n".join(out)


def big_sql(n, accounts=500):
    """n generated messages, one delivery each (every tenth has a second
    in another account), with five addresses, a text part, and every 500th
    an attachment: selective values exist for every operator (see
    test_search.test_explain_uses_indexes).  Words come in frequencies
    from every message to a handful, as in real mail, so that ANALYZE
    keeps the statistics the planner estimates a rare word with; VACUUM
    empties the GIN indexes' pending lists, as autovacuum does."""
    sha = "sha256(('big' || g)::bytea)"
    return """
BEGIN;
INSERT INTO ingestd.account (name)
  SELECT 'acct' || a FROM generate_series(0, {acc} - 1) a;
INSERT INTO ingestd.blob (sha256, size, stored_size, chunks)
  SELECT {sha}, 1000 + (g * 7919) % 200000, 100, 0
    FROM generate_series(1::bigint, {n}) g;
INSERT INTO ingestd.delivery (account_id, uidl, sha256, list_size,
    head_sha256, archived_at)
  SELECT (SELECT min(id) FROM ingestd.account) + g % {acc}, 'b' || g, {sha},
         0, sha256('h'::bytea),
         timestamptz '2020-01-01 00:00:00+00' + g * interval '37 minutes'
    FROM generate_series(1::bigint, {n}) g
  UNION ALL
  SELECT (SELECT min(id) FROM ingestd.account) + (g + 1) % {acc}, 'c' || g,
         {sha}, 0, sha256('h'::bytea),
         timestamptz '2020-01-01 00:00:00+00' + g * interval '37 minutes'
    FROM generate_series(10::bigint, {n}, 10) g;
INSERT INTO ingestd.message (sha256, parser_version, date, message_id,
    subject, list_id, has_attachment, subject_fts, fts)
  SELECT {sha}, 1, timestamptz '2015-01-01 00:00:00+00' + g * interval
         '3 hours', 'mid' || g || '@big.example',
         's' || (g % 3000) || ' t' || (g % 7),
         CASE WHEN g % 100 = 0 THEN 'list' || (g % 1000) || '.example' END,
         g % 500 = 0,
         to_tsvector('simple', 's' || (g % 3000) || ' t' || (g % 7)),
         to_tsvector('simple', 'w' || (g % 5000) || ' x' || (g % 4999)
             || ' k' || (g % 500) || ' common words')
    FROM generate_series(1::bigint, {n}) g;
INSERT INTO ingestd.message_address (sha256, role, pos, address, domain)
  SELECT {sha}, r.role, 0,
         'user' || ((g * r.k) % 9000) || '@dom' || ((g * r.k) % 3000)
             || '.example',
         'dom' || ((g * r.k) % 3000) || '.example'
    FROM generate_series(1::bigint, {n}) g,
         (VALUES ('from', 1), ('to', 3), ('cc', 7), ('bcc', 11),
                 ('delivered-to', 13)) r(role, k);
INSERT INTO ingestd.message_part (sha256, path, content_type, disposition,
    filename, size, part_sha256, attachment)
  SELECT {sha}, '1', 'text/plain', NULL, NULL, 100, NULL, false
    FROM generate_series(1::bigint, {n}) g
  UNION ALL
  SELECT {sha}, '2', 'application/pdf', 'attachment', 'file' || g || '.pdf',
         1000, sha256(('part' || g)::bytea), true
    FROM generate_series(500::bigint, {n}, 500) g;
COMMIT;
VACUUM ANALYZE;
""".format(n=n, acc=accounts, sha=sha)
