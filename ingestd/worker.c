/*
 * A worker thread owns one loop and every session on it; a session never
 * moves.  The inbox is the only shared state: a mutex-protected list of new
 * jobs and answered commits, drained by the loop's wake callback.
 */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "session.h"
#include "xmalloc.h"
#include "store/commit.h"

struct inbox_entry {
	struct session_job *job;	/* a new session, or */
	struct commit_item *commit;	/* an answered commit */
	bool durable;
	struct inbox_entry *next;
};

struct worker {
	int id;
	struct loop *loop;
	pthread_t thread;
	int load;			/* sessions; written on the thread */

	pthread_mutex_t lock;		/* protects the fields below */
	struct inbox_entry *head, **tail;
	bool drain;
	bool stop;

	struct session **sessions;	/* the thread's own */
	size_t nsessions;
	bool drained;			/* sessions told to drain */
};

static void
inbox_push(struct worker *w, struct inbox_entry *e)
{
	e->next = NULL;
	pthread_mutex_lock(&w->lock);
	*w->tail = e;
	w->tail = &e->next;
	pthread_mutex_unlock(&w->lock);
	loop_wakeup(w->loop);
}

/* Runs on the worker thread when woken. */
static void
on_wake(void *arg)
{
	struct worker *w = arg;
	struct inbox_entry *e, *next;
	bool drain, stop;
	size_t i;

	pthread_mutex_lock(&w->lock);
	e = w->head;
	w->head = NULL;
	w->tail = &w->head;
	drain = w->drain;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);

	for (; e != NULL; e = next) {
		next = e->next;
		if (e->job != NULL)
			session_start(w, e->job);
		else
			session_commit_done(e->commit, e->durable);
		free(e); e = NULL;
	}
	/* Once: sessions started later drain from worker_session_add(). */
	if (drain && !w->drained) {
		w->drained = true;
		for (i = 0; i < w->nsessions; i++)
			session_drain(w->sessions[i]);
	}
	if (stop)
		loop_stop(w->loop);
}

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
	w->tail = &w->head;
	pthread_mutex_init(&w->lock, NULL);
	if ((w->loop = loop_new(err, errlen)) == NULL) {
		pthread_mutex_destroy(&w->lock);
		free(w); w = NULL;
		return NULL;
	}
	loop_set_wake(w->loop, on_wake, w);
	if ((r = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
		snprintf(err, errlen, "worker %d: pthread_create: %s", id,
		    strerror(r));
		loop_free(&w->loop);
		pthread_mutex_destroy(&w->lock);
		free(w); w = NULL;
		return NULL;
	}
	return w;
}

void
worker_stop(struct worker **wp)
{
	struct worker *w = *wp;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_mutex_unlock(&w->lock);
	loop_wakeup(w->loop);
	pthread_join(w->thread, NULL);
	ASSERT(w->nsessions == 0);
	loop_free(&w->loop);
	pthread_mutex_destroy(&w->lock);
	free(w->sessions); w->sessions = NULL;
	free(w); *wp = NULL;
}

void
worker_submit(struct worker *w, struct session_job *job)
{
	struct inbox_entry *e = xcalloc(1, sizeof(*e));

	e->job = job;
	__atomic_add_fetch(&w->load, 1, __ATOMIC_RELAXED);
	inbox_push(w, e);
}

/* The committer's thread calls this through commit_item.done. */
void
worker_post_commit(struct worker *w, struct commit_item *it, bool durable)
{
	struct inbox_entry *e = xcalloc(1, sizeof(*e));

	e->commit = it;
	e->durable = durable;
	inbox_push(w, e);
}

void
worker_drain(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->drain = true;
	pthread_mutex_unlock(&w->lock);
	loop_wakeup(w->loop);
}

int
worker_load(const struct worker *w)
{
	return __atomic_load_n(&w->load, __ATOMIC_RELAXED);
}

struct loop *
worker_loop(struct worker *w)
{
	return w->loop;
}

void
worker_session_add(struct worker *w, struct session *s)
{
	w->sessions = xreallocarray(w->sessions, w->nsessions + 1,
	    sizeof(*w->sessions));
	w->sessions[w->nsessions++] = s;
	pthread_mutex_lock(&w->lock);
	if (w->drain) {
		pthread_mutex_unlock(&w->lock);
		session_drain(s);
		return;
	}
	pthread_mutex_unlock(&w->lock);
}

void
worker_session_remove(struct worker *w, struct session *s)
{
	size_t i;

	for (i = 0; i < w->nsessions; i++)
		if (w->sessions[i] == s) {
			w->sessions[i] = w->sessions[--w->nsessions];
			break;
		}
	__atomic_sub_fetch(&w->load, 1, __ATOMIC_RELAXED);
}
