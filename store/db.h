/*
 * PostgreSQL access: store/db*.c are the only users of libpq.  Each thread
 * that talks to the database owns its own struct db; calls block, so they
 * run on the main (scheduler) thread and the committer thread, never on a
 * worker.  All SQL is parameterized; the statements live in index.c.
 *
 * The calls are grouped below by the file that holds them: the connection
 * (db.c), the schema (db_migrate.c), what a poll writes (db_archive.c),
 * export and verify (db_read.c), dictionaries (db_dict.c).
 */
#ifndef STORE_DB_H
#define STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/known.h"

struct db;
struct mime_meta;
struct spool;

/* ---- the connection: db.c ---- */

/*
 * Every session's statement_timeout and lock_timeout, in seconds, so that
 * a lock held elsewhere (a stuck transaction, an operator's LOCK TABLE)
 * can block no statement, and so no commit, forever.  Generous: a batch
 * sends 1 MiB chunks, perhaps over a slow link, and COMMIT waits for its
 * fsync.  A statement cancelled by either fails like any other, as a
 * temporary error.  Migrations run without them (db_migrate()).
 */
#define DB_STATEMENT_TIMEOUT	300
#define DB_LOCK_TIMEOUT		60

/*
 * Connects (conninfo: a libpq keyword string or URI, never logged), sets
 * synchronous_commit = on and the timeouts above for the session, and
 * checks that synchronous_commit took (db_check_sync_commit()).  NULL with
 * err filled ("database: connect: ...", "database: session setup: ...")
 * on failure.
 */
struct db *db_connect(const char *conninfo, char *err, size_t errlen);
void db_close(struct db **db);
/*
 * The last error, "database: <what>: <server message>", e.g.
 * "database: INSERT blob: ..."; valid until the next call.
 */
const char *db_error(const struct db *db);
/* The SQLSTATE of the last error, "" if it had none (not the server's). */
const char *db_sqlstate(const struct db *db);
/*
 * Whether the last error is the server refusing a value it was sent:
 * SQLSTATE class 22 (data exception), 23 (integrity constraint
 * violation) or 54 (program limit exceeded: an index row too big, too
 * many columns).  Sending the same values again fails the same way, so the
 * caller should find the values at fault rather than wait and retry.
 * Anything else (a lost connection, a server shutting down, a timeout, a
 * deadlock) may well pass when tried again.
 */
bool db_error_data(const struct db *db);
/*
 * Sets this session's statement_timeout and lock_timeout, in seconds (0:
 * none), now and after every reconnection; 0 or -1.  For callers that
 * need other values than DB_STATEMENT_TIMEOUT and DB_LOCK_TIMEOUT, such as
 * tests that must see a timeout in seconds.
 */
int db_set_timeouts(struct db *db, unsigned statement_s, unsigned lock_s);
/*
 * Checks that a COMMIT on this session returns only once its WAL is
 * flushed locally: synchronous_commit must not be off (on, remote_apply,
 * remote_write and local all flush locally first).  A connection pooler
 * can lose the SET that db_connect() makes, so db_connect() and every
 * reconnection run this.  0, or -1 with the error set.
 */
int db_check_sync_commit(struct db *db);
/*
 * Re-establishes the connection (always a new one); 0 or -1.  Other calls
 * reconnect by themselves when they find the connection broken: before
 * they start, and once more when a statement outside a transaction meets
 * a connection that died since the last call (a database restart).
 */
int db_reconnect(struct db *db);
/* Whether the connection is up as far as libpq knows. */
bool db_connected(const struct db *db);

/* ---- the schema: db_migrate.c ---- */

/*
 * Creates database dbname through the maintenance connection conninfo_admin
 * (e.g. dbname=postgres) unless it exists; 0 or -1 with err filled.  For the
 * embedded cluster.
 */
int db_create_database(const char *conninfo_admin, const char *dbname,
    char *err, size_t errlen);

/*
 * Applies the embedded migrations not yet recorded in
 * ingestd.schema_migrations, each in its own transaction under an advisory
 * lock, so concurrent ingestd processes are safe; *applied_r counts them.
 * Without the session's timeouts: a migration may rightly take long, or
 * wait long for another process's.  With none pending it runs no DDL, so
 * a role that may not migrate (README, Database roles) gets through; with
 * some pending, such a role gets -1 and an error naming the first and
 * `ingestd migrate`.
 */
int db_migrate(struct db *db, int *applied_r);

/* ---- what a poll writes, and what it reads first: db_archive.c ---- */

/* The id of the named account, creating the row if needed. */
int db_account_id(struct db *db, const char *name, int64_t *id_r);

/*
 * Records whether the account needs the operator to renew its OAuth grant
 * (account_status.needs_reauth; migration 0006): set keeps the time it
 * was first found so, clear forgets it.  0, or -1 with db_error().
 */
int db_account_reauth(struct db *db, int64_t account_id, bool needs);

/*
 * Adds to k what is archived for the account: every delivery that has a
 * UIDL (one without cannot be looked up by one), server-deleted or not.
 */
int db_known_load(struct db *db, int64_t account_id, struct known *k);

/*
 * One message to archive: its blob, stored once whoever else holds the same
 * bytes, and its delivery row.  The fields up to spool are the caller's,
 * borrowed for the call; those after are db_commit_messages()'s answer.
 */
struct db_commit_row {
	int64_t account_id;
	const char *uidl;		/* NULL if the server has no UIDL */
	uint64_t list_size;		/* the size LIST gave */
	/* What the pipe made of it (struct pipe_result). */
	unsigned char sha256[32];
	unsigned char head_sha256[32];
	uint64_t size;			/* archived (uncompressed) bytes */
	uint64_t stored_size;		/* compressed bytes in the spool */
	int64_t dict_id;		/* zstd dictionary, 0 for none */
	struct spool *spool;		/* read, never freed */
	/*
	 * The message's index rows, written with its blob when the blob is
	 * new: meta's (NULL: none), or with index_refused a minimal row that
	 * says the server would not take meta's.
	 */
	const struct mime_meta *meta;
	bool index_refused;
	/* Out. */
	bool blob_existed;
	bool delivery_existed;
	char error[256];
};

/*
 * In one transaction: each distinct blob once (ON CONFLICT DO NOTHING, its
 * chunks streamed from the spool in 1 MiB pieces), then the delivery of
 * each row.  Returns 0 only once COMMIT has returned; then each row's
 * blob_existed and delivery_existed say whether its bytes, and its delivery
 * row, were already stored.  Spools are read, never freed.  Safe to repeat
 * after any failure: nothing is duplicated.
 *
 * Read-back: the compressed bytes of each new blob are decompressed (with
 * the blob's dictionary) as they are sent, and their SHA-256 and size must
 * be the row's, or the transaction is not committed.  That catches a
 * compressor, memory or spool fault while the server still holds the
 * message.  A blob already stored was checked when it was first stored.
 * COMMIT also runs with synchronous_commit on, whatever a pooler did to
 * the session.
 *
 * On -1 the transaction was rolled back (or its outcome is unknown, if the
 * connection dropped during COMMIT).  A row that can never be committed
 * (its spool unreadable or shorter than stored_size, an unstorable UIDL,
 * bytes that do not read back) has its error filled; the others have
 * error[0] == '\0', so a caller can drop the bad rows and retry the rest.
 * When no row is named but db_error_data() is true, the server refused a
 * value of some row: commit fewer rows at a time to find it.
 */
int db_commit_messages(struct db *db, struct db_commit_row *rows, size_t n);

/* A message the server confirmed deleted (+OK to QUIT). */
struct db_deleted {
	const char *uidl;	/* may be NULL */
	unsigned char sha256[32];
};

/*
 * Sets server_deleted_at = now(), in one transaction, for the given
 * deliveries that do not have it yet (matched on UIDL and hash, so the
 * other message under a reused UIDL keeps its mark).  Idempotent.
 */
int db_mark_deleted(struct db *db, int64_t account_id,
    const struct db_deleted *d, size_t n);

/*
 * Reconciles: deliveries of the account not yet marked deleted whose UIDL
 * is not among present[] were removed from the server by someone (or by a
 * QUIT whose outcome we never recorded): mark them.  present[] must be the
 * server's complete UIDL listing; deliveries without a UIDL are left alone.
 */
int db_mark_absent(struct db *db, int64_t account_id,
    const char *const *present, size_t n);

/*
 * Refusals (migration 0003): messages a poll refused, by listing identity,
 * so that the plan skips them at later polls (ingestd/plan.h).
 *
 * db_refusals_load() adds to k an entry per refusal of the account (uidl,
 * list_size, refused, size_limit, failures, last_refused).
 */
int db_refusals_load(struct db *db, int64_t account_id, struct known *k);

/* A message a poll refused. */
struct db_refusal {
	const char *uidl;	/* as the archive spells it */
	uint64_t list_size;
	enum known_refused reason; /* KNOWN_TOO_LARGE or KNOWN_FAILED */
	uint64_t size_limit;	/* the bound in force, in bytes */
	const char *error;	/* why, as logged */
};

/*
 * Records each of r[0, n): a new row, or one more failure of a row there
 * (reason, size_limit and error are then the latest).  Then drops the
 * account's refusals that no longer hold: archived since under the same
 * UIDL and LIST size, or, when present is not NULL (the server's complete
 * UIDL listing, as for db_mark_absent()), no longer listed.
 */
int db_refusals_record(struct db *db, int64_t account_id,
    const struct db_refusal *r, size_t n, const char *const *present,
    size_t npresent);

struct db_poll {
	int64_t account_id;
	time_t started, finished;
	const char *outcome;	/* "ok", "temporary", "permanent" */
	const char *error;	/* NULL when ok */
	uint64_t listed, fetched, archived, deduplicated, deleted;
	uint64_t bytes;
};

/* Inserts a poll row; finished 0 for unknown.  An outcome other than the
 * three above is refused by the schema. */
int db_poll_record(struct db *db, const struct db_poll *p);

/* ---- delete policies and RFC 2449 signals: db_policy.c ---- */

struct facts;

/*
 * Adds to f the account's first-seen time of each UIDL (uidl_seen) and the
 * Date, from the index (ingestd.message), of each message still on the
 * server that has one.
 */
int db_facts_load(struct db *db, int64_t account_id, struct facts *f);

/*
 * After a poll with a complete listing present[] (UIDLs, as the archive
 * spells them): each one gets a first-seen time of now unless it has one,
 * except those ingestd deleted (d, confirmed by QUIT); every other UIDL of
 * the account loses its time, so a reused UIDL starts a new clock.
 */
int db_seen_update(struct db *db, int64_t account_id,
    const char *const *present, size_t n, const struct db_deleted *d,
    size_t nd);

/*
 * Records what CAPA said after the login at time at: expire as the server
 * wrote it ("NEVER" or digits; NULL: not advertised), login_delay in
 * seconds (-1: not advertised).
 */
int db_capa_record(struct db *db, int64_t account_id, const char *expire,
    int64_t login_delay, time_t at);
/*
 * The latest LOGIN-DELAY recorded for the account and when its login was;
 * *login_delay_r = -1 when there is none.
 */
int db_capa_load(struct db *db, int64_t account_id, int64_t *login_delay_r,
    time_t *at_r);
/*
 * The outcome ("ok", "temporary", "permanent"; "" if never polled) and
 * error ("" if none) of the account's latest poll, into the buffers.
 */
int db_last_poll(struct db *db, int64_t account_id, char *outcome,
    size_t outcomelen, char *error, size_t errorlen);

/* ---- export and verify: db_read.c ---- */

/* One archived message, for export and verify. */
struct db_message {
	const char *account;
	const char *sha256_hex;
	uint64_t size;
	int64_t dict_id;
};

/* Calls cb for each distinct (account, blob); account NULL for all (an
 * account that does not exist is an error).
 * cb returns 0 to go on, -1 to stop (db_each_message then returns -1).
 * Rows are fetched a page at a time, in (account, sha256) order, so cb may
 * use db itself (e.g. db_blob_read); m and its strings last until cb
 * returns. */
int db_each_message(struct db *db, const char *account,
    int (*cb)(void *arg, const struct db_message *m), void *arg);

/* Like db_each_message, once per stored blob whoever holds it (also blobs
 * no delivery refers to); m->account is NULL. */
int db_each_blob(struct db *db,
    int (*cb)(void *arg, const struct db_message *m), void *arg);

/*
 * Streams a blob's compressed chunks in order to cb, one query per chunk so
 * memory stays one chunk.  Fails if a chunk is missing or the total is not
 * the recorded stored_size.  cb returns 0 to go on, -1 to stop (then -1).
 */
int db_blob_read(struct db *db, const char *sha256_hex,
    int (*cb)(void *arg, const void *p, size_t n), void *arg);

/* ---- the message index, for reindex: db_index.c ---- */

/* One message's index rows; see struct db_commit_row's meta. */
struct db_index_row {
	unsigned char sha256[32];
	const struct mime_meta *meta;
	bool refused;
};

/*
 * In one transaction: for each row, the message's index rows replace any
 * an older parser wrote; rows a parser of this version wrote (a concurrent
 * commit, another reindex) are kept.  Safe to repeat.
 */
int db_index_store(struct db *db, const struct db_index_row *rows,
    size_t n);

/*
 * Calls cb for each blob without index rows of this parser version, in
 * hash order, a page at a time (cb may use db); m->account is NULL.  cb
 * returns 0 to go on, -1 to stop (then -1 too).
 */
int db_each_unindexed(struct db *db,
    int (*cb)(void *arg, const struct db_message *m), void *arg);
/* How many blobs db_each_unindexed() would give, and their bytes. */
int db_unindexed_count(struct db *db, uint64_t *n_r, uint64_t *bytes_r);

/* ---- dictionaries, and the blobs they are trained on: db_dict.c ---- */

/* A zstd dictionary by id; *p_r is the caller's to free. */
int db_dict_load(struct db *db, int64_t id, void **p_r, size_t *n_r);
/* Stores a zstd dictionary; *id_r is what pipe_result.dict_id refers to. */
int db_dict_store(struct db *db, const void *p, size_t n, int64_t *id_r);
/*
 * The newest dictionary (highest id), whoever stored it.  Returns 0 with
 * *id_r = 0 and *p_r = NULL when there is none; otherwise *p_r is the
 * caller's to free.
 */
int db_dict_latest(struct db *db, int64_t *id_r, void **p_r, size_t *n_r);

/*
 * Blobs stored without a dictionary whose size is from 1 to max_size: what
 * a dictionary is trained on.  db_sample_count() counts them, stopping at
 * limit, so its cost stays bounded however large the archive.
 * db_sample_blobs() calls cb for at most limit of them, the most recent
 * first; m->account is NULL and m->dict_id 0.  The rows are fetched before
 * the first call, so cb may use db (db_blob_read); cb returns 0 to go on,
 * -1 to stop (then -1 too).
 */
int db_sample_count(struct db *db, uint64_t max_size, uint64_t limit,
    uint64_t *n_r);
int db_sample_blobs(struct db *db, uint64_t max_size, uint64_t limit,
    int (*cb)(void *arg, const struct db_message *m), void *arg);

/* ---- search: db_search.c ---- */

struct query_sql;

/*
 * Runs a statement from query_compile() (with EXPLAIN in front when
 * explain) and calls cb with each row as it arrives: ncols values, NULL
 * for SQL NULL, valid during the call only.  cb must not use db; it
 * returns 0 to go on, or non-zero to stop (db_search() then returns -1).
 * Returns 0 when every row was seen, -1 with the error set.
 */
int db_search(struct db *db, const struct query_sql *q, bool explain,
    int (*cb)(void *arg, int ncols, const char *const *values), void *arg);

/* ---- how the link to the server is protected: db_transport.c ---- */

enum db_transport {
	DB_TRANSPORT_LOCAL,	/* Unix sockets only */
	DB_TRANSPORT_VERIFIED,	/* TCP with sslmode=verify-full */
	DB_TRANSPORT_INSECURE,	/* TCP, or what ingestd cannot tell, that
				 * whoever is on the path could answer */
};

/*
 * What kind of link conninfo (a keyword string or URI; NULL or "" for
 * libpq's defaults alone) gives, without connecting: every host libpq may
 * try is a Unix socket (host a directory, or empty for libpq's default
 * one); or one at least is TCP (host a name or address, or any hostaddr),
 * which is authenticated only with sslmode=verify-full.  A setting absent
 * from conninfo is taken from the environment (PGHOST, PGHOSTADDR,
 * PGSSLMODE, PGREQUIRESSL, the service PGSERVICE names) or libpq's
 * default, as libpq itself will when it connects; a service named in
 * conninfo is not read, so the link is unknown, and counts as insecure,
 * unless conninfo itself says sslmode=verify-full.
 *
 * Returns 0 with *t_r, and what names the link for messages (the first TCP
 * host and the sslmode, with where each came from; never a password); -1
 * with err filled if libpq cannot parse conninfo, or its hosts and
 * addresses do not pair up.
 */
int db_conninfo_transport(const char *conninfo, enum db_transport *t_r,
    char *what, size_t whatlen, char *err, size_t errlen);

/* ---- the ledger: db_ledger.c ---- */

/* Events sequenced per transaction. */
#define DB_LEDGER_BATCH 5000

/*
 * Gives every pending ledger event its leaf, in event order, under an
 * advisory lock (so several nodes sharing the database never interleave):
 * entry bytes, leaf hash and the complete subtrees it completes, in
 * transactions of at most DB_LEDGER_BATCH events.  *added_r counts the
 * events sequenced, *size_r is the tree size after, root its root.
 */
int db_ledger_sequence(struct db *db, uint64_t *added_r, uint64_t *size_r,
    unsigned char root[32]);

/*
 * Records an event of kind with fields (key/value pairs, in order; see
 * store/ledger.h) as ingestd.ledger_append() does: inside the transaction
 * the caller has open on db (BEGIN ... this ... COMMIT), so the event
 * commits or rolls back with what it records; outside one, on its own.
 * kind and keys are [a-z0-9_-]{1,64}.  0 or -1.
 */
struct ledger_field;
int db_ledger_append(struct db *db, const char *kind,
    const struct ledger_field *fields, size_t n);

/* A merkle_get_fn (store/merkle.h) over the stored tree; arg is the db. */
int db_ledger_get(void *db, unsigned level, uint64_t index,
    unsigned char out[32]);

int db_ledger_checkpoint_store(struct db *db, uint64_t size,
    const unsigned char root[32], const char *note);

struct db_ledger_checkpoint {
	int64_t id;
	uint64_t size;
	char root_hex[65];
	char *note;
};

/*
 * The stored checkpoints by tree size (latest_only: the newest stored
 * one); *cps_r is freed with db_ledger_checkpoints_free().
 */
int db_ledger_checkpoints(struct db *db, bool latest_only,
    struct db_ledger_checkpoint **cps_r, size_t *n_r);
void db_ledger_checkpoints_free(struct db_ledger_checkpoint **cps, size_t n);

/* A leaf as stored: its entry and the columns copied from it. */
struct db_ledger_row {
	uint64_t idx;
	const unsigned char *entry;
	size_t entry_len;
	const char *leaf_hash_hex;
	const char *kind, *sha256_hex, *account, *uidl, *size, *at;
};

/* Calls cb for every leaf in index order, a page at a time; cb returns 0
 * to go on, -1 to stop (then -1). */
int db_ledger_each(struct db *db,
    int (*cb)(void *arg, const struct db_ledger_row *r), void *arg);

/* The ingest leaves of message sha256_hex below tree_size, in order. */
int db_ledger_message_leaves(struct db *db, const char *sha256_hex,
    uint64_t tree_size,
    int (*cb)(void *arg, uint64_t idx, const unsigned char *entry,
	size_t n), void *arg);

/*
 * Checks the stored subtrees of a tree of size leaves: each is the hash of
 * its children (so, the leaves being right, every proof is), and each
 * level holds exactly the complete subtrees it should.  cb is called once
 * per finding (at most 100 bad nodes are named).  0, or -1 if the
 * database failed.
 */
int db_ledger_check_nodes(struct db *db, uint64_t size,
    void (*cb)(void *arg, const char *what), void *arg);

/*
 * Compares the ledger with the archive: deliveries without their ingest
 * entry (or whose entry says otherwise), ingest entries whose delivery is
 * gone without a purge's tombstone, and deletions outside a purge.  cb is
 * called once per finding with the message's sha256 and what is wrong.
 */
int db_ledger_audit(struct db *db,
    void (*cb)(void *arg, const char *sha256_hex, const char *what),
    void *arg);

#endif
