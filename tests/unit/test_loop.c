/*
 * The event loop: timer order, cancel and re-arm, deferred functions,
 * calls posted from other threads, fd events, and deletion during dispatch.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "ingestd/loop.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                        \
	X(test_timer_order)                                             \
	X(test_timer_cancel_rearm)                                      \
	X(test_timer_cb_cancels_other)                                  \
	X(test_timer_rearm_zero_next_round)                             \
	X(test_timer_heap_random)                                       \
	X(test_defer_chain)                                             \
	X(test_post_threads)                                            \
	X(test_post_from_posted)                                        \
	X(test_post_dropped_on_free)                                    \
	X(test_fd_events)                                               \
	X(test_fd_mod_zero_no_spin)                                     \
	X(test_fd_del_during_dispatch)                                  \
	X(test_stop)
TESTS(TEST_DECLARE)

static struct loop *
new_loop(void)
{
	char err[256];
	struct loop *l;

	l = loop_new(err, sizeof(err));
	if (l == NULL)
		TEST_FAIL_("loop_new: %s", err);
	return l;
}

/* Runs rounds until *done or 5 s pass. */
static void
run_until(struct loop *l, const bool *done)
{
	int i;

	for (i = 0; i < 500 && !*done; i++)
		ASSERT_EQ(loop_run_once(l, 10), 0);
	ASSERT_TRUE(*done);
}

struct fired {
	char order[64];
	size_t n;
	uint64_t at[64];
};

struct ftimer {
	struct loop_timer t;
	struct fired *log;
	char name;
};

static void
record_cb(struct loop *l, void *arg)
{
	struct ftimer *ft = arg;

	ASSERT_TRUE(ft->log->n < sizeof(ft->log->order) - 1);
	ft->log->at[ft->log->n] = loop_now_ms(l);
	ft->log->order[ft->log->n++] = ft->name;
}

static void
test_timer_order(void)
{
	struct loop *l = new_loop();
	struct fired log = { .n = 0 };
	struct ftimer t[5] = {
		{ .name = 'a' }, { .name = 'b' }, { .name = 'c' },
		{ .name = 'd' }, { .name = 'e' },
	};
	static const uint64_t ms[5] = { 30, 10, 20, 10, 0 };
	uint64_t start = loop_now_ms(l);
	bool done = false;
	int i;

	for (i = 0; i < 5; i++) {
		t[i].log = &log;
		loop_timer_add(l, &t[i].t, ms[i], record_cb, &t[i]);
		ASSERT_TRUE(t[i].t.slot != 0);
	}
	while (!done) {
		ASSERT_EQ(loop_run_once(l, 100), 0);
		done = log.n == 5;
	}
	log.order[log.n] = '\0';
	/* Equal deadlines fire in the order they were armed. */
	ASSERT_STREQ(log.order, "ebdca");
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(t[i].t.slot, 0);
		ASSERT_TRUE(log.at[i] >= start + ms[log.order[i] - 'a']);
	}
	loop_free(&l);
	ASSERT_TRUE(l == NULL);
}

static void
test_timer_cancel_rearm(void)
{
	struct loop *l = new_loop();
	struct fired log = { .n = 0 };
	struct ftimer a = { .name = 'a', .log = &log };
	struct ftimer b = { .name = 'b', .log = &log };
	struct ftimer c = { .name = 'c', .log = &log };
	int i;

	loop_timer_add(l, &a.t, 10, record_cb, &a);
	loop_timer_add(l, &b.t, 20, record_cb, &b);
	loop_timer_add(l, &c.t, 30, record_cb, &c);
	loop_timer_cancel(l, &b.t);
	ASSERT_EQ(b.t.slot, 0);
	loop_timer_cancel(l, &b.t);	/* harmless when not armed */
	/* Re-arming moves a to after c. */
	loop_timer_add(l, &a.t, 60, record_cb, &a);
	for (i = 0; i < 200 && log.n < 2; i++)
		ASSERT_EQ(loop_run_once(l, 10), 0);
	log.order[log.n] = '\0';
	ASSERT_STREQ(log.order, "ca");
	/* Nothing left: a round with no timers just waits. */
	ASSERT_EQ(loop_run_once(l, 0), 0);
	ASSERT_EQ(log.n, 2);
	loop_free(&l);
}

struct pair {
	struct loop_timer t1, t2, t3;
	int fired1, fired2, fired3;
};

static void
pair_cb2(struct loop *l, void *arg)
{
	struct pair *p = arg;

	p->fired2++;
}

static void
pair_cb3(struct loop *l, void *arg)
{
	struct pair *p = arg;

	p->fired3++;
}

/* The first timer cancels the second (due in the same round) and re-arms
 * the third for later. */
static void
pair_cb1(struct loop *l, void *arg)
{
	struct pair *p = arg;

	p->fired1++;
	loop_timer_cancel(l, &p->t2);
	loop_timer_add(l, &p->t3, 30, pair_cb3, p);
}

static void
test_timer_cb_cancels_other(void)
{
	struct loop *l = new_loop();
	struct pair p = { .fired1 = 0 };
	int i;

	loop_timer_add(l, &p.t1, 5, pair_cb1, &p);
	loop_timer_add(l, &p.t2, 5, pair_cb2, &p);
	loop_timer_add(l, &p.t3, 5, pair_cb3, &p);
	usleep(10 * 1000);
	ASSERT_EQ(loop_run_once(l, 0), 0);
	ASSERT_EQ(p.fired1, 1);
	ASSERT_EQ(p.fired2, 0);
	ASSERT_EQ(p.fired3, 0);
	ASSERT_TRUE(p.t3.slot != 0);
	for (i = 0; i < 100 && p.fired3 == 0; i++)
		ASSERT_EQ(loop_run_once(l, 10), 0);
	ASSERT_EQ(p.fired3, 1);
	ASSERT_EQ(p.fired2, 0);
	loop_free(&l);
}

struct rearm {
	struct loop_timer t;
	int n;
};

static void
rearm_cb(struct loop *l, void *arg)
{
	struct rearm *r = arg;

	if (++r->n < 3)
		loop_timer_add(l, &r->t, 0, rearm_cb, r);
}

/* A timer re-armed with 0 ms from its own callback fires once per round. */
static void
test_timer_rearm_zero_next_round(void)
{
	struct loop *l = new_loop();
	struct rearm r = { .n = 0 };

	loop_timer_add(l, &r.t, 0, rearm_cb, &r);
	ASSERT_EQ(loop_run_once(l, 0), 0);
	ASSERT_EQ(r.n, 1);
	ASSERT_EQ(loop_run_once(l, 1000), 0);
	ASSERT_EQ(r.n, 2);
	ASSERT_EQ(loop_run_once(l, 1000), 0);
	ASSERT_EQ(r.n, 3);
	ASSERT_EQ(r.t.slot, 0);
	loop_free(&l);
}

#define NRAND 2000

struct rtimer {
	struct loop_timer t;
	struct rstate *st;
	bool armed;
	bool fired;
};

struct rstate {
	struct rtimer t[NRAND];
	uint64_t last_when;
	uint64_t last_seq;
	int nfired;
	int narmed;
};

static void
rand_cb(struct loop *l, void *arg)
{
	struct rtimer *rt = arg;
	struct rstate *st = rt->st;

	ASSERT_TRUE(rt->armed && !rt->fired);
	ASSERT_TRUE(rt->t.when <= loop_now_ms(l));
	/* Deadlines never go backwards; ties in arming order. */
	ASSERT_TRUE(rt->t.when > st->last_when ||
	    (rt->t.when == st->last_when && rt->t.seq > st->last_seq));
	st->last_when = rt->t.when;
	st->last_seq = rt->t.seq;
	rt->fired = true;
	st->nfired++;
}

/* Random arm, re-arm and cancel: every armed timer fires once, in order. */
static void
test_timer_heap_random(void)
{
	struct loop *l = new_loop();
	static struct rstate st;
	unsigned int seed = 12345;
	int i, k;

	memset(&st, 0, sizeof(st));
	for (i = 0; i < NRAND; i++) {
		st.t[i].st = &st;
		loop_timer_add(l, &st.t[i].t, rand_r(&seed) % 50,
		    rand_cb, &st.t[i]);
		st.t[i].armed = true;
	}
	for (i = 0; i < NRAND * 2; i++) {
		k = rand_r(&seed) % NRAND;
		if (rand_r(&seed) % 2) {
			loop_timer_cancel(l, &st.t[k].t);
			st.t[k].armed = false;
		} else {
			loop_timer_add(l, &st.t[k].t, rand_r(&seed) % 50,
			    rand_cb, &st.t[k]);
			st.t[k].armed = true;
		}
	}
	for (i = 0; i < NRAND; i++)
		if (st.t[i].armed)
			st.narmed++;
	for (i = 0; i < 100 && st.nfired < st.narmed; i++)
		ASSERT_EQ(loop_run_once(l, 100), 0);
	ASSERT_EQ(st.nfired, st.narmed);
	for (i = 0; i < NRAND; i++) {
		ASSERT_EQ(st.t[i].fired, st.t[i].armed);
		ASSERT_EQ(st.t[i].t.slot, 0);
	}
	loop_free(&l);
}

struct dstate {
	struct loop *l;
	char order[16];
	size_t n;
};

static void defer_b(void *arg);

static void
defer_a(void *arg)
{
	struct dstate *d = arg;

	d->order[d->n++] = 'a';
	loop_defer(d->l, defer_b, d);
}

static void
defer_b(void *arg)
{
	struct dstate *d = arg;

	d->order[d->n++] = 'b';
	if (d->n < 6)
		loop_defer(d->l, defer_a, d);
}

static void
defer_c(void *arg)
{
	struct dstate *d = arg;

	d->order[d->n++] = 'c';
}

/* Deferred functions run in order, and those they defer run too. */
static void
test_defer_chain(void)
{
	struct dstate d = { .n = 0 };
	uint64_t before;

	d.l = new_loop();
	loop_defer(d.l, defer_a, &d);
	loop_defer(d.l, defer_c, &d);
	/* Pending work means the round does not wait. */
	before = loop_now_ms(d.l);
	ASSERT_EQ(loop_run_once(d.l, 5000), 0);
	ASSERT_TRUE(loop_now_ms(d.l) - before < 1000);
	ASSERT_STREQ(d.order, "acbabab");
	loop_free(&d.l);
}

#define POSTERS		2
#define POSTS_EACH	1000

/* One call posted by a poster thread, checked on the loop thread. */
struct post {
	struct pstate *ps;
	int poster;
	int seq;
};

struct pstate {
	struct loop *l;
	pthread_t loop_thread;
	struct post posts[POSTERS][POSTS_EACH];
	int next[POSTERS];	/* the seq each poster's next call must have */
	int ran;
	bool wrong_thread;
	bool done;
};

static void
post_cb(void *arg)
{
	struct post *p = arg;
	struct pstate *ps = p->ps;

	if (!pthread_equal(pthread_self(), ps->loop_thread))
		ps->wrong_thread = true;
	/* Each poster's calls run once each, in the order posted. */
	ASSERT_EQ(p->seq, ps->next[p->poster]);
	ps->next[p->poster]++;
	if (++ps->ran == POSTERS * POSTS_EACH)
		ps->done = true;
}

struct poster {
	struct pstate *ps;
	int id;
};

static void *
poster_main(void *arg)
{
	struct poster *po = arg;
	int i;

	for (i = 0; i < POSTS_EACH; i++) {
		struct post *p = &po->ps->posts[po->id][i];

		p->ps = po->ps;
		p->poster = po->id;
		p->seq = i;
		loop_post(po->ps->l, post_cb, p);
	}
	return NULL;
}

/* Calls posted from other threads run on the loop's thread, each once,
 * in each poster's order. */
static void
test_post_threads(void)
{
	static struct pstate ps;
	struct poster po[POSTERS];
	pthread_t th[POSTERS];
	int i;

	ps.l = new_loop();
	ps.loop_thread = pthread_self();
	for (i = 0; i < POSTERS; i++) {
		po[i] = (struct poster){ .ps = &ps, .id = i };
		ASSERT_EQ(pthread_create(&th[i], NULL, poster_main, &po[i]),
		    0);
	}
	run_until(ps.l, &ps.done);
	for (i = 0; i < POSTERS; i++)
		ASSERT_EQ(pthread_join(th[i], NULL), 0);
	ASSERT_EQ(ps.ran, POSTERS * POSTS_EACH);
	ASSERT_TRUE(!ps.wrong_thread);
	/* Nothing more runs once the queue is empty. */
	ASSERT_EQ(loop_run_once(ps.l, 0), 0);
	ASSERT_EQ(ps.ran, POSTERS * POSTS_EACH);
	loop_free(&ps.l);
}

struct repost {
	struct loop *l;
	int calls;
	bool done;
};

static void
repost_cb(void *arg)
{
	struct repost *r = arg;

	if (++r->calls < 3)
		loop_post(r->l, repost_cb, r);
	else
		r->done = true;
}

/* A posted call may post again; the new call runs in a later round, so a
 * chain of posts cannot starve the loop's fds and timers. */
static void
test_post_from_posted(void)
{
	struct repost r = { .calls = 0 };
	int rounds = 0;

	r.l = new_loop();
	loop_post(r.l, repost_cb, &r);
	while (!r.done && rounds < 100) {
		ASSERT_EQ(loop_run_once(r.l, 10), 0);
		rounds++;
		ASSERT_TRUE(r.calls <= rounds);
	}
	ASSERT_TRUE(r.done);
	ASSERT_EQ(r.calls, 3);
	loop_free(&r.l);
}

static void
never_cb(void *arg)
{
	TEST_FAIL_("a call posted to a freed loop ran");
}

/* Calls still queued when the loop is freed are dropped (and their
 * entries freed: the sanitizer build checks for leaks). */
static void
test_post_dropped_on_free(void)
{
	struct loop *l = new_loop();

	loop_post(l, never_cb, NULL);
	loop_post(l, never_cb, NULL);
	loop_free(&l);
	ASSERT_TRUE(l == NULL);
}

struct fdstate {
	int reads, writes;
	int last;
	char got[16];
	bool done;
};

static void
fd_cb(struct loop *l, int fd, int events, void *arg)
{
	struct fdstate *s = arg;
	ssize_t n;

	s->last = events;
	if (events & LOOP_READ) {
		s->reads++;
		n = read(fd, s->got, sizeof(s->got) - 1);
		if (n > 0)
			s->got[n] = '\0';
	}
	if (events & LOOP_WRITE)
		s->writes++;
	s->done = true;
}

static void
test_fd_events(void)
{
	struct loop *l = new_loop();
	struct fdstate s = { .reads = 0 };
	int sv[2];

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	ASSERT_EQ(loop_fd_add(l, sv[0], LOOP_READ, fd_cb, &s), 0);
	/* Nothing to read: the round times out. */
	ASSERT_EQ(loop_run_once(l, 20), 0);
	ASSERT_EQ(s.reads, 0);
	ASSERT_EQ(write(sv[1], "hi", 2), 2);
	run_until(l, &s.done);
	ASSERT_EQ(s.last, LOOP_READ);
	ASSERT_STREQ(s.got, "hi");

	/* A socket is writable at once. */
	s.done = false;
	ASSERT_EQ(loop_fd_mod(l, sv[0], LOOP_WRITE), 0);
	run_until(l, &s.done);
	ASSERT_EQ(s.last, LOOP_WRITE);

	/* A hangup is reported as both. */
	s.done = false;
	ASSERT_EQ(loop_fd_mod(l, sv[0], LOOP_READ), 0);
	close(sv[1]);
	run_until(l, &s.done);
	ASSERT_EQ(s.last, LOOP_READ | LOOP_WRITE);

	/* Deleted, the fd can be registered again. */
	loop_fd_del(l, sv[0]);
	ASSERT_EQ(loop_fd_add(l, sv[0], LOOP_READ, fd_cb, &s), 0);
	loop_fd_del(l, sv[0]);
	close(sv[0]);

	/* epoll refuses regular files: the error comes back with errno. */
	{
		int fd = open("/dev/null", O_RDONLY);

		ASSERT_TRUE(fd != -1);
		errno = 0;
		ASSERT_EQ(loop_fd_add(l, fd, LOOP_READ, fd_cb, &s), -1);
		ASSERT_EQ(errno, EPERM);
		close(fd);
	}
	loop_free(&l);
}

/* A hung-up fd with interest 0 is out of epoll: the loop waits, idle. */
static void
test_fd_mod_zero_no_spin(void)
{
	struct loop *l = new_loop();
	struct fdstate s = { .reads = 0 };
	uint64_t before;
	int sv[2];

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	ASSERT_EQ(loop_fd_add(l, sv[0], 0, fd_cb, &s), 0);
	close(sv[1]);
	before = loop_now_ms(l);
	ASSERT_EQ(loop_run_once(l, 100), 0);
	ASSERT_TRUE(loop_now_ms(l) - before >= 90);
	ASSERT_EQ(s.reads + s.writes, 0);
	ASSERT_EQ(loop_fd_mod(l, sv[0], LOOP_READ), 0);
	run_until(l, &s.done);
	ASSERT_EQ(s.last, LOOP_READ | LOOP_WRITE);
	ASSERT_EQ(loop_fd_mod(l, sv[0], 0), 0);
	s.done = false;
	ASSERT_EQ(loop_run_once(l, 20), 0);
	ASSERT_TRUE(!s.done);
	loop_fd_del(l, sv[0]);
	close(sv[0]);
	loop_free(&l);
}

/*
 * Two readable fds; whichever handler runs first deletes and closes the
 * other and registers a fresh fd that (most likely) reuses its number.  The
 * stale event of the deleted fd must reach neither its old handler nor the
 * new registration.
 */
struct dd {
	int a[2], b[2];
	int closed;		/* the one the handler deleted */
	int calls;
	int fresh_calls;
	int fresh[2];
};

static void
fresh_cb(struct loop *l, int fd, int events, void *arg)
{
	struct dd *d = arg;

	d->fresh_calls++;
}

static void
dd_cb(struct loop *l, int fd, int events, void *arg)
{
	struct dd *d = arg;
	int other = fd == d->a[0] ? d->b[0] : d->a[0];

	d->calls++;
	loop_fd_del(l, other);
	close(other);
	d->closed = other;
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    d->fresh), 0);
	ASSERT_EQ(loop_fd_add(l, d->fresh[0], LOOP_READ, fresh_cb, d), 0);
	/* The handler's own fd goes quiet too. */
	ASSERT_EQ(loop_fd_mod(l, fd, 0), 0);
}

static void
test_fd_del_during_dispatch(void)
{
	struct loop *l = new_loop();
	struct dd d = { .calls = 0 };
	int survivor;

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, d.a), 0);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, d.b), 0);
	ASSERT_EQ(write(d.a[1], "x", 1), 1);
	ASSERT_EQ(write(d.b[1], "y", 1), 1);
	ASSERT_EQ(loop_fd_add(l, d.a[0], LOOP_READ, dd_cb, &d), 0);
	ASSERT_EQ(loop_fd_add(l, d.b[0], LOOP_READ, dd_cb, &d), 0);
	ASSERT_EQ(loop_run_once(l, 1000), 0);
	ASSERT_EQ(d.calls, 1);
	ASSERT_EQ(d.fresh_calls, 0);
	/* POSIX hands out the lowest free number: the deleted one. */
	ASSERT_EQ(d.fresh[0], d.closed);
	/* And the next round too: both ends are quiet or gone. */
	ASSERT_EQ(loop_run_once(l, 20), 0);
	ASSERT_EQ(d.calls, 1);
	ASSERT_EQ(d.fresh_calls, 0);

	survivor = d.closed == d.a[0] ? d.b[0] : d.a[0];
	loop_fd_del(l, survivor);
	close(survivor);
	loop_fd_del(l, d.fresh[0]);
	close(d.fresh[0]);
	close(d.fresh[1]);
	close(d.a[1]);
	close(d.b[1]);
	loop_free(&l);
}

struct sstate {
	struct loop_timer t;
	int n;
};

static void
stop_cb(struct loop *l, void *arg)
{
	struct sstate *s = arg;

	if (++s->n == 3)
		loop_stop(l);
	else
		loop_timer_add(l, &s->t, 1, stop_cb, s);
}

static void
test_stop(void)
{
	struct loop *l = new_loop();
	struct sstate s = { .n = 0 };

	loop_timer_add(l, &s.t, 1, stop_cb, &s);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(s.n, 3);
	/* The loop can run again after stopping. */
	loop_timer_add(l, &s.t, 1, stop_cb, &s);
	s.n = 2;
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(s.n, 3);
	loop_free(&l);
}

TEST_MAIN(TESTS)
