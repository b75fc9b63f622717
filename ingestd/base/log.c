#include "ingestd/base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int verbosity;

void
log_init(int v)
{
	verbosity = v;
}

int
log_verbosity(void)
{
	return verbosity;
}

static void vlog(const char *level, const char *fmt, va_list ap,
    const char *suffix) __attribute__((format(printf, 2, 0)));

/* One write(2) per line keeps lines from different threads whole. */
static void
vlog(const char *level, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	int n, m;

	n = snprintf(line, sizeof(line), "ingestd[%d]: %s: ", (int)getpid(),
	    level);
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		return;
	n = (n + m < (int)sizeof(line)) ? n + m : (int)sizeof(line) - 1;
	if (suffix != NULL) {
		m = snprintf(line + n, sizeof(line) - n, ": %s", suffix);
		if (m > 0)
			n = (n + m < (int)sizeof(line)) ? n + m :
			    (int)sizeof(line) - 1;
	}
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

#define LOG_BODY(level, suffix)                 \
	do {                                    \
		va_list ap;                     \
		va_start(ap, fmt);              \
		vlog(level, fmt, ap, suffix);   \
		va_end(ap);                     \
	} while (0)

void
log_info(const char *fmt, ...)
{
	LOG_BODY("info", NULL);
}

void
log_debug(const char *fmt, ...)
{
	if (verbosity >= 1)
		LOG_BODY("debug", NULL);
}

void
log_trace(const char *fmt, ...)
{
	if (verbosity >= 2)
		LOG_BODY("trace", NULL);
}

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY("warning", e);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("warning", NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY("fatal", e);
	exit(3);	/* EXIT_STARTUP, see main.c */
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", NULL);
	exit(3);	/* EXIT_STARTUP, see main.c */
}

void
panic(const char *file, int line, const char *expr)
{
	char msg[512];
	int n;

	n = snprintf(msg, sizeof(msg), "ingestd[%d]: bug: %s:%d: %s\n",
	    (int)getpid(), file, line, expr);
	if (n > 0)
		(void)!write(STDERR_FILENO, msg,
		    n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1);
	abort();
}
