/*
 * The search language's compiler (see query.h): a query tree to one
 * parameterized statement.  Every SQL text here is a fixed fragment; the
 * tree's shape chooses them and numbers their parameters, and the values
 * go only into the parameter list.
 *
 * Each term is a set of delivery ids; AND is a chain of "d.id IN (term)"
 * (then EXCEPT for its negated terms), OR is UNION.  Over index-driven
 * leaves these plan as an index scan per term, or a probe by key per row
 * of the most selective one; an OR of EXISTS would not.
 * Terms about the message (addresses, text, dates, parts, size) select
 * SHA-256s through their index and reach the deliveries through
 * delivery_sha256.  A negation with no positive term beside it subtracts
 * from every delivery, which can only be a scan of them all.
 *
 * migrations/0005_search_function.sql builds the same fragments in
 * PL/pgSQL for ingestd.search(); change both together.
 */
#include "store/query.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"

/* A term about the message: its SHA-256s to its deliveries. */
#define SQL_BY_SHA_OPEN                                                        \
	"(SELECT d.id FROM ingestd.delivery d WHERE d.sha256 IN ("
#define SQL_BY_SHA_CLOSE "))"

#define SQL_ALL "(SELECT d.id FROM ingestd.delivery d)"

/* An AND of terms: "(SELECT ... WHERE d.id IN (t1) AND d.id IN (t2))". */
#define SQL_AND_OPEN "(SELECT d.id FROM ingestd.delivery d WHERE "
#define SQL_AND_FIRST "d.id IN "
#define SQL_AND_NEXT " AND d.id IN "
#define SQL_AND_CLOSE ")"

/* "$N::date" as midnight UTC of that day. */
#define SQL_DAY(n) "(($" n "::date)::timestamp AT TIME ZONE 'UTC')"

#define SQL_ISO(col, fmt) "to_char(" col " AT TIME ZONE 'UTC', '" fmt "')"
#define SQL_ADDRS(role)                                                        \
	"(SELECT string_agg(x.address, ', ' ORDER BY x.pos)"                   \
	" FROM ingestd.message_address x"                                      \
	" WHERE x.sha256 = d.sha256 AND x.role = '" role "')"

/* clang-format off */
static const char sql_rows_head[] =
    "SELECT c.name, d.uidl, encode(d.sha256, 'hex'), b.size, "
    SQL_ISO("d.archived_at", "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"") ", "
    SQL_ISO("m.date", "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"") ", "
    SQL_ADDRS("from") ", " SQL_ADDRS("to") ", " SQL_ADDRS("cc") ", "
    "m.subject, m.message_id, "
    "coalesce((SELECT jsonb_agg(jsonb_build_object('path', p.path,"
    " 'filename', p.filename, 'content_type', p.content_type,"
    " 'size', p.size, 'sha256', encode(p.part_sha256, 'hex'))"
    " ORDER BY p.path) FROM ingestd.message_part p"
    " WHERE p.sha256 = d.sha256 AND p.attachment), '[]')::text, "
    "coalesce(b.dict_id, 0)"
    " FROM ingestd.delivery d"
    " JOIN ingestd.account c ON c.id = d.account_id"
    " JOIN ingestd.blob b ON b.sha256 = d.sha256"
    " LEFT JOIN ingestd.message m ON m.sha256 = d.sha256"
    " WHERE d.id IN (SELECT h.id FROM hits h)";
/* clang-format on */
/*
 * The matches are computed first, on their own (MATERIALIZED): were the
 * query flattened into the joins that fetch the columns, the planner could
 * hash every delivery to join a handful.
 */
static const char sql_rows_with[] = "WITH hits AS MATERIALIZED ";
static const char
    sql_rows_tail[] = " ORDER BY d.archived_at, d.id LIMIT $?::bigint";
static const char sql_count_head[] = "SELECT count(*) FROM ";
static const char sql_count_tail[] = " s";
static const char sql_ids_head[] = "SELECT s.id FROM ";
static const char sql_ids_tail[] = " s ORDER BY s.id";

/* Address operators: the role condition, by operator. */
static const char *const sql_role[] = {
	[QUERY_FROM] = " AND a.role = 'from'",
	[QUERY_TO] = " AND a.role = 'to'",
	[QUERY_CC] = " AND a.role = 'cc'",
	[QUERY_BCC] = " AND a.role = 'bcc'",
	[QUERY_DELIVEREDTO] = " AND a.role = 'delivered-to'",
	[QUERY_ADDR] = "",
};

/* Address operators: the column compared, by what the value names. */
static const char *const sql_addr[] = {
	[QUERY_ADDR_FULL] = "SELECT a.sha256 FROM ingestd.message_address a"
			    " WHERE a.address = lower($?::text)",
	[QUERY_ADDR_DOMAIN] = "SELECT a.sha256 FROM ingestd.message_address a"
			      " WHERE a.domain = lower($?::text)",
	[QUERY_ADDR_LOCAL] = "SELECT a.sha256 FROM ingestd.message_address a"
			     " WHERE split_part(a.address, '@', 1)"
			     " = lower($?::text)",
};

/*
 * The other terms.  by_sha: the fragment selects SHA-256s (wrapped in
 * SQL_BY_SHA_*); otherwise it is a set of delivery ids already.
 */
static const struct {
	const char *sql;
	bool by_sha;
	bool param;
} sql_term[] = {
	[QUERY_ACCOUNT] = { "(SELECT d.id FROM ingestd.delivery d"
			    " JOIN ingestd.account c ON c.id = d.account_id"
			    " WHERE c.name = $?::text)",
	    false, true },
	[QUERY_SUBJECT] = { "SELECT m.sha256 FROM ingestd.message m"
			    " WHERE m.subject_fts @@"
			    " phraseto_tsquery('simple', $?::text)",
	    true, true },
	[QUERY_FILENAME] = { "SELECT p.sha256 FROM ingestd.message_part p"
			     " WHERE lower(p.filename) = lower($?::text)"
			     " AND p.filename IS NOT NULL",
	    true, true },
	[QUERY_HAS] = { "SELECT m.sha256 FROM ingestd.message m"
			" WHERE m.has_attachment",
	    true, false },
	[QUERY_MSGID] = { "SELECT m.sha256 FROM ingestd.message m"
			  " WHERE lower(m.message_id) = lower($?::text)",
	    true, true },
	[QUERY_LIST] = { "SELECT m.sha256 FROM ingestd.message m"
			 " WHERE lower(m.list_id) = lower($?::text)",
	    true, true },
	[QUERY_SHA256] = { "(SELECT d.id FROM ingestd.delivery d"
			   " WHERE d.sha256 = decode($?::text, 'hex'))",
	    false, true },
	[QUERY_AFTER] = { "SELECT m.sha256 FROM ingestd.message m"
			  " WHERE m.date >= " SQL_DAY("?"),
	    true, true },
	[QUERY_BEFORE] = { "SELECT m.sha256 FROM ingestd.message m"
			   " WHERE m.date < " SQL_DAY("?"),
	    true, true },
	[QUERY_RECEIVED_AFTER] = { "(SELECT d.id FROM ingestd.delivery d"
				   " WHERE d.archived_at >= " SQL_DAY("?") ")",
	    false, true },
	[QUERY_RECEIVED_BEFORE] = { "(SELECT d.id FROM ingestd.delivery d"
				    " WHERE d.archived_at < " SQL_DAY("?") ")",
	    false, true },
	[QUERY_LARGER] = { "SELECT b.sha256 FROM ingestd.blob b"
			   " WHERE b.size > $?::bigint",
	    true, true },
	[QUERY_SMALLER] = { "SELECT b.sha256 FROM ingestd.blob b"
			    " WHERE b.size < $?::bigint",
	    true, true },
	[QUERY_WORD] = { "SELECT m.sha256 FROM ingestd.message m"
			 " WHERE m.fts @@ phraseto_tsquery('simple',"
			 " $?::text)",
	    true, true },
	[QUERY_PHRASE] = { "SELECT m.sha256 FROM ingestd.message m"
			   " WHERE m.fts @@ phraseto_tsquery('simple',"
			   " $?::text)",
	    true, true },
};

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = (b->cap + n + 1) * 2;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	b->len += n;
}

static void
sb_puts(struct sb *b, const char *s)
{
	sb_printf(b, "%s", s);
}

/* A fragment, its "$?" (at most one) numbered n. */
static void
sb_frag(struct sb *b, const char *frag, size_t n)
{
	const char *q = strstr(frag, "$?");

	if (q == NULL) {
		sb_puts(b, frag);
		return;
	}
	sb_printf(b, "%.*s$%zu%s", (int)(q - frag), frag, n, q + 2);
}

struct compiler {
	struct sb sb;
	char **params;
	size_t nparams, cap;
};

static size_t
param(struct compiler *c, char *value)
{
	if (c->nparams == c->cap) {
		c->cap = c->cap * 2 + 8;
		c->params = xreallocarray(c->params, c->cap,
		    sizeof(*c->params));
	}
	c->params[c->nparams++] = value;
	return c->nparams;
}

static void compile(struct compiler *c, const struct query_node *n);

static void
compile_leaf(struct compiler *c, const struct query_node *n)
{
	bool by_sha = true;

	switch (n->op) {
	case QUERY_FROM:
	case QUERY_TO:
	case QUERY_CC:
	case QUERY_BCC:
	case QUERY_DELIVEREDTO:
	case QUERY_ADDR:
		sb_puts(&c->sb, SQL_BY_SHA_OPEN);
		sb_frag(&c->sb, sql_addr[n->addr], param(c, n->value));
		sb_puts(&c->sb, sql_role[n->op]);
		sb_puts(&c->sb, SQL_BY_SHA_CLOSE);
		return;
	default:
		break;
	}
	by_sha = sql_term[n->op].by_sha;
	if (by_sha)
		sb_puts(&c->sb, SQL_BY_SHA_OPEN);
	if (sql_term[n->op].param)
		sb_frag(&c->sb, sql_term[n->op].sql, param(c, n->value));
	else
		sb_puts(&c->sb, sql_term[n->op].sql);
	if (by_sha)
		sb_puts(&c->sb, SQL_BY_SHA_CLOSE);
}

/*
 * The kids of an AND (or a lone NOT, as an AND of one): the deliveries
 * in every positive one, then each negated one subtracted.  Two or more
 * positive terms are a chain of "d.id IN (term)": the planner turns it
 * into semi-joins, starts from the term it expects fewest rows of and
 * probes the others by key, so a broad term (after: of years) next to a
 * selective one (from:) costs a probe per match, not a read of all it
 * matches, as INTERSECT would.
 */
static void
compile_and(struct compiler *c, struct query_node *const *kids, size_t n)
{
	size_t i, pos = 0, npos = 0;

	for (i = 0; i < n; i++)
		npos += kids[i]->kind != QUERY_NOT;
	sb_puts(&c->sb, "(");
	if (npos == 0)
		sb_puts(&c->sb, SQL_ALL);
	if (npos > 1)
		sb_puts(&c->sb, SQL_AND_OPEN);
	for (i = 0; i < n; i++) {
		if (kids[i]->kind == QUERY_NOT)
			continue;
		if (npos > 1)
			sb_puts(&c->sb,
			    pos++ > 0 ? SQL_AND_NEXT : SQL_AND_FIRST);
		compile(c, kids[i]);
	}
	if (npos > 1)
		sb_puts(&c->sb, SQL_AND_CLOSE);
	for (i = 0; i < n; i++) {
		if (kids[i]->kind != QUERY_NOT)
			continue;
		sb_puts(&c->sb, " EXCEPT ");
		compile(c, kids[i]->kids[0]);
	}
	sb_puts(&c->sb, ")");
}

/* n as a parenthesized query of delivery ids (column id). */
static void
compile(struct compiler *c, const struct query_node *n)
{
	size_t i;

	switch (n->kind) {
	case QUERY_LEAF:
		compile_leaf(c, n);
		break;
	case QUERY_AND:
		compile_and(c, n->kids, n->nkids);
		break;
	case QUERY_NOT: {
		struct query_node *const one[1] = { (struct query_node *)n };

		compile_and(c, one, 1);
		break;
	}
	case QUERY_OR:
		sb_puts(&c->sb, "(");
		for (i = 0; i < n->nkids; i++) {
			if (i > 0)
				sb_puts(&c->sb, " UNION ");
			compile(c, n->kids[i]);
		}
		sb_puts(&c->sb, ")");
		break;
	}
}

void
query_compile(const struct query *q, enum query_sql_mode mode,
    struct query_sql *sql_r)
{
	struct compiler c = { { NULL, 0, 0 }, NULL, 0, 0 };

	c.sb.cap = 1024;
	c.sb.p = xmalloc(c.sb.cap);
	c.sb.p[0] = '\0';
	switch (mode) {
	case QUERY_SQL_ROWS:
		sb_puts(&c.sb, sql_rows_with);
		compile(&c, q->root);
		sb_puts(&c.sb, " ");
		sb_puts(&c.sb, sql_rows_head);
		sb_frag(&c.sb, sql_rows_tail, param(&c, NULL));
		break;
	case QUERY_SQL_COUNT:
		sb_puts(&c.sb, sql_count_head);
		compile(&c, q->root);
		sb_puts(&c.sb, sql_count_tail);
		break;
	case QUERY_SQL_IDS:
		sb_puts(&c.sb, sql_ids_head);
		compile(&c, q->root);
		sb_puts(&c.sb, sql_ids_tail);
		break;
	}
	sql_r->sql = c.sb.p;
	sql_r->params = c.params;
	sql_r->nparams = c.nparams;
}

void
query_sql_release(struct query_sql *sql)
{
	free(sql->sql);
	sql->sql = NULL;
	free(sql->params);
	sql->params = NULL;
	sql->nparams = 0;
}
