/*
 * The message pipeline: unstuffed body bytes in, a finished archive record
 * out.  Internally a chain of stages ([index ->] hash -> zstd -> spool),
 * each with the same small interface, so a stage can be tested alone and
 * none ever holds a whole message:
 *
 *   write(st, p, n)  consumes bytes, passing what it produces to st->next;
 *                    returns n, or -1 on error (st keeps the error text)
 *   finish(st)       flushes, then finishes st->next; 0 or -1
 *   abort(st)        drops everything, then aborts st->next
 *   free(st)         frees st alone
 */
#ifndef STORE_PIPE_H
#define STORE_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/hash.h"

struct mime_meta;
struct pipe_stage;
struct spool;
struct spool_sys;
struct zdict;

struct pipe_ops {
	ssize_t (*write)(struct pipe_stage *st, const void *p, size_t n);
	int (*finish)(struct pipe_stage *st);
	void (*abort)(struct pipe_stage *st);
	void (*free)(struct pipe_stage *st);
};

struct pipe_stage {
	const struct pipe_ops *ops;
	struct pipe_stage *next;
	char error[256];
};

/*
 * Helpers for stages, so that every stage reports errors the same way.
 * Each returns -1 so that a stage can end with `return pipe_stage_...`.
 *
 * pipe_stage_fail() sets st's error text.
 * pipe_stage_pass() hands all of p[0, n) to st->next, taking on its
 * error if it fails or accepts nothing; 0 once all is taken.
 * pipe_stage_finish_next() finishes st->next, taking on its error; 0 or -1.
 */
int pipe_stage_fail(struct pipe_stage *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int pipe_stage_pass(struct pipe_stage *st, const void *p, size_t n);
int pipe_stage_finish_next(struct pipe_stage *st);

/* What one finished message became. */
struct pipe_result {
	unsigned char sha256[32];	/* over exactly the archived bytes */
	unsigned char head_sha256[32];	/* over the header block: bytes up to
					 * and including the first empty line
					 * (all bytes if there is none) */
	uint64_t size;			/* archived (uncompressed) bytes */
	uint64_t stored_size;		/* compressed bytes in the spool */
	int64_t dict_id;		/* zstd dictionary used, 0 for none */
	struct spool *spool;		/* owned by the result's holder */
	/* What the indexer learned of it (pipe_params.index), or NULL;
	 * owned by the result's holder (mime_meta_free()). */
	struct mime_meta *meta;
};

struct pipe_params {
	const char *spool_dir;	/* where overflow temp files go */
	size_t spool_mem;	/* bytes kept in memory before overflowing */
	uint64_t size_hint;	/* expected size (LIST), 0 if unknown */
	int level;		/* zstd level */
	const struct zdict *dict; /* borrowed; NULL for none */
	const struct spool_sys *spool_sys; /* NULL: the real system calls */
	/*
	 * Parse the message for the index (store/mime/) from the same bytes:
	 * pipe_result.meta.  Costs at most a header block and the kept text
	 * in memory, however large the message.
	 */
	bool index;
};

struct pipe;

/*
 * One pipe per message.  params is copied (dict and spool_sys stay
 * borrowed).  Costs only small structs until the first byte: the zstd
 * context, its buffer and the spool memory come with the bytes, and the
 * zstd context goes back to a shared pool at pipe_finish().
 */
struct pipe *pipe_new(const struct pipe_params *params);
/*
 * Takes all of data[0, n), synchronously: every stage consumes what it is
 * given, the spool writing a bounded chunk to its file when over its memory
 * bound.  Returns 0, or -1 with pipe_error() set; after -1 only
 * pipe_free().
 */
int pipe_write(struct pipe *p, const void *data, size_t n);
/*
 * Ends the message.  On 0, *r is filled and r->spool is the caller's (to
 * free with spool_free(), or hand to the committer).  On -1, pipe_error()
 * says why and nothing is handed over.  Either way only pipe_free() may
 * follow.
 */
int pipe_finish(struct pipe *p, struct pipe_result *r);
/* The first error of any stage, e.g. "spool write to /x: No space...". */
const char *pipe_error(const struct pipe *p);
/* Frees the pipe and anything unfinished (an aborted message). */
void pipe_free(struct pipe **p);

/* Lowercase hex of a 32-byte digest into out[65]. */
void pipe_hex(const unsigned char digest[32], char out[65]);

/*
 * Where the header block ends, as head_sha256 defines it: after the first
 * line that is empty or holds only CR, the message's first line included
 * (a message that starts with an empty line has that line as its header
 * block).  Resumable at any byte.
 */
struct pipe_headscan {
	int state;
};

void pipe_headscan_init(struct pipe_headscan *s);
/*
 * Scans the next n bytes.  Returns true once the header block has ended:
 * *len_r is then how many of these bytes belong to it (0 on calls after
 * the one that found the end).  Returns false, with *len_r = n, while all
 * bytes so far are header.
 */
bool pipe_headscan_feed(struct pipe_headscan *s, const void *p, size_t n,
    size_t *len_r);

/*
 * head_sha256 of a byte stream, as one piece that the pipe's hash stage
 * runs over RETR's bytes and the session over TOP n 0's: a TOP proof then
 * compares what the archive hashed, by the same code.  Bytes after the
 * header block's empty line leave the header digest unchanged, so a
 * server that adds a blank line or body lines to TOP n 0 still proves its
 * messages.  The digest of every byte comes in the same pass, which is
 * what the hash stage needs.  Embeddable: init, then update any number of
 * times, then final; reset starts again on the same memory.
 */
struct pipe_head {
	struct hash_sha256 sha;		/* over every byte */
	struct pipe_headscan scan;
	bool done;			/* the header block has ended */
	unsigned char head[32];		/* its digest, once done */
};

/* Starts a digest; h need not be initialised.  Pair with release. */
void pipe_head_init(struct pipe_head *h);
/* Starts a new digest on an initialised h, reusing its memory. */
void pipe_head_reset(struct pipe_head *h);
void pipe_head_update(struct pipe_head *h, const void *p, size_t n);
/*
 * Writes head_sha256 of the bytes since init/reset (the digest of all of
 * them when no empty line ended the header block, an empty stream
 * included) and, unless all is NULL, the digest of all of them.  h must be
 * reset before it is updated again.
 */
void pipe_head_final(struct pipe_head *h, unsigned char head[32],
    unsigned char all[32]);
/* Frees what init allocated; safe on a released or zeroed struct. */
void pipe_head_release(struct pipe_head *h);

#endif
