/*
 * store/spool: memory up to the bound, the unlinked file beyond it, and
 * every system call failed on purpose through struct spool_sys.
 */
#include "tests/unit/test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingestd/base/xmalloc.h"
#include "store/spool.h"

#define TESTS(X)                                                         \
	X(test_memory_only)                                              \
	X(test_overflow_to_file)                                         \
	X(test_every_split)                                              \
	X(test_one_byte_at_a_time)                                       \
	X(test_zero_mem_limit)                                           \
	X(test_file_is_unlinked)                                         \
	X(test_open_fails)                                               \
	X(test_missing_dir)                                              \
	X(test_write_fails_nth)                                          \
	X(test_short_and_interrupted_writes)                             \
	X(test_zero_write_is_enospc)                                     \
	X(test_read_fails)                                               \
	X(test_read_bounds)                                              \
	X(test_real_enospc)                                              \
	X(test_mkstemp_fallback)                                         \
	X(test_sweep_removes_crash_leftovers)                            \
	X(test_free_space_floor)                                         \
	X(test_dir_avail)                                                \
	X(test_dir_left_empty)
TESTS(TEST_DECLARE)

static char tmpdir[64];

/*
 * Fault injection.  Counters are global because struct spool_sys carries
 * no argument; every test resets them with fault_reset().
 */
static struct {
	int opens, writes, preads, closes;
	int fail_open_errno;
	int fail_write_at;	/* 1-based write call to fail; 0 never */
	int fail_write_errno;
	bool fail_all_after;	/* keep failing after fail_write_at */
	size_t max_write;	/* short writes of at most this; 0 off */
	int eintr_every;	/* every Nth write fails with EINTR; 0 off */
	bool write_zero;	/* write returns 0 */
	int fail_pread_errno;
	size_t max_pread;	/* short preads of at most this; 0 off */
	bool pread_zero;	/* pread finds the file truncated */
	int open_fds;
	int statvfs_calls;
	uint64_t free_bytes;	/* what statvfs reports available */
	int fail_statvfs_errno;
} f;

static void
fault_reset(void)
{
	memset(&f, 0, sizeof(f));
}

static int
f_open_tmp(const char *dir)
{
	int fd;

	f.opens++;
	if (f.fail_open_errno != 0) {
		errno = f.fail_open_errno;
		return -1;
	}
	fd = spool_sys_default.open_tmp(dir);
	if (fd != -1)
		f.open_fds++;
	return fd;
}

static ssize_t
f_write(int fd, const void *p, size_t n)
{
	f.writes++;
	if (f.fail_write_at != 0 && (f.writes == f.fail_write_at ||
	    (f.fail_all_after && f.writes > f.fail_write_at))) {
		errno = f.fail_write_errno;
		return -1;
	}
	if (f.eintr_every != 0 && f.writes % f.eintr_every == 0) {
		errno = EINTR;
		return -1;
	}
	if (f.write_zero)
		return 0;
	if (f.max_write != 0 && n > f.max_write)
		n = f.max_write;
	return write(fd, p, n);
}

static ssize_t
f_pread(int fd, void *p, size_t n, off_t off)
{
	f.preads++;
	if (f.fail_pread_errno != 0) {
		errno = f.fail_pread_errno;
		return -1;
	}
	if (f.pread_zero)
		return 0;
	if (f.eintr_every != 0 && f.preads % f.eintr_every == 0) {
		errno = EINTR;
		return -1;
	}
	if (f.max_pread != 0 && n > f.max_pread)
		n = f.max_pread;
	return pread(fd, p, n, off);
}

static int
f_close(int fd)
{
	f.closes++;
	f.open_fds--;
	return close(fd);
}

static int
f_statvfs(const char *path, struct statvfs *st)
{
	(void)path;
	f.statvfs_calls++;
	if (f.fail_statvfs_errno != 0) {
		errno = f.fail_statvfs_errno;
		return -1;
	}
	memset(st, 0, sizeof(*st));
	st->f_frsize = 4096;
	st->f_bsize = 4096;
	st->f_bavail = (fsblkcnt_t)(f.free_bytes / 4096);
	return 0;
}

static const struct spool_sys fsys = {
	.open_tmp = f_open_tmp,
	.write = f_write,
	.pread = f_pread,
	.close = f_close,
	.statvfs = f_statvfs,
};

static char *
pattern(size_t n)
{
	char *p = xmalloc(n ? n : 1);
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (char)(i * 2654435761u >> 13);
	return p;
}

/* Reads it all back in pieces of step bytes and compares. */
static void
check_contents(struct spool *s, const char *want, size_t n, size_t step)
{
	char *got = xmalloc(n + 1);
	uint64_t off = 0;
	ssize_t r;

	ASSERT_EQ(spool_size(s), n);
	while (off < n) {
		r = spool_read(s, off, got + off,
		    n - off < step ? n - off : step);
		/* whole reads, wherever the memory/file boundary falls */
		ASSERT_EQ(r, n - off < step ? n - off : step);
		off += (uint64_t)r;
	}
	ASSERT_EQ(spool_read(s, off, got, 1), 0);
	ASSERT_TRUE(n == 0 || memcmp(got, want, n) == 0);
	free(got);
}

static void
dir_make(void)
{
	if (tmpdir[0] != '\0')
		return;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_spool.XXXXXX");
	ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
}

static int
dir_entries(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	int n = 0;

	ASSERT_TRUE(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_memory_only(void)
{
	char *p = pattern(10000);
	struct spool *s;

	dir_make();
	fault_reset();
	s = spool_new(tmpdir, 10000, &fsys);
	ASSERT_EQ(spool_size(s), 0);
	ASSERT_EQ(spool_read(s, 0, p, 10), 0);
	ASSERT_EQ(spool_write(s, p, 3000), 0);
	ASSERT_EQ(spool_write(s, p + 3000, 0), 0);
	ASSERT_EQ(spool_write(s, p + 3000, 7000), 0);
	ASSERT_TRUE(!spool_on_disk(s));
	ASSERT_EQ(f.opens, 0);
	check_contents(s, p, 10000, 10000);
	check_contents(s, p, 10000, 7);
	ASSERT_STREQ(spool_error(s), "");
	spool_free(&s);
	ASSERT_TRUE(s == NULL);
	spool_free(&s);
	free(p);
}

static void
test_overflow_to_file(void)
{
	const size_t n = 5u << 20;
	char *p = pattern(n);
	struct spool *s;
	size_t off, k;

	dir_make();
	fault_reset();
	s = spool_new(tmpdir, 1u << 20, &fsys);
	for (off = 0; off < n; off += k) {
		k = n - off < 131072 ? n - off : 131072;
		ASSERT_EQ(spool_write(s, p + off, k), 0);
	}
	ASSERT_TRUE(spool_on_disk(s));
	ASSERT_EQ(f.opens, 1);
	check_contents(s, p, n, 65536);
	check_contents(s, p, n, 1000003);
	/* across the memory/file boundary: one whole read */
	{
		char b[10];

		ASSERT_EQ(spool_read(s, (1u << 20) - 4, b, 10), 10);
		ASSERT_MEMEQ(b, p + (1u << 20) - 4, 10);
		ASSERT_EQ(spool_read(s, 1u << 20, b, 10), 10);
		ASSERT_MEMEQ(b, p + (1u << 20), 10);
	}
	spool_free(&s);
	ASSERT_EQ(f.closes, 1);
	ASSERT_EQ(f.open_fds, 0);
	free(p);
}

static void
test_every_split(void)
{
	const size_t n = 600, lim = 256;
	char *p = pattern(n);
	struct spool *s;
	size_t i, j;

	dir_make();
	fault_reset();
	for (i = 0; i <= n; i += 3) {
		for (j = i; j <= n; j += 7) {
			s = spool_new(tmpdir, lim, &fsys);
			ASSERT_EQ(spool_write(s, p, i), 0);
			ASSERT_EQ(spool_write(s, p + i, j - i), 0);
			ASSERT_EQ(spool_write(s, p + j, n - j), 0);
			ASSERT_TRUE(spool_on_disk(s));
			check_contents(s, p, n, 97);
			spool_free(&s);
		}
	}
	ASSERT_EQ(f.open_fds, 0);
	free(p);
}

static void
test_one_byte_at_a_time(void)
{
	const size_t n = 20000;
	char *p = pattern(n);
	struct spool *s;
	size_t i;

	dir_make();
	s = spool_new(tmpdir, 4097, NULL);
	for (i = 0; i < n; i++)
		ASSERT_EQ(spool_write(s, p + i, 1), 0);
	check_contents(s, p, n, 1);
	spool_free(&s);
	free(p);
}

static void
test_zero_mem_limit(void)
{
	char *p = pattern(100);
	struct spool *s;

	dir_make();
	fault_reset();
	s = spool_new(tmpdir, 0, &fsys);
	ASSERT_EQ(f.opens, 0);
	ASSERT_EQ(spool_write(s, p, 100), 0);
	ASSERT_TRUE(spool_on_disk(s));
	check_contents(s, p, 100, 100);
	spool_free(&s);
	ASSERT_EQ(f.open_fds, 0);
	free(p);
}

/* Nothing visible in the directory, even while the file is open. */
static void
test_file_is_unlinked(void)
{
	char *p = pattern(100000);
	struct spool *s;

	dir_make();
	ASSERT_EQ(dir_entries(), 0);
	s = spool_new(tmpdir, 1000, NULL);
	ASSERT_EQ(spool_write(s, p, 100000), 0);
	ASSERT_TRUE(spool_on_disk(s));
	ASSERT_EQ(dir_entries(), 0);
	check_contents(s, p, 100000, 4096);
	spool_free(&s);
	ASSERT_EQ(dir_entries(), 0);
	free(p);
}

static void
test_open_fails(void)
{
	char *p = pattern(5000), want[256];
	struct spool *s;

	dir_make();
	fault_reset();
	f.fail_open_errno = EACCES;
	s = spool_new(tmpdir, 1000, &fsys);
	ASSERT_EQ(spool_write(s, p, 999), 0);
	ASSERT_EQ(spool_write(s, p + 999, 2), -1);
	snprintf(want, sizeof(want), "spool create in %s: %s", tmpdir,
	    strerror(EACCES));
	ASSERT_STREQ(spool_error(s), want);
	ASSERT_TRUE(!spool_on_disk(s));
	/* sticky: no second attempt, same text */
	ASSERT_EQ(spool_write(s, p, 1), -1);
	ASSERT_EQ(f.opens, 1);
	ASSERT_STREQ(spool_error(s), want);
	spool_free(&s);
	ASSERT_EQ(f.closes, 0);
	free(p);
}

static void
test_missing_dir(void)
{
	struct spool *s;

	s = spool_new("/nonexistent/ingestd-spool", 10, NULL);
	ASSERT_EQ(spool_write(s, "0123456789", 10), 0);
	ASSERT_EQ(spool_write(s, "x", 1), -1);
	ASSERT_STREQ(spool_error(s), "spool create in "
	    "/nonexistent/ingestd-spool: No such file or directory");
	spool_free(&s);
}

static void
test_write_fails_nth(void)
{
	char *p = pattern(100000), want[256];
	struct spool *s;
	int nth, i, rc;

	dir_make();
	snprintf(want, sizeof(want), "spool write to %s: %s", tmpdir,
	    strerror(ENOSPC));
	for (nth = 1; nth <= 5; nth++) {
		fault_reset();
		f.fail_write_at = nth;
		f.fail_write_errno = ENOSPC;
		s = spool_new(tmpdir, 5000, &fsys);
		rc = 0;
		for (i = 0; i < 20 && rc == 0; i++)
			rc = spool_write(s, p + i * 5000, 5000);
		ASSERT_EQ(rc, -1);
		/* 5000 bytes fill memory; each later call is one write */
		ASSERT_EQ(i, nth + 1);
		ASSERT_EQ(f.writes, nth);
		ASSERT_STREQ(spool_error(s), want);
		ASSERT_EQ(spool_write(s, p, 1), -1);
		ASSERT_EQ(f.writes, nth);
		ASSERT_STREQ(spool_error(s), want);
		/* what was written before the failure still reads back */
		{
			char b[5000];

			ASSERT_EQ(spool_read(s, 0, b, 5000), 5000);
			ASSERT_MEMEQ(b, p, 5000);
		}
		spool_free(&s);
		ASSERT_EQ(f.open_fds, 0);
	}
	/* other errnos keep their own text */
	fault_reset();
	f.fail_write_at = 1;
	f.fail_write_errno = EIO;
	s = spool_new(tmpdir, 0, &fsys);
	ASSERT_EQ(spool_write(s, p, 10), -1);
	snprintf(want, sizeof(want), "spool write to %s: %s", tmpdir,
	    strerror(EIO));
	ASSERT_STREQ(spool_error(s), want);
	spool_free(&s);
	ASSERT_EQ(f.open_fds, 0);
	free(p);
}

static void
test_short_and_interrupted_writes(void)
{
	char *p = pattern(50000);
	struct spool *s;

	dir_make();
	fault_reset();
	f.max_write = 777;
	f.eintr_every = 3;
	s = spool_new(tmpdir, 1000, &fsys);
	ASSERT_EQ(spool_write(s, p, 30000), 0);
	ASSERT_EQ(spool_write(s, p + 30000, 20000), 0);
	ASSERT_STREQ(spool_error(s), "");
	ASSERT_TRUE(f.writes > 49000 / 777);
	f.max_pread = 555;
	check_contents(s, p, 50000, 3000);
	check_contents(s, p, 50000, 50000);
	ASSERT_TRUE(f.preads > 2 * 49000 / 555);
	spool_free(&s);
	ASSERT_EQ(f.open_fds, 0);
	free(p);
}

static void
test_zero_write_is_enospc(void)
{
	char want[256];
	struct spool *s;

	dir_make();
	fault_reset();
	f.write_zero = true;
	s = spool_new(tmpdir, 0, &fsys);
	ASSERT_EQ(spool_write(s, "abc", 3), -1);
	snprintf(want, sizeof(want), "spool write to %s: %s", tmpdir,
	    strerror(ENOSPC));
	ASSERT_STREQ(spool_error(s), want);
	spool_free(&s);
	ASSERT_EQ(f.open_fds, 0);
}

static void
test_read_fails(void)
{
	char *p = pattern(3000), b[100], want[256];
	struct spool *s;

	dir_make();
	fault_reset();
	f.fail_pread_errno = ENXIO;
	s = spool_new(tmpdir, 1000, &fsys);
	ASSERT_EQ(spool_write(s, p, 3000), 0);
	/* memory part still reads */
	ASSERT_EQ(spool_read(s, 0, b, 100), 100);
	ASSERT_EQ(spool_read(s, 1000, b, 100), -1);
	snprintf(want, sizeof(want), "spool read from %s: %s", tmpdir,
	    strerror(ENXIO));
	ASSERT_STREQ(spool_error(s), want);
	/* a file shorter than what was written to it: EIO */
	f.fail_pread_errno = 0;
	f.pread_zero = true;
	ASSERT_EQ(spool_read(s, 990, b, 100), -1);
	snprintf(want, sizeof(want), "spool read from %s: %s", tmpdir,
	    strerror(EIO));
	ASSERT_STREQ(spool_error(s), want);
	spool_free(&s);
	ASSERT_EQ(f.open_fds, 0);
	free(p);
}

static void
test_read_bounds(void)
{
	char *p = pattern(3000), b[100];
	struct spool *s;

	dir_make();
	s = spool_new(tmpdir, 1000, NULL);
	ASSERT_EQ(spool_write(s, p, 3000), 0);
	ASSERT_EQ(spool_read(s, 2990, b, 100), 10);
	ASSERT_MEMEQ(b, p + 2990, 10);
	ASSERT_EQ(spool_read(s, 3000, b, 100), 0);
	ASSERT_EQ(spool_read(s, UINT64_MAX, b, 100), 0);
	ASSERT_EQ(spool_read(s, 5, b, 0), 0);
	spool_free(&s);
	free(p);
}

/*
 * A real full filesystem, where the system offers one without privilege:
 * /dev/full fails every write with ENOSPC.  The temp file opener is
 * replaced by one that opens it.
 */
static int
open_full(const char *dir)
{
	return open("/dev/full", O_WRONLY | O_CLOEXEC);
}

static void
test_real_enospc(void)
{
	struct spool_sys sys = { .open_tmp = open_full };
	struct spool *s;

	if (access("/dev/full", W_OK) != 0) {
		printf("# /dev/full not writable, skipped\n");
		return;
	}
	s = spool_new("/dev", 4, &sys);
	ASSERT_EQ(spool_write(s, "abcdefgh", 8), -1);
	ASSERT_STREQ(spool_error(s),
	    "spool write to /dev: No space left on device");
	spool_free(&s);
}

static int
open_fallback(const char *dir)
{
	f.opens++;
	return spool_open_unlinked(dir);
}

static void
test_mkstemp_fallback(void)
{
	struct spool_sys sys = { .open_tmp = open_fallback };
	char *p = pattern(10000);
	struct spool *s;

	dir_make();
	fault_reset();
	s = spool_new(tmpdir, 100, &sys);
	ASSERT_EQ(spool_write(s, p, 10000), 0);
	ASSERT_EQ(f.opens, 1);
	ASSERT_TRUE(spool_on_disk(s));
	ASSERT_EQ(dir_entries(), 0);
	check_contents(s, p, 10000, 999);
	spool_free(&s);
	errno = 0;
	ASSERT_EQ(spool_open_unlinked("/nonexistent/dir"), -1);
	ASSERT_EQ(errno, ENOENT);
	free(p);
}

/* Last: nothing was ever left behind, then the directory goes. */
/* A crash between mkstemp and unlink leaves a named file; the startup
 * sweep removes exactly those and nothing else. */
static void
test_sweep_removes_crash_leftovers(void)
{
	static const char *const names[] = {
		SPOOL_PREFIX "a1B2c3", SPOOL_PREFIX "zzzzzz", "keep.txt",
		".ingestd-spoolX",
	};
	char path[128];
	unsigned removed;
	size_t i;
	int fd;

	dir_make();
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
		ASSERT_TRUE(fd != -1);
		close(fd);
	}
	ASSERT_EQ(spool_sweep(tmpdir, &removed), 0);
	ASSERT_EQ(removed, 2);
	ASSERT_EQ(dir_entries(), 2);
	for (i = 2; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		ASSERT_EQ(unlink(path), 0);
	}
	ASSERT_EQ(spool_sweep("/nonexistent-spool-dir", &removed), -1);
}

/*
 * The free-space floor, with statvfs faked: no check while the bytes fit
 * in memory, one at the first overflow, then one every `every` bytes; the
 * floor crossed turns spool_space_low() on, and a recheck with space back
 * turns it off.  Nothing is lost meanwhile.
 */
static void
test_free_space_floor(void)
{
	struct spool *s;
	char *p = pattern(1u << 20), *back = xmalloc(1u << 20);
	size_t i;

	dir_make();
	fault_reset();
	f.free_bytes = 10ULL << 30;
	s = spool_new(tmpdir, 4096, &fsys);
	spool_set_floor(s, 1ULL << 30, 64 * 1024);
	ASSERT_EQ(spool_write(s, p, 4096), 0);
	ASSERT_EQ(f.statvfs_calls, 0);		/* all in memory */
	ASSERT_EQ(spool_write(s, p + 4096, 1000), 0);
	ASSERT_EQ(f.statvfs_calls, 1);		/* the first overflow */
	ASSERT_EQ(spool_space_low(s), false);
	/* 16 KiB writes: a check every 64 KiB of file, not every write. */
	for (i = 0; i < 16; i++)
		ASSERT_EQ(spool_write(s, p + 5096 + i * 16384, 16384), 0);
	ASSERT_EQ(f.statvfs_calls, 4);
	ASSERT_EQ(spool_space_low(s), false);

	/* The disk fills: the next due check sees it. */
	f.free_bytes = (1ULL << 30) - 4096;
	for (i = 0; i < 4 && !spool_space_low(s); i++)
		ASSERT_EQ(spool_write(s, p + 267240 + i * 16384, 16384), 0);
	ASSERT_EQ(spool_space_low(s), true);
	ASSERT_EQ(spool_space_recheck(s), 1);
	ASSERT_EQ(spool_space_low(s), true);
	f.fail_statvfs_errno = EIO;
	ASSERT_EQ(spool_space_recheck(s), -1);
	ASSERT_TRUE(strstr(spool_error(s), "statvfs of") != NULL);
	ASSERT_EQ(spool_space_low(s), true);
	f.fail_statvfs_errno = 0;
	f.free_bytes = 2ULL << 30;
	ASSERT_EQ(spool_space_recheck(s), 0);
	ASSERT_EQ(spool_space_low(s), false);

	/* Every byte is there, across memory and file. */
	ASSERT_EQ(spool_size(s), 267240 + i * 16384);
	ASSERT_EQ(spool_read(s, 0, back, spool_size(s)),
	    (ssize_t)spool_size(s));
	ASSERT_MEMEQ(back, p, spool_size(s));
	spool_free(&s);

	/* No floor: statvfs is never called. */
	fault_reset();
	s = spool_new(tmpdir, 0, &fsys);
	ASSERT_EQ(spool_write(s, p, 100000), 0);
	ASSERT_EQ(f.statvfs_calls, 0);
	ASSERT_EQ(spool_space_low(s), false);
	spool_free(&s);
	free(p); p = NULL;
	free(back); back = NULL;
}

static void
test_dir_left_empty(void)
{
	dir_make();
	ASSERT_EQ(dir_entries(), 0);
	ASSERT_EQ(rmdir(tmpdir), 0);
}

/*
 * What a session compares with spool_min_free before it receives another
 * message: the bytes statvfs says are available to us, through the seam.
 */
static void
test_dir_avail(void)
{
	uint64_t avail = 0;

	fault_reset();
	f.free_bytes = 5u << 20;
	ASSERT_EQ(spool_dir_avail("/nonexistent", &fsys, &avail), 0);
	ASSERT_EQ(avail, 5u << 20);
	ASSERT_EQ(f.statvfs_calls, 1);
	f.fail_statvfs_errno = EIO;
	errno = 0;
	ASSERT_EQ(spool_dir_avail("/nonexistent", &fsys, &avail), -1);
	ASSERT_EQ(errno, EIO);
	/* The real call, on a directory that exists. */
	ASSERT_EQ(spool_dir_avail("/", NULL, &avail), 0);
	ASSERT_EQ(spool_dir_avail("/nonexistent/dir", NULL, &avail), -1);
	ASSERT_EQ(errno, ENOENT);
}

TEST_MAIN(TESTS)
