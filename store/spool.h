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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>

struct spool;

/*
 * Each call returns what the system call would and sets errno on failure.
 * A NULL member means the real call, so a test replaces only what it
 * wants to fail.
 */
struct spool_sys {
	int (*open_tmp)(const char *dir); /* O_TMPFILE or mkstemp+unlink */
	ssize_t (*write)(int fd, const void *p, size_t n);
	ssize_t (*pread)(int fd, void *p, size_t n, off_t off);
	int (*close)(int fd);
	int (*statvfs)(const char *path, struct statvfs *st);
};

/* The real system calls; tests may substitute their own. */
extern const struct spool_sys spool_sys_default;

/*
 * The fallback of the default open_tmp where O_TMPFILE is refused: a file
 * made by mkstemp in dir and unlinked at once.  Returns the fd, or -1 with
 * errno set.  Exposed so that the path is tested on systems that never
 * take it.
 */
int spool_open_unlinked(const char *dir);

/* Names of the fallback files, unlinked as soon as they are created. */
#define SPOOL_PREFIX ".ingestd-spool."

/*
 * Removes fallback files a crash left between create and unlink (only on
 * filesystems without O_TMPFILE).  Call at startup, before any spool of
 * this process exists.  0, or -1 with errno if dir cannot be read.
 */
int spool_sweep(const char *dir, unsigned *removed_r);

/*
 * sys may be NULL for the default; it is copied.  dir is copied; NULL means
 * /tmp.  Nothing is allocated beyond the struct and nothing is opened until
 * bytes arrive: memory grows with the message up to mem_limit, and only the
 * bytes past mem_limit go to the temporary file, created on first need.
 */
struct spool *spool_new(const char *dir, size_t mem_limit,
    const struct spool_sys *sys);
/*
 * Appends all of p[0, n); 0, or -1 with spool_error() set, e.g.
 * "spool write to /var/spool: No space left on device".  A failure is
 * sticky: every later write fails with the same text, so a message with a
 * hole in it can never be committed.
 */
int spool_write(struct spool *s, const void *p, size_t n);
uint64_t spool_size(const struct spool *s);
/*
 * Reads min(n, spool_size() - off) bytes from offset off, all of them,
 * across the boundary between memory and file: returns that count (0 at
 * or past the end), or -1 with spool_error() set.  May be called from
 * another thread than the writer's once writing is over.
 */
ssize_t spool_read(struct spool *s, uint64_t off, void *p, size_t n);
/*
 * A floor under the free space of dir's file system: once a check finds
 * fewer than min_free bytes available to us, spool_space_low() turns true
 * and the writer is to stop feeding bytes until spool_space_recheck()
 * finds space again.  statvfs on every write would cost too much, so the
 * space is checked when the bytes first overflow to a file and then each
 * time another `every` bytes have gone to it; the write that finds the
 * floor crossed still completes (the overshoot is one write).  min_free 0
 * (the default) means no floor.
 */
void spool_set_floor(struct spool *s, uint64_t min_free, uint64_t every);
/* Whether the last check found free space below the floor. */
bool spool_space_low(const struct spool *s);
/*
 * Checks the free space now: 0 if it is at or above the floor (and
 * spool_space_low() turns false), 1 if still below, -1 if statvfs failed
 * (spool_error() says why; spool_space_low() stays as it was).
 */
int spool_space_recheck(struct spool *s);
/*
 * The bytes available to us on the file system that holds dir (statvfs:
 * f_bavail blocks), through sys (NULL: the real system calls): what a
 * session checks against spool_min_free before it receives another
 * message.  0, or -1 with errno set.
 */
int spool_dir_avail(const char *dir, const struct spool_sys *sys,
    uint64_t *avail_r);
/* Whether the bytes outgrew memory and a temporary file holds the rest. */
bool spool_on_disk(const struct spool *s);
/* The last error, "" if none. */
const char *spool_error(const struct spool *s);
/* Closes the file (the kernel then drops it) and frees; *s becomes NULL. */
void spool_free(struct spool **s);

#endif
