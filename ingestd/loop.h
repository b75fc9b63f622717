/*
 * The event loop of one thread: a level-triggered epoll set, a timer
 * min-heap, and loop_post(), the one way other threads hand it work.  Only
 * loop_post() is thread-safe; everything else belongs to the loop's thread.
 */
#ifndef INGESTD_LOOP_H
#define INGESTD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

enum loop_events {
	LOOP_READ = 1 << 0,
	LOOP_WRITE = 1 << 1,
};

/* events: LOOP_READ/LOOP_WRITE that are ready (errors and hangups are
 * reported as both, so the handler's read or write sees them). */
typedef void loop_fd_cb(struct loop *l, int fd, int events, void *arg);
typedef void loop_timer_cb(struct loop *l, void *arg);
typedef void loop_func(void *arg);

/* Embedded by its owner; zero-initialise before first use. */
struct loop_timer {
	uint64_t when;		/* loop_now_ms() deadline */
	size_t slot;		/* index in the heap + 1; 0 when not armed */
	loop_timer_cb *cb;
	void *arg;
	uint64_t seq;		/* arming order: equal deadlines in FIFO */
};

/* NULL with err filled if epoll or eventfd cannot be created. */
struct loop *loop_new(char *err, size_t errlen);
void loop_free(struct loop **l);

/*
 * Registers fd (at most once) for events, which may be 0.  cb runs on the
 * loop thread with the ready subset of the events.  An fd deleted, re-added
 * or modified to 0 during a round gets no stale event from that round.
 * Interest 0 takes the fd out of epoll, so a hung-up fd nobody services
 * does not make the loop spin.  Call loop_fd_del() before close().
 * 0, or -1 with errno set (epoll_ctl failed).
 */
int loop_fd_add(struct loop *l, int fd, int events, loop_fd_cb *cb,
    void *arg);
int loop_fd_mod(struct loop *l, int fd, int events);
void loop_fd_del(struct loop *l, int fd);

/* (Re)arms t to fire once after ms milliseconds. */
void loop_timer_add(struct loop *l, struct loop_timer *t, uint64_t ms,
    loop_timer_cb *cb, void *arg);
/* Disarms t; harmless if not armed. */
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Monotonic milliseconds, cached per iteration. */
uint64_t loop_now_ms(struct loop *l);

/*
 * Runs fn(arg) after the current dispatch round, when no handler is on the
 * stack: the way to free a connection or session that was closed from its
 * own callback.
 */
void loop_defer(struct loop *l, loop_func *fn, void *arg);

/*
 * Thread-safe: runs fn(arg) on the loop's thread soon, as the loop's own
 * callback.  Calls posted by one thread run in the order posted, each
 * exactly once, unless the loop is freed first (then they are dropped:
 * post nothing that must run after loop_stop()).  This is how threads
 * talk: a job handed to a worker, a commit's answer handed back, a poll's
 * end handed to the scheduler.  fn may post again; that call runs in a
 * later round.
 */
void loop_post(struct loop *l, loop_func *fn, void *arg);

/*
 * Dispatches until loop_stop(); returns 0, or -1 with errno set if
 * epoll_wait failed.
 */
int loop_run(struct loop *l);
/*
 * One round: waits at most timeout_ms (-1: until an event or timer), then
 * dispatches fds, deferred functions and due timers.  Timers armed during
 * the round fire in a later round even if already due.  0, or -1 with
 * errno set if epoll_wait failed.
 */
int loop_run_once(struct loop *l, int timeout_ms);
/* Makes loop_run() return after the current round.  Loop thread only:
 * another thread posts a function that calls it. */
void loop_stop(struct loop *l);

#endif
