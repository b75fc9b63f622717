/*
 * What the indexer learned of one message: the header fields, addresses
 * and MIME parts that migrations/0004_index_messages.sql stores, keyed by
 * the message's SHA-256.  Built by store/mime/ from the bytes the pipe
 * archives (never altering them); stored by the committer in the same
 * transaction as the message's blob.
 *
 * Every string is NUL-terminated UTF-8 (invalid bytes replaced by U+FFFD),
 * or NULL where the message had no such field.  The whole struct, and
 * everything it points to, is owned by whoever holds it and freed with
 * mime_meta_free().
 */
#ifndef STORE_MIME_META_H
#define STORE_MIME_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Bumped whenever the parser would index a message differently, so that
 * `ingestd reindex` can find the rows an older parser wrote.
 */
#define MIME_PARSER_VERSION 1

/* Bounds (the archived bytes are never bounded by these). */
#define MIME_HEADER_MAX	 (256 * 1024)	/* bytes of one header block */
#define MIME_TEXT_MAX	 (1024 * 1024)	/* bytes of full text kept */
#define MIME_ADDRESS_MAX 1000		/* addresses kept per message */
#define MIME_PART_MAX	 1000		/* MIME parts kept per message */
#define MIME_DEPTH_MAX	 32		/* multipart nesting followed */

/* The address roles, as stored (ingestd.message_address.role). */
enum mime_role {
	MIME_ROLE_FROM,
	MIME_ROLE_SENDER,
	MIME_ROLE_REPLY_TO,
	MIME_ROLE_TO,
	MIME_ROLE_CC,
	MIME_ROLE_BCC,
	MIME_ROLE_DELIVERED_TO,
	MIME_ROLE_X_ORIGINAL_TO,
	MIME_ROLE_RETURN_PATH,
	MIME_ROLE_COUNT
};

/* "from", "reply-to", ...: the role's name in the database. */
const char *mime_role_name(enum mime_role role);

/*
 * What was wrong with a message, as flags; stored as their names
 * (ingestd.message.flags).  A flagged message is archived byte-exact and
 * indexed with what could be read.
 */
enum mime_flag {
	MIME_F_HEADER_TRUNCATED = 1u << 0,  /* a header block passed
					     * MIME_HEADER_MAX */
	MIME_F_TEXT_TRUNCATED = 1u << 1,    /* full text passed its bound */
	MIME_F_UNKNOWN_CHARSET = 1u << 2,   /* a charset iconv lacks */
	MIME_F_BAD_CHARSET = 1u << 3,	    /* bytes invalid in their charset */
	MIME_F_BAD_ENCODING = 1u << 4,	    /* broken base64/QP/encoded word */
	MIME_F_MISSING_BOUNDARY = 1u << 5,  /* multipart without boundary or
					     * without its closing line */
	MIME_F_TOO_DEEP = 1u << 6,	    /* nesting past MIME_DEPTH_MAX */
	MIME_F_TOO_MANY_PARTS = 1u << 7,    /* parts past MIME_PART_MAX */
	MIME_F_TOO_MANY_ADDRESSES = 1u << 8,/* past MIME_ADDRESS_MAX */
	MIME_F_BAD_DATE = 1u << 9,	    /* Date present, not parseable */
	MIME_F_BAD_ADDRESS = 1u << 10,	    /* an address list not parseable */
	MIME_F_8BIT_HEADER = 1u << 11,	    /* raw 8-bit bytes in a header */
	MIME_F_NO_HEADER = 1u << 12,	    /* no header/body separator */
};

/* "header_truncated", ...: a flag's name in the database. */
const char *mime_flag_name(enum mime_flag flag);

struct mime_address {
	enum mime_role role;
	char *address;	/* local@domain, lower-cased; never NULL */
	char *domain;	/* lower-cased part after the last '@', "" if none */
	char *name;	/* display name, RFC 2047 decoded; NULL if none */
};

struct mime_part {
	char *path;	    /* IMAP section: "1", "1.2", ...; "" for a
			     * message's top-level multipart */
	char *content_type; /* "text/plain", lower-cased, no parameters */
	char *disposition;  /* "attachment", "inline", lower-cased; NULL */
	char *filename;	    /* RFC 2231/2047 decoded; NULL if none */
	uint64_t size;	    /* decoded bytes (0 for a multipart) */
	bool has_sha256;    /* false for a multipart container */
	unsigned char sha256[32]; /* of the decoded content */
	bool attachment;    /* disposition attachment, or a file name */
};

struct mime_meta {
	int parser_version;	/* MIME_PARSER_VERSION */
	uint32_t flags;		/* enum mime_flag */

	char *date_raw;		/* the Date field as written, unfolded */
	bool has_date;		/* date_raw parsed */
	int64_t date;		/* seconds since the epoch, UTC */

	char *message_id;	/* without the angle brackets */
	char *in_reply_to;	/* as written, unfolded */
	char *references;	/* as written, unfolded */
	char *subject;		/* RFC 2047 decoded */
	char *subject_raw;	/* as written, unfolded */
	char *list_id;		/* the id inside List-Id's <> */
	char *auto_submitted;	/* e.g. "auto-replied" */

	struct mime_address *addresses;
	size_t n_addresses;
	struct mime_part *parts;
	size_t n_parts;

	/*
	 * The full text searched: subject, display names, addresses, text
	 * parts (decoded, converted to UTF-8, HTML reduced to text) and
	 * attachment file names, separated by newlines; at most
	 * MIME_TEXT_MAX bytes (and bounded further so that PostgreSQL's
	 * tsvector of it always fits), MIME_F_TEXT_TRUNCATED if cut.
	 */
	char *text;
	size_t text_len;
};

void mime_meta_free(struct mime_meta **m);

#endif
