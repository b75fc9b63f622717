/*
 * The SQL text of the store (see index.h).  The schema is in
 * migrations/0001_create_archive.sql.
 *
 * Parameters are typed with casts so that the server never has to guess,
 * whatever format (text or binary) store/db*.c send them in.
 */
#include "store/index.h"

/*
 * Every session: durability is the whole point (a session sends DELE
 * because COMMIT returned), so never inherit synchronous_commit = off from
 * a role or database default.  The timeouts keep a lock held elsewhere
 * from blocking a statement forever.  ingestd.os_user is the actor's OS
 * user, which rows record next to session_user (migrations 0009, 0011).
 * set_config() rather than SET, because SET takes no parameters.
 */
const char index_session_setup[] =
    "SELECT pg_catalog.set_config('synchronous_commit', 'on', false),"
    " pg_catalog.set_config('statement_timeout', $1::text, false),"
    " pg_catalog.set_config('lock_timeout', $2::text, false),"
    " pg_catalog.set_config('ingestd.os_user', $3::text, false)";

/* What the SET above left, as a pooler may have lost it. */
const char index_sync_commit_show[] =
    "SELECT pg_catalog.current_setting('synchronous_commit')";

/*
 * The advisory lock (key: "ingestd" in ASCII) serializes concurrent
 * migrators, including the first CREATE SCHEMA, which would otherwise race
 * on the catalog's unique indexes.
 */
#define MIGRATION_LOCK "SELECT pg_advisory_xact_lock(29676262917370980)"

const char index_migration_bootstrap[] =
    MIGRATION_LOCK ";"
    "CREATE SCHEMA IF NOT EXISTS ingestd;"
    "CREATE TABLE IF NOT EXISTS ingestd.schema_migrations ("
    " name text PRIMARY KEY,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/*
 * A migration may rewrite a large table, or wait for another process's
 * migration to end: the session's timeouts, meant for the archive's
 * short statements, would fail it half-way at every start.
 */
const char index_migration_no_timeouts[] =
    "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0";

const struct index_stmt index_stmts[INDEX_COUNT] = {
	[INDEX_ACCOUNT_INSERT] = {
		"account_insert", "INSERT account",
		"INSERT INTO ingestd.account (name) VALUES ($1::text)"
		" ON CONFLICT (name) DO NOTHING",
		1 },
	[INDEX_ACCOUNT_SELECT] = {
		"account_select", "SELECT account",
		"SELECT id FROM ingestd.account WHERE name = $1::text",
		1 },
	/* Binary results: the hashes arrive as raw bytes. */
	[INDEX_KNOWN_SELECT] = {
		"known_select", "SELECT known",
		"SELECT d.uidl, d.sha256, d.head_sha256, d.list_size, b.size,"
		"  d.server_deleted_at IS NOT NULL"
		" FROM ingestd.delivery d"
		" JOIN ingestd.blob b ON b.sha256 = d.sha256"
		" WHERE d.account_id = $1::bigint AND d.uidl IS NOT NULL"
		/* Only what may still be on the server: a UIDL seen again
		 * after its message was deleted belongs to a new message,
		 * and a long-drained mailbox loads nothing. */
		"  AND d.server_deleted_at IS NULL",
		1 },
	/*
	 * Returns a row only when this transaction inserted the blob: only
	 * then are its chunks written.  A concurrent inserter of the same
	 * blob makes this wait for its outcome, so the chunks are written
	 * exactly once whoever wins.
	 */
	[INDEX_BLOB_INSERT] = {
		"blob_insert", "INSERT blob",
		"INSERT INTO ingestd.blob"
		" (sha256, size, stored_size, dict_id, chunks)"
		" VALUES ($1::bytea, $2::bigint, $3::bigint,"
		"  nullif($4::bigint, 0), $5::integer)"
		" ON CONFLICT (sha256) DO NOTHING RETURNING true",
		5 },
	[INDEX_CHUNK_INSERT] = {
		"chunk_insert", "INSERT blob_chunk",
		"INSERT INTO ingestd.blob_chunk (sha256, seq, data)"
		" VALUES ($1::bytea, $2::integer, $3::bytea)",
		3 },
	/*
	 * The conflict target is the delivery_identity index.  A row comes
	 * back only when the delivery is new, or was taken for gone from
	 * the server and is back: a restored mailbox lists it again, and
	 * the message just downloaded is byte for byte the one archived
	 * under that UIDL.  It is on the server again, so it is known at
	 * the next poll (proven by TOP, not downloaded again); the LIST
	 * size and header hash are today's, which that proof compares.
	 */
	[INDEX_DELIVERY_INSERT] = {
		"delivery_insert", "INSERT delivery",
		"INSERT INTO ingestd.delivery AS d"
		" (account_id, uidl, sha256, list_size, head_sha256)"
		" VALUES ($1::bigint, $2::text, $3::bytea, $4::bigint,"
		"  $5::bytea)"
		" ON CONFLICT (account_id, (coalesce(uidl, '')), sha256)"
		" DO UPDATE SET server_deleted_at = NULL,"
		"  list_size = EXCLUDED.list_size,"
		"  head_sha256 = EXCLUDED.head_sha256"
		" WHERE d.server_deleted_at IS NOT NULL RETURNING true",
		5 },
	/*
	 * $2 and $3 are parallel arrays: one statement for a whole poll's
	 * deletions, however many (a per-row UPDATE grew with the mailbox).
	 * The join is written as the delivery_identity index expression.
	 */
	[INDEX_MARK_DELETED] = {
		"mark_deleted", "UPDATE delivery (deleted)",
		"UPDATE ingestd.delivery d SET server_deleted_at = now()"
		" FROM unnest($2::text[], $3::bytea[]) AS x(uidl, sha256)"
		" WHERE d.account_id = $1::bigint"
		"  AND coalesce(d.uidl, '') = coalesce(x.uidl, '')"
		"  AND d.sha256 = x.sha256 AND d.server_deleted_at IS NULL",
		3 },
	/*
	 * $2 is every UIDL the server listed.  Deliveries without a UIDL
	 * cannot be reconciled and are left alone.
	 */
	[INDEX_MARK_ABSENT] = {
		"mark_absent", "UPDATE delivery (absent)",
		"UPDATE ingestd.delivery d SET server_deleted_at = now()"
		" WHERE d.account_id = $1::bigint"
		"  AND d.server_deleted_at IS NULL AND d.uidl IS NOT NULL"
		"  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(uidl)"
		"   WHERE p.uidl = d.uidl)",
		2 },
	[INDEX_POLL_INSERT] = {
		"poll_insert", "INSERT poll",
		"INSERT INTO ingestd.poll (account_id, started_at, finished_at,"
		"  outcome, error, listed, fetched, archived, deduplicated,"
		"  deleted, bytes)"
		" VALUES ($1::bigint, to_timestamp($2::float8),"
		"  to_timestamp($3::float8), $4::text, $5::text, $6::bigint,"
		"  $7::bigint, $8::bigint, $9::bigint, $10::bigint,"
		"  $11::bigint)",
		11 },
	[INDEX_ACCOUNT_LIST] = {
		"account_list", "SELECT accounts",
		"SELECT id, name FROM ingestd.account"
		" WHERE $1::text IS NULL OR name = $1::text ORDER BY name",
		1 },
	/*
	 * One page of an account's distinct blobs after the key $2, so that
	 * the caller's callback may use the connection between pages and
	 * memory stays one page whatever the archive's size.  A range scan
	 * of delivery_identity.
	 */
	[INDEX_EACH_MESSAGE] = {
		"each_message", "SELECT deliveries",
		"SELECT encode(d.sha256, 'hex'), b.size,"
		"  coalesce(b.dict_id, 0)"
		" FROM (SELECT DISTINCT sha256 FROM ingestd.delivery"
		"   WHERE account_id = $1::bigint"
		"    AND sha256 > decode($2::text, 'hex')"
		"   ORDER BY sha256 LIMIT $3::bigint) d"
		" JOIN ingestd.blob b ON b.sha256 = d.sha256"
		" ORDER BY d.sha256",
		3 },
	[INDEX_EACH_BLOB] = {
		"each_blob", "SELECT blobs",
		"SELECT encode(sha256, 'hex'), size, coalesce(dict_id, 0)"
		" FROM ingestd.blob WHERE sha256 > decode($1::text, 'hex')"
		" ORDER BY sha256 LIMIT $2::bigint",
		2 },
	[INDEX_BLOB_SELECT] = {
		"blob_select", "SELECT blob",
		"SELECT chunks, stored_size FROM ingestd.blob"
		" WHERE sha256 = decode($1::text, 'hex')",
		1 },
	/* Binary result: raw chunk bytes, no hex expansion. */
	[INDEX_CHUNK_SELECT] = {
		"chunk_select", "SELECT blob_chunk",
		"SELECT data FROM ingestd.blob_chunk"
		" WHERE sha256 = decode($1::text, 'hex') AND seq = $2::integer",
		2 },
	[INDEX_DICT_SELECT] = {
		"dict_select", "SELECT dict",
		"SELECT data FROM ingestd.dict WHERE id = $1::bigint",
		1 },
	[INDEX_DICT_INSERT] = {
		"dict_insert", "INSERT dict",
		"INSERT INTO ingestd.dict (data) VALUES ($1::bytea)"
		" RETURNING id",
		1 },
	/* Binary result: the id as int8, the bytes raw. */
	[INDEX_DICT_LATEST] = {
		"dict_latest", "SELECT dict (latest)",
		"SELECT id, data FROM ingestd.dict ORDER BY id DESC LIMIT 1",
		0 },
	/*
	 * The LIMIT inside bounds the scan: it stops at the limit-th match
	 * rather than counting the whole archive.
	 */
	[INDEX_SAMPLE_COUNT] = {
		"sample_count", "SELECT blob (count samples)",
		"SELECT count(*) FROM (SELECT 1 FROM ingestd.blob"
		"  WHERE dict_id IS NULL AND size > 0 AND size <= $1::bigint"
		"  LIMIT $2::bigint) s",
		2 },
	/* The most recent first: mail of today teaches most about the mail
	 * of tomorrow.  sha256 breaks ties within one commit. */
	[INDEX_SAMPLE_SELECT] = {
		"sample_select", "SELECT blob (samples)",
		"SELECT encode(sha256, 'hex'), size FROM ingestd.blob"
		" WHERE dict_id IS NULL AND size > 0 AND size <= $1::bigint"
		" ORDER BY created_at DESC, sha256 LIMIT $2::bigint",
		2 },
	[INDEX_MIGRATION_LOCK] = {
		"migration_lock", "lock migrations",
		MIGRATION_LOCK,
		0 },
	[INDEX_MIGRATION_SELECT] = {
		"migration_select", "SELECT schema_migrations",
		"SELECT name FROM ingestd.schema_migrations ORDER BY name",
		0 },
	[INDEX_MIGRATION_INSERT] = {
		"migration_insert", "INSERT schema_migrations",
		"INSERT INTO ingestd.schema_migrations (name) "
		"VALUES ($1::text)",
		1 },
	/*
	 * Read before any DDL, from the catalogs alone (which need no
	 * privilege): whether schema_migrations exists, and whether this
	 * role may migrate: it owns the schema (or is a member of its owner,
	 * or a superuser), or, with no schema yet, may create one.  A role
	 * granted only ingestd_archiver, ingestd_reader, ... (migration
	 * 0011) may not.
	 */
	[INDEX_MIGRATION_STATE] = {
		"migration_state", "SELECT migration state",
		"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
		"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
		"  WHERE n.nspname = 'ingestd'"
		"   AND c.relname = 'schema_migrations'),"
		" coalesce((SELECT pg_catalog.pg_has_role(current_user,"
		"   n.nspowner, 'USAGE') FROM pg_catalog.pg_namespace n"
		"  WHERE n.nspname = 'ingestd'),"
		"  pg_catalog.has_database_privilege("
		"   pg_catalog.current_database(), 'CREATE')),"
		" current_user::text",
		0 },
	[INDEX_DATABASE_SELECT] = {
		"database_select", "SELECT pg_database",
		"SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1::text",
		1 },
	/*
	 * Sent just before COMMIT: if synchronous_commit is off in the session
	 * that commits (a connection pooler in transaction mode may hand the
	 * transaction to a server session that never saw our SET), it is set
	 * on for this transaction alone, so that COMMIT still returns only once
	 * durable.  Any other value is left alone: remote_apply, say, is
	 * stronger than on.  A row comes back only when it had to.
	 */
	[INDEX_SYNC_COMMIT_LOCAL] = {
		"sync_commit_local", "SET LOCAL synchronous_commit",
		"SELECT pg_catalog.set_config('synchronous_commit', 'on', true)"
		" WHERE pg_catalog.current_setting('synchronous_commit')"
		"  = 'off'",
		0 },
	/*
	 * The ledger (migrations/0008_ledger.sql, store/db_ledger.c).  One
	 * sequencer at a time, whichever node runs it: key "ingestdL".
	 */
	[INDEX_LEDGER_LOCK] = {
		"ledger_lock", "lock ledger",
		"SELECT pg_advisory_xact_lock(7308338767734000716)",
		0 },
	[INDEX_LEDGER_SIZE] = {
		"ledger_size", "SELECT ledger size",
		"SELECT coalesce(max(idx) + 1, 0) FROM ingestd.ledger",
		0 },
	/* A page of events, one row per field (or one for none), in order. */
	[INDEX_LEDGER_PENDING] = {
		"ledger_pending", "SELECT ledger_pending",
		"SELECT p.id, p.kind, f.ord, f.val"
		" FROM (SELECT id, kind, fields FROM ingestd.ledger_pending"
		"        ORDER BY id LIMIT $1::bigint) p"
		" LEFT JOIN LATERAL unnest(p.fields) WITH ORDINALITY"
		"  AS f(val, ord) ON true"
		" ORDER BY p.id, f.ord",
		1 },
	[INDEX_LEDGER_PENDING_DELETE] = {
		"ledger_pending_delete", "DELETE ledger_pending",
		"DELETE FROM ingestd.ledger_pending"
		" WHERE id = ANY ($1::bigint[])",
		1 },
	/* A batch of leaves, as arrays (hashes and entries in hex). */
	[INDEX_LEDGER_INSERT] = {
		"ledger_insert", "INSERT ledger",
		"INSERT INTO ingestd.ledger (idx, entry, leaf_hash, kind,"
		" sha256, account, uidl, size, at)"
		" SELECT i, decode(e, 'hex'), decode(l, 'hex'), k,"
		" decode(s, 'hex'), a, u, z, t"
		" FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
		" $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[])"
		" AS x(i, e, l, k, s, a, u, z, t)",
		9 },
	[INDEX_LEDGER_NODE_INSERT] = {
		"ledger_node_insert", "INSERT ledger_node",
		"INSERT INTO ingestd.ledger_node (level, idx, hash)"
		" SELECT l, i, decode(h, 'hex')"
		" FROM unnest($1::integer[], $2::bigint[], $3::text[])"
		" AS x(l, i, h)",
		3 },
	/* Binary results: raw hashes. */
	[INDEX_LEDGER_LEAF_HASH] = {
		"ledger_leaf_hash", "SELECT ledger leaf",
		"SELECT leaf_hash FROM ingestd.ledger WHERE idx = $1::bigint",
		1 },
	[INDEX_LEDGER_NODE_HASH] = {
		"ledger_node_hash", "SELECT ledger_node",
		"SELECT hash FROM ingestd.ledger_node"
		" WHERE level = $1::integer AND idx = $2::bigint",
		2 },
	[INDEX_LEDGER_CHECKPOINT_INSERT] = {
		"ledger_checkpoint_insert", "INSERT ledger_checkpoint",
		"INSERT INTO ingestd.ledger_checkpoint (tree_size, root_hash,"
		" note) VALUES ($1::bigint, $2::bytea, $3::text)",
		3 },
	/* Text results; $1 true: the newest only. */
	[INDEX_LEDGER_CHECKPOINTS] = {
		"ledger_checkpoints", "SELECT ledger_checkpoint",
		"SELECT id, tree_size, encode(root_hash, 'hex'), note"
		" FROM ingestd.ledger_checkpoint"
		" WHERE NOT $1::boolean OR id = (SELECT max(id)"
		"  FROM ingestd.ledger_checkpoint)"
		" ORDER BY tree_size, id",
		1 },
	/* Text results, bytea as hex. */
	[INDEX_LEDGER_ENTRIES] = {
		"ledger_entries", "SELECT ledger",
		"SELECT idx, encode(entry, 'hex'), encode(leaf_hash, 'hex'),"
		" kind, coalesce(encode(sha256, 'hex'), ''),"
		" coalesce(account, ''), coalesce(uidl, ''),"
		" coalesce(size::text, ''), coalesce(at, '')"
		" FROM ingestd.ledger WHERE idx >= $1::bigint"
		" ORDER BY idx LIMIT $2::bigint",
		2 },
	[INDEX_LEDGER_MESSAGE_LEAVES] = {
		"ledger_message_leaves", "SELECT ledger (message)",
		"SELECT idx, encode(entry, 'hex') FROM ingestd.ledger"
		" WHERE sha256 = decode($1::text, 'hex') AND kind = 'ingest'"
		" AND idx < $2::bigint ORDER BY idx",
		2 },
	/*
	 * Deliveries whose ingest entry is missing or says otherwise, and
	 * that no pending event accounts for either.
	 */
	[INDEX_LEDGER_UNLEDGERED] = {
		"ledger_unledgered", "SELECT deliveries not in the ledger",
		"SELECT encode(d.sha256, 'hex'), a.name, coalesce(d.uidl, '')"
		" FROM ingestd.delivery d"
		" JOIN ingestd.account a ON a.id = d.account_id"
		" JOIN ingestd.blob b ON b.sha256 = d.sha256"
		" WHERE NOT EXISTS (SELECT 1 FROM ingestd.ledger l"
		"  WHERE l.sha256 = d.sha256 AND l.kind = 'ingest'"
		"  AND l.account = a.name AND l.uidl = coalesce(d.uidl, '')"
		"  AND l.size = b.size"
		"  AND l.at = ingestd.ledger_time(d.archived_at))"
		" AND NOT EXISTS (SELECT 1 FROM ingestd.ledger_pending p"
		"  WHERE p.kind = 'ingest' AND p.fields = ARRAY['account',"
		"  a.name, 'uidl', coalesce(d.uidl, ''), 'sha256',"
		"  encode(d.sha256, 'hex'), 'size', b.size::text,"
		"  'archived_at', ingestd.ledger_time(d.archived_at)])"
		" ORDER BY 1, 2, 3",
		0 },
	/*
	 * Ingest entries whose delivery is gone without a purge's tombstone
	 * (sequenced or pending).
	 */
	[INDEX_LEDGER_ORPHANS] = {
		"ledger_orphans", "SELECT ledger entries without delivery",
		"SELECT encode(l.sha256, 'hex'), l.account, l.uidl, l.idx"
		" FROM ingestd.ledger l WHERE l.kind = 'ingest'"
		" AND NOT EXISTS (SELECT 1 FROM ingestd.delivery d"
		"  JOIN ingestd.account a ON a.id = d.account_id"
		"  WHERE d.sha256 = l.sha256 AND a.name = l.account"
		"  AND coalesce(d.uidl, '') = l.uidl)"
		" AND NOT EXISTS (SELECT 1 FROM ingestd.ledger t"
		"  WHERE t.sha256 = l.sha256 AND t.kind = 'delete'"
		"  AND t.account = l.account AND t.uidl = l.uidl"
		"  AND t.idx > l.idx)"
		" AND NOT EXISTS (SELECT 1 FROM ingestd.ledger_pending p"
		"  WHERE p.kind = 'delete' AND p.fields[2] = l.account"
		"  AND p.fields[4] = l.uidl"
		"  AND p.fields[6] = encode(l.sha256, 'hex'))"
		" ORDER BY 1, l.idx",
		0 },
	/* Deletions outside a purge, sequenced or pending. */
	[INDEX_LEDGER_UNAUTHORIZED] = {
		"ledger_unauthorized", "SELECT unauthorized deletions",
		"SELECT coalesce(encode(sha256, 'hex'), ''), kind"
		" FROM ingestd.ledger WHERE kind LIKE '%-unauthorized'"
		" UNION ALL"
		" SELECT coalesce(fields[array_position(fields, 'sha256') + 1],"
		"  ''), kind FROM ingestd.ledger_pending"
		" WHERE kind LIKE '%-unauthorized'"
		" ORDER BY 1",
		0 },
	/* Any other event, in the caller's transaction (0008). */
	[INDEX_LEDGER_APPEND] = {
		"ledger_append", "ledger_append()",
		"SELECT ingestd.ledger_append($1::text, VARIADIC $2::text[])",
		2 },
	/*
	 * Stored subtrees that are not the hash of their two children (a
	 * leaf's hash for level 1), or whose children are missing: with the
	 * leaves checked against their entries, the whole stored tree is.
	 */
	[INDEX_LEDGER_BAD_NODES] = {
		"ledger_bad_nodes", "SELECT ledger_node (check)",
		"SELECT n.level, n.idx FROM ingestd.ledger_node n"
		" CROSS JOIN LATERAL (SELECT"
		"  CASE WHEN n.level = 1 THEN (SELECT leaf_hash"
		"   FROM ingestd.ledger WHERE idx = 2 * n.idx)"
		"  ELSE (SELECT hash FROM ingestd.ledger_node"
		"   WHERE level = n.level - 1 AND idx = 2 * n.idx) END AS l,"
		"  CASE WHEN n.level = 1 THEN (SELECT leaf_hash"
		"   FROM ingestd.ledger WHERE idx = 2 * n.idx + 1)"
		"  ELSE (SELECT hash FROM ingestd.ledger_node"
		"   WHERE level = n.level - 1 AND idx = 2 * n.idx + 1) END"
		"  AS r) c"
		" WHERE c.l IS NULL OR c.r IS NULL"
		" OR sha256('\\x01'::bytea || c.l || c.r) <> n.hash"
		" ORDER BY n.level, n.idx LIMIT 100",
		0 },
	[INDEX_LEDGER_NODE_COUNTS] = {
		"ledger_node_counts", "SELECT ledger_node (counts)",
		"SELECT level, count(*), max(idx) FROM ingestd.ledger_node"
		" GROUP BY level ORDER BY level",
		0 },
	/* An account's refusals (migration 0003), for the plan. */
	[INDEX_REFUSAL_SELECT] = {
		"refusal_select", "SELECT refusal",
		"SELECT uidl, list_size, reason = 'too_large', size_limit,"
		"  failures, floor(extract(epoch FROM last_seen))::bigint"
		" FROM ingestd.refusal WHERE account_id = $1::bigint",
		1 },
	/* Once per message a poll refused: failures counts the polls. */
	[INDEX_REFUSAL_RECORD] = {
		"refusal_record", "INSERT refusal",
		"INSERT INTO ingestd.refusal AS r"
		" (account_id, uidl, list_size, reason, size_limit, error)"
		" VALUES ($1::bigint, $2::text, $3::bigint, $4::text,"
		"  $5::bigint, $6::text)"
		" ON CONFLICT (account_id, uidl, list_size) DO UPDATE SET"
		"  reason = EXCLUDED.reason, size_limit = EXCLUDED.size_limit,"
		"  error = EXCLUDED.error, failures = r.failures + 1,"
		"  last_seen = now()",
		6 },
	/*
	 * Refusals that no longer hold: the message was archived since
	 * (same UIDL and LIST size), or $2, the server's complete UIDL
	 * listing (NULL: not known), no longer has it.
	 */
	[INDEX_REFUSAL_PRUNE] = {
		"refusal_prune", "DELETE refusal",
		"DELETE FROM ingestd.refusal r"
		" WHERE r.account_id = $1::bigint"
		"  AND (EXISTS (SELECT 1 FROM ingestd.delivery d"
		"    WHERE d.account_id = r.account_id AND d.uidl = r.uidl"
		"     AND d.list_size = r.list_size"
		"     AND d.archived_at >= r.first_seen)"
		"   OR ($2::text[] IS NOT NULL AND NOT EXISTS (SELECT 1"
		"    FROM unnest($2::text[]) AS p(uidl)"
		"    WHERE p.uidl = r.uidl)))",
		2 },
	/* $2 true: needs the operator since now (or since it first did);
	 * false: clears it after a login worked. */
	[INDEX_ACCOUNT_REAUTH] = {
		"account_reauth", "UPDATE account (needs_reauth)",
		"UPDATE ingestd.account SET needs_reauth_since ="
		" CASE WHEN $2::boolean"
		" THEN coalesce(needs_reauth_since, now()) END"
		" WHERE id = $1::bigint"
		" AND (needs_reauth_since IS NULL) = $2::boolean",
		2 },
	/* What the delete policies read (store/db_policy.c); binary. */
	[INDEX_SEEN_SELECT] = {
		"seen_select", "SELECT uidl_seen",
		"SELECT uidl, floor(extract(epoch FROM first_seen_at))::bigint"
		" FROM ingestd.uidl_seen WHERE account_id = $1::bigint",
		1 },
	/* The Date of each message still on the server, from the index. */
	[INDEX_DATES_SELECT] = {
		"dates_select", "SELECT message dates",
		"SELECT DISTINCT d.sha256,"
		"  floor(extract(epoch FROM m.date))::bigint"
		" FROM ingestd.delivery d"
		" JOIN ingestd.message m ON m.sha256 = d.sha256"
		" WHERE d.account_id = $1::bigint"
		"  AND d.server_deleted_at IS NULL AND m.date IS NOT NULL",
		1 },
	/*
	 * $2 is the complete listing, $3 what ingestd deleted from it: their
	 * difference keeps or gets its first-seen time, every other row of
	 * the account goes.  The two parts touch disjoint rows.
	 */
	[INDEX_SEEN_UPDATE] = {
		"seen_update", "UPDATE uidl_seen",
		"WITH gone AS (DELETE FROM ingestd.uidl_seen s"
		"  WHERE s.account_id = $1::bigint"
		"   AND (NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(u)"
		"     WHERE p.u = s.uidl)"
		"    OR EXISTS (SELECT 1 FROM unnest($3::text[]) AS g(u)"
		"     WHERE g.u = s.uidl)))"
		" INSERT INTO ingestd.uidl_seen (account_id, uidl)"
		" SELECT DISTINCT $1::bigint, p.u"
		"  FROM unnest($2::text[]) AS p(u)"
		"  WHERE NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS g(u)"
		"   WHERE g.u = p.u)"
		" ON CONFLICT (account_id, uidl) DO NOTHING",
		3 },
	[INDEX_CAPA_UPSERT] = {
		"capa_upsert", "INSERT account_capa",
		"INSERT INTO ingestd.account_capa"
		" (account_id, expire, login_delay, seen_at)"
		" VALUES ($1::bigint, $2::text, $3::bigint,"
		"  to_timestamp($4::float8))"
		" ON CONFLICT (account_id) DO UPDATE"
		"  SET expire = EXCLUDED.expire,"
		"  login_delay = EXCLUDED.login_delay,"
		"  seen_at = EXCLUDED.seen_at",
		4 },
	[INDEX_CAPA_SELECT] = {
		"capa_select", "SELECT account_capa",
		"SELECT login_delay, floor(extract(epoch FROM seen_at))::bigint"
		" FROM ingestd.account_capa WHERE account_id = $1::bigint"
		"  AND login_delay IS NOT NULL",
		1 },
	[INDEX_LAST_POLL_SELECT] = {
		"last_poll_select", "SELECT poll (latest)",
		"SELECT outcome, coalesce(error, '') FROM ingestd.poll"
		" WHERE account_id = $1::bigint"
		" ORDER BY started_at DESC, id DESC LIMIT 1",
		1 },
	/*
	 * A message's index rows (migrations/0004_index_messages.sql), in one
	 * statement so that they are all or nothing: the message row, then
	 * its addresses and parts from parallel binary arrays, only if the
	 * message row was inserted here (a message indexed already, by a
	 * concurrent commit or reindex, is left as it is).  The text search
	 * vectors are made by the server, with the 'simple' configuration:
	 * words as written, any language.  The subject's is of its first
	 * 65536 characters, which can never pass tsvector's 1 MB limit (the
	 * full text is bounded by the parser, store/mime/text.c).
	 */
	[INDEX_MESSAGE_INSERT] = {
		"message_insert", "INSERT message (index)",
		"WITH m AS ("
		"  INSERT INTO ingestd.message (sha256, parser_version, flags,"
		"   date, date_raw, message_id, in_reply_to, refs, subject,"
		"   subject_raw, list_id, auto_submitted, has_attachment,"
		"   subject_fts, fts)"
		"  VALUES ($1::bytea, $2::integer, $3::text[],"
		"   pg_catalog.to_timestamp($4::bigint), $5::text, $6::text,"
		"   $7::text, $8::text, $9::text, $10::text, $11::text,"
		"   $12::text, $13::boolean,"
		"   pg_catalog.to_tsvector('pg_catalog.simple',"
		"    left(coalesce($9::text, ''), 65536)),"
		"   pg_catalog.to_tsvector('pg_catalog.simple', $14::text))"
		"  ON CONFLICT (sha256) DO NOTHING RETURNING sha256),"
		" a AS ("
		"  INSERT INTO ingestd.message_address"
		"   (sha256, role, pos, address, domain, name)"
		"  SELECT m.sha256, u.role, u.pos::integer, u.address,"
		"   u.domain, u.name"
		"  FROM m, unnest($15::text[], $16::text[], $17::text[],"
		"   $18::text[]) WITH ORDINALITY"
		"   AS u(role, address, domain, name, pos)),"
		" p AS ("
		"  INSERT INTO ingestd.message_part (sha256, path,"
		"   content_type, disposition, filename, size, part_sha256,"
		"   attachment)"
		"  SELECT m.sha256, u.* FROM m, unnest($19::text[],"
		"   $20::text[], $21::text[], $22::text[], $23::bigint[],"
		"   $24::bytea[], $25::boolean[]) AS u(path, content_type,"
		"   disposition, filename, size, part_sha256, attachment))"
		" SELECT true FROM m",
		25 },
	/* Before a reindex rewrites them: an older parser's rows (the
	 * addresses and parts go with them, ON DELETE CASCADE). */
	[INDEX_MESSAGE_DELETE_STALE] = {
		"message_delete_stale", "DELETE message (stale index)",
		"DELETE FROM ingestd.message"
		" WHERE sha256 = $1::bytea AND parser_version < $2::integer",
		2 },
	/*
	 * What reindex has to do, a page at a time in hash order: blobs
	 * without index rows, or with an older parser's.  Keyset paging on
	 * the primary key, so each page costs the same however far along.
	 */
	[INDEX_UNINDEXED_SELECT] = {
		"unindexed_select", "SELECT blobs (unindexed)",
		"SELECT encode(b.sha256, 'hex'), b.size,"
		"  coalesce(b.dict_id, 0)"
		" FROM ingestd.blob b"
		" LEFT JOIN ingestd.message m ON m.sha256 = b.sha256"
		" WHERE b.sha256 > decode($1::text, 'hex')"
		"  AND (m.sha256 IS NULL OR m.parser_version < $3::integer)"
		" ORDER BY b.sha256 LIMIT $2::bigint",
		3 },
	/* How much reindex has to do, for its progress line. */
	[INDEX_UNINDEXED_COUNT] = {
		"unindexed_count", "SELECT blobs (unindexed, count)",
		"SELECT count(*), coalesce(sum(b.size), 0)"
		" FROM ingestd.blob b"
		" LEFT JOIN ingestd.message m ON m.sha256 = b.sha256"
		" WHERE m.sha256 IS NULL OR m.parser_version < $1::integer",
		1 },
};
