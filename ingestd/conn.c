/*
 * Non-blocking TCP with optional TLS.  The only file that includes ssl.h.
 *
 * Event order seen by the owner:
 *   UP once (again after conn_starttls()), then any number of DATA and
 *   LOWAT, then at most one of CLOSED, ERROR or TIMEOUT, after which the
 *   state is CONN_CLOSING and nothing more fires.  conn_close() fires
 *   nothing.  No conn_* call made by the owner fires an event
 *   synchronously: events come only from the loop (fd readiness, timers).
 *
 * Reading: bytes go into rbuf (64 KiB, allocated when needed and freed
 * when empty).  DATA fires after a read that added bytes.  Bytes the owner
 * leaves unconsumed stay; when rbuf is full, the fd drops read interest
 * until conn_consume() makes room.  That is the owner's backpressure.
 *
 * Plain TCP and TLS are two transports (struct conn_transport) with the
 * same recv and send, so filling and flushing are written once.
 * conn_tls_result() alone reads what an OpenSSL call returned.  Its
 * WANT_READ/WANT_WRITE are recorded per step as flags ("the handshake
 * wants to read", "the read wants to write", "the write wants to read"),
 * and conn_interest() alone turns state and flags into epoll interest.
 *
 * The end: conn_end() fires the last event, conn_close() is the owner's;
 * both leave the loop through conn_detach(), and CONN_CLOSING alone says
 * that a conn is over.
 */
#include "ingestd/conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ingestd/base/buf.h"
#include "ingestd/base/log.h"
#include "ingestd/loop.h"
#include "ingestd/base/xmalloc.h"

/* A 64 KiB read buffer holds four full TLS records. */
#define CONN_RBUF_SIZE	(64 * 1024)
/* POP3 commands are short; a bounded buffer keeps writers honest. */
#define CONN_WBUF_SIZE	(16 * 1024)

enum conn_flags {
	CONN_F_WAITING = 1 << 0,	/* conn_set_waiting(c, true) */
	CONN_F_RD_WANTS_WR = 1 << 1,	/* SSL_read said WANT_WRITE */
	CONN_F_WR_WANTS_RD = 1 << 2,	/* SSL_write said WANT_READ */
	CONN_F_LOWAT_OWED = 1 << 3,	/* bytes written since last LOWAT */
	CONN_F_CLOSED = 1 << 4,		/* conn_close() ran */
	CONN_F_TLS_UP = 1 << 5,		/* handshake completed */
	CONN_F_TLS_FATAL = 1 << 6,	/* no SSL_shutdown allowed */
	CONN_F_END_SOON = 1 << 7,	/* end_ev fires from t_kick */
	CONN_F_CERT_BAD = 1 << 8,	/* the server's certificate failed */
	CONN_F_HS_WANTS_RD = 1 << 9,	/* the handshake said WANT_READ */
};

/* The halves of an established conn, for conn_interest(). */
enum conn_sides {
	CONN_SIDE_READ = 1 << 0,
	CONN_SIDE_WRITE = 1 << 1,
	CONN_SIDE_BOTH = CONN_SIDE_READ | CONN_SIDE_WRITE,
};

/*
 * What an I/O step came to.  Whether an end is an error or the peer's
 * orderly close depends on the step: see conn_handshake(), conn_read()
 * and conn_flush().
 */
enum conn_io {
	CONN_IO_DONE,		/* progress, or (reading) nothing more now */
	CONN_IO_WANT_READ,	/* retry once the fd is readable */
	CONN_IO_WANT_WRITE,	/* retry once the fd is writable */
	CONN_IO_CLOSED,		/* orderly end: FIN, or TLS close_notify */
	CONN_IO_TRUNCATED,	/* TLS: the socket closed, no close_notify */
	CONN_IO_ERROR,		/* with a reason */
};

struct conn_tls {
	SSL_CTX *ctx;
};

/*
 * A transport moves bytes between the socket and our buffers: plain, or
 * TLS once conn_tls_start() ran.  recv and send move at most n bytes and
 * say what came of it (*n_r > 0 with CONN_IO_DONE; the reason in *why_r
 * with CONN_IO_ERROR).  pending: bytes the transport holds where epoll
 * cannot see them.
 */
struct conn_transport {
	const char *name;	/* "" or "TLS ", for messages */
	enum conn_io (*recv)(struct conn *c, void *p, size_t n,
	    size_t *n_r, const char **why_r);
	enum conn_io (*send)(struct conn *c, const void *p, size_t n,
	    size_t *n_r, const char **why_r);
	bool (*pending)(const struct conn *c);
};

struct conn {
	struct loop *loop;
	conn_cb *cb;
	void *arg;
	enum conn_state state;
	unsigned int flags;
	enum conn_ev end_ev;	/* with CONN_F_END_SOON */
	int cb_depth;		/* inside the owner's callback */

	int fd;
	bool registered;	/* fd is in the loop */
	int events;		/* interest registered with the loop */

	const struct conn_transport *tp;
	struct conn_tls *tls;	/* implicit TLS; not owned */
	SSL *ssl;

	struct buf rbuf;
	struct buf wbuf;

	char *host;		/* for SNI, verification and messages */
	char *hostport;		/* "host:995" */
	char peer[INET6_ADDRSTRLEN + 16];	/* "192.0.2.1:995" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	/* The addresses left to try if this one fails to connect, and
	 * what the ones tried before said: "[::1]:995: reason; ". */
	struct conn_addr *more;
	size_t nmore, imore;
	char tried[384];

	int connect_ms;
	int idle_ms;
	int session_ms;
	struct loop_timer t_connect;
	struct loop_timer t_idle;
	struct loop_timer t_session;
	struct loop_timer t_kick;	/* deferred work on the loop */

	char err[512];
	char desc[96];
};

static void conn_on_io(struct loop *, int, int, void *);
static void conn_connect_failed(struct conn *, enum conn_ev, bool,
    const char *);
static unsigned int conn_peer(struct conn *, char[INET6_ADDRSTRLEN]);
static void conn_on_kick(struct loop *, void *);
static void conn_idle_sync(struct conn *, bool);

/* ---- TLS settings ---- */

static const char *
conn_ssl_reason(unsigned long e)
{
	const char *r;

	if (e == 0)
		return "unknown error";
	if ((r = ERR_reason_error_string(e)) != NULL)
		return r;
	return "unrecognised OpenSSL error";
}

struct conn_tls *
conn_tls_new(const char *ca_file, char *err, size_t errlen)
{
	struct conn_tls *t;
	FILE *f;

	t = xcalloc(1, sizeof(*t));
	ERR_clear_error();
	if ((t->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "TLS context: %s",
		    conn_ssl_reason(ERR_peek_last_error()));
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
		snprintf(err, errlen, "TLS context: minimum version: %s",
		    conn_ssl_reason(ERR_peek_last_error()));
		goto fail;
	}
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION);
	/*
	 * Partial writes let a bounded buffer drain record by record; the
	 * buffer compacts, so a retried write may start elsewhere; released
	 * buffers keep idle connections small.
	 */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL) {
		/* OpenSSL's own message for a missing file names no file. */
		if ((f = fopen(ca_file, "r")) == NULL) {
			snprintf(err, errlen, "CA file %s: %s", ca_file,
			    strerror(errno));
			goto fail;
		}
		fclose(f);
		if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) !=
		    1) {
			snprintf(err, errlen, "CA file %s: no usable "
			    "certificate: %s", ca_file,
			    conn_ssl_reason(ERR_peek_last_error()));
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
		snprintf(err, errlen, "system trust store: %s",
		    conn_ssl_reason(ERR_peek_last_error()));
		goto fail;
	}
	ERR_clear_error();
	return t;

fail:
	ERR_clear_error();
	conn_tls_free(&t);
	return NULL;
}

void
conn_tls_free(struct conn_tls **tp)
{
	struct conn_tls *t = *tp;

	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t); *tp = NULL;
}

/* ---- helpers ---- */

static void
conn_fmt_ms(char *s, size_t len, int ms)
{
	if (ms % 1000 == 0)
		snprintf(s, len, "%d s", ms / 1000);
	else
		snprintf(s, len, "%d ms", ms);
}

static void LOG_PRINTF(2, 3)
conn_seterr(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

/*
 * Whether events may still fire.  CONN_CLOSING alone says that a conn is
 * over, whether its last event fired or the owner closed it.
 */
static bool
conn_live(const struct conn *c)
{
	return c->state != CONN_CLOSING;
}

static bool
conn_reading(const struct conn *c)
{
	return c->state == CONN_UP && buf_used(&c->rbuf) < c->rbuf.cap;
}

/* Calls the owner; false if the conn must not be driven any further. */
static bool
conn_fire(struct conn *c, enum conn_ev ev)
{
	c->cb_depth++;
	c->cb(c, ev, c->arg);
	c->cb_depth--;
	/* Now that the owner no longer holds conn_rdata() pointers. */
	if (c->cb_depth == 0) {
		if (c->flags & CONN_F_CLOSED)
			buf_release(&c->rbuf);
		else
			buf_shrink(&c->rbuf);
	}
	return conn_live(c);
}

/* Out of the loop for good: no fd interest, no timer. */
static void
conn_detach(struct conn *c)
{
	loop_timer_cancel(c->loop, &c->t_connect);
	loop_timer_cancel(c->loop, &c->t_idle);
	loop_timer_cancel(c->loop, &c->t_session);
	loop_timer_cancel(c->loop, &c->t_kick);
	if (!c->registered)
		return;
	loop_fd_del(c->loop, c->fd);
	c->registered = false;
	c->events = 0;
}

/*
 * The one way a conn ends, but for the owner's conn_close(): c->err is set
 * ("" for the peer's orderly close), and ev, CLOSED, ERROR or TIMEOUT, is
 * the last event.  The conn leaves the loop at once.  soon: the end was
 * found inside a call from the owner, where no event may fire, so the
 * state stays until ev fires from t_kick.  The fd stays open until
 * conn_close().
 */
static void
conn_end(struct conn *c, enum conn_ev ev, bool soon)
{
	ASSERT(conn_live(c));
	conn_detach(c);
	if (soon) {
		c->flags |= CONN_F_END_SOON;
		c->end_ev = ev;
		loop_timer_add(c->loop, &c->t_kick, 0, conn_on_kick, c);
		return;
	}
	c->flags &= ~CONN_F_END_SOON;
	c->state = CONN_CLOSING;
	(void)conn_fire(c, ev);
}

/*
 * The one place that maps state and OpenSSL's wants onto epoll interest:
 * the readiness that lets the given sides of an established conn make
 * progress, both for registering the fd and for dispatching what fired.
 * A read that wants to write waits for writability, and a write that wants
 * to read waits for readability.  Connecting and the handshake are one
 * step, whatever the sides.
 */
static int
conn_interest(const struct conn *c, unsigned int sides)
{
	int m = 0;

	switch (c->state) {
	case CONN_CONNECTING:
		/* Completion, even an immediate one, shows as writable. */
		return LOOP_WRITE;
	case CONN_TLS_HANDSHAKE:
		return (c->flags & CONN_F_HS_WANTS_RD) ? LOOP_READ : LOOP_WRITE;
	case CONN_UP:
		if ((sides & CONN_SIDE_READ) && conn_reading(c))
			m |= (c->flags & CONN_F_RD_WANTS_WR) ? LOOP_WRITE :
			    LOOP_READ;
		if ((sides & CONN_SIDE_WRITE) && buf_used(&c->wbuf) > 0)
			m |= (c->flags & CONN_F_WR_WANTS_RD) ? LOOP_READ :
			    LOOP_WRITE;
		return m;
	case CONN_CLOSING:
		break;
	}
	return 0;
}

static void
conn_update(struct conn *c)
{
	int m;

	if (!conn_live(c))
		return;
	conn_idle_sync(c, false);
	if (!c->registered)
		return;
	m = conn_interest(c, CONN_SIDE_BOTH);
	if (m == c->events)
		return;
	if (loop_fd_mod(c->loop, c->fd, m) == -1) {
		conn_seterr(c, "epoll_ctl for %s: %s", c->peer,
		    strerror(errno));
		conn_end(c, CONN_EV_ERROR, true);
		return;
	}
	c->events = m;
}

/* ---- transports ---- */

static enum conn_io
conn_plain_recv(struct conn *c, void *p, size_t n, size_t *n_r,
    const char **why_r)
{
	ssize_t r;

	while ((r = recv(c->fd, p, n, 0)) == -1 && errno == EINTR)
		continue;
	if (r > 0) {
		*n_r = (size_t)r;
		return CONN_IO_DONE;
	}
	if (r == 0)
		return CONN_IO_CLOSED;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return CONN_IO_WANT_READ;
	*why_r = strerror(errno);
	return CONN_IO_ERROR;
}

static enum conn_io
conn_plain_send(struct conn *c, const void *p, size_t n, size_t *n_r,
    const char **why_r)
{
	ssize_t w;

	/* MSG_NOSIGNAL: a reset peer is an error, not a signal. */
	while ((w = send(c->fd, p, n, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		continue;
	if (w >= 0) {
		*n_r = (size_t)w;
		return CONN_IO_DONE;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return CONN_IO_WANT_WRITE;
	*why_r = strerror(errno);
	return CONN_IO_ERROR;
}

/* The kernel holds the bytes, and level-triggered epoll reports them. */
static bool
conn_plain_pending(const struct conn *c)
{
	return false;
}

/*
 * The one reading of what SSL_do_handshake(), SSL_read() or SSL_write()
 * returned (r), with errno as the call left it (saved); the caller emptied
 * the error queue and zeroed errno before the call.  For CONN_IO_ERROR,
 * *why_r is the reason, without context.  Empties the error queue.  Any
 * end but close_notify forbids SSL_shutdown() later.
 */
static enum conn_io
conn_tls_result(struct conn *c, int r, int saved, const char **why_r)
{
	unsigned long e;
	long v;
	int rc;

	if (r > 0)
		return CONN_IO_DONE;
	rc = SSL_get_error(c->ssl, r);
	if (rc == SSL_ERROR_WANT_READ)
		return CONN_IO_WANT_READ;
	if (rc == SSL_ERROR_WANT_WRITE)
		return CONN_IO_WANT_WRITE;
	e = ERR_peek_error();
	ERR_clear_error();
	if (rc == SSL_ERROR_ZERO_RETURN)
		return CONN_IO_CLOSED;
	c->flags |= CONN_F_TLS_FATAL;
	/* Set only by a handshake that failed verification. */
	if ((v = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		c->flags |= CONN_F_CERT_BAD;
		*why_r = X509_verify_cert_error_string(v);
		return CONN_IO_ERROR;
	}
	/*
	 * OpenSSL 1.1 reports EOF without close_notify as SYSCALL with errno
	 * 0, OpenSSL 3 as an SSL error of its own.
	 */
	if ((rc == SSL_ERROR_SYSCALL && e == 0 && saved == 0) ||
	    (rc == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
		return CONN_IO_TRUNCATED;
	if (rc == SSL_ERROR_SYSCALL && e == 0)
		*why_r = strerror(saved);
	else
		*why_r = conn_ssl_reason(e);
	return CONN_IO_ERROR;
}

static enum conn_io
conn_tls_recv(struct conn *c, void *p, size_t n, size_t *n_r,
    const char **why_r)
{
	enum conn_io io;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	if ((io = conn_tls_result(c, r, errno, why_r)) == CONN_IO_DONE)
		*n_r = (size_t)r;
	return io;
}

static enum conn_io
conn_tls_send(struct conn *c, const void *p, size_t n, size_t *n_r,
    const char **why_r)
{
	enum conn_io io;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	if ((io = conn_tls_result(c, r, errno, why_r)) == CONN_IO_DONE)
		*n_r = (size_t)r;
	return io;
}

/* Decrypted bytes from a record already read off the socket. */
static bool
conn_tls_pending(const struct conn *c)
{
	return SSL_pending(c->ssl) > 0;
}

static const struct conn_transport conn_plain_transport = {
	.name = "",
	.recv = conn_plain_recv,
	.send = conn_plain_send,
	.pending = conn_plain_pending,
};

static const struct conn_transport conn_tls_transport = {
	.name = "TLS ",
	.recv = conn_tls_recv,
	.send = conn_tls_send,
	.pending = conn_tls_pending,
};

/* ---- timers ---- */

static void
conn_on_connect_timeout(struct loop *l, void *arg)
{
	struct conn *c = arg;
	char d[32], why[64];

	conn_fmt_ms(d, sizeof(d), c->connect_ms);
	if (c->state == CONN_CONNECTING) {
		snprintf(why, sizeof(why), "timed out after %s", d);
		conn_connect_failed(c, CONN_EV_TIMEOUT, false, why);
		return;
	}
	conn_seterr(c, "TLS handshake with %s: timed out after %s",
	    c->hostport, d);
	conn_end(c, CONN_EV_TIMEOUT, false);
}

static void
conn_on_idle_timeout(struct loop *l, void *arg)
{
	struct conn *c = arg;
	char d[32];

	conn_fmt_ms(d, sizeof(d), c->idle_ms);
	conn_seterr(c, "idle timeout after %s waiting for the server", d);
	conn_end(c, CONN_EV_TIMEOUT, false);
}

static void
conn_on_session_timeout(struct loop *l, void *arg)
{
	struct conn *c = arg;
	char d[32];

	conn_fmt_ms(d, sizeof(d), c->session_ms);
	conn_seterr(c, "session timeout after %s", d);
	conn_end(c, CONN_EV_TIMEOUT, false);
}

/*
 * The idle timer measures the server's silence while an answer is awaited
 * and we are reading.  A full rbuf is the owner's doing, so it stops the
 * timer; reading again starts it afresh.  restart: bytes came.
 */
static void
conn_idle_sync(struct conn *c, bool restart)
{
	bool run;

	/* A handshake, STLS's too, runs under the connect timeout alone. */
	run = (c->flags & CONN_F_WAITING) && c->idle_ms > 0 &&
	    conn_reading(c);
	if (!run)
		loop_timer_cancel(c->loop, &c->t_idle);
	else if (restart || c->t_idle.slot == 0)
		loop_timer_add(c->loop, &c->t_idle, (uint64_t)c->idle_ms,
		    conn_on_idle_timeout, c);
}

/* ---- connecting and TLS ---- */

/* Host names get SNI and name checks; IP literals get an address check. */
static int
conn_tls_start(struct conn *c, struct conn_tls *tls)
{
	unsigned char ip[sizeof(struct in6_addr)];
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(tls->ctx)) == NULL) {
		conn_seterr(c, "TLS setup for %s: %s", c->hostport,
		    conn_ssl_reason(ERR_peek_last_error()));
		goto fail;
	}
	if (SSL_set_fd(ssl, c->fd) != 1)
		goto fail_ssl;
	if (inet_pton(AF_INET, c->host, ip) == 1 ||
	    inet_pton(AF_INET6, c->host, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    c->host) != 1)
			goto fail_ssl;
	} else {
		if (SSL_set_tlsext_host_name(ssl, c->host) != 1)
			goto fail_ssl;
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, c->host) != 1)
			goto fail_ssl;
	}
	SSL_set_connect_state(ssl);
	c->ssl = ssl;
	c->tp = &conn_tls_transport;
	c->state = CONN_TLS_HANDSHAKE;
	/* The ClientHello goes first. */
	c->flags &= ~(CONN_F_HS_WANTS_RD | CONN_F_RD_WANTS_WR |
	    CONN_F_WR_WANTS_RD);
	return 0;

fail_ssl:
	conn_seterr(c, "TLS setup for %s: %s", c->hostport,
	    conn_ssl_reason(ERR_peek_last_error()));
	SSL_free(ssl);
fail:
	ERR_clear_error();
	return -1;
}

static void
conn_up(struct conn *c)
{
	loop_timer_cancel(c->loop, &c->t_connect);
	c->state = CONN_UP;
	if (c->ssl != NULL) {
		c->flags |= CONN_F_TLS_UP;
		snprintf(c->desc, sizeof(c->desc), "%s %s",
		    SSL_get_version(c->ssl),
		    SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	}
	(void)conn_fire(c, CONN_EV_UP);
}

/*
 * A handshake ends in an error however it ends: a server that hangs up,
 * close_notify or not, has refused us.
 */
static void
conn_handshake(struct conn *c)
{
	const char *why;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	switch (conn_tls_result(c, r, errno, &why)) {
	case CONN_IO_DONE:
		conn_up(c);
		return;
	case CONN_IO_WANT_READ:
		c->flags |= CONN_F_HS_WANTS_RD;
		return;
	case CONN_IO_WANT_WRITE:
		c->flags &= ~CONN_F_HS_WANTS_RD;
		return;
	case CONN_IO_CLOSED:
	case CONN_IO_TRUNCATED:
		why = "the server closed the connection";
		break;
	case CONN_IO_ERROR:
		break;
	}
	conn_seterr(c, "TLS handshake with %s: %s%s", c->hostport,
	    conn_cert_failed(c) ? "certificate verify failed: " : "", why);
	conn_end(c, CONN_EV_ERROR, false);
}

static void
conn_connected(struct conn *c)
{
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		conn_connect_failed(c, CONN_EV_ERROR, false, strerror(soerr));
		return;
	}
	if (c->tls == NULL) {
		conn_up(c);
		return;
	}
	if (conn_tls_start(c, c->tls) == -1) {
		conn_end(c, CONN_EV_ERROR, false);
		return;
	}
	conn_handshake(c);
}

/* ---- reading ---- */

/*
 * Reads into rbuf until it is full, the transport would block, or it has
 * read once and holds nothing more (level-triggered epoll reports the
 * rest).  Returns the bytes added; *io_r says how reading stopped, with
 * c->err set for CONN_IO_ERROR.
 */
static size_t
conn_fill(struct conn *c, enum conn_io *io_r)
{
	const char *why;
	size_t room, n, got = 0;
	char *p;

	for (;;) {
		*io_r = CONN_IO_DONE;
		p = buf_space(&c->rbuf, &room);
		if (room == 0)
			return got;
		*io_r = c->tp->recv(c, p, room, &n, &why);
		/* conn_interest(): a read that wants to write waits for
		 * writability. */
		if (*io_r == CONN_IO_WANT_WRITE)
			c->flags |= CONN_F_RD_WANTS_WR;
		else
			c->flags &= ~CONN_F_RD_WANTS_WR;
		if (*io_r != CONN_IO_DONE)
			break;
		buf_commit(&c->rbuf, n);
		got += n;
		if (!c->tp->pending(c))
			return got;
	}
	if (*io_r == CONN_IO_ERROR)
		conn_seterr(c, "%sread from %s: %s", c->tp->name, c->hostport,
		    why);
	return got;
}

/*
 * Reads and reports DATA.  Loops while the transport holds bytes (OpenSSL
 * decrypted a whole record) that the owner made room for, since epoll
 * will not report them.
 */
static void
conn_read(struct conn *c)
{
	enum conn_io io;
	size_t got;

	for (;;) {
		got = conn_fill(c, &io);
		if (got > 0) {
			conn_idle_sync(c, true);
			if (!conn_fire(c, CONN_EV_DATA))
				return;
			/* conn_starttls() from the callback. */
			if (c->state != CONN_UP)
				return;
		}
		/* Only an error is an error: the peer may end as it likes. */
		switch (io) {
		case CONN_IO_DONE:
		case CONN_IO_WANT_READ:
		case CONN_IO_WANT_WRITE:
			break;
		case CONN_IO_CLOSED:
			c->err[0] = '\0';
			conn_end(c, CONN_EV_CLOSED, false);
			return;
		case CONN_IO_TRUNCATED:
			conn_seterr(c, "%s closed the connection without TLS "
			    "close_notify", c->hostport);
			conn_end(c, CONN_EV_CLOSED, false);
			return;
		case CONN_IO_ERROR:
			conn_end(c, CONN_EV_ERROR, false);
			return;
		}
		if (!c->tp->pending(c) || !conn_reading(c))
			return;
	}
}

/* ---- writing ---- */

static void
conn_flush(struct conn *c)
{
	enum conn_io io;
	const char *why;
	size_t n;

	while (buf_used(&c->wbuf) > 0) {
		io = c->tp->send(c, buf_peek(&c->wbuf), buf_used(&c->wbuf), &n,
		    &why);
		/* conn_interest(): a write that wants to read waits for
		 * readability. */
		if (io == CONN_IO_WANT_READ)
			c->flags |= CONN_F_WR_WANTS_RD;
		else
			c->flags &= ~CONN_F_WR_WANTS_RD;
		if (io == CONN_IO_DONE) {
			buf_consume(&c->wbuf, n);
			continue;
		}
		if (io == CONN_IO_WANT_READ || io == CONN_IO_WANT_WRITE)
			return;
		/* We had more to say: any end is an error. */
		if (io != CONN_IO_ERROR)
			why = "the server closed the connection";
		conn_seterr(c, "%swrite to %s: %s", c->tp->name, c->hostport,
		    why);
		conn_end(c, CONN_EV_ERROR, false);
		return;
	}
	buf_shrink(&c->wbuf);
	if (c->flags & CONN_F_LOWAT_OWED) {
		c->flags &= ~CONN_F_LOWAT_OWED;
		(void)conn_fire(c, CONN_EV_LOWAT);
	}
}

/* ---- dispatch ---- */

static void
conn_io_up(struct conn *c, int events)
{
	/* The peer's last words (and EOF) before any write error. */
	if (events & conn_interest(c, CONN_SIDE_READ)) {
		conn_read(c);
		/* Ended, closed, or conn_starttls() from the callback. */
		if (c->state != CONN_UP)
			return;
	}
	if (events & conn_interest(c, CONN_SIDE_WRITE))
		conn_flush(c);
}

static void
conn_on_io(struct loop *l, int fd, int events, void *arg)
{
	struct conn *c = arg;

	ASSERT(conn_live(c) && fd == c->fd);
	switch (c->state) {
	case CONN_CONNECTING:
		conn_connected(c);
		break;
	case CONN_TLS_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_UP:
		conn_io_up(c, events);
		break;
	case CONN_CLOSING:
		ASSERT(!"event for a closing conn");
	}
	conn_update(c);
}

/*
 * Work that must not run inside an owner's call: a failure it found, or
 * reading what OpenSSL holds once conn_consume() made room.
 */
static void
conn_on_kick(struct loop *l, void *arg)
{
	struct conn *c = arg;

	if (c->flags & CONN_F_END_SOON) {
		conn_end(c, c->end_ev, false);
		return;
	}
	if (conn_reading(c))
		conn_read(c);
	conn_update(c);
}

/* Epoll cannot see bytes OpenSSL already decrypted: go get them. */
static void
conn_kick_if_pending(struct conn *c)
{
	if (conn_reading(c) && c->tp->pending(c))
		loop_timer_add(c->loop, &c->t_kick, 0, conn_on_kick, c);
}

/*
 * Starts connecting to c->addr, under the connect timeout.  soon as for
 * conn_end(): true inside a call from the owner.
 */
static void
conn_connect(struct conn *c, bool soon)
{
	char why[128];
	int one = 1, m;

	ASSERT(c->addrlen <= sizeof(c->addr));
	if (c->connect_ms > 0)
		loop_timer_add(c->loop, &c->t_connect, (uint64_t)c->connect_ms,
		    conn_on_connect_timeout, c);
	c->fd = socket(c->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		conn_connect_failed(c, CONN_EV_ERROR, soon, why);
		return;
	}
	/* Commands are small and each waits for its answer. */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1)
		log_debug("TCP_NODELAY for %s: %s", c->peer, strerror(errno));
	/* EINTR: the connection still completes in the background. */
	if (connect(c->fd, (const struct sockaddr *)&c->addr,
	    c->addrlen) == -1 && errno != EINPROGRESS && errno != EINTR) {
		conn_connect_failed(c, CONN_EV_ERROR, soon, strerror(errno));
		return;
	}
	m = conn_interest(c, CONN_SIDE_BOTH);
	if (loop_fd_add(c->loop, c->fd, m, conn_on_io, c) == -1) {
		conn_seterr(c, "connect to %s: epoll_ctl: %s", c->peer,
		    strerror(errno));
		conn_end(c, CONN_EV_ERROR, soon);
		return;
	}
	c->registered = true;
	c->events = m;
}

/*
 * Connecting to c->addr failed for why.  Tries the next address if there
 * is one; otherwise ends the conn with ev, the error naming every address
 * tried.  Bounded: each address is tried once.
 */
static void
conn_connect_failed(struct conn *c, enum conn_ev ev, bool soon,
    const char *why)
{
	char ip[INET6_ADDRSTRLEN];
	size_t n = strlen(c->tried);

	if (c->imore == c->nmore) {
		conn_seterr(c, "connect to %s%s: %s", c->tried, c->peer, why);
		conn_end(c, ev, soon);
		return;
	}
	log_debug("connect to %s: %s; trying %zu more addresses of %s",
	    c->peer, why, c->nmore - c->imore, c->host);
	snprintf(c->tried + n, sizeof(c->tried) - n, "%s: %s; ", c->peer,
	    why);
	loop_timer_cancel(c->loop, &c->t_connect);
	if (c->registered) {
		loop_fd_del(c->loop, c->fd);
		c->registered = false;
		c->events = 0;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	memcpy(&c->addr, &c->more[c->imore].addr, sizeof(c->addr));
	c->addrlen = c->more[c->imore].addrlen;
	c->imore++;
	(void)conn_peer(c, ip);
	conn_connect(c, soon);
}

/* ---- public ---- */

/* Names c->addr in c->peer; returns its port, ip the address alone. */
static unsigned int
conn_peer(struct conn *c, char ip[INET6_ADDRSTRLEN])
{
	unsigned int port = 0;

	snprintf(ip, INET6_ADDRSTRLEN, "?");
	if (c->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&c->addr;

		inet_ntop(AF_INET, &sin->sin_addr, ip, INET6_ADDRSTRLEN);
		port = ntohs(sin->sin_port);
		snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, port);
	} else if (c->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)&c->addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, INET6_ADDRSTRLEN);
		port = ntohs(sin6->sin6_port);
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip, port);
	} else
		snprintf(c->peer, sizeof(c->peer), "address family %d",
		    (int)c->addr.ss_family);
	return port;
}

static void
conn_name(struct conn *c, const struct conn_params *p)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned int port;
	const char *h;
	size_t len;

	port = conn_peer(c, ip);
	/* Without a name, the certificate must carry the address. */
	h = p->host != NULL ? p->host : ip;
	len = strlen(h);
	/* "[2001:db8::1]" as written in a URL: the address inside. */
	if (len > 2 && h[0] == '[' && h[len - 1] == ']')
		c->host = xstrndup(h + 1, len - 2);
	else
		c->host = xstrdup(h);
	if (strchr(c->host, ':') != NULL)
		c->hostport = xasprintf("[%s]:%u", c->host, port);
	else
		c->hostport = xasprintf("%s:%u", c->host, port);
}

struct conn *
conn_new(struct loop *l, const struct conn_params *params, conn_cb *cb,
    void *arg)
{
	struct conn *c;

	ASSERT(l != NULL && params != NULL && cb != NULL);
	ASSERT(params->addrlen <= sizeof(params->addr));
	c = xcalloc(1, sizeof(*c));
	c->loop = l;
	c->cb = cb;
	c->arg = arg;
	c->state = CONN_CONNECTING;
	c->fd = -1;
	c->tp = &conn_plain_transport;
	c->tls = params->tls;
	memcpy(&c->addr, &params->addr, sizeof(c->addr));
	c->addrlen = params->addrlen;
	c->nmore = params->nmore < CONN_MORE_ADDRS_MAX ? params->nmore :
	    CONN_MORE_ADDRS_MAX;
	if (c->nmore > 0) {
		c->more = xcalloc(c->nmore, sizeof(*c->more));
		memcpy(c->more, params->more_addrs,
		    c->nmore * sizeof(*c->more));
	}
	c->connect_ms = params->connect_timeout_ms;
	c->idle_ms = params->idle_timeout_ms;
	c->session_ms = params->session_timeout_ms;
	buf_init(&c->rbuf, CONN_RBUF_SIZE);
	buf_init(&c->wbuf, CONN_WBUF_SIZE);
	snprintf(c->desc, sizeof(c->desc), "plain");
	conn_name(c, params);

	if (c->session_ms > 0)
		loop_timer_add(l, &c->t_session, (uint64_t)c->session_ms,
		    conn_on_session_timeout, c);
	conn_connect(c, true);
	return c;
}

void
conn_free(struct conn **cp)
{
	struct conn *c = *cp;

	if (c == NULL)
		return;
	/* Freeing from inside the conn's own callback is a bug. */
	ASSERT(c->cb_depth == 0);
	conn_close(c);
	buf_release(&c->rbuf);
	buf_release(&c->wbuf);
	free(c->host); c->host = NULL;
	free(c->hostport); c->hostport = NULL;
	free(c->more); c->more = NULL;
	free(c); *cp = NULL;
}

void
conn_starttls(struct conn *c, struct conn_tls *tls)
{
	ASSERT(c->state == CONN_UP && c->ssl == NULL);
	/* Anything queued now would go out in the clear after STLS. */
	ASSERT(buf_used(&c->wbuf) == 0);
	/*
	 * Bytes after the server's answer to STLS arrived in the clear and
	 * may have been injected: drop them.  The memory stays until the
	 * owner's callback returns, as it may still hold conn_rdata().
	 */
	c->rbuf.off = c->rbuf.len = 0;
	if (c->cb_depth == 0)
		buf_release(&c->rbuf);
	if (conn_tls_start(c, tls) == -1) {
		conn_end(c, CONN_EV_ERROR, true);
		return;
	}
	if (c->connect_ms > 0)
		loop_timer_add(c->loop, &c->t_connect,
		    (uint64_t)c->connect_ms, conn_on_connect_timeout, c);
	conn_update(c);
}

const char *
conn_rdata(const struct conn *c, size_t *n_r)
{
	*n_r = buf_used(&c->rbuf);
	if (*n_r == 0)
		return "";
	return buf_peek(&c->rbuf);
}

void
conn_consume(struct conn *c, size_t n)
{
	ASSERT(n <= buf_used(&c->rbuf));
	if (n == 0)
		return;
	buf_consume(&c->rbuf, n);
	if (!conn_live(c))
		return;
	if (c->cb_depth == 0)
		buf_shrink(&c->rbuf);
	/* Room again: read interest returns, held TLS bytes get read. */
	conn_update(c);
	conn_kick_if_pending(c);
}

size_t
conn_write(struct conn *c, const void *p, size_t n)
{
	const char *s = p;
	size_t room, k, done = 0;
	char *w;

	if (!conn_live(c) || n == 0)
		return 0;
	while (done < n) {
		w = buf_space(&c->wbuf, &room);
		if (room == 0)
			break;
		k = n - done < room ? n - done : room;
		memcpy(w, s + done, k);
		buf_commit(&c->wbuf, k);
		done += k;
	}
	if (done > 0) {
		c->flags |= CONN_F_LOWAT_OWED;
		conn_update(c);
	}
	return done;
}

void
conn_set_waiting(struct conn *c, bool waiting)
{
	if (!conn_live(c))
		return;
	if (!waiting) {
		c->flags &= ~CONN_F_WAITING;
		loop_timer_cancel(c->loop, &c->t_idle);
		return;
	}
	/* Already waiting: the silence so far still counts. */
	c->flags |= CONN_F_WAITING;
	conn_idle_sync(c, false);
}

void
conn_close(struct conn *c)
{
	if (c->flags & CONN_F_CLOSED)
		return;
	c->flags |= CONN_F_CLOSED;
	conn_detach(c);
	c->state = CONN_CLOSING;
	if (c->ssl != NULL) {
		/*
		 * One non-blocking attempt at close_notify; never after a
		 * fatal error, where OpenSSL forbids it.
		 */
		if ((c->flags & (CONN_F_TLS_UP | CONN_F_TLS_FATAL)) ==
		    CONN_F_TLS_UP) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);
		}
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	buf_release(&c->wbuf);
	if (c->cb_depth == 0)
		buf_release(&c->rbuf);
}

enum conn_state
conn_state(const struct conn *c)
{
	return c->state;
}

const char *
conn_error(const struct conn *c)
{
	return c->err;
}

const char *
conn_describe(const struct conn *c)
{
	return c->desc;
}

bool
conn_cert_failed(const struct conn *c)
{
	return (c->flags & CONN_F_CERT_BAD) != 0;
}
