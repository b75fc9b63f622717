/*
 * The search language of `ingestd search`, `export --query` and
 * ingestd.search() (migrations/0005_search_function.sql mirrors this
 * parser in PL/pgSQL; tests/integ/test_search.py checks that both agree,
 * error columns included).
 *
 *   query   := or
 *   or      := and ( 'OR' and )*
 *   and     := unary unary*                    (implicit AND)
 *   unary   := '-' unary | '(' or ')' | term   ('-' right before the term)
 *   term    := NAME ':' value | word | "phrase"
 *   value   := unquoted run | "quoted"         (\" and \\ inside quotes)
 *
 * Operators: from: to: cc: bcc: deliveredto: addr: account: subject:
 * filename: has:attachment msgid: list: sha256: after: before:
 * received-after: received-before: larger: smaller:, names matched in any
 * case.  Unquoted words and values end at white space, '(', ')' or '"'.
 * A run NAME:... whose NAME is a letter then letters, digits or '-' is an
 * operator, so a word with such a colon must be quoted ("http://x");
 * 'OR' in capitals is the operator, 'AND' is refused (AND is implicit).
 *
 * Sans-I/O and bounded: at most QUERY_LEN_MAX characters, QUERY_TERMS_MAX
 * terms and QUERY_DEPTH_MAX levels of '(' and '-', so no input can make it
 * recurse or allocate without bound.  Columns in errors count characters
 * (UTF-8 code points) from 1, as PostgreSQL counts them.
 */
#ifndef STORE_QUERY_H
#define STORE_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#define QUERY_LEN_MAX 4096 /* characters */
#define QUERY_TERMS_MAX 128
#define QUERY_DEPTH_MAX 32

enum query_op {
	QUERY_FROM,
	QUERY_TO,
	QUERY_CC,
	QUERY_BCC,
	QUERY_DELIVEREDTO,
	QUERY_ADDR,
	QUERY_ACCOUNT,
	QUERY_SUBJECT,
	QUERY_FILENAME,
	QUERY_HAS,
	QUERY_MSGID,
	QUERY_LIST,
	QUERY_SHA256,
	QUERY_AFTER,
	QUERY_BEFORE,
	QUERY_RECEIVED_AFTER,
	QUERY_RECEIVED_BEFORE,
	QUERY_LARGER,
	QUERY_SMALLER,
	QUERY_WORD,   /* a bare word */
	QUERY_PHRASE, /* a "quoted phrase" */
	QUERY_OP_COUNT
};

/* What an address operator's value names. */
enum query_addr {
	QUERY_ADDR_FULL,   /* local@domain */
	QUERY_ADDR_DOMAIN, /* example.org or @example.org */
	QUERY_ADDR_LOCAL,  /* alice or alice@ (the part before '@') */
};

enum query_kind {
	QUERY_LEAF,
	QUERY_AND,
	QUERY_OR,
	QUERY_NOT,
};

struct query_node {
	enum query_kind kind;
	unsigned column; /* of the term, '(' or '-' */
	/* QUERY_LEAF */
	enum query_op op;
	enum query_addr addr; /* address operators only */
	/*
	 * The value as the SQL compares it: unquoted; for msgid: and list:
	 * without the angle brackets; for an address without the '@' that
	 * marks a domain or local part; for larger:/smaller: bytes in
	 * decimal; NULL for has:attachment.  Case is left to the SQL.
	 */
	char *value;
	/* QUERY_AND, QUERY_OR: two or more; QUERY_NOT: one */
	struct query_node **kids;
	size_t nkids;
};

struct query {
	struct query_node *root;
	size_t nleaves;
};

struct query_error {
	unsigned column; /* 1-based, in characters */
	char msg[256];	 /* "unknown operator 'form:'; did ..." */
};

/*
 * Parses text[0, len).  Returns a new query the caller frees with
 * query_free(), or NULL with *e set (column and what was expected);
 * query_error_format() gives the "column N: ..." text.  Never calls back.
 */
struct query *query_parse(const char *text, size_t len, struct query_error *e);
void query_free(struct query **q);
/* "column 14: unknown operator 'form:'; did you mean 'from:'?" */
void query_error_format(const struct query_error *e, char *buf, size_t len);

/* "from", "received-after", ...; "word", "phrase" for the last two. */
const char *query_op_name(enum query_op op);

/* ---- the compiler: query_sql.c ---- */

enum query_sql_mode {
	QUERY_SQL_ROWS,	 /* the deliveries, see query_sql_columns */
	QUERY_SQL_COUNT, /* one row: count(*) */
	QUERY_SQL_IDS,	 /* delivery ids only (EXPLAIN, tests) */
};

/*
 * Columns of QUERY_SQL_ROWS, in order: account, uidl, sha256 (hex),
 * size, archived_at and date (ISO 8601 UTC text, date NULL if none),
 * from, to, cc (addresses joined by ", "), subject, message_id,
 * attachments (a JSON array), dict_id.  Ordered by archive time.
 */
enum query_col {
	QUERY_COL_ACCOUNT,
	QUERY_COL_UIDL,
	QUERY_COL_SHA256,
	QUERY_COL_SIZE,
	QUERY_COL_ARCHIVED_AT,
	QUERY_COL_DATE,
	QUERY_COL_FROM,
	QUERY_COL_TO,
	QUERY_COL_CC,
	QUERY_COL_SUBJECT,
	QUERY_COL_MESSAGE_ID,
	QUERY_COL_ATTACHMENTS,
	QUERY_COL_DICT_ID,
	QUERY_COL_COUNT
};

/*
 * One parameterized statement: sql is assembled only from fixed
 * fragments chosen by the query's shape, and every value of the query is
 * a parameter ($1 .. $nparams, as text).  In QUERY_SQL_ROWS the last
 * parameter is the LIMIT: params[nparams - 1] is NULL (no limit) unless
 * the caller sets it.  Owned by the struct; query_sql_release() frees.
 */
struct query_sql {
	char *sql;
	char **params; /* borrowed from the query, except the limit */
	size_t nparams;
};

/* Compiles q (which must outlive sql) into sql_r; never fails. */
void query_compile(const struct query *q, enum query_sql_mode mode,
    struct query_sql *sql_r);
void query_sql_release(struct query_sql *sql);

#endif
