/*
 * POP3 response lines (RFC 1939, RFC 2449): a byte-resumable line reader
 * with a fixed buffer, and parsers for the lines it yields.
 *
 * The reader holds at most POP3_LINE_MAX octets including the line ending,
 * the limit RFC 1939 sets for status lines and that we also apply to the
 * items of CAPA, UIDL and LIST, so a hostile server can never grow it.  A
 * line ends at LF; one CR before it is dropped, so bare-LF servers work.
 *
 * The parsers take a complete line (without its ending) and never allocate:
 * what they return points into the line.
 */
#ifndef POP3_PARSE_H
#define POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest line in octets, including CRLF (RFC 1939 section 3). */
#define POP3_LINE_MAX 512

enum pop3_parse {
	POP3_PARSE_NEED_MORE,	/* all input consumed, line incomplete */
	POP3_PARSE_OK,
	POP3_PARSE_INVALID,
};

/*
 * Longest line in octets, including CRLF, while a SASL exchange is under
 * way: a server's OAuth error challenge ("+ " and base64 JSON) may be
 * longer than a status line, and RFC 5034 sets no limit on it.
 */
#define POP3_SASL_LINE_MAX 16384

/*
 * Embedded by its owner; after POP3_PARSE_OK the line is read with
 * pop3_line_text() and len.
 */
struct pop3_line {
	size_t len;		/* octets in the line, ending excluded */
	bool complete;		/* it holds a whole line */
	char *wide;		/* NULL, or the owner's buffer of max octets
				 * used instead of buf (pop3_line_widen()) */
	size_t max;		/* POP3_LINE_MAX, or the wide buffer's size */
	char buf[POP3_LINE_MAX]; /* NUL-terminated once complete */
};

void pop3_line_init(struct pop3_line *l);

/*
 * Lets lines of up to max octets (CRLF included) through, stored in the
 * owner's buffer wide, which must hold max octets and outlive the use;
 * pop3_line_narrow() goes back to POP3_LINE_MAX.  Both drop any partial
 * line, so call them between lines.
 */
void pop3_line_widen(struct pop3_line *l, char *wide, size_t max);
void pop3_line_narrow(struct pop3_line *l);

/* The line's octets, NUL-terminated once complete. */
static inline const char *
pop3_line_text(const struct pop3_line *l)
{
	return l->wide != NULL ? l->wide : l->buf;
}

/*
 * Consumes bytes of p[0, n) up to and including the first LF.  Returns
 * POP3_PARSE_OK with the line in l->buf, l->len (the next call starts a new
 * line), POP3_PARSE_NEED_MORE after consuming all of p, or
 * POP3_PARSE_INVALID once the line is known to exceed l->max; after
 * that only pop3_line_init() makes the reader usable again.  *used_r is the
 * number of bytes consumed.  The result does not depend on how the input is
 * split across calls.
 */
enum pop3_parse pop3_line_feed(struct pop3_line *l, const char *p, size_t n,
    size_t *used_r);

/* RFC 2449 / RFC 3206 response codes we act on; others are POP3_CODE_OTHER.
 * A sub-level we do not know counts as its parent ([SYS/TEMP/x] is
 * SYS/TEMP). */
enum pop3_code {
	POP3_CODE_NONE,
	POP3_CODE_IN_USE,
	POP3_CODE_LOGIN_DELAY,
	POP3_CODE_SYS_TEMP,
	POP3_CODE_SYS_PERM,
	POP3_CODE_AUTH,
	POP3_CODE_OTHER,
};

struct pop3_status {
	bool ok;		/* +OK, else -ERR */
	enum pop3_code code;
	const char *text;	/* after the indicator and blanks, with any
				 * response code */
	size_t textlen;
};

/*
 * Parses a status line: "+OK" or "-ERR", alone or followed by a blank and
 * text that may begin with a bracketed response code.  The indicators are
 * case-sensitive as RFC 1939 writes them; codes are not.  Anything else,
 * and any line holding a NUL, is POP3_PARSE_INVALID.
 */
enum pop3_parse pop3_parse_status(const char *line, size_t len,
    struct pop3_status *st);

/* A SASL continuation ("+" alone or "+ " and base64) rather than a status. */
bool pop3_parse_continuation(const char *line, size_t len);

enum pop3_capa_flags {
	POP3_CAPA_STLS = 1 << 0,
	POP3_CAPA_USER = 1 << 1,
	POP3_CAPA_TOP = 1 << 2,
	POP3_CAPA_UIDL = 1 << 3,
	POP3_CAPA_PIPELINING = 1 << 4,
	POP3_CAPA_RESP_CODES = 1 << 5,
	POP3_CAPA_AUTH_RESP_CODE = 1 << 6,
	POP3_CAPA_SASL_PLAIN = 1 << 7,	/* "SASL" lists PLAIN */
	POP3_CAPA_SASL_XOAUTH2 = 1 << 8, /* ... XOAUTH2 */
	POP3_CAPA_SASL_OAUTHBEARER = 1 << 9, /* ... OAUTHBEARER (RFC 7628) */
};

/*
 * Adds to *caps the capability one CAPA line names (keywords and SASL
 * mechanisms are case-insensitive).  Unknown capabilities are ignored;
 * POP3_PARSE_INVALID only for a line holding a NUL.
 */
enum pop3_parse pop3_parse_capa(const char *line, size_t len, unsigned *caps);

/*
 * What a server says it does with messages a client retrieved (RFC 2449
 * section 6.7, "EXPIRE"): nothing, or delete them after some days, or at
 * the end of the session that retrieved them (0: when QUIT enters the
 * UPDATE state, whether DELE was sent or not).
 */
enum pop3_expire_kind {
	POP3_EXPIRE_NONE,	/* not advertised: RFC 1939, DELE alone */
	POP3_EXPIRE_NEVER,	/* "EXPIRE NEVER" */
	POP3_EXPIRE_DAYS,	/* "EXPIRE n": after n days, 0 at QUIT */
	POP3_EXPIRE_UNKNOWN,	/* a value we cannot read: taken as 0 */
};

struct pop3_expire {
	enum pop3_expire_kind kind;
	uint32_t days;		/* POP3_EXPIRE_DAYS; larger values capped */
	bool per_user;		/* "USER": the value after login may differ */
};

/*
 * If the CAPA line is an EXPIRE capability, fills *e and returns true;
 * otherwise leaves *e alone and returns false.  The keyword and its tags
 * are case-insensitive.  A value that is neither digits nor NEVER, or
 * extra words, make POP3_EXPIRE_UNKNOWN: a server that may delete at QUIT
 * must not be taken for one that does not.
 */
bool pop3_parse_capa_expire(const char *line, size_t len,
    struct pop3_expire *e);

/*
 * Whether a server with this EXPIRE deletes every retrieved message at
 * QUIT: EXPIRE 0, or a value we could not read.
 */
bool pop3_expire_at_quit(const struct pop3_expire *e);

/*
 * RFC 2449 section 6.8, "LOGIN-DELAY n [USER]": the least number of
 * seconds between two logins to a mailbox.
 */
struct pop3_login_delay {
	bool present;		/* advertised, with a value we could read */
	uint32_t seconds;	/* larger values capped */
	bool per_user;		/* "USER": the value after login may differ */
};

/*
 * If the CAPA line is a LOGIN-DELAY capability, fills *d and returns true;
 * otherwise leaves *d alone and returns false.  A value that is not
 * digits, or extra words, leave d->present false: an unreadable delay is
 * not taken for none by the caller, which keeps the one it had.
 */
bool pop3_parse_capa_login_delay(const char *line, size_t len,
    struct pop3_login_delay *d);

/*
 * A LIST item "num size", where anything after the size and a blank is
 * ignored (RFC 1939 leaves it open).  num is 1..UINT32_MAX, size is at
 * most INT64_MAX (what the archive can store).  Otherwise
 * POP3_PARSE_INVALID.
 */
enum pop3_parse pop3_parse_list_item(const char *line, size_t len,
    uint32_t *num_r, uint64_t *size_r);

/*
 * The text of STAT's +OK, "count size" (RFC 1939 section 5: the number
 * of messages and the size of the maildrop in octets), where anything
 * after the size and a blank is ignored.  count is 0..UINT32_MAX, size at
 * most INT64_MAX.  Otherwise POP3_PARSE_INVALID.
 */
enum pop3_parse pop3_parse_stat(const char *text, size_t len,
    uint32_t *count_r, uint64_t *size_r);

/*
 * A UIDL item "num uid".  The uid is one or more octets 0x21-0x7E (RFC 1939)
 * or >= 0x80, of any length the line allows, and may be followed only by
 * blanks.  *uid_r points into line.  Otherwise POP3_PARSE_INVALID.
 */
enum pop3_parse pop3_parse_uidl_item(const char *line, size_t len,
    uint32_t *num_r, const char **uid_r, size_t *uidlen_r);

/*
 * Finds the APOP timestamp of a greeting (RFC 1939 section 7): the first
 * "<...>" holding an "@" and no blank, control or "<".  *ts_r points into
 * line and includes the angle brackets, as the digest needs them.
 */
bool pop3_parse_timestamp(const char *line, size_t len, const char **ts_r,
    size_t *tslen_r);

#endif
