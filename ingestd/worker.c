/*
 * A worker thread owns one loop and everything started on it (see
 * worker.h); nothing else is shared with other threads.
 */
#include "ingestd/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/log.h"
#include "ingestd/loop.h"
#include "ingestd/base/xmalloc.h"

struct worker {
	int id;
	struct loop *loop;
	pthread_t thread;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (loop_run(w->loop) == -1)
		log_warn("worker %d: event loop failed", w->id);
	return NULL;
}

struct worker *
worker_start(int id, char *err, size_t errlen)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	int r;

	w->id = id;
	if ((w->loop = loop_new(err, errlen)) == NULL) {
		free(w); w = NULL;
		return NULL;
	}
	if ((r = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
		snprintf(err, errlen, "worker %d: pthread_create: %s", id,
		    strerror(r));
		loop_free(&w->loop);
		free(w); w = NULL;
		return NULL;
	}
	return w;
}

/* Posted to the worker's own loop: loop_stop() is for the loop thread. */
static void
worker_stop_loop(void *arg)
{
	struct worker *w = arg;

	loop_stop(w->loop);
}

void
worker_stop(struct worker **wp)
{
	struct worker *w = *wp;

	if (w == NULL)
		return;
	loop_post(w->loop, worker_stop_loop, w);
	pthread_join(w->thread, NULL);
	loop_free(&w->loop);
	free(w); *wp = NULL;
}

struct loop *
worker_loop(struct worker *w)
{
	return w->loop;
}
