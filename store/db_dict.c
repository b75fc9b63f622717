/*
 * Trained zstd dictionaries in the archive: storing and loading them, and
 * choosing the blobs a new one is trained on.  When to train, and which
 * dictionary is current, is dicts.c's business.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/index.h"

int
db_dict_load(struct db *db, int64_t id, void **p_r, size_t *n_r)
{
	struct db_params p;
	PGresult *res;
	size_t n;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, id);
	if ((res = db_exec(db, INDEX_DICT_SELECT, &p, true)) == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		db_seterr(db, "dictionary %" PRId64 ": not in the archive",
		    id);
		PQclear(res);
		return -1;
	}
	n = PQgetlength(res, 0, 0);
	*p_r = xmalloc(n);
	memcpy(*p_r, PQgetvalue(res, 0, 0), n);
	*n_r = n;
	PQclear(res);
	return 0;
}

int
db_dict_store(struct db *db, const void *data, size_t n, int64_t *id_r)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_bytes(&p, data, n);
	if ((res = db_exec(db, INDEX_DICT_INSERT, &p, false)) == NULL)
		return -1;
	*id_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
db_dict_latest(struct db *db, int64_t *id_r, void **p_r, size_t *n_r)
{
	PGresult *res;
	size_t n;

	*id_r = 0;
	*p_r = NULL;
	*n_r = 0;
	if (db_ready(db) == -1)
		return -1;
	if ((res = db_exec(db, INDEX_DICT_LATEST, NULL, true)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	if (PQgetlength(res, 0, 0) != 8) {
		db_seterr(db, "SELECT dict (latest): malformed row");
		PQclear(res);
		return -1;
	}
	*id_r = (int64_t)db_be64(PQgetvalue(res, 0, 0));
	n = PQgetlength(res, 0, 1);
	*p_r = xmalloc(n > 0 ? n : 1);
	memcpy(*p_r, PQgetvalue(res, 0, 1), n);
	*n_r = n;
	PQclear(res);
	return 0;
}

int
db_sample_count(struct db *db, uint64_t max_size, uint64_t limit,
    uint64_t *n_r)
{
	struct db_params p;
	PGresult *res;

	*n_r = 0;
	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_uint(&p, max_size);
	db_par_uint(&p, limit);
	if ((res = db_exec(db, INDEX_SAMPLE_COUNT, &p, false)) == NULL)
		return -1;
	*n_r = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
db_sample_blobs(struct db *db, uint64_t max_size, uint64_t limit,
    int (*cb)(void *arg, const struct db_message *m), void *arg)
{
	struct db_message m;
	struct db_params p;
	PGresult *res;
	int r, rows;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_uint(&p, max_size);
	db_par_uint(&p, limit);
	if ((res = db_exec(db, INDEX_SAMPLE_SELECT, &p, false)) == NULL)
		return -1;
	rows = PQntuples(res);
	for (r = 0; r < rows; r++) {
		m.account = NULL;
		m.sha256_hex = PQgetvalue(res, r, 0);
		m.size = strtoull(PQgetvalue(res, r, 1), NULL, 10);
		m.dict_id = 0;
		if (cb(arg, &m) != 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return 0;
}
