/*
 * The search language's parser (see query.h).
 *
 * Two passes, as the PL/pgSQL mirror in migrations/0005 does them, so
 * that both report the same first error: the tokenizer turns the whole
 * text into tokens (checking every operator's value as it goes), then a
 * recursive descent over the tokens, bounded by QUERY_DEPTH_MAX, builds
 * the tree.
 */
#include "store/query.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingestd/base/xmalloc.h"

/* Sizes above this are refused: no archived message comes near. */
#define QUERY_SIZE_MAX (1LL << 53)
/* Operator names longer than this are not quoted back in errors. */
#define QUERY_NAME_SHOWN 32

static const char *const query_ops[QUERY_OP_COUNT] = {
	[QUERY_FROM] = "from",
	[QUERY_TO] = "to",
	[QUERY_CC] = "cc",
	[QUERY_BCC] = "bcc",
	[QUERY_DELIVEREDTO] = "deliveredto",
	[QUERY_ADDR] = "addr",
	[QUERY_ACCOUNT] = "account",
	[QUERY_SUBJECT] = "subject",
	[QUERY_FILENAME] = "filename",
	[QUERY_HAS] = "has",
	[QUERY_MSGID] = "msgid",
	[QUERY_LIST] = "list",
	[QUERY_SHA256] = "sha256",
	[QUERY_AFTER] = "after",
	[QUERY_BEFORE] = "before",
	[QUERY_RECEIVED_AFTER] = "received-after",
	[QUERY_RECEIVED_BEFORE] = "received-before",
	[QUERY_LARGER] = "larger",
	[QUERY_SMALLER] = "smaller",
	[QUERY_WORD] = "word",
	[QUERY_PHRASE] = "phrase",
};

enum tok_kind {
	TOK_LEAF,
	TOK_LPAREN,
	TOK_RPAREN,
	TOK_NOT,
	TOK_OR,
	TOK_END,
};

struct tok {
	enum tok_kind kind;
	unsigned column;
	struct query_node *leaf; /* TOK_LEAF, owned until parsed */
};

struct lexer {
	const char *text;
	size_t n;     /* characters */
	uint32_t *cp; /* code points, n of them */
	size_t *off;  /* byte offset of each, n + 1 */
	struct tok *toks;
	size_t ntoks, cap;
	size_t nleaves;
	size_t pos; /* parser: current token */
	struct query_error *e;
};

const char *
query_op_name(enum query_op op)
{
	return op < QUERY_OP_COUNT ? query_ops[op] : "?";
}

void
query_error_format(const struct query_error *e, char *buf, size_t len)
{
	snprintf(buf, len, "column %u: %s", e->column, e->msg);
}

static int query_fail(struct lexer *lx, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the error at character index idx (0-based); returns -1. */
static int
query_fail(struct lexer *lx, size_t idx, const char *fmt, ...)
{
	va_list ap;

	lx->e->column = (unsigned)idx + 1;
	va_start(ap, fmt);
	vsnprintf(lx->e->msg, sizeof(lx->e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static void
node_free(struct query_node **np)
{
	struct query_node *n = *np;
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nkids; i++)
		node_free(&n->kids[i]);
	free(n->kids);
	n->kids = NULL;
	free(n->value);
	n->value = NULL;
	free(n);
	*np = NULL;
}

void
query_free(struct query **qp)
{
	if (*qp == NULL)
		return;
	node_free(&(*qp)->root);
	free(*qp);
	*qp = NULL;
}

/*
 * Decodes UTF-8 strictly (no overlongs, surrogates or values past
 * U+10FFFF), as PostgreSQL accepts it.  -1 with the error at the first
 * bad character.
 */
static int
query_decode(struct lexer *lx, const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, k, need;
	uint32_t c, min;

	lx->cp = xreallocarray(NULL, len + 1, sizeof(*lx->cp));
	lx->off = xreallocarray(NULL, len + 1, sizeof(*lx->off));
	lx->n = 0;
	while (i < len) {
		c = s[i];
		if (c < 0x80)
			need = 0, min = 0;
		else if ((c & 0xe0) == 0xc0)
			need = 1, c &= 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			need = 2, c &= 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			need = 3, c &= 0x07, min = 0x10000;
		else
			return query_fail(lx, lx->n, "invalid UTF-8");
		if (c == 0 && need == 0)
			return query_fail(lx, lx->n, "a NUL character");
		if (len - i <= need)
			return query_fail(lx, lx->n, "invalid UTF-8");
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return query_fail(lx, lx->n, "invalid UTF-8");
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return query_fail(lx, lx->n, "invalid UTF-8");
		lx->cp[lx->n] = c;
		lx->off[lx->n] = i;
		lx->n++;
		i += need + 1;
	}
	lx->off[lx->n] = len;
	return 0;
}

static bool
is_space(uint32_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

/* Where an unquoted word or value ends. */
static bool
is_stop(uint32_t c)
{
	return is_space(c) || c == '(' || c == ')' || c == '"';
}

static bool
is_alpha(uint32_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}

static uint32_t
to_lower(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static void
tok_push(struct lexer *lx, enum tok_kind kind, size_t idx,
    struct query_node *leaf)
{
	if (lx->ntoks == lx->cap) {
		lx->cap = lx->cap * 2 + 16;
		lx->toks = xreallocarray(lx->toks, lx->cap, sizeof(*lx->toks));
	}
	lx->toks[lx->ntoks].kind = kind;
	lx->toks[lx->ntoks].column = (unsigned)idx + 1;
	lx->toks[lx->ntoks].leaf = leaf;
	lx->ntoks++;
}

/* Characters [a, b) as a new string. */
static char *
lx_str(const struct lexer *lx, size_t a, size_t b)
{
	return xstrndup(lx->text + lx->off[a], lx->off[b] - lx->off[a]);
}

/*
 * A quoted string starting at the '"' at *i: its content, unescaped,
 * with *i past the closing quote.  NULL with the error if unterminated.
 */
static char *
lx_quoted(struct lexer *lx, size_t *i)
{
	size_t start = *i, j = *i + 1;
	char *out, *w;

	w = out = xmalloc(lx->off[lx->n] - lx->off[start] + 1);
	while (j < lx->n && lx->cp[j] != '"') {
		if (lx->cp[j] == '\\' && j + 1 < lx->n)
			j++;
		memcpy(w, lx->text + lx->off[j], lx->off[j + 1] - lx->off[j]);
		w += lx->off[j + 1] - lx->off[j];
		j++;
	}
	if (j >= lx->n) {
		free(out);
		out = NULL;
		query_fail(lx, start, "unterminated quote");
		return NULL;
	}
	*w = '\0';
	*i = j + 1;
	return out;
}

static unsigned
levenshtein(const char *a, const char *b)
{
	unsigned row[QUERY_NAME_SHOWN + 1], diag, up, i, j, la, lb;

	la = (unsigned)strlen(a);
	lb = (unsigned)strlen(b);
	if (la > QUERY_NAME_SHOWN)
		return 1000;
	for (i = 0; i <= la; i++)
		row[i] = i;
	for (j = 1; j <= lb; j++) {
		diag = row[0];
		row[0] = j;
		for (i = 1; i <= la; i++) {
			up = row[i];
			row[i] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[i])
				row[i] = up + 1;
			if (row[i - 1] + 1 < row[i])
				row[i] = row[i - 1] + 1;
			diag = up;
		}
	}
	return row[la];
}

/* The operator named by characters [a, b), or QUERY_OP_COUNT. */
static enum query_op
lx_op(struct lexer *lx, size_t a, size_t b, char **lower_r)
{
	char *name = xmalloc(b - a + 1);
	enum query_op op;
	size_t i;

	for (i = a; i < b; i++)
		name[i - a] = (char)to_lower(lx->cp[i]);
	name[b - a] = '\0';
	*lower_r = name;
	for (op = 0; op < QUERY_WORD; op++)
		if (strcmp(name, query_ops[op]) == 0)
			return op;
	return QUERY_OP_COUNT;
}

static int
lx_unknown(struct lexer *lx, size_t a, size_t b, const char *lower)
{
	unsigned d, best = 1000;
	enum query_op op, guess = QUERY_OP_COUNT;
	char *shown;
	int rc;

	if (b - a > QUERY_NAME_SHOWN)
		return query_fail(lx, a, "unknown operator");
	for (op = 0; op < QUERY_WORD; op++)
		if ((d = levenshtein(lower, query_ops[op])) < best) {
			best = d;
			guess = op;
		}
	shown = lx_str(lx, a, b);
	if (best <= 2)
		rc = query_fail(lx, a,
		    "unknown operator '%s:'; did you mean "
		    "'%s:'?",
		    shown, query_ops[guess]);
	else
		rc = query_fail(lx, a,
		    "unknown operator '%s:' (a word with "
		    "':' must be quoted)",
		    shown);
	free(shown);
	shown = NULL;
	return rc;
}

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY-MM-DD, a real day of years 1 to 9999. */
static bool
valid_date(const char *s)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31 };
	int y, m, d, i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !is_digit((unsigned char)s[i]))
			return false;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return false;
	return d <= mdays[m - 1] + (m == 2 && leap(y));
}

/* Digits with an optional K, M or G (powers of 1024): bytes in decimal. */
static int
lx_size(struct lexer *lx, size_t at, const char *op, char **v)
{
	const char *s = *v;
	long long n = 0, mult = 1;
	size_t i, len = strlen(s), digits = len;

	if (len > 0 && strchr("kKmMgG", s[len - 1]) != NULL) {
		digits = len - 1;
		mult = to_lower((unsigned char)s[len - 1]) == 'k' ?
		    1024 :
		    to_lower((unsigned char)s[len - 1]) == 'm' ?
		    1024 * 1024 :
		    1024LL * 1024 * 1024;
	}
	if (digits == 0)
		return query_fail(lx, at,
		    "expected a size (digits, then "
		    "optionally K, M or G) after '%s:'",
		    op);
	for (i = 0; i < digits; i++)
		if (!is_digit((unsigned char)s[i]))
			return query_fail(lx, at,
			    "expected a size (digits, "
			    "then optionally K, M or G) after '%s:'",
			    op);
	if (digits > 16)
		return query_fail(lx, at, "size after '%s:' too large", op);
	for (i = 0; i < digits; i++)
		n = n * 10 + (s[i] - '0');
	if (n > QUERY_SIZE_MAX / mult)
		return query_fail(lx, at, "size after '%s:' too large", op);
	free(*v);
	*v = xasprintf("%lld", n * mult);
	return 0;
}

static bool
all_hex(const char *s)
{
	for (; *s != '\0'; s++)
		if (!is_digit((unsigned char)*s) &&
		    !(to_lower((unsigned char)*s) >= 'a' &&
			to_lower((unsigned char)*s) <= 'f'))
			return false;
	return true;
}

/* Removes one leading '<' and one trailing '>'. */
static void
strip_angles(char *s)
{
	size_t n = strlen(s);

	if (n > 0 && s[n - 1] == '>')
		s[--n] = '\0';
	if (s[0] == '<')
		memmove(s, s + 1, n);
}

/*
 * Checks and normalises the value v (owned, replaced as needed) of op,
 * found at character at; fills the leaf.
 */
static int
lx_value(struct lexer *lx, struct query_node *n, size_t at)
{
	const char *op = query_ops[n->op];
	char *v = n->value, *at_sign;
	size_t len = strlen(v);

	switch (n->op) {
	case QUERY_FROM:
	case QUERY_TO:
	case QUERY_CC:
	case QUERY_BCC:
	case QUERY_DELIVEREDTO:
	case QUERY_ADDR:
		at_sign = strchr(v, '@');
		if (v[0] == '@') {
			memmove(v, v + 1, len);
			n->addr = QUERY_ADDR_DOMAIN;
		} else if (len > 0 && v[len - 1] == '@') {
			v[len - 1] = '\0';
			n->addr = QUERY_ADDR_LOCAL;
		} else if (at_sign != NULL)
			n->addr = QUERY_ADDR_FULL;
		else if (strchr(v, '.') != NULL)
			n->addr = QUERY_ADDR_DOMAIN;
		else
			n->addr = QUERY_ADDR_LOCAL;
		if (v[0] == '\0')
			return query_fail(lx, at,
			    "expected an address, a "
			    "domain or a local part after '%s:'",
			    op);
		return 0;
	case QUERY_HAS:
		if (strcasecmp(v, "attachment") != 0)
			return query_fail(lx, at,
			    "expected 'attachment' "
			    "after 'has:'");
		free(n->value);
		n->value = NULL;
		return 0;
	case QUERY_MSGID:
	case QUERY_LIST:
		strip_angles(v);
		if (v[0] == '\0')
			return query_fail(lx, at, "expected %s after '%s:'",
			    n->op == QUERY_MSGID ? "a Message-ID" : "a list id",
			    op);
		return 0;
	case QUERY_SHA256:
		if (len != 64 || !all_hex(v))
			return query_fail(lx, at,
			    "expected 64 hexadecimal "
			    "digits after 'sha256:'");
		return 0;
	case QUERY_AFTER:
	case QUERY_BEFORE:
	case QUERY_RECEIVED_AFTER:
	case QUERY_RECEIVED_BEFORE:
		if (!valid_date(v))
			return query_fail(lx, at,
			    "expected a date as "
			    "YYYY-MM-DD after '%s:'",
			    op);
		return 0;
	case QUERY_LARGER:
	case QUERY_SMALLER:
		return lx_size(lx, at, op, &n->value);
	default:
		return 0;
	}
}

static struct query_node *
leaf_new(enum query_op op, size_t idx, char *value)
{
	struct query_node *n = xcalloc(1, sizeof(*n));

	n->kind = QUERY_LEAF;
	n->op = op;
	n->column = (unsigned)idx + 1;
	n->value = value;
	return n;
}

static int
lx_leaf(struct lexer *lx, size_t idx, struct query_node *n)
{
	if (lx->nleaves == QUERY_TERMS_MAX) {
		node_free(&n);
		return query_fail(lx, idx, "more than %d terms",
		    QUERY_TERMS_MAX);
	}
	lx->nleaves++;
	tok_push(lx, TOK_LEAF, idx, n);
	return 0;
}

/* A word or an operator with its value, starting at *ip. */
static int
lx_run(struct lexer *lx, size_t *ip)
{
	size_t i = *ip, j, colon = 0, vstart;
	struct query_node *n;
	enum query_op op;
	char *lower = NULL, *v;
	bool name = is_alpha(lx->cp[i]);

	for (j = i; j < lx->n && !is_stop(lx->cp[j]); j++) {
		if (lx->cp[j] == ':' && colon == 0 && j > i && name)
			colon = j;
		if (colon == 0 && j > i && !is_alpha(lx->cp[j]) &&
		    !is_digit(lx->cp[j]) && lx->cp[j] != '-' &&
		    lx->cp[j] != ':')
			name = false;
	}
	if (colon == 0) {
		*ip = j;
		if (j - i == 2 && lx->cp[i] == 'O' && lx->cp[i + 1] == 'R') {
			tok_push(lx, TOK_OR, i, NULL);
			return 0;
		}
		if (j - i == 3 && lx->cp[i] == 'A' && lx->cp[i + 1] == 'N' &&
		    lx->cp[i + 2] == 'D')
			return query_fail(lx, i,
			    "'AND' is implied between "
			    "terms: leave it out");
		return lx_leaf(lx, i,
		    leaf_new(QUERY_WORD, i, lx_str(lx, i, j)));
	}
	if ((op = lx_op(lx, i, colon, &lower)) == QUERY_OP_COUNT) {
		lx_unknown(lx, i, colon, lower);
		free(lower);
		lower = NULL;
		return -1;
	}
	free(lower);
	lower = NULL;
	vstart = colon + 1;
	if (j > vstart) {
		v = lx_str(lx, vstart, j);
	} else if (j < lx->n && lx->cp[j] == '"') {
		if ((v = lx_quoted(lx, &j)) == NULL)
			return -1;
		if (v[0] == '\0') {
			free(v);
			v = NULL;
			return query_fail(lx, vstart,
			    "expected a value after "
			    "'%s:'",
			    query_ops[op]);
		}
	} else
		return query_fail(lx, vstart, "expected a value after '%s:'",
		    query_ops[op]);
	*ip = j;
	n = leaf_new(op, i, v);
	if (lx_value(lx, n, vstart) == -1) {
		node_free(&n);
		return -1;
	}
	return lx_leaf(lx, i, n);
}

static int
lx_tokenize(struct lexer *lx)
{
	size_t i = 0;
	char *v;

	while (i < lx->n) {
		uint32_t c = lx->cp[i];

		if (is_space(c)) {
			i++;
		} else if (c == '(') {
			tok_push(lx, TOK_LPAREN, i++, NULL);
		} else if (c == ')') {
			tok_push(lx, TOK_RPAREN, i++, NULL);
		} else if (c == '-') {
			if (i + 1 >= lx->n || is_space(lx->cp[i + 1]))
				return query_fail(lx, i,
				    "expected a term "
				    "right after '-'");
			tok_push(lx, TOK_NOT, i++, NULL);
		} else if (c == '"') {
			size_t start = i;

			if ((v = lx_quoted(lx, &i)) == NULL)
				return -1;
			if (v[0] == '\0') {
				free(v);
				v = NULL;
				return query_fail(lx, start, "empty phrase");
			}
			if (lx_leaf(lx, start,
				leaf_new(QUERY_PHRASE, start, v)) == -1)
				return -1;
		} else if (lx_run(lx, &i) == -1)
			return -1;
	}
	tok_push(lx, TOK_END, lx->n, NULL);
	return 0;
}

/* ---- the parser ---- */

static struct query_node *parse_or(struct lexer *lx, unsigned depth);

static struct tok *
cur(struct lexer *lx)
{
	return &lx->toks[lx->pos];
}

static const char *
tok_what(const struct tok *t)
{
	switch (t->kind) {
	case TOK_OR:
		return "'OR'";
	case TOK_RPAREN:
		return "')'";
	default:
		return "the end of the query";
	}
}

static struct query_node *
group_new(enum query_kind kind, unsigned column)
{
	struct query_node *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->column = column;
	return n;
}

static void
group_add(struct query_node *g, struct query_node *kid)
{
	g->kids = xreallocarray(g->kids, g->nkids + 1, sizeof(*g->kids));
	g->kids[g->nkids++] = kid;
}

static struct query_node *
parse_unary(struct lexer *lx, unsigned depth)
{
	struct tok *t = cur(lx);
	struct query_node *n, *kid;
	unsigned open;

	switch (t->kind) {
	case TOK_LEAF:
		lx->pos++;
		n = t->leaf;
		t->leaf = NULL;
		return n;
	case TOK_NOT:
	case TOK_LPAREN:
		if (depth >= QUERY_DEPTH_MAX) {
			query_fail(lx, t->column - 1,
			    "nested too deeply "
			    "(at most %d levels of '(' and '-')",
			    QUERY_DEPTH_MAX);
			return NULL;
		}
		lx->pos++;
		if (t->kind == TOK_NOT) {
			if (cur(lx)->kind != TOK_LEAF &&
			    cur(lx)->kind != TOK_NOT &&
			    cur(lx)->kind != TOK_LPAREN) {
				query_fail(lx, cur(lx)->column - 1,
				    "expected "
				    "a term after '-'");
				return NULL;
			}
			if ((kid = parse_unary(lx, depth + 1)) == NULL)
				return NULL;
			n = group_new(QUERY_NOT, t->column);
			group_add(n, kid);
			return n;
		}
		open = t->column;
		if ((n = parse_or(lx, depth + 1)) == NULL)
			return NULL;
		if (cur(lx)->kind != TOK_RPAREN) {
			query_fail(lx, cur(lx)->column - 1,
			    "expected ')' to "
			    "close the '(' at column %u",
			    open);
			node_free(&n);
			return NULL;
		}
		lx->pos++;
		return n;
	default:
		query_fail(lx, t->column - 1, "expected a term before %s",
		    tok_what(t));
		return NULL;
	}
}

static struct query_node *
parse_and(struct lexer *lx, unsigned depth)
{
	struct query_node *g, *kid;
	unsigned column = cur(lx)->column;

	g = group_new(QUERY_AND, column);
	do {
		if ((kid = parse_unary(lx, depth)) == NULL) {
			node_free(&g);
			return NULL;
		}
		group_add(g, kid);
	} while (cur(lx)->kind == TOK_LEAF || cur(lx)->kind == TOK_NOT ||
	    cur(lx)->kind == TOK_LPAREN);
	if (g->nkids == 1) {
		kid = g->kids[0];
		g->nkids = 0;
		node_free(&g);
		return kid;
	}
	return g;
}

static struct query_node *
parse_or(struct lexer *lx, unsigned depth)
{
	struct query_node *g, *kid;

	g = group_new(QUERY_OR, cur(lx)->column);
	for (;;) {
		if ((kid = parse_and(lx, depth)) == NULL) {
			node_free(&g);
			return NULL;
		}
		group_add(g, kid);
		if (cur(lx)->kind != TOK_OR)
			break;
		lx->pos++;
	}
	if (g->nkids == 1) {
		kid = g->kids[0];
		g->nkids = 0;
		node_free(&g);
		return kid;
	}
	return g;
}

struct query *
query_parse(const char *text, size_t len, struct query_error *e)
{
	struct lexer lx = { .text = text, .e = e };
	struct query *q = NULL;
	struct query_node *root = NULL;
	size_t i;

	e->column = 0;
	e->msg[0] = '\0';
	if (query_decode(&lx, text, len) == -1)
		goto out;
	if (lx.n > QUERY_LEN_MAX) {
		query_fail(&lx, QUERY_LEN_MAX,
		    "query longer than %d "
		    "characters",
		    QUERY_LEN_MAX);
		goto out;
	}
	if (lx_tokenize(&lx) == -1)
		goto out;
	if (lx.ntoks == 1) {
		query_fail(&lx, 0, "empty query");
		goto out;
	}
	if ((root = parse_or(&lx, 0)) == NULL)
		goto out;
	if (cur(&lx)->kind != TOK_END) {
		/* Only an unmatched ')' stops parse_or before the end. */
		query_fail(&lx, cur(&lx)->column - 1, "unexpected ')'");
		node_free(&root);
		goto out;
	}
	q = xcalloc(1, sizeof(*q));
	q->root = root;
	q->nleaves = lx.nleaves;
out:
	for (i = 0; i < lx.ntoks; i++)
		node_free(&lx.toks[i].leaf);
	free(lx.toks);
	lx.toks = NULL;
	free(lx.cp);
	lx.cp = NULL;
	free(lx.off);
	lx.off = NULL;
	return q;
}
