/*
 * libzstd behind store/zstd.h: the compressing stage of the pipe (with a
 * pool of compression contexts shared by every worker), dictionaries, the
 * streaming decoder that export and verify read blobs through, and
 * dictionary training.  The only file that includes zstd.h or zdict.h.
 */
#include "store/zstd.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * For ZSTD_c_srcSizeHint alone.  It is a parameter number passed to the
 * stable ZSTD_CCtx_setParameter(), so it binds to no static-only symbol;
 * a libzstd that does not know it refuses it and we carry on without.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/pipe.h"

/* Hard bound on zstd_pool_set_max(), so the pool is a fixed array. */
#define ZPOOL_CAP	64

struct zdict {
	int64_t id;
	ZSTD_CDict *cdict;
};

struct zstage {
	struct pipe_stage st;	/* first: the stage pointer is the zstage */
	int level;
	uint64_t size_hint;
	const struct zdict *dict;
	ZSTD_CCtx *cctx;	/* NULL between messages */
	char *out;		/* ZSTD_CStreamOutSize() bytes while active */
	size_t out_cap;
	size_t out_len;
	bool failed;
};

struct zdec {
	ZSTD_DCtx *dctx;
	char *out;
	size_t out_cap;
	size_t last;		/* last ZSTD_decompressStream() hint; 0 at a
				 * frame boundary */
	bool started;		/* any input since new/finish */
	bool failed;
	char error[256];
};

/*
 * The context pool.  Creating a context per message would reallocate and
 * zero its tables every time, which dominates for the small messages that
 * make up most mailboxes; keeping one per session would pin that memory on
 * every idle session.  A short shared stack gives reuse without either.
 */
static pthread_mutex_t zpool_mtx = PTHREAD_MUTEX_INITIALIZER;
static ZSTD_CCtx *zpool[ZPOOL_CAP];
static unsigned zpool_len;
static unsigned zpool_max = 8;

static ZSTD_CCtx *
zpool_get(void)
{
	ZSTD_CCtx *c = NULL;

	pthread_mutex_lock(&zpool_mtx);
	if (zpool_len > 0)
		c = zpool[--zpool_len];
	pthread_mutex_unlock(&zpool_mtx);
	return c != NULL ? c : ZSTD_createCCtx();
}

static void
zpool_put(ZSTD_CCtx *c)
{
	/*
	 * Drops the parameters and the dictionary reference, so a pooled
	 * context never points at a zdict that may be freed meanwhile.
	 */
	(void)ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
	pthread_mutex_lock(&zpool_mtx);
	if (zpool_len < zpool_max) {
		zpool[zpool_len++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&zpool_mtx);
	ZSTD_freeCCtx(c);
}

void
zstd_pool_set_max(unsigned n)
{
	ZSTD_CCtx *drop[ZPOOL_CAP];
	unsigned i, ndrop = 0;

	if (n > ZPOOL_CAP)
		n = ZPOOL_CAP;
	pthread_mutex_lock(&zpool_mtx);
	zpool_max = n;
	while (zpool_len > zpool_max)
		drop[ndrop++] = zpool[--zpool_len];
	pthread_mutex_unlock(&zpool_mtx);
	/* Freed outside the lock: freeing large tables takes a while. */
	for (i = 0; i < ndrop; i++)
		ZSTD_freeCCtx(drop[i]);
}

void
zstd_pool_clear(void)
{
	ZSTD_CCtx *drop[ZPOOL_CAP];
	unsigned i, ndrop = 0;

	pthread_mutex_lock(&zpool_mtx);
	while (zpool_len > 0)
		drop[ndrop++] = zpool[--zpool_len];
	pthread_mutex_unlock(&zpool_mtx);
	for (i = 0; i < ndrop; i++)
		ZSTD_freeCCtx(drop[i]);
}

struct zdict *
zdict_new(int64_t id, const void *p, size_t n, int level)
{
	struct zdict *d;
	ZSTD_CDict *cd;

	cd = ZSTD_createCDict(p, n, level);
	if (cd == NULL)
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->id = id;
	d->cdict = cd;
	return d;
}

int64_t
zdict_id(const struct zdict *d)
{
	return d->id;
}

void
zdict_free(struct zdict **dp)
{
	struct zdict *d = *dp;

	if (d == NULL)
		return;
	ZSTD_freeCDict(d->cdict);
	free(d);
	*dp = NULL;
}

/* A failed stage stays failed: every later call returns -1. */
static int
zstage_fail(struct zstage *z, const char *what, size_t code)
{
	z->failed = true;
	return pipe_stage_fail(&z->st, "zstd %s: %s", what,
	    ZSTD_getErrorName(code));
}

/* Gives the context and the buffer back: the stage then holds nothing. */
static void
zstage_release(struct zstage *z)
{
	if (z->cctx != NULL)
		zpool_put(z->cctx);
	z->cctx = NULL;
	free(z->out); z->out = NULL;
	z->out_cap = z->out_len = 0;
}

static int
zstage_start(struct zstage *z)
{
	size_t r;
	int hint;

	z->cctx = zpool_get();
	if (z->cctx == NULL) {
		z->failed = true;
		return pipe_stage_fail(&z->st, "zstd: cannot allocate a "
		    "compression context");
	}
	if (z->dict != NULL) {
		r = ZSTD_CCtx_refCDict(z->cctx, z->dict->cdict);
	} else {
		r = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel,
		    z->level);
	}
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(r))
		return zstage_fail(z, "setup", r);
	/* A hint only: a refusal (older libzstd) costs nothing but tuning. */
	if (z->size_hint != 0) {
		hint = z->size_hint > INT32_MAX ? INT32_MAX : (int)z->size_hint;
		(void)ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_srcSizeHint, hint);
	}
	z->out_cap = ZSTD_CStreamOutSize();
	z->out = xmalloc(z->out_cap);
	z->out_len = 0;
	return 0;
}

/* Hands the compressed bytes on; the next stage must take them all now. */
static int
zstage_flush(struct zstage *z)
{
	if (pipe_stage_pass(&z->st, z->out, z->out_len) == -1) {
		z->failed = true;
		return -1;
	}
	z->out_len = 0;
	return 0;
}

/*
 * Runs the compressor over in with the given directive, flushing whenever
 * the output buffer fills and, for ZSTD_e_end, once the frame is complete.
 * Returns 0 when in is consumed (ZSTD_e_continue) or the frame is ended
 * (ZSTD_e_end), or -1.
 */
static int
zstage_run(struct zstage *z, ZSTD_inBuffer *in, ZSTD_EndDirective how)
{
	ZSTD_outBuffer out;
	size_t r, in_before, out_before;
	bool done;

	for (;;) {
		out.dst = z->out;
		out.size = z->out_cap;
		out.pos = z->out_len;
		in_before = in->pos;
		out_before = out.pos;
		r = ZSTD_compressStream2(z->cctx, &out, in, how);
		if (ZSTD_isError(r))
			return zstage_fail(z, "compress", r);
		z->out_len = out.pos;
		done = how == ZSTD_e_end ? r == 0 : in->pos == in->size;
		if ((out.pos == out.size || (done && how == ZSTD_e_end)) &&
		    zstage_flush(z) == -1)
			return -1;
		if (done)
			return 0;
		/* zstd always moves one way or the other; never spin. */
		if (in->pos == in_before && out.pos == out_before) {
			z->failed = true;
			return pipe_stage_fail(&z->st, "zstd compress: no "
			    "progress");
		}
	}
}

static ssize_t
zstage_write(struct pipe_stage *st, const void *p, size_t n)
{
	struct zstage *z = (struct zstage *)st;
	ZSTD_inBuffer in = { p, n, 0 };

	if (z->failed)
		return -1;
	if (n == 0)
		return 0;
	if (z->cctx == NULL && zstage_start(z) == -1)
		return -1;
	if (zstage_run(z, &in, ZSTD_e_continue) == -1)
		return -1;
	return (ssize_t)n;
}

static int
zstage_finish(struct pipe_stage *st)
{
	struct zstage *z = (struct zstage *)st;
	ZSTD_inBuffer in = { NULL, 0, 0 };

	if (z->failed)
		return -1;
	/* An empty message still gets a frame, so every blob decodes. */
	if (z->cctx == NULL && zstage_start(z) == -1)
		return -1;
	if (zstage_run(z, &in, ZSTD_e_end) == -1)
		return -1;
	zstage_release(z);
	if (pipe_stage_finish_next(st) == -1) {
		z->failed = true;
		return -1;
	}
	return 0;
}

static void
zstage_abort(struct pipe_stage *st)
{
	struct zstage *z = (struct zstage *)st;

	zstage_release(z);
	z->failed = true;
	if (st->next != NULL)
		st->next->ops->abort(st->next);
}

static void
zstage_free(struct pipe_stage *st)
{
	struct zstage *z = (struct zstage *)st;

	zstage_release(z);
	free(z);
}

static const struct pipe_ops zstage_ops = {
	.write = zstage_write,
	.finish = zstage_finish,
	.abort = zstage_abort,
	.free = zstage_free,
};

struct pipe_stage *
zstd_stage_new(int level, uint64_t size_hint, const struct zdict *dict,
    struct pipe_stage *next)
{
	struct zstage *z;

	ASSERT(next != NULL);
	z = xcalloc(1, sizeof(*z));
	z->st.ops = &zstage_ops;
	z->st.next = next;
	z->level = level;
	z->size_hint = size_hint;
	z->dict = dict;
	return &z->st;
}

/* A failed decoder stays failed; returns -1. */
static int zdec_fail(struct zdec *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
zdec_fail(struct zdec *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	d->failed = true;
	return -1;
}

struct zdec *
zdec_new(const void *dict, size_t dictlen)
{
	struct zdec *d;
	size_t r;

	d = xcalloc(1, sizeof(*d));
	d->dctx = ZSTD_createDCtx();
	if (d->dctx == NULL) {
		(void)zdec_fail(d, "zstd: cannot allocate a decompression "
		    "context");
		return d;
	}
	if (dict != NULL && dictlen > 0) {
		r = ZSTD_DCtx_loadDictionary(d->dctx, dict, dictlen);
		if (ZSTD_isError(r))
			(void)zdec_fail(d, "zstd dictionary: %s",
			    ZSTD_getErrorName(r));
	}
	return d;
}

int
zdec_write(struct zdec *d, const void *p, size_t n,
    int (*out)(void *arg, const void *p, size_t n), void *arg)
{
	ZSTD_inBuffer in = { p, n, 0 };
	ZSTD_outBuffer ob;
	size_t r, in_before;

	if (d->failed)
		return -1;
	if (n == 0)
		return 0;
	d->started = true;
	if (d->out == NULL) {
		d->out_cap = ZSTD_DStreamOutSize();
		d->out = xmalloc(d->out_cap);
	}
	for (;;) {
		ob.dst = d->out;
		ob.size = d->out_cap;
		ob.pos = 0;
		in_before = in.pos;
		r = ZSTD_decompressStream(d->dctx, &ob, &in);
		if (ZSTD_isError(r))
			return zdec_fail(d, "zstd decompress: %s",
			    ZSTD_getErrorName(r));
		d->last = r;
		if (ob.pos > 0 && out(arg, d->out, ob.pos) == -1)
			return zdec_fail(d, "zstd decompress: output refused");
		/*
		 * A full buffer may hide more output for the same input,
		 * unless the frame is complete: zstd would then take the
		 * empty call as the start of a next frame.
		 */
		if (in.pos == in.size && (ob.pos < ob.size || r == 0))
			break;
		if (in.pos == in_before && ob.pos == 0)
			return zdec_fail(d, "zstd decompress: no progress");
	}
	return 0;
}

int
zdec_finish(struct zdec *d)
{
	if (d->failed)
		return -1;
	if (!d->started)
		return zdec_fail(d, "zstd decompress: no frame");
	if (d->last != 0)
		return zdec_fail(d, "zstd decompress: truncated frame");
	(void)ZSTD_DCtx_reset(d->dctx, ZSTD_reset_session_only);
	d->started = false;
	/* The buffer is per input, so a verifier looping over blobs that
	 * keeps one zdec holds only the context between them. */
	free(d->out); d->out = NULL;
	return 0;
}

const char *
zdec_error(const struct zdec *d)
{
	return d->error;
}

void
zdec_free(struct zdec **dp)
{
	struct zdec *d = *dp;

	if (d == NULL)
		return;
	ZSTD_freeDCtx(d->dctx);
	free(d->out); d->out = NULL;
	free(d);
	*dp = NULL;
}

int
zdict_train(const void *samples, const size_t *sizes, unsigned n,
    void *dict_out, size_t cap, size_t *len_r)
{
	size_t r;

	r = ZDICT_trainFromBuffer(dict_out, cap, samples, sizes, n);
	if (ZDICT_isError(r)) {
		log_warnx("zstd dictionary training over %u samples: %s", n,
		    ZDICT_getErrorName(r));
		return -1;
	}
	*len_r = r;
	return 0;
}
