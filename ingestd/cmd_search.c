/*
 * ingestd search and export --query (see cmd_search.h).
 */
#include "ingestd/cmd_search.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "ingestd/cmd_ledger.h"
#include "ingestd/progress.h"
#include "store/db.h"
#include "store/json.h"
#include "store/query.h"
#include "store/reader.h"

struct search_out {
	const struct search_opts *o;
	bool tty;
	bool header_done;
	uint64_t rows;
};

struct query *
search_parse(const char *what, const char *text)
{
	struct query_error e;
	struct query *q;
	char msg[400];
	size_t i, col = 0;

	if ((q = query_parse(text, strlen(text), &e)) != NULL)
		return q;
	query_error_format(&e, msg, sizeof(msg));
	fprintf(stderr, "ingestd: %s: %s\n", what, msg);
	/* The query with a caret under the column, when it is one line. */
	if (strpbrk(text, "\n\r") == NULL && strlen(text) <= 200) {
		fprintf(stderr, "  %s\n  ", text);
		for (i = 0; text[i] != '\0' && col + 1 < e.column; i++) {
			if (((unsigned char)text[i] & 0xc0) == 0x80)
				continue;
			putc(text[i] == '\t' ? '\t' : ' ', stderr);
			col++;
		}
		fputs("^\n", stderr);
	}
	return NULL;
}

bool
search_opts_ok(const struct search_opts *o)
{
	const char *p;

	if (o->format != NULL && strcmp(o->format, "table") != 0 &&
	    strcmp(o->format, "jsonl") != 0) {
		fprintf(stderr,
		    "ingestd: search: --format must be table or "
		    "jsonl, not \"%s\"\n",
		    o->format);
		return false;
	}
	if (o->limit != NULL) {
		for (p = o->limit; *p >= '0' && *p <= '9'; p++)
			;
		if (*o->limit == '\0' || *p != '\0' || p - o->limit > 15) {
			fprintf(stderr,
			    "ingestd: search: --limit must be a "
			    "number of deliveries, not \"%s\"\n",
			    o->limit);
			return false;
		}
	}
	return true;
}

/*
 * s for one table cell: at most width characters (0: no bound), control
 * characters as spaces, and padded to width on a terminal.
 */
static void
cell(const char *s, size_t width, bool pad, bool last)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = 0;

	while (*p != '\0' && (width == 0 || n < width)) {
		if (*p < 0x20 || *p == 0x7f) {
			putchar(' ');
			p++;
		} else {
			putchar(*p++);
			while ((*p & 0xc0) == 0x80)
				putchar(*p++);
		}
		n++;
	}
	if (last) {
		putchar('\n');
		return;
	}
	while (pad && n++ < width)
		putchar(' ');
	putchar(pad ? ' ' : '\t');
}

/* archived_at and Date to the second, as "YYYY-MM-DD HH:MM:SS". */
static void
cell_time(const char *iso, bool pad)
{
	char t[20];

	if (iso == NULL) {
		cell("-", 19, pad, false);
		return;
	}
	snprintf(t, sizeof(t), "%s", iso);
	if (strlen(t) > 10)
		t[10] = ' ';
	cell(t, 19, pad, false);
}

static int
search_row(void *arg, int ncols, const char *const *v)
{
	struct search_out *so = arg;
	bool pad = so->tty;

	if (ncols < QUERY_COL_COUNT)
		return -1;
	so->rows++;
	if (so->o->format != NULL && strcmp(so->o->format, "jsonl") == 0) {
		putchar('{');
		json_field(stdout, "account", v[QUERY_COL_ACCOUNT], 1);
		json_field(stdout, "uidl", v[QUERY_COL_UIDL], 0);
		json_field(stdout, "sha256", v[QUERY_COL_SHA256], 0);
		json_num(stdout, "size", v[QUERY_COL_SIZE]);
		json_field(stdout, "archived_at", v[QUERY_COL_ARCHIVED_AT], 0);
		json_field(stdout, "date", v[QUERY_COL_DATE], 0);
		json_field(stdout, "from", v[QUERY_COL_FROM], 0);
		json_field(stdout, "to", v[QUERY_COL_TO], 0);
		json_field(stdout, "cc", v[QUERY_COL_CC], 0);
		json_field(stdout, "subject", v[QUERY_COL_SUBJECT], 0);
		json_field(stdout, "message_id", v[QUERY_COL_MESSAGE_ID], 0);
		printf(",\"attachments\":%s}\n",
		    v[QUERY_COL_ATTACHMENTS] != NULL ?
			v[QUERY_COL_ATTACHMENTS] :
			"[]");
		return ferror(stdout) ? -1 : 0;
	}
	if (pad && !so->header_done) {
		printf("%-12s %-19s %-19s %-28s %-40s %10s %s\n", "ACCOUNT",
		    "ARCHIVED_AT", "DATE", "FROM", "SUBJECT", "SIZE", "SHA256");
		so->header_done = true;
	}
	cell(v[QUERY_COL_ACCOUNT], pad ? 12 : 0, pad, false);
	cell_time(v[QUERY_COL_ARCHIVED_AT], pad);
	cell_time(v[QUERY_COL_DATE], pad);
	cell(v[QUERY_COL_FROM], pad ? 28 : 0, pad, false);
	cell(v[QUERY_COL_SUBJECT], pad ? 40 : 0, pad, false);
	if (pad)
		printf("%10s ", v[QUERY_COL_SIZE]);
	else
		printf("%s\t", v[QUERY_COL_SIZE]);
	cell(v[QUERY_COL_SHA256], 0, false, true);
	return ferror(stdout) ? -1 : 0;
}

static int
search_count(void *arg, int ncols, const char *const *v)
{
	uint64_t *n = arg;

	*n = ncols > 0 && v[0] != NULL ? strtoull(v[0], NULL, 10) : 0;
	return 0;
}

static int
search_plan(void *arg, int ncols, const char *const *v)
{
	if (ncols > 0 && v[0] != NULL)
		puts(v[0]);
	return 0;
}

int
cmd_search(struct db *db, const struct search_opts *o, const struct query *q)
{
	struct search_out so = { .o = o, .tty = isatty(STDOUT_FILENO) };
	struct query_sql sql;
	uint64_t n = 0, limit;
	int rc;

	if (o->count) {
		query_compile(q, QUERY_SQL_COUNT, &sql);
		rc = db_search(db, &sql, o->explain,
		    o->explain ? search_plan : search_count, &n);
		if (rc == 0 && !o->explain) {
			if (o->limit != NULL) {
				limit = strtoull(o->limit, NULL, 10);
				n = n < limit ? n : limit;
			}
			printf("%" PRIu64 "\n", n);
		}
	} else {
		query_compile(q, QUERY_SQL_ROWS, &sql);
		sql.params[sql.nparams - 1] = (char *)o->limit;
		rc = db_search(db, &sql, o->explain,
		    o->explain ? search_plan : search_row, &so);
	}
	query_sql_release(&sql);
	if (fflush(stdout) == EOF) {
		log_warnx("search: writing the results: %s", strerror(errno));
		return 1;
	}
	if (rc == -1) {
		log_warnx("search: %s", db_error(db));
		return 1;
	}
	return 0;
}

int
cmd_export_query(struct db *db, int out_fd, const char *out_dir,
    const char *text, const struct query *q)
{
	struct reader_export_stats st;
	struct query_sql sql;
	char err[1024];
	int rc = 0;

	query_compile(q, QUERY_SQL_ROWS, &sql);
	if (reader_export_query(db, out_fd, out_dir, text, &sql, &st, err,
		sizeof(err)) == -1) {
		log_warnx("export: %s", err);
		rc = 1;
	}
	ledger_record_export(db, NULL, text, rc == 0, st.deliveries,
	    st.written, st.bad, st.manifest_sha256, st.sums_sha256);
	query_sql_release(&sql);
	progress_end();
	printf("exported %" PRIu64 " messages (%" PRIu64 " deliveries) to "
	       "%s: %" PRIu64 " damaged\n",
	    st.written, st.deliveries, out_dir, st.bad);
	if (st.bad > 0)
		rc = 1;
	return rc;
}
