/* fuzz-sources: store/query.c store/query_sql.c ingestd/base/xmalloc.c */
/* fuzz-sources: ingestd/base/log.c */
/* fuzz-args: -max_len=8192 */
/*
 * store/query: any bytes are either parsed or refused with a column
 * inside the text (or just past its end); a parsed query compiles in
 * every mode to SQL whose parameters are numbered 1..n, each used, and
 * whose text stays within a bound set by the number of terms, so that no
 * input can make the statement grow with its values.  Parsing twice gives
 * the same answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/query.h"

#define CHECK(e) ((e) ? (void)0 : abort())

/* Fixed text per term, the output columns, and the set operations. */
#define SQL_PER_TERM 400
#define SQL_FIXED 2000

static size_t
chars(const uint8_t *p, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += (p[i] & 0xc0) != 0x80;
	return c;
}

static void
check_sql(const struct query *q, enum query_sql_mode mode)
{
	struct query_sql s;
	char tag[24];
	size_t i, nulls = 0;

	query_compile(q, mode, &s);
	CHECK(s.sql != NULL);
	CHECK(strlen(s.sql) <= SQL_FIXED + SQL_PER_TERM * 2 * (q->nleaves + 1) +
		64 * QUERY_DEPTH_MAX);
	CHECK(s.nparams <= q->nleaves + 1);
	for (i = 0; i < s.nparams; i++) {
		snprintf(tag, sizeof(tag), "$%zu::", i + 1);
		CHECK(strstr(s.sql, tag) != NULL);
		nulls += s.params[i] == NULL;
	}
	snprintf(tag, sizeof(tag), "$%zu::", s.nparams + 1);
	CHECK(strstr(s.sql, tag) == NULL);
	/* Only the LIMIT of QUERY_SQL_ROWS is left NULL. */
	CHECK(nulls == (mode == QUERY_SQL_ROWS));
	query_sql_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	struct query_error e1, e2;
	struct query *q1, *q2;

	q1 = query_parse((const char *)p, n, &e1);
	q2 = query_parse((const char *)p, n, &e2);
	CHECK((q1 == NULL) == (q2 == NULL));
	if (q1 == NULL) {
		CHECK(e1.column == e2.column);
		CHECK(strcmp(e1.msg, e2.msg) == 0);
		CHECK(e1.column >= 1 && e1.column <= chars(p, n) + 1);
		CHECK(e1.msg[0] != '\0');
		return 0;
	}
	CHECK(q1->nleaves >= 1 && q1->nleaves <= QUERY_TERMS_MAX);
	check_sql(q1, QUERY_SQL_ROWS);
	check_sql(q1, QUERY_SQL_COUNT);
	check_sql(q1, QUERY_SQL_IDS);
	query_free(&q1);
	query_free(&q2);
	CHECK(q1 == NULL);
	return 0;
}
