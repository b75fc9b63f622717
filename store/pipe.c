#include "store/pipe.h"

#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/hash.h"
#include "store/mime/parser.h"
#include "store/spool.h"
#include "store/zstd.h"

/*
 * The chain is [index ->] hash -> zstd -> sink.  Every stage consumes all
 * it is given before returning: the sink writes to the spool
 * synchronously, and the spool's file writes are the one bounded blocking
 * I/O a worker may do.  So
 * no stage here returns 0 ("full"), and the session's backpressure comes
 * from the commit queue, not from this chain.
 */

enum headscan_state {
	HS_LINE_START,		/* at the first byte of a line */
	HS_CR,			/* the line so far is a lone CR */
	HS_MID,			/* inside a line that is not empty */
	HS_DONE,		/* the header block has ended */
};

enum pipe_state {
	PIPE_OPEN,
	PIPE_FAILED,
	PIPE_DONE,
};

/* Hashes every byte, and the header block (struct pipe_head). */
struct hstage {
	struct pipe_stage st;	/* first: the stage pointer is the hstage */
	struct pipe_head hh;
	unsigned char head[32];
	unsigned char digest[32];
	uint64_t size;
};

/*
 * Feeds the indexer, and passes every byte on unchanged: the index is
 * learned from exactly the bytes archived, and can never alter them.  The
 * parser never fails, so neither does this stage.
 */
struct istage {
	struct pipe_stage st;
	struct mime_parser *parser;
	struct mime_meta *meta;	/* once finished, until handed over */
};

/* The end of the chain: appends to the spool. */
struct sink {
	struct pipe_stage st;
	struct spool *spool;	/* borrowed from the pipe */
};

struct pipe {
	struct istage *index;	/* NULL unless pipe_params.index */
	struct hstage *hash;
	struct pipe_stage *zstd;
	struct sink *sink;
	struct spool *spool;	/* NULL once handed over */
	int64_t dict_id;
	enum pipe_state state;
	char error[256];
};

void
pipe_headscan_init(struct pipe_headscan *s)
{
	s->state = HS_LINE_START;
}

bool
pipe_headscan_feed(struct pipe_headscan *s, const void *p, size_t n,
    size_t *len_r)
{
	const char *start = p, *c = p, *end = c + n, *nl;

	if (s->state == HS_DONE) {
		*len_r = 0;
		return true;
	}
	while (c < end) {
		switch (s->state) {
		case HS_LINE_START:
			if (*c == '\n')
				goto found;
			s->state = *c == '\r' ? HS_CR : HS_MID;
			c++;
			break;
		case HS_CR:
			if (*c == '\n')
				goto found;
			/* Not consumed: HS_MID looks at it again. */
			s->state = HS_MID;
			break;
		default:
			/* Most bytes are here: skip to the line end at once. */
			nl = memchr(c, '\n', (size_t)(end - c));
			if (nl == NULL) {
				c = end;
			} else {
				c = nl + 1;
				s->state = HS_LINE_START;
			}
			break;
		}
	}
	*len_r = n;
	return false;
found:
	s->state = HS_DONE;
	*len_r = (size_t)(c + 1 - start);
	return true;
}

void
pipe_head_init(struct pipe_head *h)
{
	hash_sha256_init(&h->sha);
	pipe_headscan_init(&h->scan);
	h->done = false;
}

void
pipe_head_reset(struct pipe_head *h)
{
	hash_sha256_reset(&h->sha);
	pipe_headscan_init(&h->scan);
	h->done = false;
}

void
pipe_head_update(struct pipe_head *h, const void *p, size_t n)
{
	size_t k;

	if (!h->done && pipe_headscan_feed(&h->scan, p, n, &k)) {
		/*
		 * The header digest is the running digest at this point,
		 * so every byte is hashed once however long the header.
		 */
		hash_sha256_update(&h->sha, p, k);
		hash_sha256_snapshot(&h->sha, h->head);
		hash_sha256_update(&h->sha, (const char *)p + k, n - k);
		h->done = true;
	} else {
		hash_sha256_update(&h->sha, p, n);
	}
}

void
pipe_head_final(struct pipe_head *h, unsigned char head[32],
    unsigned char all[32])
{
	unsigned char digest[32];

	hash_sha256_final(&h->sha, digest);
	/* No empty line anywhere: the whole stream is its header. */
	memcpy(head, h->done ? h->head : digest, 32);
	if (all != NULL)
		memcpy(all, digest, 32);
}

void
pipe_head_release(struct pipe_head *h)
{
	hash_sha256_release(&h->sha);
}

int
pipe_stage_fail(struct pipe_stage *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(st->error, sizeof(st->error), fmt, ap);
	va_end(ap);
	return -1;
}

int
pipe_stage_pass(struct pipe_stage *st, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = st->next->ops->write(st->next, c, n);
		if (w == -1)
			return pipe_stage_fail(st, "%s", st->next->error);
		if (w == 0)
			return pipe_stage_fail(st, "pipe: stage accepted "
			    "nothing");
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int
pipe_stage_finish_next(struct pipe_stage *st)
{
	if (st->next->ops->finish(st->next) == -1)
		return pipe_stage_fail(st, "%s", st->next->error);
	return 0;
}

static ssize_t
hstage_write(struct pipe_stage *st, const void *p, size_t n)
{
	struct hstage *h = (struct hstage *)st;

	pipe_head_update(&h->hh, p, n);
	h->size += n;
	if (pipe_stage_pass(st, p, n) == -1)
		return -1;
	return (ssize_t)n;
}

static int
hstage_finish(struct pipe_stage *st)
{
	struct hstage *h = (struct hstage *)st;

	pipe_head_final(&h->hh, h->head, h->digest);
	return pipe_stage_finish_next(st);
}

static void
hstage_abort(struct pipe_stage *st)
{
	st->next->ops->abort(st->next);
}

static void
hstage_free(struct pipe_stage *st)
{
	struct hstage *h = (struct hstage *)st;

	pipe_head_release(&h->hh);
	free(h);
}

static const struct pipe_ops hstage_ops = {
	.write = hstage_write,
	.finish = hstage_finish,
	.abort = hstage_abort,
	.free = hstage_free,
};

static ssize_t
istage_write(struct pipe_stage *st, const void *p, size_t n)
{
	struct istage *ix = (struct istage *)st;

	mime_parser_feed(ix->parser, p, n);
	if (pipe_stage_pass(st, p, n) == -1)
		return -1;
	return (ssize_t)n;
}

static int
istage_finish(struct pipe_stage *st)
{
	struct istage *ix = (struct istage *)st;

	ix->meta = mime_parser_finish(ix->parser);
	mime_parser_free(&ix->parser);
	return pipe_stage_finish_next(st);
}

static void
istage_abort(struct pipe_stage *st)
{
	st->next->ops->abort(st->next);
}

static void
istage_free(struct pipe_stage *st)
{
	struct istage *ix = (struct istage *)st;

	mime_parser_free(&ix->parser);
	mime_meta_free(&ix->meta);
	free(ix);
}

static const struct pipe_ops istage_ops = {
	.write = istage_write,
	.finish = istage_finish,
	.abort = istage_abort,
	.free = istage_free,
};

static ssize_t
sink_write(struct pipe_stage *st, const void *p, size_t n)
{
	struct sink *s = (struct sink *)st;

	if (spool_write(s->spool, p, n) == -1)
		return pipe_stage_fail(st, "%s", spool_error(s->spool));
	return (ssize_t)n;
}

/*
 * Nothing to flush: the spool is a temporary file that the committer reads
 * back, and a crash loses it along with the message it would have held,
 * which the server still has.
 */
static int
sink_finish(struct pipe_stage *st)
{
	return 0;
}

/* The spool belongs to the pipe, which frees it. */
static void
sink_abort(struct pipe_stage *st)
{
}

static void
sink_free(struct pipe_stage *st)
{
	free(st);
}

static const struct pipe_ops sink_ops = {
	.write = sink_write,
	.finish = sink_finish,
	.abort = sink_abort,
	.free = sink_free,
};

struct pipe *
pipe_new(const struct pipe_params *params)
{
	struct pipe *p;

	p = xcalloc(1, sizeof(*p));
	p->spool = spool_new(params->spool_dir, params->spool_mem,
	    params->spool_sys);
	p->sink = xcalloc(1, sizeof(*p->sink));
	p->sink->st.ops = &sink_ops;
	p->sink->spool = p->spool;
	p->zstd = zstd_stage_new(params->level, params->size_hint,
	    params->dict, &p->sink->st);
	p->hash = xcalloc(1, sizeof(*p->hash));
	p->hash->st.ops = &hstage_ops;
	p->hash->st.next = p->zstd;
	pipe_head_init(&p->hash->hh);
	if (params->index) {
		p->index = xcalloc(1, sizeof(*p->index));
		p->index->st.ops = &istage_ops;
		p->index->st.next = &p->hash->st;
		p->index->parser = mime_parser_new();
	}
	p->dict_id = params->dict != NULL ? zdict_id(params->dict) : 0;
	p->state = PIPE_OPEN;
	return p;
}

/* Where bytes enter the chain. */
static struct pipe_stage *
pipe_head(struct pipe *p)
{
	return p->index != NULL ? &p->index->st : &p->hash->st;
}

static void
pipe_fail(struct pipe *p)
{
	struct pipe_stage *head = pipe_head(p);

	(void)snprintf(p->error, sizeof(p->error), "%s",
	    head->error[0] != '\0' ? head->error : "pipe: stage failed");
	p->state = PIPE_FAILED;
	/* Give the zstd context back now rather than at pipe_free(). */
	head->ops->abort(head);
}

int
pipe_write(struct pipe *p, const void *data, size_t n)
{
	struct pipe_stage *head = pipe_head(p);
	const char *c = data;
	ssize_t w;

	ASSERT(p->state != PIPE_DONE);
	if (p->state == PIPE_FAILED)
		return -1;
	while (n > 0) {
		w = head->ops->write(head, c, n);
		if (w <= 0) {
			pipe_fail(p);
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int
pipe_finish(struct pipe *p, struct pipe_result *r)
{
	struct pipe_stage *head = pipe_head(p);

	ASSERT(p->state != PIPE_DONE);
	if (p->state == PIPE_FAILED)
		return -1;
	if (head->ops->finish(head) == -1) {
		pipe_fail(p);
		return -1;
	}
	memset(r, 0, sizeof(*r));
	memcpy(r->sha256, p->hash->digest, sizeof(r->sha256));
	memcpy(r->head_sha256, p->hash->head, sizeof(r->head_sha256));
	r->size = p->hash->size;
	r->stored_size = spool_size(p->spool);
	r->dict_id = p->dict_id;
	r->spool = p->spool;
	if (p->index != NULL) {
		r->meta = p->index->meta;
		p->index->meta = NULL;
	}
	p->spool = NULL;
	p->sink->spool = NULL;
	p->state = PIPE_DONE;
	return 0;
}

const char *
pipe_error(const struct pipe *p)
{
	return p->error;
}

void
pipe_free(struct pipe **pp)
{
	struct pipe *p = *pp;

	if (p == NULL)
		return;
	if (p->state == PIPE_OPEN)
		pipe_head(p)->ops->abort(pipe_head(p));
	if (p->index != NULL)
		p->index->st.ops->free(&p->index->st);
	p->hash->st.ops->free(&p->hash->st);
	p->zstd->ops->free(p->zstd);
	p->sink->st.ops->free(&p->sink->st);
	spool_free(&p->spool);
	free(p);
	*pp = NULL;
}

void
pipe_hex(const unsigned char digest[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	out[64] = '\0';
}
