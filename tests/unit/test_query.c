/*
 * store/query: the search language's parser (every operator, precedence,
 * quoting, every error with its column, the limits) and its compiler (the
 * parameter list and the SQL fragments each shape gives).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/query.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                               \
	X(test_operators)                                                      \
	X(test_addresses)                                                      \
	X(test_values)                                                         \
	X(test_precedence)                                                     \
	X(test_quoting)                                                        \
	X(test_errors)                                                         \
	X(test_limits)                                                         \
	X(test_utf8_columns)                                                   \
	X(test_compile_leaves)                                                 \
	X(test_compile_shapes)                                                 \
	X(test_compile_modes)

TESTS(TEST_DECLARE)

static void
dump(const struct query_node *n, char *buf, size_t len)
{
	static const char *const addr[] = { "full", "domain", "local" };
	size_t i, used;

	switch (n->kind) {
	case QUERY_LEAF:
		if (n->op <= QUERY_ADDR)
			snprintf(buf, len, "%s/%s=%s", query_op_name(n->op),
			    addr[n->addr], n->value);
		else
			snprintf(buf, len, "%s=%s", query_op_name(n->op),
			    n->value != NULL ? n->value : "-");
		return;
	case QUERY_NOT:
		snprintf(buf, len, "(NOT ");
		break;
	case QUERY_AND:
		snprintf(buf, len, "(AND ");
		break;
	case QUERY_OR:
		snprintf(buf, len, "(OR ");
		break;
	}
	for (i = 0; i < n->nkids; i++) {
		used = strlen(buf);
		if (i > 0) {
			snprintf(buf + used, len - used, " ");
			used++;
		}
		dump(n->kids[i], buf + used, len - used);
	}
	used = strlen(buf);
	snprintf(buf + used, len - used, ")");
}

/* The tree of text as a string, or "column N: error". */
static const char *
parse(const char *text)
{
	static char out[4096];
	struct query_error e;
	struct query *q;

	if ((q = query_parse(text, strlen(text), &e)) == NULL) {
		query_error_format(&e, out, sizeof(out));
		return out;
	}
	dump(q->root, out, sizeof(out));
	query_free(&q);
	ASSERT_TRUE(q == NULL);
	return out;
}

static void
test_operators(void)
{
	ASSERT_STREQ(parse("account:legal"), "account=legal");
	ASSERT_STREQ(parse("subject:report"), "subject=report");
	ASSERT_STREQ(parse("filename:Contract.PDF"), "filename=Contract.PDF");
	ASSERT_STREQ(parse("has:attachment"), "has=-");
	ASSERT_STREQ(parse("HAS:ATTACHMENT"), "has=-");
	ASSERT_STREQ(parse("msgid:abc@x"), "msgid=abc@x");
	ASSERT_STREQ(parse("list:team.example.org"), "list=team.example.org");
	ASSERT_STREQ(parse("sha256:"
			   "0123456789abcdef0123456789abcdef"
			   "0123456789ABCDEF0123456789abcdef"),
	    "sha256="
	    "0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef");
	ASSERT_STREQ(parse("after:2024-02-29"), "after=2024-02-29");
	ASSERT_STREQ(parse("before:2000-02-29"), "before=2000-02-29");
	ASSERT_STREQ(parse("received-after:2025-01-01"),
	    "received-after=2025-01-01");
	ASSERT_STREQ(parse("Received-Before:9999-12-31"),
	    "received-before=9999-12-31");
	ASSERT_STREQ(parse("larger:10K"), "larger=10240");
	ASSERT_STREQ(parse("smaller:2m"), "smaller=2097152");
	ASSERT_STREQ(parse("larger:1G"), "larger=1073741824");
	ASSERT_STREQ(parse("larger:0"), "larger=0");
	ASSERT_STREQ(parse("report"), "word=report");
	ASSERT_STREQ(parse("\"quarterly report\""), "phrase=quarterly report");
	/* Not operators: a colon after a non-name, or inside a word. */
	ASSERT_STREQ(parse("10:30"), "word=10:30");
	ASSERT_STREQ(parse(":x"), "word=:x");
	ASSERT_STREQ(parse("a.b:c"), "word=a.b:c");
	ASSERT_STREQ(parse("or"), "word=or");
	ASSERT_STREQ(parse("and"), "word=and");
	ASSERT_STREQ(parse("foo-bar"), "word=foo-bar");
}

static void
test_addresses(void)
{
	ASSERT_STREQ(parse("from:Alice@Example.com"),
	    "from/full=Alice@Example.com");
	ASSERT_STREQ(parse("to:example.com"), "to/domain=example.com");
	ASSERT_STREQ(parse("cc:@example.com"), "cc/domain=example.com");
	ASSERT_STREQ(parse("bcc:alice"), "bcc/local=alice");
	ASSERT_STREQ(parse("deliveredto:alice@"), "deliveredto/local=alice");
	ASSERT_STREQ(parse("addr:a@b@c"), "addr/full=a@b@c");
	ASSERT_STREQ(parse("addr:\"@localhost\""), "addr/domain=localhost");
}

static void
test_values(void)
{
	ASSERT_STREQ(parse("msgid:<abc@x>"), "msgid=abc@x");
	ASSERT_STREQ(parse("msgid:<abc@x"), "msgid=abc@x");
	ASSERT_STREQ(parse("msgid:abc@x>"), "msgid=abc@x");
	ASSERT_STREQ(parse("list:<l.x>"), "list=l.x");
	ASSERT_STREQ(parse("larger:0010k"), "larger=10240");
	ASSERT_STREQ(parse("larger:8388608G"), "larger=9007199254740992");
	ASSERT_STREQ(parse("larger:8388609G"),
	    "column 8: size after 'larger:' too large");
	ASSERT_STREQ(parse("larger:9007199254740993"),
	    "column 8: size after 'larger:' too large");
	ASSERT_STREQ(parse("larger:00000000000000001"),
	    "column 8: size after 'larger:' too large");
	ASSERT_STREQ(parse("after:1900-02-29"),
	    "column 7: expected a date as YYYY-MM-DD after 'after:'");
	ASSERT_STREQ(parse("after:2023-04-31"),
	    "column 7: expected a date as YYYY-MM-DD after 'after:'");
	ASSERT_STREQ(parse("after:2023-13-01"),
	    "column 7: expected a date as YYYY-MM-DD after 'after:'");
	ASSERT_STREQ(parse("after:2023-01-00"),
	    "column 7: expected a date as YYYY-MM-DD after 'after:'");
	ASSERT_STREQ(parse("after:2023-01-01x"),
	    "column 7: expected a date as YYYY-MM-DD after 'after:'");
	ASSERT_STREQ(parse("after:0001-01-01"), "after=0001-01-01");
}

static void
test_precedence(void)
{
	ASSERT_STREQ(parse("a b OR c"), "(OR (AND word=a word=b) word=c)");
	ASSERT_STREQ(parse("a OR b c"), "(OR word=a (AND word=b word=c))");
	ASSERT_STREQ(parse("a OR b OR c"), "(OR word=a word=b word=c)");
	ASSERT_STREQ(parse("-a b"), "(AND (NOT word=a) word=b)");
	ASSERT_STREQ(parse("-(a OR b) c"),
	    "(AND (NOT (OR word=a word=b)) word=c)");
	ASSERT_STREQ(parse("--a"), "(NOT (NOT word=a))");
	ASSERT_STREQ(parse("(a b) (c)"), "(AND (AND word=a word=b) word=c)");
	ASSERT_STREQ(parse("((a))"), "word=a");
	ASSERT_STREQ(parse("a(b)c"), "(AND word=a word=b word=c)");
	ASSERT_STREQ(parse("-from:x@y.z"), "(NOT from/full=x@y.z)");
	ASSERT_STREQ(parse(" \t\n\r\f\va\v"), "word=a");
}

static void
test_quoting(void)
{
	ASSERT_STREQ(parse("subject:\"quarterly report\""),
	    "subject=quarterly report");
	ASSERT_STREQ(parse("\"a \\\"b\\\" \\\\ c\""), "phrase=a \"b\" \\ c");
	ASSERT_STREQ(parse("\"(OR) -x\""), "phrase=(OR) -x");
	ASSERT_STREQ(parse("from:\"a b\"c"), "(AND from/local=a b word=c)");
	ASSERT_STREQ(parse("x\"y\""), "(AND word=x phrase=y)");
	ASSERT_STREQ(parse("\"http://x\""), "phrase=http://x");
	ASSERT_STREQ(parse("subject:a\"b\""), "(AND subject=a phrase=b)");
	/* A backslash at the very end escapes nothing. */
	ASSERT_STREQ(parse("\"a\\"), "column 1: unterminated quote");
}

static void
test_errors(void)
{
	static const struct {
		const char *q, *err;
	} cases[] = {
		{ "", "column 1: empty query" },
		{ " \t ", "column 1: empty query" },
		{ "from:alice form:bob",
		    "column 12: unknown operator "
		    "'form:'; did you mean 'from:'?" },
		{ "Sujbect:x",
		    "column 1: unknown operator 'Sujbect:'; did you "
		    "mean 'subject:'?" },
		{ "http://example.com",
		    "column 1: unknown operator 'http:' (a "
		    "word with ':' must be quoted)" },
		{ "from: alice", "column 6: expected a value after 'from:'" },
		{ "from:", "column 6: expected a value after 'from:'" },
		{ "from:(a)", "column 6: expected a value after 'from:'" },
		{ "subject:\"\"",
		    "column 9: expected a value after "
		    "'subject:'" },
		{ "subject:\"abc", "column 9: unterminated quote" },
		{ "a OR",
		    "column 5: expected a term before the end of the "
		    "query" },
		{ "OR a", "column 1: expected a term before 'OR'" },
		{ "a OR OR b", "column 6: expected a term before 'OR'" },
		{ "(a", "column 3: expected ')' to close the '(' at column 1" },
		{ "((a) b",
		    "column 7: expected ')' to close the '(' at "
		    "column 1" },
		{ "a)", "column 2: unexpected ')'" },
		{ "a) (", "column 2: unexpected ')'" },
		{ "()", "column 2: expected a term before ')'" },
		{ "- a", "column 1: expected a term right after '-'" },
		{ "a -", "column 3: expected a term right after '-'" },
		{ "a -)", "column 4: expected a term after '-'" },
		{ "-OR a", "column 2: expected a term after '-'" },
		{ "x \"abc", "column 3: unterminated quote" },
		{ "\"\"", "column 1: empty phrase" },
		{ "a AND b",
		    "column 3: 'AND' is implied between terms: leave "
		    "it out" },
		{ "before:2024-2-3",
		    "column 8: expected a date as YYYY-MM-DD "
		    "after 'before:'" },
		{ "larger:10X",
		    "column 8: expected a size (digits, then "
		    "optionally K, M or G) after 'larger:'" },
		{ "smaller:K",
		    "column 9: expected a size (digits, then "
		    "optionally K, M or G) after 'smaller:'" },
		{ "larger:-1",
		    "column 8: expected a size (digits, then "
		    "optionally K, M or G) after 'larger:'" },
		{ "has:pdf", "column 5: expected 'attachment' after 'has:'" },
		{ "sha256:abc",
		    "column 8: expected 64 hexadecimal digits "
		    "after 'sha256:'" },
		{ "msgid:<>",
		    "column 7: expected a Message-ID after "
		    "'msgid:'" },
		{ "list:<>", "column 6: expected a list id after 'list:'" },
		{ "to:@",
		    "column 4: expected an address, a domain or a local "
		    "part after 'to:'" },
		{ "cc:\"@\"",
		    "column 4: expected an address, a domain or a "
		    "local part after 'cc:'" },
		/* The first error in the text wins, whatever its kind. */
		{ ") form:x",
		    "column 3: unknown operator 'form:'; did you "
		    "mean 'from:'?" },
		{ "averyveryverylongoperatornamethatgoesonandon:x",
		    "column 1: unknown operator" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ASSERT_STREQ(parse(cases[i].q), cases[i].err);
}

static void
test_limits(void)
{
	char *q = malloc(QUERY_LEN_MAX + 2), buf[64];
	size_t i, n;

	/* 32 levels of '(' and '-' pass, 33 do not. */
	memset(q, '(', 32);
	q[32] = 'a';
	memset(q + 33, ')', 32);
	q[65] = '\0';
	ASSERT_STREQ(parse(q), "word=a");
	memset(q, '(', 33);
	q[33] = 'a';
	memset(q + 34, ')', 33);
	q[67] = '\0';
	ASSERT_STREQ(parse(q),
	    "column 33: nested too deeply (at most 32 "
	    "levels of '(' and '-')");
	memset(q, '-', 40);
	q[40] = 'a';
	q[41] = '\0';
	ASSERT_STREQ(parse(q),
	    "column 33: nested too deeply (at most 32 "
	    "levels of '(' and '-')");
	/* A very deep nesting is refused as fast, without recursion. */
	memset(q, '(', QUERY_LEN_MAX);
	q[QUERY_LEN_MAX] = '\0';
	ASSERT_STREQ(parse(q),
	    "column 33: nested too deeply (at most 32 "
	    "levels of '(' and '-')");

	/* 128 terms pass, the 129th is refused at its column. */
	q[0] = '\0';
	for (i = 0, n = 0; i < 128; i++)
		n += sprintf(q + n, "%sw", i > 0 ? " " : "");
	ASSERT_TRUE(strncmp(parse(q), "(AND word=w", 11) == 0);
	sprintf(q + n, " x");
	snprintf(buf, sizeof(buf), "column %zu: more than 128 terms", n + 2);
	ASSERT_STREQ(parse(q), buf);

	/* 4096 characters pass, 4097 do not. */
	memset(q, 'x', QUERY_LEN_MAX);
	q[QUERY_LEN_MAX] = '\0';
	ASSERT_TRUE(strncmp(parse(q), "word=xxx", 8) == 0);
	q[QUERY_LEN_MAX] = 'x';
	q[QUERY_LEN_MAX + 1] = '\0';
	ASSERT_STREQ(parse(q),
	    "column 4097: query longer than 4096 "
	    "characters");
	free(q);
}

static void
test_utf8_columns(void)
{
	struct query_error e;

	/* Columns count characters, not bytes. */
	ASSERT_STREQ(parse("ünïcödé frm:x"),
	    "column 9: unknown operator "
	    "'frm:'; did you mean 'from:'?");
	ASSERT_STREQ(parse("subject:\"€\" (a"),
	    "column 15: expected ')' to "
	    "close the '(' at column 13");
	ASSERT_STREQ(parse("straße"), "word=straße");
	ASSERT_STREQ(parse("ab\xff"), "column 3: invalid UTF-8");
	ASSERT_STREQ(parse("é\xc3"), "column 2: invalid UTF-8");
	ASSERT_STREQ(parse("\xc0\xaf"), "column 1: invalid UTF-8");
	ASSERT_STREQ(parse("a \xed\xa0\x80"), "column 3: invalid UTF-8");
	ASSERT_TRUE(query_parse("a\0b", 3, &e) == NULL);
	ASSERT_EQ(e.column, 2);
	ASSERT_STREQ(e.msg, "a NUL character");
}

/* The SQL of text in mode, and its parameters joined by '|'. */
static void
compile(const char *text, enum query_sql_mode mode, char **sql_r, char *params,
    size_t len)
{
	struct query_error e;
	struct query_sql s;
	struct query *q;
	size_t i, used = 0;

	q = query_parse(text, strlen(text), &e);
	ASSERT_TRUE(q != NULL);
	query_compile(q, mode, &s);
	params[0] = '\0';
	for (i = 0; i < s.nparams; i++) {
		snprintf(params + used, len - used, "%s%s", i > 0 ? "|" : "",
		    s.params[i] != NULL ? s.params[i] : "NULL");
		used = strlen(params);
	}
	*sql_r = strdup(s.sql);
	/* Every $n is a parameter that exists, and nothing else is. */
	for (i = 1; i <= s.nparams; i++) {
		char tag[16];

		snprintf(tag, sizeof(tag), "$%zu::", i);
		ASSERT_TRUE(strstr(s.sql, tag) != NULL);
	}
	query_sql_release(&s);
	query_free(&q);
}

#define BY_SHA(x)                                                              \
	"(SELECT d.id FROM ingestd.delivery d WHERE d.sha256 IN (" x "))"

static void
test_compile_leaves(void)
{
	static const struct {
		const char *q, *sql, *params;
	} cases[] = {
		{ "from:A@B.c",
		    BY_SHA("SELECT a.sha256 FROM "
			   "ingestd.message_address a WHERE a.address = "
			   "lower($1::text) AND a.role = 'from'"),
		    "A@B.c" },
		{ "deliveredto:b.c",
		    BY_SHA("SELECT a.sha256 FROM "
			   "ingestd.message_address a WHERE a.domain = "
			   "lower($1::text) AND a.role = 'delivered-to'"),
		    "b.c" },
		{ "addr:alice",
		    BY_SHA(
			"SELECT a.sha256 FROM "
			"ingestd.message_address a WHERE split_part(a.address, "
			"'@', 1) = lower($1::text)"),
		    "alice" },
		{ "account:x'; DROP TABLE y",
		    "(SELECT d.id FROM "
		    "ingestd.delivery d JOIN ingestd.account c ON c.id = "
		    "d.account_id WHERE c.name = $1::text)",
		    "x';" },
		{ "has:attachment",
		    BY_SHA("SELECT m.sha256 FROM "
			   "ingestd.message m WHERE m.has_attachment"),
		    "" },
		{ "\"a b\"",
		    BY_SHA(
			"SELECT m.sha256 FROM ingestd.message m "
			"WHERE m.fts @@ phraseto_tsquery('simple', $1::text)"),
		    "a b" },
		{ "subject:x",
		    BY_SHA("SELECT m.sha256 FROM ingestd.message m "
			   "WHERE m.subject_fts @@ phraseto_tsquery('simple', "
			   "$1::text)"),
		    "x" },
		{ "after:2024-01-02",
		    BY_SHA("SELECT m.sha256 FROM "
			   "ingestd.message m WHERE m.date >= "
			   "(($1::date)::timestamp AT TIME ZONE 'UTC')"),
		    "2024-01-02" },
		{ "received-before:2024-01-02",
		    "(SELECT d.id FROM "
		    "ingestd.delivery d WHERE d.archived_at < "
		    "(($1::date)::timestamp AT TIME ZONE 'UTC'))",
		    "2024-01-02" },
		{ "smaller:1k",
		    BY_SHA("SELECT b.sha256 FROM ingestd.blob b "
			   "WHERE b.size < $1::bigint"),
		    "1024" },
		{ "msgid:<M@x>",
		    BY_SHA("SELECT m.sha256 FROM ingestd.message "
			   "m WHERE lower(m.message_id) = lower($1::text)"),
		    "M@x" },
		{ "filename:\"a b.pdf\"",
		    BY_SHA("SELECT p.sha256 FROM "
			   "ingestd.message_part p WHERE lower(p.filename) = "
			   "lower($1::text) AND p.filename IS NOT NULL"),
		    "a b.pdf" },
	};
	char *sql, params[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		compile(cases[i].q, QUERY_SQL_IDS, &sql, params,
		    sizeof(params));
		ASSERT_TRUE(strncmp(sql, "SELECT s.id FROM ", 17) == 0);
		if (strncmp(cases[i].q, "account:", 8) == 0) {
			/* Two more terms, and no value in the SQL text. */
			ASSERT_STREQ(params, "x';|DROP|TABLE|y");
			ASSERT_TRUE(strstr(sql, "x'") == NULL);
			ASSERT_TRUE(strstr(sql, "DROP") == NULL);
		} else {
			ASSERT_TRUE(strncmp(sql + 17, cases[i].sql,
					strlen(cases[i].sql)) == 0);
			ASSERT_STREQ(sql + 17 + strlen(cases[i].sql),
			    " s ORDER BY s.id");
			ASSERT_STREQ(params, cases[i].params);
		}
		free(sql);
	}
}

#define W(n)                                                                   \
	BY_SHA("SELECT m.sha256 FROM ingestd.message m WHERE m.fts @@ "        \
	       "phraseto_tsquery('simple', $" #n "::text)")
#define ALL "(SELECT d.id FROM ingestd.delivery d)"
#define AND "(SELECT d.id FROM ingestd.delivery d WHERE d.id IN "

static void
test_compile_shapes(void)
{
	static const struct {
		const char *q, *sql, *params;
	} cases[] = {
		{ "a b", "(" AND W(1) " AND d.id IN " W(2) "))", "a|b" },
		{ "a b c",
		    "(" AND W(1) " AND d.id IN " W(2) " AND d.id IN " W(3) "))",
		    "a|b|c" },
		{ "a OR b", "(" W(1) " UNION " W(2) ")", "a|b" },
		{ "-a", "(" ALL " EXCEPT " W(1) ")", "a" },
		{ "a -b c",
		    "(" AND W(1) " AND d.id IN " W(2) ") EXCEPT " W(3) ")",
		    "a|c|b" },
		{ "-a -b", "(" ALL " EXCEPT " W(1) " EXCEPT " W(2) ")", "a|b" },
		{ "--a", "(" ALL " EXCEPT (" ALL " EXCEPT " W(1) "))", "a" },
		{ "a OR -b", "(" W(1) " UNION (" ALL " EXCEPT " W(2) "))",
		    "a|b" },
		{ "(a OR b) c",
		    "(" AND "(" W(1) " UNION " W(2) ") AND d.id IN " W(3) "))",
		    "a|b|c" },
		{ "-(a OR b) c", "(" W(1) " EXCEPT (" W(2) " UNION " W(3) "))",
		    "c|a|b" },
	};
	char *sql, params[512];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		compile(cases[i].q, QUERY_SQL_IDS, &sql, params,
		    sizeof(params));
		n = strlen(sql) - 17 - strlen(" s ORDER BY s.id");
		if (strncmp(sql + 17, cases[i].sql, n) != 0 ||
		    strlen(cases[i].sql) != n)
			TEST_FAIL_("%s: %s\n  want %s", cases[i].q, sql + 17,
			    cases[i].sql);
		ASSERT_STREQ(params, cases[i].params);
		free(sql);
	}
}

static void
test_compile_modes(void)
{
	char *sql, params[512];

	compile("a", QUERY_SQL_COUNT, &sql, params, sizeof(params));
	ASSERT_STREQ(sql, "SELECT count(*) FROM " W(1) " s");
	ASSERT_STREQ(params, "a");
	free(sql);
	compile("has:attachment a", QUERY_SQL_ROWS, &sql, params,
	    sizeof(params));
	ASSERT_TRUE(strncmp(sql, "WITH hits AS MATERIALIZED (" AND,
			27 + strlen(AND)) == 0);
	ASSERT_TRUE(strstr(sql, ") SELECT c.name, d.uidl, ") != NULL);
	ASSERT_TRUE(
	    strstr(sql, " WHERE d.id IN (SELECT h.id FROM hits h)") != NULL);
	ASSERT_TRUE(strstr(sql,
			" ORDER BY d.archived_at, d.id LIMIT "
			"$2::bigint") != NULL);
	/* The limit is the last parameter, NULL (none) until set. */
	ASSERT_STREQ(params, "a|NULL");
	free(sql);
}

TEST_MAIN(TESTS)
