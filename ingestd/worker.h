/*
 * A worker thread: one loop, many sessions.  Other threads talk to it only
 * through its inbox (new jobs, answered commits), which wakes the loop.
 */
#ifndef INGESTD_WORKER_H
#define INGESTD_WORKER_H

#include <stdbool.h>
#include <stddef.h>

struct worker;
struct loop;
struct session;
struct session_job;
struct commit_item;

/* NULL with err filled if the loop or thread cannot be created. */
struct worker *worker_start(int id, char *err, size_t errlen);
/* Stops the loop and joins; every session must have finished. */
void worker_stop(struct worker **w);

/* Thread-safe: run job on this worker. */
void worker_submit(struct worker *w, struct session_job *job);
/* Thread-safe (called by the committer): hand a commit back. */
void worker_post_commit(struct worker *w, struct commit_item *it,
    bool durable);
/* Thread-safe: every session stops fetching and finishes. */
void worker_drain(struct worker *w);
/* Sessions running now (approximate outside the worker thread). */
int worker_load(const struct worker *w);

/* For sessions, on the worker thread. */
struct loop *worker_loop(struct worker *w);
void worker_session_add(struct worker *w, struct session *s);
void worker_session_remove(struct worker *w, struct session *s);

#endif
