#include "pop3/parse.h"

#include <string.h>

/* Starts a new line in whichever buffer is in use. */
static void
line_reset(struct pop3_line *l)
{
	l->len = 0;
	l->complete = false;
	(l->wide != NULL ? l->wide : l->buf)[0] = '\0';
}

void
pop3_line_init(struct pop3_line *l)
{
	l->wide = NULL;
	l->max = POP3_LINE_MAX;
	line_reset(l);
}

void
pop3_line_widen(struct pop3_line *l, char *wide, size_t max)
{
	l->wide = wide;
	l->max = max;
	line_reset(l);
}

void
pop3_line_narrow(struct pop3_line *l)
{
	pop3_line_init(l);
}

enum pop3_parse
pop3_line_feed(struct pop3_line *l, const char *p, size_t n, size_t *used_r)
{
	char *buf = l->wide != NULL ? l->wide : l->buf;
	const char *lf;
	size_t take, room;

	if (l->complete)
		line_reset(l);
	/*
	 * Octets before the LF may number l->max - 1 at most.  The
	 * check is made on what is stored, not on what one call brings, so
	 * the verdict is the same however the input is split.
	 */
	room = l->max - 1 - l->len;
	lf = memchr(p, '\n', n);
	take = lf != NULL ? (size_t)(lf - p) : n;
	if (take > room) {
		/* Keep what fits, so an error can quote the line's start. */
		memcpy(buf + l->len, p, room);
		l->len += room;
		buf[l->len] = '\0';
		*used_r = room;
		return POP3_PARSE_INVALID;
	}
	memcpy(buf + l->len, p, take);
	l->len += take;
	if (lf == NULL) {
		*used_r = n;
		return POP3_PARSE_NEED_MORE;
	}
	*used_r = take + 1;
	if (l->len > 0 && buf[l->len - 1] == '\r')
		l->len--;
	buf[l->len] = '\0';
	l->complete = true;
	return POP3_PARSE_OK;
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char
lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* Case-insensitive comparison of p[0, n) with the NUL-terminated word. */
static bool
word_eq(const char *p, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (word[i] == '\0' || lower(p[i]) != lower(word[i]))
			return false;
	return word[n] == '\0';
}

/* RFC 2449 rchar: printable except "/" (level separator) and "]". */
static bool
is_rchar(unsigned char ch)
{
	return ch >= 0x21 && ch <= 0x7f && ch != '/' && ch != ']';
}

/*
 * Classifies a response code "level *("/" level)" by its first two levels,
 * so that sub-levels we do not know fall back to their parent.  Returns
 * POP3_CODE_NONE if the text is not a well-formed code.
 */
static enum pop3_code
classify_code(const char *p, size_t n)
{
	const char *lv[2];
	size_t lvlen[2] = { 0, 0 };
	size_t i, k = 0, start = 0;

	lv[0] = lv[1] = p;
	for (i = 0; i <= n; i++) {
		if (i < n && is_rchar((unsigned char)p[i]))
			continue;
		if (i < n && p[i] != '/')
			return POP3_CODE_NONE;
		if (i == start)
			return POP3_CODE_NONE;	/* empty level */
		if (k < 2) {
			lv[k] = p + start;
			lvlen[k] = i - start;
			k++;
		}
		start = i + 1;
	}
	if (word_eq(lv[0], lvlen[0], "IN-USE"))
		return POP3_CODE_IN_USE;
	if (word_eq(lv[0], lvlen[0], "LOGIN-DELAY"))
		return POP3_CODE_LOGIN_DELAY;
	if (word_eq(lv[0], lvlen[0], "AUTH"))
		return POP3_CODE_AUTH;
	if (word_eq(lv[0], lvlen[0], "SYS") && k > 1) {
		if (word_eq(lv[1], lvlen[1], "TEMP"))
			return POP3_CODE_SYS_TEMP;
		if (word_eq(lv[1], lvlen[1], "PERM"))
			return POP3_CODE_SYS_PERM;
	}
	return POP3_CODE_OTHER;
}

enum pop3_parse
pop3_parse_status(const char *line, size_t len, struct pop3_status *st)
{
	const char *close;
	size_t ind;

	if (memchr(line, '\0', len) != NULL)
		return POP3_PARSE_INVALID;
	if (len >= 3 && memcmp(line, "+OK", 3) == 0) {
		st->ok = true;
		ind = 3;
	} else if (len >= 4 && memcmp(line, "-ERR", 4) == 0) {
		st->ok = false;
		ind = 4;
	} else
		return POP3_PARSE_INVALID;
	/* "+OKAY" is not "+OK": the indicator ends the line or a blank does. */
	if (ind < len && !is_blank(line[ind]))
		return POP3_PARSE_INVALID;
	while (ind < len && is_blank(line[ind]))
		ind++;
	st->text = line + ind;
	st->textlen = len - ind;
	st->code = POP3_CODE_NONE;
	if (st->textlen > 1 && st->text[0] == '[') {
		close = memchr(st->text, ']', st->textlen);
		if (close != NULL)
			st->code = classify_code(st->text + 1,
			    (size_t)(close - st->text) - 1);
	}
	return POP3_PARSE_OK;
}

bool
pop3_parse_continuation(const char *line, size_t len)
{
	return len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' ');
}

/* Next blank-separated token of line[*pos, len); false at the end. */
static bool
next_token(const char *line, size_t len, size_t *pos, const char **tok_r,
    size_t *toklen_r)
{
	size_t i = *pos, start;

	while (i < len && is_blank(line[i]))
		i++;
	if (i == len)
		return false;
	start = i;
	while (i < len && !is_blank(line[i]))
		i++;
	*tok_r = line + start;
	*toklen_r = i - start;
	*pos = i;
	return true;
}

enum pop3_parse
pop3_parse_capa(const char *line, size_t len, unsigned *caps)
{
	static const struct {
		const char *name;
		unsigned flag;
	} known[] = {
		{ "STLS", POP3_CAPA_STLS },
		{ "USER", POP3_CAPA_USER },
		{ "TOP", POP3_CAPA_TOP },
		{ "UIDL", POP3_CAPA_UIDL },
		{ "PIPELINING", POP3_CAPA_PIPELINING },
		{ "RESP-CODES", POP3_CAPA_RESP_CODES },
		{ "AUTH-RESP-CODE", POP3_CAPA_AUTH_RESP_CODE },
	};
	const char *tok;
	size_t toklen, pos = 0, i;

	if (memchr(line, '\0', len) != NULL)
		return POP3_PARSE_INVALID;
	if (!next_token(line, len, &pos, &tok, &toklen))
		return POP3_PARSE_OK;
	if (word_eq(tok, toklen, "SASL")) {
		while (next_token(line, len, &pos, &tok, &toklen))
			if (word_eq(tok, toklen, "PLAIN"))
				*caps |= POP3_CAPA_SASL_PLAIN;
			else if (word_eq(tok, toklen, "XOAUTH2"))
				*caps |= POP3_CAPA_SASL_XOAUTH2;
			else if (word_eq(tok, toklen, "OAUTHBEARER"))
				*caps |= POP3_CAPA_SASL_OAUTHBEARER;
		return POP3_PARSE_OK;
	}
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (word_eq(tok, toklen, known[i].name))
			*caps |= known[i].flag;
	return POP3_PARSE_OK;
}

bool
pop3_parse_capa_expire(const char *line, size_t len, struct pop3_expire *e)
{
	const char *tok;
	size_t toklen, pos = 0, i;
	uint64_t days = 0;

	if (memchr(line, '\0', len) != NULL ||
	    !next_token(line, len, &pos, &tok, &toklen) ||
	    !word_eq(tok, toklen, "EXPIRE"))
		return false;
	e->kind = POP3_EXPIRE_UNKNOWN;
	e->days = 0;
	e->per_user = false;
	if (!next_token(line, len, &pos, &tok, &toklen))
		return true;
	if (word_eq(tok, toklen, "NEVER"))
		e->kind = POP3_EXPIRE_NEVER;
	else {
		for (i = 0; i < toklen; i++) {
			if (tok[i] < '0' || tok[i] > '9')
				return true;
			if (days < UINT32_MAX)
				days = days * 10 + (uint64_t)(tok[i] - '0');
		}
		e->kind = POP3_EXPIRE_DAYS;
		e->days = days > UINT32_MAX ? UINT32_MAX : (uint32_t)days;
	}
	if (next_token(line, len, &pos, &tok, &toklen)) {
		if (!word_eq(tok, toklen, "USER"))
			e->kind = POP3_EXPIRE_UNKNOWN;
		e->per_user = true;
	}
	if (next_token(line, len, &pos, &tok, &toklen))
		e->kind = POP3_EXPIRE_UNKNOWN;
	return true;
}

bool
pop3_parse_capa_login_delay(const char *line, size_t len,
    struct pop3_login_delay *d)
{
	const char *tok;
	size_t toklen, pos = 0, i;
	uint64_t v = 0;

	if (memchr(line, '\0', len) != NULL ||
	    !next_token(line, len, &pos, &tok, &toklen) ||
	    !word_eq(tok, toklen, "LOGIN-DELAY"))
		return false;
	*d = (struct pop3_login_delay){ .present = false };
	if (!next_token(line, len, &pos, &tok, &toklen))
		return true;
	for (i = 0; i < toklen; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return true;
		if (v < UINT32_MAX)
			v = v * 10 + (uint64_t)(tok[i] - '0');
	}
	if (next_token(line, len, &pos, &tok, &toklen)) {
		if (!word_eq(tok, toklen, "USER"))
			return true;
		d->per_user = true;
	}
	if (next_token(line, len, &pos, &tok, &toklen))
		return true;
	d->present = true;
	d->seconds = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	return true;
}

bool
pop3_expire_at_quit(const struct pop3_expire *e)
{
	return e->kind == POP3_EXPIRE_UNKNOWN ||
	    (e->kind == POP3_EXPIRE_DAYS && e->days == 0);
}

/* Decimal digits at line[*pos], at least one, no sign, at most max. */
static bool
parse_num(const char *line, size_t len, size_t *pos, uint64_t max,
    uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i = *pos;
	unsigned d;

	if (i == len || line[i] < '0' || line[i] > '9')
		return false;
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
		d = (unsigned)(line[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*pos = i;
	*v_r = v;
	return true;
}

/* "num" and the blanks after it, common to LIST and UIDL items. */
static bool
parse_msgnum(const char *line, size_t len, size_t *pos, uint32_t *num_r)
{
	uint64_t v;

	if (memchr(line, '\0', len) != NULL)
		return false;
	if (!parse_num(line, len, pos, UINT32_MAX, &v) || v == 0)
		return false;
	if (*pos == len || !is_blank(line[*pos]))
		return false;
	while (*pos < len && is_blank(line[*pos]))
		(*pos)++;
	*num_r = (uint32_t)v;
	return true;
}

enum pop3_parse
pop3_parse_stat(const char *text, size_t len, uint32_t *count_r,
    uint64_t *size_r)
{
	size_t pos = 0;
	uint64_t count, size;

	if (memchr(text, '\0', len) != NULL ||
	    !parse_num(text, len, &pos, UINT32_MAX, &count) ||
	    pos == len || !is_blank(text[pos]))
		return POP3_PARSE_INVALID;
	while (pos < len && is_blank(text[pos]))
		pos++;
	if (!parse_num(text, len, &pos, INT64_MAX, &size) ||
	    (pos < len && !is_blank(text[pos])))
		return POP3_PARSE_INVALID;
	*count_r = (uint32_t)count;
	*size_r = size;
	return POP3_PARSE_OK;
}

enum pop3_parse
pop3_parse_list_item(const char *line, size_t len, uint32_t *num_r,
    uint64_t *size_r)
{
	size_t pos = 0;
	uint32_t num;
	uint64_t size;

	if (!parse_msgnum(line, len, &pos, &num))
		return POP3_PARSE_INVALID;
	/* Sizes are stored as PostgreSQL bigint: a size past INT64_MAX is
	 * refused here, where it names the server that sent it, not in a
	 * group commit shared with other mailboxes. */
	if (!parse_num(line, len, &pos, INT64_MAX, &size))
		return POP3_PARSE_INVALID;
	if (pos < len && !is_blank(line[pos]))
		return POP3_PARSE_INVALID;
	*num_r = num;
	*size_r = size;
	return POP3_PARSE_OK;
}

/*
 * RFC 1939 restricts a unique-id to 0x21..0x7E, but servers send 8-bit
 * bytes, control bytes and even blanks inside.  Refusing the line would
 * refuse the whole mailbox, so the unique-id is everything after the
 * message number and its blanks, less trailing blanks; only NUL, which no
 * C string can carry, is refused.  The session rewrites such unique-ids
 * into a printable form before storing them.
 */
enum pop3_parse
pop3_parse_uidl_item(const char *line, size_t len, uint32_t *num_r,
    const char **uid_r, size_t *uidlen_r)
{
	size_t pos = 0, end;
	uint32_t num;

	if (!parse_msgnum(line, len, &pos, &num))
		return POP3_PARSE_INVALID;
	end = len;
	while (end > pos && is_blank(line[end - 1]))
		end--;
	if (end == pos || memchr(line + pos, '\0', end - pos) != NULL)
		return POP3_PARSE_INVALID;
	*uid_r = line + pos;
	*uidlen_r = end - pos;
	*num_r = num;
	return POP3_PARSE_OK;
}

bool
pop3_parse_timestamp(const char *line, size_t len, const char **ts_r,
    size_t *tslen_r)
{
	size_t i, j;
	bool at;
	unsigned char ch;

	for (i = 0; i < len; i++) {
		if (line[i] != '<')
			continue;
		at = false;
		for (j = i + 1; j < len; j++) {
			ch = (unsigned char)line[j];
			if (ch == '>' || ch == '<' || ch <= 0x20 || ch == 0x7f)
				break;
			if (ch == '@')
				at = true;
		}
		if (j < len && line[j] == '>' && at) {
			*ts_r = line + i;
			*tslen_r = j - i + 1;
			return true;
		}
	}
	return false;
}
