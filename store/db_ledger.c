/*
 * The ledger's tables (migrations/0008_ledger.sql): sequencing pending
 * events into leaves, the stored tree for proofs, checkpoints, and the
 * comparisons ledger verify makes with the archive.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/index.h"
#include "store/ledger.h"
#include "store/merkle.h"

/* Leaves per page when reading the whole ledger. */
#define DB_LEDGER_PAGE 2000

int
db_ledger_get(void *arg, unsigned level, uint64_t index,
    unsigned char out[32])
{
	struct db *db = arg;
	struct db_params p;
	PGresult *res;
	int rc = -1;

	db_par_init(&p);
	if (level == 0) {
		db_par_uint(&p, index);
		res = db_exec(db, INDEX_LEDGER_LEAF_HASH, &p, true);
	} else {
		db_par_int(&p, level);
		db_par_uint(&p, index);
		res = db_exec(db, INDEX_LEDGER_NODE_HASH, &p, true);
	}
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 32) {
		memcpy(out, PQgetvalue(res, 0, 0), 32);
		rc = 0;
	} else
		db_seterr(db, "ledger: %s (%u, %" PRIu64 ") missing",
		    level == 0 ? "leaf" : "node", level, index);
	PQclear(res);
	return rc;
}

static int
db_ledger_size(struct db *db, uint64_t *size_r)
{
	PGresult *res;

	if ((res = db_exec(db, INDEX_LEDGER_SIZE, NULL, false)) == NULL)
		return -1;
	*size_r = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/*
 * A PostgreSQL array literal under construction, so that a batch of
 * leaves (and of nodes) goes in one statement: elements are numbers or
 * hex (written bare) or text (quoted, '"' and '\' escaped), or NULL.
 */
struct db_arr {
	char *p;
	size_t len, cap;
};

static void
db_arr_put(struct db_arr *a, const char *s, size_t n)
{
	if (a->len + n + 3 > a->cap) {
		a->cap = (a->len + n + 3) * 2;
		a->p = xreallocarray(a->p, a->cap, 1);
	}
	memcpy(a->p + a->len, s, n);
	a->len += n;
	a->p[a->len] = '\0';
}

static void
db_arr_sep(struct db_arr *a)
{
	db_arr_put(a, a->len == 0 ? "{" : ",", 1);
}

/* A number or hex: nothing to quote.  NULL for SQL NULL. */
static void
db_arr_bare(struct db_arr *a, const char *s)
{
	db_arr_sep(a);
	if (s == NULL)
		db_arr_put(a, "NULL", 4);
	else
		db_arr_put(a, s, strlen(s));
}

static void
db_arr_text(struct db_arr *a, const char *s)
{
	db_arr_sep(a);
	if (s == NULL) {
		db_arr_put(a, "NULL", 4);
		return;
	}
	db_arr_put(a, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			db_arr_put(a, "\\", 1);
		db_arr_put(a, s, 1);
	}
	db_arr_put(a, "\"", 1);
}

static const char *
db_arr_end(struct db_arr *a)
{
	if (a->len == 0)
		db_arr_put(a, "{", 1);
	db_arr_put(a, "}", 1);
	return a->p;
}

static void
db_arr_free(struct db_arr *a)
{
	free(a->p); a->p = NULL;
	a->len = a->cap = 0;
}

/* Columns of ledger (9) and of ledger_node (3) for one batch. */
struct db_batch {
	struct db_arr leaf[9];
	struct db_arr node[3];
	size_t nnodes;
};

static void
db_hexs(const unsigned char *p, size_t n, char *out)
{
	static const char hexd[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexd[p[i] >> 4];
		out[2 * i + 1] = hexd[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
db_ledger_emit(void *arg, unsigned level, uint64_t index,
    const unsigned char h[32])
{
	struct db_batch *b = arg;
	char num[24], hex[65];

	snprintf(num, sizeof(num), "%u", level);
	db_arr_bare(&b->node[0], num);
	snprintf(num, sizeof(num), "%" PRIu64, index);
	db_arr_bare(&b->node[1], num);
	db_hexs(h, 32, hex);
	db_arr_bare(&b->node[2], hex);
	b->nnodes++;
}

/* Appends one event as leaf f->size to the batch; 0 or -1. */
static int
db_ledger_leaf(struct db *db, struct db_batch *b, struct merkle_frontier *f,
    const char *kind, const struct ledger_field *fields, size_t n)
{
	unsigned char leaf[32];
	const char *sha = NULL, *account = NULL, *uidl = NULL, *size = NULL,
	    *at = NULL;
	char *entry, *hex, num[24], lhex[65];
	size_t len, i;

	if ((entry = ledger_entry_encode(kind, fields, n, &len)) == NULL) {
		db_seterr(db, "ledger: event of kind \"%s\" cannot be "
		    "encoded", kind);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(fields[i].key, "sha256") == 0)
			sha = fields[i].value;
		else if (strcmp(fields[i].key, "account") == 0)
			account = fields[i].value;
		else if (strcmp(fields[i].key, "uidl") == 0)
			uidl = fields[i].value;
		else if (strcmp(fields[i].key, "size") == 0)
			size = fields[i].value;
		else if (strcmp(fields[i].key, "archived_at") == 0 ||
		    strcmp(fields[i].key, "at") == 0)
			at = fields[i].value;
	}
	/* Only a well-formed hash or size is copied to its column. */
	if (sha != NULL && (strlen(sha) != 64 ||
	    strspn(sha, "0123456789abcdef") != 64))
		sha = NULL;
	if (size != NULL && (size[0] == '\0' || strlen(size) > 18 ||
	    strspn(size, "0123456789") != strlen(size)))
		size = NULL;
	merkle_leaf_hash(entry, len, leaf);
	snprintf(num, sizeof(num), "%" PRIu64, f->size);
	db_arr_bare(&b->leaf[0], num);
	hex = xmalloc(2 * len + 1);
	db_hexs((const unsigned char *)entry, len, hex);
	db_arr_bare(&b->leaf[1], hex);
	free(hex); hex = NULL;
	free(entry); entry = NULL;
	db_hexs(leaf, 32, lhex);
	db_arr_bare(&b->leaf[2], lhex);
	db_arr_text(&b->leaf[3], kind);
	db_arr_bare(&b->leaf[4], sha);
	db_arr_text(&b->leaf[5], account);
	db_arr_text(&b->leaf[6], uidl);
	db_arr_bare(&b->leaf[7], size);
	db_arr_text(&b->leaf[8], at);
	merkle_frontier_append(f, leaf, db_ledger_emit, b);
	return 0;
}

/* Inserts the batch's leaves and nodes; 0 or -1. */
static int
db_ledger_flush(struct db *db, struct db_batch *b)
{
	struct db_params p;
	PGresult *res;
	size_t i;

	db_par_init(&p);
	for (i = 0; i < 9; i++)
		db_par_text(&p, db_arr_end(&b->leaf[i]));
	if ((res = db_exec(db, INDEX_LEDGER_INSERT, &p, false)) == NULL)
		return -1;
	PQclear(res);
	if (b->nnodes == 0)
		return 0;
	db_par_init(&p);
	for (i = 0; i < 3; i++)
		db_par_text(&p, db_arr_end(&b->node[i]));
	if ((res = db_exec(db, INDEX_LEDGER_NODE_INSERT, &p, false)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

static void
db_batch_free(struct db_batch *b)
{
	size_t i;

	for (i = 0; i < 9; i++)
		db_arr_free(&b->leaf[i]);
	for (i = 0; i < 3; i++)
		db_arr_free(&b->node[i]);
	b->nnodes = 0;
}

int
db_ledger_append(struct db *db, const char *kind,
    const struct ledger_field *fields, size_t n)
{
	struct db_arr a = { 0 };
	struct db_params p;
	PGresult *res;
	size_t i;

	/* No db_ready(): it would end the caller's transaction. */
	for (i = 0; i < n; i++) {
		db_arr_text(&a, fields[i].key);
		db_arr_text(&a, fields[i].value != NULL ? fields[i].value :
		    "");
	}
	db_par_init(&p);
	db_par_text(&p, kind);
	db_par_text(&p, db_arr_end(&a));
	res = db_exec(db, INDEX_LEDGER_APPEND, &p, false);
	db_arr_free(&a);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* One transaction: up to DB_LEDGER_BATCH events; *added_r of them. */
static int
db_ledger_batch(struct db *db, struct merkle_frontier *f, uint64_t *added_r)
{
	struct ledger_field fields[LEDGER_FIELDS_MAX];
	struct db_batch b = { 0 };
	struct db_params p;
	PGresult *res = NULL, *del;
	char *ids = NULL, *kind;
	size_t idslen = 0, idscap = 0, nf, r, rows, start;
	uint64_t size;
	int64_t id;

	*added_r = 0;
	if (db_simple(db, "BEGIN", "BEGIN") == -1)
		return -1;
	if ((res = db_exec(db, INDEX_LEDGER_LOCK, NULL, false)) == NULL)
		goto fail;
	PQclear(res);
	if (db_ledger_size(db, &size) == -1 ||
	    merkle_frontier_load(f, db_ledger_get, db, size) == -1)
		goto fail;
	db_par_init(&p);
	db_par_int(&p, DB_LEDGER_BATCH);
	if ((res = db_exec(db, INDEX_LEDGER_PENDING, &p, false)) == NULL)
		goto fail;
	rows = (size_t)PQntuples(res);
	for (r = 0; r < rows; r = start + nf) {
		start = r;
		id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		kind = PQgetvalue(res, r, 1);
		nf = 0;
		/* The rows of one event: field values in order. */
		while (start + nf < rows &&
		    strtoll(PQgetvalue(res, start + nf, 0), NULL, 10) == id)
			nf++;
		if (PQgetisnull(res, start, 2)) {
			/* An event without fields. */
			if (db_ledger_leaf(db, &b, f, kind, NULL, 0) == -1)
				goto fail;
		} else {
			size_t k;

			if (nf % 2 != 0 || nf / 2 > LEDGER_FIELDS_MAX) {
				db_seterr(db, "ledger: pending event %" PRId64
				    " has %zu field values", id, nf);
				goto fail;
			}
			for (k = 0; k < nf / 2; k++) {
				fields[k].key = PQgetvalue(res,
				    start + 2 * k, 3);
				fields[k].value = PQgetvalue(res,
				    start + 2 * k + 1, 3);
			}
			if (db_ledger_leaf(db, &b, f, kind, fields,
			    nf / 2) == -1)
				goto fail;
		}
		if (idslen + 24 > idscap) {
			idscap = idscap * 2 + 256;
			ids = xreallocarray(ids, idscap, 1);
		}
		idslen += (size_t)snprintf(ids + idslen, idscap - idslen,
		    "%s%" PRId64, idslen == 0 ? "{" : ",", id);
		(*added_r)++;
	}
	PQclear(res);
	res = NULL;
	if (*added_r > 0) {
		if (db_ledger_flush(db, &b) == -1)
			goto fail;
		snprintf(ids + idslen, idscap - idslen, "}");
		db_par_init(&p);
		db_par_text(&p, ids);
		if ((del = db_exec(db, INDEX_LEDGER_PENDING_DELETE, &p,
		    false)) == NULL)
			goto fail;
		PQclear(del);
	}
	free(ids); ids = NULL;
	db_batch_free(&b);
	if (db_simple(db, "COMMIT", "COMMIT") == -1)
		goto fail;
	return 0;
fail:
	PQclear(res);
	free(ids); ids = NULL;
	db_batch_free(&b);
	db_rollback(db);
	*added_r = 0;
	return -1;
}

int
db_ledger_sequence(struct db *db, uint64_t *added_r, uint64_t *size_r,
    unsigned char root[32])
{
	struct merkle_frontier *f = xcalloc(1, sizeof(*f));
	uint64_t added;
	int rc = -1;

	*added_r = 0;
	if (db_ready(db) == -1)
		goto out;
	do {
		if (db_ledger_batch(db, f, &added) == -1)
			goto out;
		*added_r += added;
	} while (added == DB_LEDGER_BATCH);
	*size_r = f->size;
	merkle_frontier_root(f, root);
	rc = 0;
out:
	free(f); f = NULL;
	return rc;
}

int
db_ledger_checkpoint_store(struct db *db, uint64_t size,
    const unsigned char root[32], const char *note)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_uint(&p, size);
	db_par_bytes(&p, root, 32);
	db_par_text(&p, note);
	if ((res = db_exec(db, INDEX_LEDGER_CHECKPOINT_INSERT, &p,
	    false)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
db_ledger_checkpoints(struct db *db, bool latest_only,
    struct db_ledger_checkpoint **cps_r, size_t *n_r)
{
	struct db_ledger_checkpoint *cps;
	struct db_params p;
	PGresult *res;
	int r, n;

	*cps_r = NULL;
	*n_r = 0;
	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_text(&p, latest_only ? "true" : "false");
	if ((res = db_exec(db, INDEX_LEDGER_CHECKPOINTS, &p, false)) == NULL)
		return -1;
	n = PQntuples(res);
	cps = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*cps));
	for (r = 0; r < n; r++) {
		cps[r].id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		cps[r].size = strtoull(PQgetvalue(res, r, 1), NULL, 10);
		snprintf(cps[r].root_hex, sizeof(cps[r].root_hex), "%s",
		    PQgetvalue(res, r, 2));
		cps[r].note = xstrdup(PQgetvalue(res, r, 3));
	}
	PQclear(res);
	*cps_r = cps;
	*n_r = (size_t)n;
	return 0;
}

void
db_ledger_checkpoints_free(struct db_ledger_checkpoint **cps, size_t n)
{
	size_t i;

	if (*cps == NULL)
		return;
	for (i = 0; i < n; i++) {
		free((*cps)[i].note); (*cps)[i].note = NULL;
	}
	free(*cps); *cps = NULL;
}

/* Hex to bytes, in place-safe order; the length of the result. */
static size_t
db_unhex(const char *hex, unsigned char *out)
{
	size_t i, n = strlen(hex) / 2;
	unsigned v;

	for (i = 0; i < n; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			break;
		out[i] = (unsigned char)v;
	}
	return i;
}

int
db_ledger_each(struct db *db,
    int (*cb)(void *arg, const struct db_ledger_row *r), void *arg)
{
	struct db_ledger_row row;
	struct db_params p;
	PGresult *res;
	uint64_t next = 0;
	unsigned char *entry;
	int r, rows;

	if (db_ready(db) == -1)
		return -1;
	do {
		db_par_init(&p);
		db_par_uint(&p, next);
		db_par_int(&p, DB_LEDGER_PAGE);
		if ((res = db_exec(db, INDEX_LEDGER_ENTRIES, &p,
		    false)) == NULL)
			return -1;
		rows = PQntuples(res);
		for (r = 0; r < rows; r++) {
			const char *hex = PQgetvalue(res, r, 1);

			entry = xmalloc(strlen(hex) / 2 + 1);
			row.idx = strtoull(PQgetvalue(res, r, 0), NULL, 10);
			row.entry = entry;
			row.entry_len = db_unhex(hex, entry);
			row.leaf_hash_hex = PQgetvalue(res, r, 2);
			row.kind = PQgetvalue(res, r, 3);
			row.sha256_hex = PQgetvalue(res, r, 4);
			row.account = PQgetvalue(res, r, 5);
			row.uidl = PQgetvalue(res, r, 6);
			row.size = PQgetvalue(res, r, 7);
			row.at = PQgetvalue(res, r, 8);
			next = row.idx + 1;
			if (cb(arg, &row) != 0) {
				free(entry); entry = NULL;
				PQclear(res);
				return -1;
			}
			free(entry); entry = NULL;
		}
		PQclear(res);
	} while (rows == DB_LEDGER_PAGE);
	return 0;
}

int
db_ledger_message_leaves(struct db *db, const char *sha256_hex,
    uint64_t tree_size,
    int (*cb)(void *arg, uint64_t idx, const unsigned char *entry,
	size_t n), void *arg)
{
	struct db_params p;
	PGresult *res;
	unsigned char *entry;
	size_t n;
	int r, rc = 0;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_text(&p, sha256_hex);
	db_par_uint(&p, tree_size);
	if ((res = db_exec(db, INDEX_LEDGER_MESSAGE_LEAVES, &p,
	    false)) == NULL)
		return -1;
	for (r = 0; r < PQntuples(res) && rc == 0; r++) {
		entry = xmalloc(strlen(PQgetvalue(res, r, 1)) / 2 + 1);
		n = db_unhex(PQgetvalue(res, r, 1), entry);
		if (cb(arg, strtoull(PQgetvalue(res, r, 0), NULL, 10), entry,
		    n) != 0)
			rc = -1;
		free(entry); entry = NULL;
	}
	PQclear(res);
	return rc;
}

int
db_ledger_check_nodes(struct db *db, uint64_t size,
    void (*cb)(void *arg, const char *what), void *arg)
{
	PGresult *res;
	char what[256];
	uint64_t count, maxidx, want;
	unsigned level, next = 1;
	int r;

	if (db_ready(db) == -1)
		return -1;
	if ((res = db_exec(db, INDEX_LEDGER_BAD_NODES, NULL, false)) == NULL)
		return -1;
	for (r = 0; r < PQntuples(res); r++) {
		snprintf(what, sizeof(what), "stored subtree (level %s, index "
		    "%s) is not the hash of its children",
		    PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
		cb(arg, what);
	}
	PQclear(res);
	if ((res = db_exec(db, INDEX_LEDGER_NODE_COUNTS, NULL,
	    false)) == NULL)
		return -1;
	for (r = 0; r <= PQntuples(res); r++) {
		if (r < PQntuples(res)) {
			level = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL,
			    10);
			count = strtoull(PQgetvalue(res, r, 1), NULL, 10);
			maxidx = strtoull(PQgetvalue(res, r, 2), NULL, 10);
		} else {
			level = 64;
			count = maxidx = 0;
		}
		/* Levels with no row at all. */
		for (; next < level && next < 64; next++)
			if ((size >> next) > 0) {
				snprintf(what, sizeof(what), "no stored "
				    "subtree of level %u; %" PRIu64 " expected",
				    next, size >> next);
				cb(arg, what);
			}
		if (level >= 64)
			break;
		next = level + 1;
		want = size >> level;
		if (count != want || (want > 0 && maxidx != want - 1)) {
			snprintf(what, sizeof(what), "%" PRIu64 " stored "
			    "subtrees of level %u; %" PRIu64 " expected",
			    count, level, want);
			cb(arg, what);
		}
	}
	PQclear(res);
	return 0;
}

int
db_ledger_audit(struct db *db,
    void (*cb)(void *arg, const char *sha256_hex, const char *what),
    void *arg)
{
	PGresult *res;
	char what[512];
	int r;

	if (db_ready(db) == -1)
		return -1;
	if ((res = db_exec(db, INDEX_LEDGER_UNLEDGERED, NULL,
	    false)) == NULL)
		return -1;
	for (r = 0; r < PQntuples(res); r++) {
		snprintf(what, sizeof(what), "delivery of account \"%s\" "
		    "uidl \"%s\" has no ingest entry in the ledger that "
		    "matches it", PQgetvalue(res, r, 1),
		    PQgetvalue(res, r, 2));
		cb(arg, PQgetvalue(res, r, 0), what);
	}
	PQclear(res);
	if ((res = db_exec(db, INDEX_LEDGER_ORPHANS, NULL, false)) == NULL)
		return -1;
	for (r = 0; r < PQntuples(res); r++) {
		snprintf(what, sizeof(what), "ledger leaf %s records a "
		    "delivery of account \"%s\" uidl \"%s\" that is gone "
		    "without a purge's tombstone", PQgetvalue(res, r, 3),
		    PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
		cb(arg, PQgetvalue(res, r, 0), what);
	}
	PQclear(res);
	if ((res = db_exec(db, INDEX_LEDGER_UNAUTHORIZED, NULL,
	    false)) == NULL)
		return -1;
	for (r = 0; r < PQntuples(res); r++) {
		snprintf(what, sizeof(what), "deleted outside a purge (%s)",
		    PQgetvalue(res, r, 1));
		cb(arg, PQgetvalue(res, r, 0), what);
	}
	PQclear(res);
	return 0;
}
