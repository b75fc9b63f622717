/*
 * The message pipeline: unstuffed body bytes in, a finished archive record
 * out.  Internally a chain of stages (hash -> zstd -> spool), each with the
 * same small interface, so a stage can be tested alone and none ever holds
 * a whole message:
 *
 *   write(st, p, n)  consumes bytes, passing what it produces to st->next;
 *                    returns n, or -1 on error (st keeps the error text)
 *   finish(st)       flushes; 0 or -1
 *   abort(st)        drops everything
 */
#ifndef STORE_PIPE_H
#define STORE_PIPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pipe_stage;
struct spool;
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
};

struct pipe_params {
	const char *spool_dir;	/* where overflow temp files go */
	size_t spool_mem;	/* bytes kept in memory before overflowing */
	uint64_t size_hint;	/* expected size (LIST), 0 if unknown */
	int level;		/* zstd level */
	const struct zdict *dict; /* borrowed; NULL for none */
};

struct pipe;

struct pipe *pipe_new(const struct pipe_params *params);
/* Returns 0, or -1 with pipe_error() set; after -1 only pipe_free(). */
int pipe_write(struct pipe *p, const void *data, size_t n);
/* Ends the message.  On 0, *r is filled and r->spool is the caller's. */
int pipe_finish(struct pipe *p, struct pipe_result *r);
const char *pipe_error(const struct pipe *p);
/* Frees the pipe and anything unfinished (an aborted message). */
void pipe_free(struct pipe **p);

/* Lowercase hex of a 32-byte digest into out[65]. */
void pipe_hex(const unsigned char digest[32], char out[65]);

#endif
