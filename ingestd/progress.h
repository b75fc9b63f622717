/*
 * A one-line progress report for long commands (export, verify) on a
 * terminal: count, bytes, rate and, when the totals are known, the time
 * left.  progress_format() is pure (tests/unit/test_progress.c); the rest
 * writes to standard error, and only when it is a terminal, so a pipe or
 * a log gets no progress noise.
 */
#ifndef INGESTD_PROGRESS_H
#define INGESTD_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

struct progress {
	const char *what; /* "export", "verify" */
	uint64_t done;	  /* messages */
	uint64_t bytes;
	uint64_t total;	      /* messages in all; 0 if unknown */
	uint64_t total_bytes; /* 0 if unknown */
	double elapsed;	      /* seconds since the start */
};

/*
 * "export: 120 of 400 messages, 12.0 MiB of 40.0 MiB, 3.0 MiB/s,
 * 0:00:09 left" into buf (always NUL-terminated; cut to len).  The rate
 * and time left are left out until a tenth of a second has passed; the
 * time left is by bytes when their total is known, else by messages.
 */
void progress_format(const struct progress *p, char *buf, size_t len);

/*
 * Starts reporting for what when standard error is a terminal (otherwise
 * does nothing), through reader_set_progress(); progress_end() ends the
 * line and stops.
 */
void progress_start(const char *what);
void progress_end(void);
/* For commands that do not read through store/reader.c (reindex): the
 * counts so far; nothing unless progress_start() found a terminal. */
void progress_update(uint64_t done, uint64_t bytes, uint64_t total,
    uint64_t total_bytes);

#endif
