/*
 * Inside the db module: what store/db*.c share, and nothing else includes.
 * db.c keeps the connection and runs statements; db_migrate.c,
 * db_archive.c, db_read.c and db_dict.c each hold one subject's calls and
 * build them from the helpers below.
 *
 * libpq's PGconn and PGresult are named here by their struct tags, which
 * libpq-fe.h declares them with, so that this header need not include it:
 * libpq-fe.h stays in the .c files.
 */
#ifndef STORE_DB_PRIVATE_H
#define STORE_DB_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingestd/base/log.h"
#include "store/hash.h"
#include "store/index.h"

struct db;
struct pg_conn;		/* PGconn */
struct pg_result;	/* PGresult */
struct zdec;

/* Compressed bytes per blob_chunk row; see the migration. */
#define DB_CHUNK	(1024 * 1024)
#define DB_MAXPARAMS	28

/* A command sent in pipeline mode, awaiting its result. */
struct db_pending {
	const char *label;
	bool *rows_r;		/* set to whether it returned a row */
	bool commit;		/* COMMIT: its tag must say so */
};

/*
 * A decompressor kept for read-back, one per dictionary (0: none), so that
 * a dictionary is loaded once per connection rather than once per blob.
 */
struct db_dec {
	int64_t dict_id;
	struct zdec *dec;
	uint64_t used;		/* db->rb_tick of the last batch using it */
};

/* Past this many, decompressors no batch in progress needs are dropped. */
#define DB_DECS		4

struct db {
	struct pg_conn *conn;
	char *conninfo;
	bool prepared[INDEX_COUNT];
	unsigned char *chunk;	/* DB_CHUNK bytes, allocated on first use */
	struct db_pending *q;
	size_t nq, qcap;
	/* The session's statement_timeout and lock_timeout, in seconds. */
	unsigned statement_timeout;
	unsigned lock_timeout;
	/* Read-back of new blobs (db_archive.c). */
	struct db_dec *decs;
	size_t ndecs;
	uint64_t rb_tick;
	struct hash_sha256 rb_hash;	/* ctx NULL until first used */
	uint64_t rb_size;		/* decoded bytes of the blob so far */
	uint64_t rb_want;		/* the blob's size as received */
	char sqlstate[6];
	char error[1024];
};

/*
 * Whether s can be stored as text in a UTF8 database: valid UTF-8 without
 * control characters (db_archive.c).
 */
bool db_text_ok(const char *s);
/* Frees the read-back decompressors and digest (db_close). */
void db_rb_release(struct db *db);

/*
 * Errors.  Each sets db_error() to "database: <what>", which every public
 * call returns -1 with.  db_seterr() formats its own text; db_connerr()
 * gives the connection's error (lost, refused) after label; db_reserr()
 * gives a failed result's primary message after label and keeps its
 * SQLSTATE in db->sqlstate (the others clear it).  A statement cancelled
 * by statement_timeout or lock_timeout says so, with the timeout.
 */
void db_seterr(struct db *db, const char *fmt, ...) LOG_PRINTF(2, 3);
void db_connerr(struct db *db, const char *label);
void db_reserr(struct db *db, const char *label,
    const struct pg_result *res);

/*
 * The parameters of one statement, built in order with db_par_*() after
 * db_par_init().  Numbers are copied; strings and bytes are borrowed until
 * the statement is sent.
 */
struct db_params {
	int n;
	const char *v[DB_MAXPARAMS];
	int len[DB_MAXPARAMS];
	int fmt[DB_MAXPARAMS];
	char num[DB_MAXPARAMS][24];
};

void db_par_init(struct db_params *p);
void db_par_int(struct db_params *p, int64_t x);
/* A bigint column; a value beyond its range fails at the server. */
void db_par_uint(struct db_params *p, uint64_t x);
/* s NULL for SQL NULL. */
void db_par_text(struct db_params *p, const char *s);
/* bytea, sent in binary. */
void db_par_bytes(struct db_params *p, const void *b, size_t n);

/* Element types of binary arrays (pg_type OIDs). */
#define DB_BOOLOID	16
#define DB_BYTEAOID	17
#define DB_INT8OID	20
#define DB_TEXTOID	25

/*
 * A one-dimensional array of elemtype in PostgreSQL's binary form, for
 * db_par_bytes(): elems[i] of lens[i] bytes each (NULL for SQL NULL; an
 * int8 is 8 bytes big-endian, a bool 1 byte).  Returns the caller's
 * buffer, or NULL with the error set if it would not fit a parameter.
 */
unsigned char *db_array(struct db *db, uint32_t elemtype,
    const void *const *elems, const size_t *lens, size_t n,
    size_t *total_r);

/*
 * Queues INDEX_MESSAGE_INSERT (prepared already) for a message's index
 * rows in the pipeline: meta's, or with refused the minimal row that says
 * the server refused them (db_index.c).  0, or -1 with the error set.
 */
struct mime_meta;
int db_index_send(struct db *db, const unsigned char sha256[32],
    const struct mime_meta *meta, bool refused);

/* The big-endian 64-bit integer at p: a bigint column in binary. */
uint64_t db_be64(const char *p);

/*
 * At the start of every public call: clears the error, re-establishes a
 * connection lost since the last call (a database restart) once, and ends
 * a transaction left open by a failure.  0 or -1.
 */
int db_ready(struct db *db);
/* Prepares statement id on this connection unless it already is; 0 or -1. */
int db_prepare(struct db *db, enum index_id id);
/*
 * Runs a prepared statement.  Returns its result, the caller's to PQclear,
 * or NULL with the error set.  binary asks for binary result columns.
 *
 * A connection lost since the last call (a database restart) shows only
 * when it is used.  Outside a transaction the statement simply goes again,
 * once, on a new connection: every statement run that way is idempotent or
 * harmless to repeat.
 */
struct pg_result *db_exec(struct db *db, enum index_id id,
    const struct db_params *p, bool binary);
/* Runs fixed SQL (no parameters) whose result is not needed; 0 or -1. */
int db_simple(struct db *db, const char *label, const char *sql);
/* Ends a failed transaction; the error already set is kept. */
void db_rollback(struct db *db);

/*
 * Pipeline mode, between db_pl_enter() and db_pl_leave().  db_pl_send*()
 * queue commands, db_pl_sync() ends a segment and reads every result up to
 * it.  After an error the server skips the rest of the segment; the first
 * error is the one reported.  Each returns 0 or -1 with the error set.
 *
 * db_pl_send() runs statement id, which must be prepared already (a
 * prepare cannot go into a pipeline); *rows_r, unless rows_r is NULL, is
 * set at db_pl_sync() to whether it returned a row.  db_pl_send_sql() sends
 * BEGIN or COMMIT: no parameters, but the extended protocol of a pipeline
 * (commit true: the tag must then say COMMIT, not the ROLLBACK of a failed
 * transaction).
 */
int db_pl_enter(struct db *db);
int db_pl_send(struct db *db, enum index_id id, const struct db_params *p,
    bool *rows_r);
int db_pl_send_sql(struct db *db, const char *sql, bool commit);
int db_pl_sync(struct db *db);
/*
 * Leaves pipeline mode, rolling back whatever is still open.  A connection
 * left mid-pipeline by an error is dropped: the next call reconnects.
 */
void db_pl_leave(struct db *db);

#endif
