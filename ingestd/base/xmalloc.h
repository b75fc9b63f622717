/*
 * Allocation that never returns NULL: on exhaustion the process exits with a
 * fatal message, so callers never check.
 */
#ifndef INGESTD_XMALLOC_H
#define INGESTD_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf that aborts on failure; the result is the caller's to free. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
