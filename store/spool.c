#include "store/spool.h"

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"

/* First allocation for the in-memory part; it then doubles up to the bound. */
#define SPOOL_MEM_MIN	4096

struct spool {
	char *dir;
	size_t mem_limit;
	struct spool_sys sys;	/* every member set */
	char *mem;
	size_t mem_len;
	size_t mem_cap;
	int fd;			/* -1 until the bytes outgrow memory */
	uint64_t file_len;
	bool failed;		/* a write failed: no further bytes accepted */
	uint64_t min_free;	/* the floor; 0: none */
	uint64_t check_every;	/* file bytes between two checks */
	uint64_t next_check;	/* file_len at which to check again */
	bool low;		/* the last check found less than min_free */
	char error[256];
};

int
spool_open_unlinked(const char *dir)
{
	char *path;
	int fd, saved;

	path = xasprintf("%s/" SPOOL_PREFIX "XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		free(path); path = NULL;
		errno = saved;
		return -1;
	}
	if (unlink(path) == -1) {
		saved = errno;
		(void)close(fd);
		free(path); path = NULL;
		errno = saved;
		return -1;
	}
	free(path); path = NULL;
	return fd;
}

int
spool_sweep(const char *dir, unsigned *removed_r)
{
	struct dirent *de;
	DIR *d;
	int fd;

	*removed_r = 0;
	if ((d = opendir(dir)) == NULL)
		return -1;
	fd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, SPOOL_PREFIX,
		    sizeof(SPOOL_PREFIX) - 1) != 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			(*removed_r)++;
	}
	closedir(d);
	return 0;
}

/*
 * An unlinked file from the start, so a crash or kill -9 leaves nothing
 * behind.  O_TMPFILE needs Linux 3.11 and a filesystem that supports it;
 * where the kernel or the filesystem refuses it, a named file is created
 * and unlinked at once.
 */
static int
sys_open_tmp(const char *dir)
{
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -1;
	return spool_open_unlinked(dir);
}

const struct spool_sys spool_sys_default = {
	.open_tmp = sys_open_tmp,
	.write = write,
	.pread = pread,
	.close = close,
	.statvfs = statvfs,
};

struct spool *
spool_new(const char *dir, size_t mem_limit, const struct spool_sys *sys)
{
	struct spool *s;

	s = xcalloc(1, sizeof(*s));
	s->dir = xstrdup(dir != NULL ? dir : "/tmp");
	s->mem_limit = mem_limit;
	s->sys = spool_sys_default;
	if (sys != NULL) {
		if (sys->open_tmp != NULL)
			s->sys.open_tmp = sys->open_tmp;
		if (sys->write != NULL)
			s->sys.write = sys->write;
		if (sys->pread != NULL)
			s->sys.pread = sys->pread;
		if (sys->close != NULL)
			s->sys.close = sys->close;
		if (sys->statvfs != NULL)
			s->sys.statvfs = sys->statvfs;
	}
	s->fd = -1;
	return s;
}

static void
spool_fail(struct spool *s, const char *what, int err)
{
	(void)snprintf(s->error, sizeof(s->error), "spool %s %s: %s", what,
	    s->dir, strerror(err));
}

/* Grows the in-memory part to hold want bytes, never past mem_limit. */
static void
spool_mem_reserve(struct spool *s, size_t want)
{
	size_t cap;

	if (want <= s->mem_cap)
		return;
	cap = s->mem_cap != 0 ? s->mem_cap : SPOOL_MEM_MIN;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > s->mem_limit)
		cap = s->mem_limit;
	s->mem = xreallocarray(s->mem, cap, 1);
	s->mem_cap = cap;
}

void
spool_set_floor(struct spool *s, uint64_t min_free, uint64_t every)
{
	s->min_free = min_free;
	s->check_every = every != 0 ? every : 1;
	s->next_check = s->file_len;
}

bool
spool_space_low(const struct spool *s)
{
	return s->low;
}

int
spool_dir_avail(const char *dir, const struct spool_sys *sys,
    uint64_t *avail_r)
{
	int (*fn)(const char *, struct statvfs *) = statvfs;
	struct statvfs st;

	if (sys != NULL && sys->statvfs != NULL)
		fn = sys->statvfs;
	if (fn(dir, &st) == -1)
		return -1;
	*avail_r = (uint64_t)st.f_bavail * (st.f_frsize != 0 ? st.f_frsize :
	    st.f_bsize);
	return 0;
}

int
spool_space_recheck(struct spool *s)
{
	uint64_t avail;

	if (s->min_free == 0) {
		s->low = false;
		return 0;
	}
	if (spool_dir_avail(s->dir, &s->sys, &avail) == -1) {
		spool_fail(s, "statvfs of", errno);
		return -1;
	}
	s->low = avail < s->min_free;
	return s->low ? 1 : 0;
}

static int
spool_file_write(struct spool *s, const char *p, size_t n)
{
	ssize_t w;

	if (s->fd == -1) {
		s->fd = s->sys.open_tmp(s->dir);
		if (s->fd == -1) {
			spool_fail(s, "create in", errno);
			return -1;
		}
	}
	/* On the first overflow, then every check_every bytes.  A failed
	 * statvfs is no reason to lose the message: the write goes on. */
	if (s->min_free != 0 && s->file_len >= s->next_check) {
		s->next_check = s->file_len + s->check_every;
		(void)spool_space_recheck(s);
	}
	while (n > 0) {
		w = s->sys.write(s->fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			spool_fail(s, "write to", errno);
			return -1;
		}
		/* A regular file takes nothing only when it cannot grow. */
		if (w == 0) {
			spool_fail(s, "write to", ENOSPC);
			return -1;
		}
		p += w;
		n -= (size_t)w;
		s->file_len += (uint64_t)w;
	}
	return 0;
}

int
spool_write(struct spool *s, const void *p, size_t n)
{
	const char *c = p;
	size_t room;

	if (s->failed)
		return -1;
	if (n == 0)
		return 0;
	/* Once on disk, everything goes there so the order stays simple. */
	if (s->fd == -1 && s->mem_len < s->mem_limit) {
		room = s->mem_limit - s->mem_len;
		if (room > n)
			room = n;
		spool_mem_reserve(s, s->mem_len + room);
		memcpy(s->mem + s->mem_len, c, room);
		s->mem_len += room;
		c += room;
		n -= room;
	}
	if (n > 0 && spool_file_write(s, c, n) == -1) {
		s->failed = true;
		return -1;
	}
	return 0;
}

uint64_t
spool_size(const struct spool *s)
{
	return (uint64_t)s->mem_len + s->file_len;
}

ssize_t
spool_read(struct spool *s, uint64_t off, void *p, size_t n)
{
	char *c = p;
	uint64_t size = spool_size(s), foff;
	size_t k, done = 0;
	ssize_t r;

	if (off >= size || n == 0)
		return 0;
	if (n > size - off)
		n = (size_t)(size - off);
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (off < s->mem_len) {
		k = s->mem_len - (size_t)off < n ? s->mem_len - (size_t)off :
		    n;
		memcpy(c, s->mem + off, k);
		done = k;
	}
	/* Whole reads only, across the boundary too: callers size by it. */
	while (done < n) {
		foff = off + done - s->mem_len;
		r = s->sys.pread(s->fd, c + done, n - done, (off_t)foff);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			spool_fail(s, "read from", errno);
			return -1;
		}
		/* Shorter than what was written: truncated under us. */
		if (r == 0) {
			spool_fail(s, "read from", EIO);
			return -1;
		}
		done += (size_t)r;
	}
	return (ssize_t)n;
}

bool
spool_on_disk(const struct spool *s)
{
	return s->fd != -1;
}

const char *
spool_error(const struct spool *s)
{
	return s->error;
}

void
spool_free(struct spool **sp)
{
	struct spool *s = *sp;

	if (s == NULL)
		return;
	if (s->fd != -1)
		(void)s->sys.close(s->fd);
	free(s->mem); s->mem = NULL;
	free(s->dir); s->dir = NULL;
	free(s);
	*sp = NULL;
}
