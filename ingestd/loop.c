/*
 * The event loop: one level-triggered epoll set, a binary min-heap of
 * timers, and a queue of functions posted by other threads behind an
 * eventfd doorbell.
 *
 * One round of loop_run_once():
 *   1. wait in epoll_wait() until an fd is ready, the next timer is due or
 *      the caller's timeout passes (not at all if work is deferred);
 *   2. dispatch the fired fds, skipping any whose registration changed
 *      during this round;
 *   3. run deferred functions until none are left;
 *   4. fire the timers that are due, then run deferred functions again.
 */
#include "ingestd/loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"

/* epoll_wait() batch; more ready fds are simply reported next round. */
#define LOOP_MAX_FIRED	256

struct loop_reg {
	loop_fd_cb *cb;		/* NULL: fd not registered */
	void *arg;
	int events;		/* LOOP_READ | LOOP_WRITE wanted */
	uint32_t gen;		/* which registration of this fd */
	bool in_epoll;		/* events == 0 leaves the kernel set */
};

/* A deferred or posted call: the same shape, two queues. */
struct loop_deferred {
	loop_func *fn;
	void *arg;
	struct loop_deferred *next;
};

struct loop {
	int epfd;
	int wakefd;

	struct loop_reg *regs;	/* indexed by fd */
	size_t nregs;
	uint32_t gen;		/* last generation handed out */

	struct epoll_event fired[LOOP_MAX_FIRED];

	struct loop_timer **heap;
	size_t nheap;
	size_t heapcap;
	uint64_t timer_seq;	/* arming order, breaks deadline ties */

	struct loop_deferred *defer_head;
	struct loop_deferred *defer_tail;

	uint64_t now;		/* ms, refreshed once per round */
	bool stop;

	/* Posted from other threads; the only fields another thread
	 * touches, besides the eventfd. */
	pthread_mutex_t post_lock;
	struct loop_deferred *post_head;
	struct loop_deferred **post_tail;
	atomic_bool wake_pending;
};

static uint64_t
loop_clock_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	ASSERT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t
loop_to_epoll(int events)
{
	uint32_t e = 0;

	if (events & LOOP_READ)
		e |= EPOLLIN;
	if (events & LOOP_WRITE)
		e |= EPOLLOUT;
	return e;
}

/*
 * The registration's generation rides in the epoll data next to the fd, so
 * an event fired for an fd that was deleted (and perhaps re-added under the
 * same number) earlier in the round is recognised as stale.
 */
static int
loop_ctl(struct loop *l, int op, int fd, struct loop_reg *r)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = loop_to_epoll(r->events);
	ev.data.u64 = (uint64_t)r->gen << 32 | (uint32_t)fd;
	return epoll_ctl(l->epfd, op, fd, &ev);
}

static void
loop_list_free(struct loop_deferred *d)
{
	struct loop_deferred *next;

	for (; d != NULL; d = next) {
		next = d->next;
		free(d);
	}
}

/*
 * The doorbell rang: run everything posted so far, in posting order.  The
 * queue is taken whole under the lock and run without it, so a posted
 * function may post again (it runs in a later round).
 */
static void
loop_wake_read(struct loop *l, int fd, int events, void *arg)
{
	struct loop_deferred *d, *next;
	uint64_t n;

	/* The counter is a doorbell: its value does not matter. */
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN &&
	    errno != EINTR)
		log_warn("loop: read eventfd");
	/*
	 * Clear the flag before taking the queue, so that a post made after
	 * this point rings the doorbell again.
	 */
	atomic_store(&l->wake_pending, false);
	pthread_mutex_lock(&l->post_lock);
	d = l->post_head;
	l->post_head = NULL;
	l->post_tail = &l->post_head;
	pthread_mutex_unlock(&l->post_lock);
	for (; d != NULL; d = next) {
		next = d->next;
		d->fn(d->arg);
		free(d);
	}
}

struct loop *
loop_new(char *err, size_t errlen)
{
	struct loop *l;

	l = xcalloc(1, sizeof(*l));
	l->epfd = l->wakefd = -1;
	pthread_mutex_init(&l->post_lock, NULL);
	l->post_tail = &l->post_head;
	atomic_init(&l->wake_pending, false);
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		goto fail;
	}
	if ((l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (loop_fd_add(l, l->wakefd, LOOP_READ, loop_wake_read, NULL) ==
	    -1) {
		snprintf(err, errlen, "epoll_ctl eventfd: %s",
		    strerror(errno));
		goto fail;
	}
	l->now = loop_clock_ms();
	return l;

fail:
	loop_free(&l);
	return NULL;
}

void
loop_free(struct loop **lp)
{
	struct loop *l = *lp;
	if (l == NULL)
		return;
	if (l->epfd != -1)
		close(l->epfd);
	if (l->wakefd != -1)
		close(l->wakefd);
	/* Functions deferred or posted but never run are dropped, not run. */
	loop_list_free(l->defer_head);
	loop_list_free(l->post_head);
	pthread_mutex_destroy(&l->post_lock);
	free(l->regs);
	free(l->heap);
	free(l);
	*lp = NULL;
}

int
loop_fd_add(struct loop *l, int fd, int events, loop_fd_cb *cb, void *arg)
{
	struct loop_reg *r;
	size_t n;

	ASSERT(fd >= 0 && cb != NULL);
	ASSERT((events & ~(LOOP_READ | LOOP_WRITE)) == 0);
	if ((size_t)fd >= l->nregs) {
		n = l->nregs ? l->nregs : 64;
		while (n <= (size_t)fd)
			n *= 2;
		l->regs = xreallocarray(l->regs, n, sizeof(*l->regs));
		memset(l->regs + l->nregs, 0,
		    (n - l->nregs) * sizeof(*l->regs));
		l->nregs = n;
	}
	r = &l->regs[fd];
	/* Registering an fd twice is a bug in the caller. */
	ASSERT(r->cb == NULL);
	r->events = events;
	r->gen = ++l->gen;
	if (events != 0) {
		if (loop_ctl(l, EPOLL_CTL_ADD, fd, r) == -1)
			return -1;
		r->in_epoll = true;
	}
	r->cb = cb;
	r->arg = arg;
	return 0;
}

/*
 * Interest 0 takes the fd out of the kernel set altogether: epoll reports
 * hangups and errors whatever the interest, and level-triggered reports of
 * an fd nobody wants to service would make the loop spin.
 */
int
loop_fd_mod(struct loop *l, int fd, int events)
{
	struct loop_reg *r;

	ASSERT(fd >= 0 && (size_t)fd < l->nregs && l->regs[fd].cb != NULL);
	ASSERT((events & ~(LOOP_READ | LOOP_WRITE)) == 0);
	r = &l->regs[fd];
	r->events = events;
	if (events == 0) {
		if (r->in_epoll &&
		    loop_ctl(l, EPOLL_CTL_DEL, fd, r) == -1)
			return -1;
		r->in_epoll = false;
		return 0;
	}
	if (loop_ctl(l, r->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd,
	    r) == -1)
		return -1;
	r->in_epoll = true;
	return 0;
}

void
loop_fd_del(struct loop *l, int fd)
{
	struct loop_reg *r;

	ASSERT(fd >= 0 && (size_t)fd < l->nregs && l->regs[fd].cb != NULL);
	r = &l->regs[fd];
	/*
	 * Failure means the fd was closed before being deleted, which
	 * removes it from the set anyway.
	 */
	if (r->in_epoll)
		(void)loop_ctl(l, EPOLL_CTL_DEL, fd, r);
	memset(r, 0, sizeof(*r));
}

/* Timers: a binary min-heap on (when, seq); t->slot is its index + 1. */

static bool
loop_timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	if (a->when != b->when)
		return a->when < b->when;
	return a->seq < b->seq;
}

static void
loop_heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void
loop_heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	size_t parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (!loop_timer_before(t, l->heap[parent]))
			break;
		loop_heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	loop_heap_set(l, i, t);
}

static void
loop_heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	size_t child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= l->nheap)
			break;
		if (child + 1 < l->nheap &&
		    loop_timer_before(l->heap[child + 1], l->heap[child]))
			child++;
		if (!loop_timer_before(l->heap[child], t))
			break;
		loop_heap_set(l, i, l->heap[child]);
		i = child;
	}
	loop_heap_set(l, i, t);
}

void
loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	struct loop_timer *last;
	size_t i;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	ASSERT(i < l->nheap && l->heap[i] == t);
	t->slot = 0;
	last = l->heap[--l->nheap];
	if (last == t)
		return;
	loop_heap_set(l, i, last);
	/* The moved timer may belong above or below its new place. */
	loop_heap_down(l, i);
	loop_heap_up(l, last->slot - 1);
}

void
loop_timer_add(struct loop *l, struct loop_timer *t, uint64_t ms,
    loop_timer_cb *cb, void *arg)
{
	ASSERT(cb != NULL);
	loop_timer_cancel(l, t);
	if (l->nheap == l->heapcap) {
		l->heapcap = l->heapcap ? l->heapcap * 2 : 64;
		l->heap = xreallocarray(l->heap, l->heapcap,
		    sizeof(*l->heap));
	}
	t->when = l->now + ms;
	t->seq = ++l->timer_seq;
	t->cb = cb;
	t->arg = arg;
	loop_heap_set(l, l->nheap++, t);
	loop_heap_up(l, l->nheap - 1);
}

uint64_t
loop_now_ms(struct loop *l)
{
	return l->now;
}

/*
 * Fires the timers due at the cached time.  Timers armed while this runs
 * wait for the next round even if already due (a callback re-arming itself
 * with 0 ms must not starve the fds): they carry a seq past the snapshot.
 */
static void
loop_run_timers(struct loop *l)
{
	struct loop_timer *t;
	uint64_t last_seq = l->timer_seq;

	while (l->nheap > 0) {
		t = l->heap[0];
		if (t->when > l->now || t->seq > last_seq)
			break;
		loop_timer_cancel(l, t);
		t->cb(l, t->arg);
	}
}

void
loop_defer(struct loop *l, loop_func *fn, void *arg)
{
	struct loop_deferred *d;

	ASSERT(fn != NULL);
	d = xmalloc(sizeof(*d));
	d->fn = fn;
	d->arg = arg;
	d->next = NULL;
	if (l->defer_tail != NULL)
		l->defer_tail->next = d;
	else
		l->defer_head = d;
	l->defer_tail = d;
}

/* In order, including functions deferred by deferred functions. */
static void
loop_run_deferred(struct loop *l)
{
	struct loop_deferred *d;

	while ((d = l->defer_head) != NULL) {
		l->defer_head = d->next;
		if (l->defer_head == NULL)
			l->defer_tail = NULL;
		d->fn(d->arg);
		free(d);
	}
}

void
loop_post(struct loop *l, loop_func *fn, void *arg)
{
	struct loop_deferred *d;
	uint64_t one = 1;

	ASSERT(fn != NULL);
	d = xmalloc(sizeof(*d));
	d->fn = fn;
	d->arg = arg;
	d->next = NULL;
	pthread_mutex_lock(&l->post_lock);
	*l->post_tail = d;
	l->post_tail = &d->next;
	pthread_mutex_unlock(&l->post_lock);
	/* Coalesced: one write until the loop thread has seen it. */
	if (atomic_exchange(&l->wake_pending, true))
		return;
	/* EAGAIN: the counter is saturated, so the loop wakes anyway. */
	if (write(l->wakefd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("loop: write eventfd");
}

static int
loop_wait_timeout(struct loop *l, int timeout_ms)
{
	uint64_t due;

	if (l->defer_head != NULL)
		return 0;
	if (l->nheap == 0)
		return timeout_ms;
	due = l->heap[0]->when;
	if (due <= l->now)
		return 0;
	due -= l->now;
	if (due > INT_MAX)
		due = INT_MAX;
	if (timeout_ms == -1 || (uint64_t)timeout_ms > due)
		return (int)due;
	return timeout_ms;
}

int
loop_run_once(struct loop *l, int timeout_ms)
{
	struct loop_reg *r;
	uint32_t e, gen;
	int i, n, fd, events;

	l->now = loop_clock_ms();
	n = epoll_wait(l->epfd, l->fired, LOOP_MAX_FIRED,
	    loop_wait_timeout(l, timeout_ms));
	if (n == -1) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	l->now = loop_clock_ms();

	for (i = 0; i < n; i++) {
		fd = (int)(uint32_t)l->fired[i].data.u64;
		gen = (uint32_t)(l->fired[i].data.u64 >> 32);
		r = (size_t)fd < l->nregs ? &l->regs[fd] : NULL;
		/* Deleted, re-added or switched off by an earlier handler. */
		if (r == NULL || r->cb == NULL || r->gen != gen ||
		    r->events == 0)
			continue;
		e = l->fired[i].events;
		if (e & (EPOLLERR | EPOLLHUP))
			events = LOOP_READ | LOOP_WRITE;
		else {
			events = 0;
			if (e & EPOLLIN)
				events |= LOOP_READ;
			if (e & EPOLLOUT)
				events |= LOOP_WRITE;
			/* Interest dropped earlier in this round. */
			events &= r->events;
			if (events == 0)
				continue;
		}
		r->cb(l, fd, events, r->arg);
	}
	loop_run_deferred(l);

	loop_run_timers(l);
	loop_run_deferred(l);
	return 0;
}

int
loop_run(struct loop *l)
{
	int rc = 0;

	while (!l->stop) {
		if ((rc = loop_run_once(l, -1)) == -1)
			break;
	}
	l->stop = false;
	return rc;
}

void
loop_stop(struct loop *l)
{
	l->stop = true;
}
