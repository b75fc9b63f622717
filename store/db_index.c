/*
 * The message index's rows (migrations/0004_index_messages.sql): written
 * in the transaction that stores a message's blob (db_archive.c), or by
 * reindex for blobs archived before.
 *
 * The index must never cost a message its archiving.  Values that would
 * make PostgreSQL refuse the row whatever the transaction are bounded here
 * (btree keys); anything else the server still refuses is the
 * committer's to handle, by storing the message with a minimal row that
 * says so (index_refused), which reindex by a later parser retries.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/index.h"
#include "store/mime/meta.h"

/*
 * Bytes kept of a value that is a btree key (addresses, domains, file
 * names, Message-ID, List-Id).  A btree entry must fit a third of a page
 * (about 2700 bytes); a longer value is no one's real address, and a
 * search for its first kilobyte still finds it.
 */
#define DB_INDEX_KEY_MAX 1000

/* The storage layer's own flags, next to the parser's. */
/* Blobs per page of reindex's work list. */
#define DB_INDEX_PAGE 200

#define DB_FLAG_CLIPPED "value_clipped"
#define DB_FLAG_REFUSED "index_refused"

/* Everything one statement's parameters point into, freed after it. */
struct db_index_buf {
	char **owned; /* clipped copies */
	size_t nowned;
	unsigned char *arrays[12];
	size_t narrays;
	const char *flags[40];
	bool clipped;
};

static void
db_index_buf_release(struct db_index_buf *b)
{
	size_t i;

	for (i = 0; i < b->nowned; i++)
		free(b->owned[i]);
	free(b->owned);
	b->owned = NULL;
	for (i = 0; i < b->narrays; i++)
		free(b->arrays[i]);
	b->narrays = 0;
	b->nowned = 0;
}

/* s, or a copy cut at a UTF-8 boundary if it is longer than a key may be. */
static const char *
db_index_key(struct db_index_buf *b, const char *s)
{
	size_t n;
	char *c;

	if (s == NULL || (n = strlen(s)) <= DB_INDEX_KEY_MAX)
		return s;
	n = DB_INDEX_KEY_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	c = xmalloc(n + 1);
	memcpy(c, s, n);
	c[n] = '\0';
	b->owned = xreallocarray(b->owned, b->nowned + 1, sizeof(*b->owned));
	b->owned[b->nowned++] = c;
	b->clipped = true;
	return c;
}

/* A binary array parameter from elems; 0, or -1 with the error set. */
static int
db_index_array(struct db *db, struct db_index_buf *b, struct db_params *p,
    uint32_t type, const void *const *elems, const size_t *lens, size_t n)
{
	unsigned char *arr;
	size_t total;

	ASSERT(b->narrays < sizeof(b->arrays) / sizeof(b->arrays[0]));
	if ((arr = db_array(db, type, elems, lens, n, &total)) == NULL)
		return -1;
	b->arrays[b->narrays++] = arr;
	db_par_bytes(p, arr, total);
	return 0;
}

/* A text array; NULL strings are SQL NULL. */
static int
db_index_texts(struct db *db, struct db_index_buf *b, struct db_params *p,
    const char **v, size_t n)
{
	size_t *lens = xcalloc(n > 0 ? n : 1, sizeof(*lens)), i;
	int rc;

	for (i = 0; i < n; i++)
		lens[i] = v[i] != NULL ? strlen(v[i]) : 0;
	rc = db_index_array(db, b, p, DB_TEXTOID, (const void *const *)v, lens,
	    n);
	free(lens);
	lens = NULL;
	return rc;
}

/* $15-$18: the addresses, as parallel arrays. */
static int
db_index_addresses(struct db *db, struct db_index_buf *b, struct db_params *p,
    const struct mime_meta *m)
{
	size_t n = m != NULL ? m->n_addresses : 0, i;
	const char **role = xcalloc(n + 1, sizeof(*role));
	const char **addr = xcalloc(n + 1, sizeof(*addr));
	const char **dom = xcalloc(n + 1, sizeof(*dom));
	const char **name = xcalloc(n + 1, sizeof(*name));
	int rc;

	for (i = 0; i < n; i++) {
		role[i] = mime_role_name(m->addresses[i].role);
		addr[i] = db_index_key(b, m->addresses[i].address);
		dom[i] = db_index_key(b, m->addresses[i].domain);
		name[i] = m->addresses[i].name;
	}
	rc = db_index_texts(db, b, p, role, n) == 0 &&
		db_index_texts(db, b, p, addr, n) == 0 &&
		db_index_texts(db, b, p, dom, n) == 0 &&
		db_index_texts(db, b, p, name, n) == 0 ?
	    0 :
	    -1;
	free(role);
	free(addr);
	free(dom);
	free(name);
	return rc;
}

static void
db_put64(unsigned char *w, uint64_t x)
{
	int i;

	for (i = 7; i >= 0; i--) {
		w[i] = x & 0xff;
		x >>= 8;
	}
}

/* $19-$25: the MIME parts, as parallel arrays. */
static int
db_index_parts(struct db *db, struct db_index_buf *b, struct db_params *p,
    const struct mime_meta *m)
{
	size_t n = m != NULL ? m->n_parts : 0, i;
	const char **path = xcalloc(n + 1, sizeof(*path));
	const char **type = xcalloc(n + 1, sizeof(*type));
	const char **disp = xcalloc(n + 1, sizeof(*disp));
	const char **file = xcalloc(n + 1, sizeof(*file));
	const void **size = xcalloc(n + 1, sizeof(*size));
	const void **sha = xcalloc(n + 1, sizeof(*sha));
	const void **att = xcalloc(n + 1, sizeof(*att));
	size_t *lens8 = xcalloc(n + 1, sizeof(*lens8));
	size_t *lens32 = xcalloc(n + 1, sizeof(*lens32));
	size_t *lens1 = xcalloc(n + 1, sizeof(*lens1));
	unsigned char *sizes = xcalloc(n + 1, 8);
	static const unsigned char yes = 1, no = 0;
	int rc;

	for (i = 0; i < n; i++) {
		const struct mime_part *pt = &m->parts[i];

		path[i] = pt->path;
		type[i] = pt->content_type;
		disp[i] = pt->disposition;
		file[i] = db_index_key(b, pt->filename);
		db_put64(sizes + 8 * i, pt->size);
		size[i] = sizes + 8 * i;
		lens8[i] = 8;
		sha[i] = pt->has_sha256 ? pt->sha256 : NULL;
		lens32[i] = 32;
		att[i] = pt->attachment ? &yes : &no;
		lens1[i] = 1;
	}
	rc = db_index_texts(db, b, p, path, n) == 0 &&
		db_index_texts(db, b, p, type, n) == 0 &&
		db_index_texts(db, b, p, disp, n) == 0 &&
		db_index_texts(db, b, p, file, n) == 0 &&
		db_index_array(db, b, p, DB_INT8OID, size, lens8, n) == 0 &&
		db_index_array(db, b, p, DB_BYTEAOID, sha, lens32, n) == 0 &&
		db_index_array(db, b, p, DB_BOOLOID, att, lens1, n) == 0 ?
	    0 :
	    -1;
	free(path);
	free(type);
	free(disp);
	free(file);
	free(size);
	free(sha);
	free(att);
	free(lens8);
	free(lens32);
	free(lens1);
	free(sizes);
	return rc;
}

/*
 * The parameters of INDEX_MESSAGE_INSERT for meta (NULL with refused: the
 * minimal row of a message whose index the server would not take).  The
 * arrays are built first, since the flags ($3) say whether any value had
 * to be clipped.
 */
static int
db_index_params(struct db *db, const unsigned char sha256[32],
    const struct mime_meta *m, bool refused, struct db_index_buf *b,
    struct db_params *p)
{
	struct db_params arrays, flags;
	const char *message_id, *list_id;
	size_t nflags = 0, i;
	bool attachment = false;
	int k;

	memset(b, 0, sizeof(*b));
	if (refused)
		m = NULL;
	message_id = m != NULL ? db_index_key(b, m->message_id) : NULL;
	list_id = m != NULL ? db_index_key(b, m->list_id) : NULL;
	for (i = 0; m != NULL && i < m->n_parts; i++)
		attachment |= m->parts[i].attachment;
	db_par_init(&arrays);
	if (db_index_addresses(db, b, &arrays, m) == -1 ||
	    db_index_parts(db, b, &arrays, m) == -1)
		goto fail;

	for (i = 0; m != NULL && i < 32; i++) {
		const char *name;

		if ((m->flags & (1u << i)) == 0 ||
		    (name = mime_flag_name((enum mime_flag)(1u << i))) == NULL)
			continue;
		b->flags[nflags++] = name;
	}
	if (b->clipped)
		b->flags[nflags++] = DB_FLAG_CLIPPED;
	if (refused)
		b->flags[nflags++] = DB_FLAG_REFUSED;
	db_par_init(&flags);
	if (db_index_texts(db, b, &flags, b->flags, nflags) == -1)
		goto fail;

	db_par_init(p);
	db_par_bytes(p, sha256, 32);
	db_par_int(p, m != NULL ? m->parser_version : MIME_PARSER_VERSION);
	db_par_bytes(p, flags.v[0], (size_t)flags.len[0]);
	if (m != NULL && m->has_date)
		db_par_int(p, m->date);
	else
		db_par_text(p, NULL);
	db_par_text(p, m != NULL ? m->date_raw : NULL);
	db_par_text(p, message_id);
	db_par_text(p, m != NULL ? m->in_reply_to : NULL);
	db_par_text(p, m != NULL ? m->references : NULL);
	db_par_text(p, m != NULL ? m->subject : NULL);
	db_par_text(p, m != NULL ? m->subject_raw : NULL);
	db_par_text(p, list_id);
	db_par_text(p, m != NULL ? m->auto_submitted : NULL);
	db_par_text(p, attachment ? "true" : "false");
	db_par_text(p, m != NULL && m->text != NULL ? m->text : "");
	for (k = 0; k < arrays.n; k++)
		db_par_bytes(p, arrays.v[k], (size_t)arrays.len[k]);
	return 0;
fail:
	db_index_buf_release(b);
	return -1;
}

int
db_index_send(struct db *db, const unsigned char sha256[32],
    const struct mime_meta *meta, bool refused)
{
	struct db_index_buf b;
	struct db_params p;
	int rc;

	if (db_index_params(db, sha256, meta, refused, &b, &p) == -1)
		return -1;
	/* libpq copies the parameters into its buffer as it sends. */
	rc = db_pl_send(db, INDEX_MESSAGE_INSERT, &p, NULL);
	db_index_buf_release(&b);
	return rc;
}

int
db_index_store(struct db *db, const struct db_index_row *rows, size_t n)
{
	struct db_params p;
	size_t i;
	int rc = -1;

	if (n == 0)
		return 0;
	if (db_ready(db) == -1 || db_prepare(db, INDEX_MESSAGE_INSERT) == -1 ||
	    db_prepare(db, INDEX_MESSAGE_DELETE_STALE) == -1)
		return -1;
	if (db_pl_enter(db) == -1)
		return -1;
	if (db_pl_send_sql(db, "BEGIN", false) == -1)
		goto out;
	for (i = 0; i < n; i++) {
		db_par_init(&p);
		db_par_bytes(&p, rows[i].sha256, 32);
		db_par_int(&p, MIME_PARSER_VERSION);
		if (db_pl_send(db, INDEX_MESSAGE_DELETE_STALE, &p, NULL) ==
			-1 ||
		    db_index_send(db, rows[i].sha256, rows[i].meta,
			rows[i].refused) == -1)
			goto out;
	}
	if (db_pl_send_sql(db, "COMMIT", true) == -1 || db_pl_sync(db) == -1)
		goto out;
	rc = 0;
out:
	db_pl_leave(db);
	return rc;
}

int
db_each_unindexed(struct db *db,
    int (*cb)(void *arg, const struct db_message *m), void *arg)
{
	struct db_message m;
	struct db_params p;
	PGresult *res;
	char last_sha[65] = "";
	int r, rows;

	if (db_ready(db) == -1)
		return -1;
	do {
		db_par_init(&p);
		db_par_text(&p, last_sha);
		db_par_int(&p, DB_INDEX_PAGE);
		db_par_int(&p, MIME_PARSER_VERSION);
		if ((res = db_exec(db, INDEX_UNINDEXED_SELECT, &p, false)) ==
		    NULL)
			return -1;
		rows = PQntuples(res);
		for (r = 0; r < rows; r++) {
			memset(&m, 0, sizeof(m));
			m.sha256_hex = PQgetvalue(res, r, 0);
			m.size = strtoull(PQgetvalue(res, r, 1), NULL, 10);
			m.dict_id = strtoll(PQgetvalue(res, r, 2), NULL, 10);
			snprintf(last_sha, sizeof(last_sha), "%s",
			    m.sha256_hex);
			if (cb(arg, &m) != 0) {
				PQclear(res);
				return -1;
			}
		}
		PQclear(res);
	} while (rows == DB_INDEX_PAGE);
	return 0;
}

int
db_unindexed_count(struct db *db, uint64_t *n_r, uint64_t *bytes_r)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, MIME_PARSER_VERSION);
	if ((res = db_exec(db, INDEX_UNINDEXED_COUNT, &p, false)) == NULL)
		return -1;
	*n_r = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	*bytes_r = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return 0;
}
