/*
 * A worker thread: it runs one loop until stopped, and knows nothing of
 * what runs on it.  Other threads hand it work with
 * loop_post(worker_loop(w), fn, arg); fn then runs on the worker's thread,
 * where everything it starts stays.
 */
#ifndef INGESTD_WORKER_H
#define INGESTD_WORKER_H

#include <stddef.h>

struct worker;
struct loop;

/* NULL with err filled if the loop or thread cannot be created. */
struct worker *worker_start(int id, char *err, size_t errlen);
/*
 * Stops the loop and joins the thread.  Whatever was started on the loop
 * must have finished: calls still queued are dropped.
 */
void worker_stop(struct worker **w);
/* The worker's loop; thread-safe to read, since it never changes. */
struct loop *worker_loop(struct worker *w);

#endif
