/*
 * rusage_run: run a command and report the CPU time and peak RSS of its
 * whole process tree, for the benchmark.
 *
 *   rusage_run OUT COMMAND [ARG...]
 *
 * Starts COMMAND, writes its PID to OUT.pid, waits for it with wait4(),
 * and writes one line to OUT:
 *
 *   status=N user=SECONDS sys=SECONDS maxrss_kib=N
 *
 * Linux reports for a reaped child its own usage plus that of every
 * descendant it reaped in turn (fetchmail's MDA processes, say), and the
 * largest peak RSS among them.  The peak RSS of a process includes what
 * it had before exec(), so the benchmark cannot fork the contenders from
 * its own (large) Python process and read their peak: this small program
 * is what they are forked from.  Exits with COMMAND's status (128 + N
 * for a signal).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static double
secs(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	char path[4096];
	struct rusage ru;
	FILE *f;
	pid_t pid;
	int status, code;

	if (argc < 3) {
		fprintf(stderr, "usage: rusage_run OUT COMMAND [ARG...]\n");
		return 2;
	}
	pid = fork();
	if (pid == -1) {
		perror("rusage_run: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "rusage_run: %s: %s\n", argv[2],
		    strerror(errno));
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s.pid", argv[1]);
	f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "%ld\n", (long)pid);
		fclose(f);
	}
	/* The benchmark stops a run by killing its process group. */
	while (wait4(pid, &status, 0, &ru) == -1) {
		if (errno != EINTR) {
			perror("rusage_run: wait4");
			return 2;
		}
	}
	code = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	f = fopen(argv[1], "w");
	if (f == NULL) {
		perror("rusage_run: OUT");
		return 2;
	}
	fprintf(f, "status=%d user=%.6f sys=%.6f maxrss_kib=%ld\n", code,
	    secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_maxrss);
	if (fclose(f) == EOF) {
		perror("rusage_run: OUT");
		return 2;
	}
	return code;
}
