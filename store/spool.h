/*
 * The compressed bytes of one message between compression and commit: kept
 * in memory up to a bound, then in an unlinked temporary file, so memory
 * stays bounded whatever the message size and nothing is left on disk after
 * a crash.
 *
 * System calls go through struct spool_sys so tests can fail the Nth call
 * with a chosen errno.
 */
#ifndef STORE_SPOOL_H
#define STORE_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spool;

struct spool_sys {
	int (*open_tmp)(const char *dir);	/* O_TMPFILE or mkstemp+unlink */
	ssize_t (*write)(int fd, const void *p, size_t n);
	ssize_t (*pread)(int fd, void *p, size_t n, off_t off);
};

/* The real system calls; tests may substitute their own. */
extern const struct spool_sys spool_sys_default;

/* sys may be NULL for the default. */
struct spool *spool_new(const char *dir, size_t mem_limit,
    const struct spool_sys *sys);
/* Appends; 0, or -1 with spool_error() set (e.g. ENOSPC). */
int spool_write(struct spool *s, const void *p, size_t n);
uint64_t spool_size(const struct spool *s);
/* Reads from offset off; returns bytes read (0 at end) or -1. */
ssize_t spool_read(struct spool *s, uint64_t off, void *p, size_t n);
const char *spool_error(const struct spool *s);
void spool_free(struct spool **s);

#endif
