/*
 * Logging and the three error classes (see README, "Operations": errors).
 *
 * Every line goes to stderr in one write(2), so lines from worker threads
 * never interleave.  Format: "ingestd[pid]: LEVEL: text".
 *
 *   bug      ASSERT()/panic(): abort, never recover.
 *   fatal    fatal()/fatalx(): startup problems; only main.c, conf.c and
 *            xmalloc.c call these.
 *   session  log_warnx() with context, return -1, retry later.
 */
#ifndef INGESTD_LOG_H
#define INGESTD_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* verbosity: 0 = warnings and info, 1 = debug, 2 = protocol trace */
void log_init(int verbosity);
int log_verbosity(void);

void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_trace(const char *fmt, ...) LOG_PRINTF(1, 2);
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);

noreturn void fatal(const char *fmt, ...) LOG_PRINTF(1, 2);
noreturn void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2);
noreturn void panic(const char *file, int line, const char *expr);

/* Active even under NDEBUG: a failed assertion is a bug, never recovered. */
#define ASSERT(e) ((e) ? (void)0 : panic(__FILE__, __LINE__, #e))

#endif
