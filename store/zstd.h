/*
 * Compression.  zstd.c is the only user of libzstd: the compressing pipe
 * stage, shared dictionaries, the streaming decompressor used by export and
 * verify, and dictionary training.
 *
 * Memory stays bounded by the zstd window, never by the message: both
 * directions stream through one ZSTD_CStreamOutSize()/ZSTD_DStreamOutSize()
 * buffer.
 */
#ifndef STORE_ZSTD_H
#define STORE_ZSTD_H

#include <stddef.h>
#include <stdint.h>

struct pipe_stage;
struct zdict;
struct zdec;

/*
 * A compression dictionary prepared for level: copies p[0, n), which may be
 * a trained dictionary or raw content.  Read-only once made, so one zdict
 * serves every worker thread at once.  id is the archive's own number for
 * it, reported in pipe_result.dict_id.  Returns NULL if zstd refuses the
 * bytes (a corrupt trained dictionary) or cannot allocate.
 */
struct zdict *zdict_new(int64_t id, const void *p, size_t n, int level);
int64_t zdict_id(const struct zdict *d);
/* The caller must ensure no stage still uses it; *d becomes NULL. */
void zdict_free(struct zdict **d);

/*
 * The compressing stage: every byte written is compressed into one zstd
 * frame (with a content checksum) and the compressed bytes are written to
 * next, which must consume them synchronously.  size_hint, the LIST size
 * or 0, only tunes the tables (a small message gets small ones); it is not
 * pledged, so a server that lies about sizes cannot break a frame.  dict is
 * borrowed and may be NULL; with one, the level is the one the dictionary
 * was made for, and level is ignored.
 *
 * The context comes from a process-wide pool on the first write and goes
 * back at finish or abort, so a pipe waiting for bytes holds no zstd memory.
 * finish ends the frame, passes on the rest and then finishes next; abort
 * drops the frame and aborts next; free frees this stage only.
 */
struct pipe_stage *zstd_stage_new(int level, uint64_t size_hint,
    const struct zdict *dict, struct pipe_stage *next);

/*
 * At most n idle compression contexts are kept for reuse (default 8); the
 * rest are freed when returned.  A context keeps the tables of the largest
 * recent message, so n bounds idle memory at n times that.  Thread-safe.
 */
void zstd_pool_set_max(unsigned n);
/* Frees every idle context (shutdown, tests).  Thread-safe. */
void zstd_pool_clear(void);

/*
 * Streaming decompressor.  dict (NULL for none) is copied.  Never returns
 * NULL: if zstd refuses the dictionary, the first zdec_write() fails with
 * that reason in zdec_error().
 */
struct zdec *zdec_new(const void *dict, size_t dictlen);
/*
 * Decompresses p[0, n), calling out(arg, bytes, len) for the output as it
 * is produced, in pieces of at most ZSTD_DStreamOutSize().  out returns 0,
 * or -1 to stop: zdec_write() then returns -1 too.  Returns 0, or -1 with
 * zdec_error() set (corrupt data, wrong dictionary, checksum mismatch, out
 * refused).  Output already delivered before an error stays delivered; the
 * caller discards it.  After -1 only zdec_free().
 */
int zdec_write(struct zdec *d, const void *p, size_t n,
    int (*out)(void *arg, const void *p, size_t n), void *arg);
/*
 * Ends the input: 0 if it held whole frames, or -1 with zdec_error() set if
 * it held none or ended inside one (a truncated blob).  On 0 the zdec is
 * ready for the next input with the same dictionary.
 */
int zdec_finish(struct zdec *d);
/* The last error, "" if none. */
const char *zdec_error(const struct zdec *d);
void zdec_free(struct zdec **d);

/*
 * Trains a dictionary from n samples laid end to end in samples, sample i
 * being sizes[i] bytes.  Writes at most cap bytes to dict_out and the
 * length to *len_r.  Returns 0, or -1 (logged) when zstd cannot train,
 * usually because the samples are too few or too small.
 */
int zdict_train(const void *samples, const size_t *sizes, unsigned n,
    void *dict_out, size_t cap, size_t *len_r);

#endif
