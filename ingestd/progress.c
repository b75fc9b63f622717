/*
 * Progress lines (see progress.h).
 */
#include "ingestd/progress.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/reader.h"

/* Redrawn at most this often, in seconds. */
#define PROGRESS_EVERY 0.25

static struct {
	bool on;
	struct progress p;
	double start, last;
	bool drawn;
} progress_state;

/* n bytes as "12.3 MiB" (B, KiB, MiB, GiB, TiB). */
static void
bytes_str(double n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (n >= 1024 && u < 4) {
		n /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", n);
	else
		snprintf(buf, len, "%.1f %s", n, unit[u]);
}

void
progress_format(const struct progress *p, char *buf, size_t len)
{
	char b[32], tb[32], rate[32];
	double left = -1;
	size_t used;
	unsigned long s;

	bytes_str((double)p->bytes, b, sizeof(b));
	if (p->total > 0)
		snprintf(buf, len, "%s: %" PRIu64 " of %" PRIu64 " messages",
		    p->what, p->done, p->total);
	else
		snprintf(buf, len, "%s: %" PRIu64 " messages", p->what,
		    p->done);
	used = strlen(buf);
	if (p->total_bytes > 0) {
		bytes_str((double)p->total_bytes, tb, sizeof(tb));
		snprintf(buf + used, len - used, ", %s of %s", b, tb);
	} else
		snprintf(buf + used, len - used, ", %s", b);
	if (p->elapsed < 0.1)
		return;
	used = strlen(buf);
	bytes_str((double)p->bytes / p->elapsed, rate, sizeof(rate));
	snprintf(buf + used, len - used, ", %s/s", rate);
	if (p->total_bytes > 0 && p->bytes > 0 && p->bytes <= p->total_bytes)
		left = (double)(p->total_bytes - p->bytes) * p->elapsed /
		    (double)p->bytes;
	else if (p->total > 0 && p->done > 0 && p->done <= p->total)
		left = (double)(p->total - p->done) * p->elapsed /
		    (double)p->done;
	if (left < 0)
		return;
	s = (unsigned long)(left + 0.5);
	used = strlen(buf);
	snprintf(buf + used, len - used, ", %lu:%02lu:%02lu left", s / 3600,
	    s / 60 % 60, s % 60);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
progress_draw(void)
{
	char line[256];

	progress_state.p.elapsed = now() - progress_state.start;
	progress_format(&progress_state.p, line, sizeof(line));
	/* Back to the start of the line, the text, the rest cleared. */
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	progress_state.drawn = true;
}

static void
progress_cb(void *arg, uint64_t done, uint64_t bytes, uint64_t total,
    uint64_t total_bytes)
{
	double t = now();

	progress_state.p.done = done;
	progress_state.p.bytes = bytes;
	progress_state.p.total = total;
	progress_state.p.total_bytes = total_bytes;
	if (progress_state.drawn && t - progress_state.last < PROGRESS_EVERY)
		return;
	progress_state.last = t;
	progress_draw();
}

void
progress_start(const char *what)
{
	if (!isatty(STDERR_FILENO))
		return;
	memset(&progress_state, 0, sizeof(progress_state));
	progress_state.on = true;
	progress_state.p.what = what;
	progress_state.start = progress_state.last = now();
	reader_set_progress(progress_cb, NULL);
}

void
progress_update(uint64_t done, uint64_t bytes, uint64_t total,
    uint64_t total_bytes)
{
	if (progress_state.on)
		progress_cb(NULL, done, bytes, total, total_bytes);
}

void
progress_end(void)
{
	if (!progress_state.on)
		return;
	reader_set_progress(NULL, NULL);
	if (progress_state.drawn) {
		progress_draw();
		fputc('\n', stderr);
	}
	progress_state.on = false;
}
