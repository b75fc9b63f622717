/*
 * maildir_mda: the smallest correct Maildir delivery agent, for the
 * benchmark's fetchmail runs.
 *
 *   maildir_mda DIR < message
 *
 * fetchmail delivers either to an SMTP listener or to an MDA it starts
 * for each message; the benchmark machine has no MTA, so fetchmail gets
 * this program as its `mda`.  It does what a Maildir delivery must and
 * nothing more: write the message to DIR/tmp under a unique name, fsync
 * it, and rename it into DIR/new (the same steps mpop and getmail6 take
 * for their own Maildir delivery), so fetchmail is not charged for a
 * heavier delivery program than its peers.
 *
 * Exit status: 0 delivered, 75 (EX_TEMPFAIL) on any error, so fetchmail
 * keeps the message on the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define EX_TEMPFAIL	75

static int
fail(const char *what, const char *path)
{
	fprintf(stderr, "maildir_mda: %s %s: %s\n", what, path,
	    strerror(errno));
	return EX_TEMPFAIL;
}

int
main(int argc, char **argv)
{
	static char buf[65536];
	char host[256], name[512], tmp[4096], dst[4096];
	struct timeval tv;
	ssize_t n;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: maildir_mda DIR < message\n");
		return 64;
	}
	if (gethostname(host, sizeof(host)) == -1)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	gettimeofday(&tv, NULL);
	snprintf(name, sizeof(name), "%lld.M%06ldP%ld.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), host);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", argv[1], name);
	snprintf(dst, sizeof(dst), "%s/new/%s", argv[1], name);

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return fail("open", tmp);
	for (;;) {
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w == -1 && errno == EINTR)
				continue;
			if (w == -1)
				goto fail;
			off += w;
		}
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, dst) == -1)
		return fail("rename", dst);
	return 0;
fail:
	fail("write", tmp);
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return EX_TEMPFAIL;
}
