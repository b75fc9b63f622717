/*
 * A non-blocking TCP connection with optional TLS, driven by one loop.  The
 * only caller of SSL_read/SSL_write, and the one place that maps OpenSSL's
 * WANT_READ/WANT_WRITE (including a read that wants to write) onto epoll
 * interest.
 *
 * States: CONN_CONNECTING -> CONN_TLS_HANDSHAKE -> CONN_UP -> CONN_CLOSING.
 * Events go to the owner through one callback.  The owner must not free the
 * conn inside that callback: it calls conn_close() and frees it later (see
 * loop_defer()).
 *
 * Event order: UP, then DATA and LOWAT in any order, then at most one of
 * CLOSED, ERROR or TIMEOUT, after which the state is CONN_CLOSING and
 * nothing more fires.  conn_starttls() leads to a second UP.  No conn_*
 * function fires an event while the owner calls it: events come only from
 * the loop, so the owner may call anything from inside its callback, and a
 * failure found inside conn_new() arrives as ERROR from the loop.
 *
 * Everything except conn_tls_new()/conn_tls_free() belongs to the loop's
 * thread.  TLS writes go through write(2): the process must ignore SIGPIPE
 * (main does).
 */
#ifndef INGESTD_CONN_H
#define INGESTD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct conn;
struct loop;
struct conn_tls;

enum conn_state {
	CONN_CONNECTING,
	CONN_TLS_HANDSHAKE,
	CONN_UP,
	CONN_CLOSING,
};

enum conn_ev {
	CONN_EV_UP,	  /* connected; after TLS handshake if TLS (also
			   * after conn_starttls()) */
	CONN_EV_DATA,	  /* bytes are waiting in conn_rdata() */
	CONN_EV_LOWAT,	  /* everything written has been sent */
	CONN_EV_CLOSED,	  /* the peer closed; with TLS, conn_error() says
			   * if it sent no close_notify */
	CONN_EV_ERROR,	  /* conn_error() says what */
	CONN_EV_TIMEOUT,  /* conn_error() says which timeout */
};

typedef void conn_cb(struct conn *c, enum conn_ev ev, void *arg);

/*
 * TLS settings shared by many connections: TLS 1.2 minimum, certificate and
 * host-name verification always on.  ca_file NULL: the system trust store.
 * Thread-safe once built.  NULL with err filled (naming the file) on error.
 */
struct conn_tls *conn_tls_new(const char *ca_file, char *err, size_t errlen);
/* Only after every conn that uses t has been freed. */
void conn_tls_free(struct conn_tls **t);

/* One address of a server. */
struct conn_addr {
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

/* At most this many further addresses are tried after the first. */
#define CONN_MORE_ADDRS_MAX 15

struct conn_params {
	struct sockaddr_storage addr;	/* resolved by the caller */
	socklen_t addrlen;
	/*
	 * Further addresses of the same server (a name that resolves to
	 * ::1 and 127.0.0.1), in the order to try them: when connecting to
	 * one fails (refused, unreachable, the connect timeout), the next
	 * is tried, each with the whole connect timeout.  Once the TCP
	 * connection is up, nothing is tried again.  Copied; at most
	 * CONN_MORE_ADDRS_MAX are used.
	 */
	const struct conn_addr *more_addrs;
	size_t nmore;
	const char *host;	/* for SNI and host-name verification */
	struct conn_tls *tls;	/* non-NULL: implicit TLS on connect */
	int connect_timeout_ms;	/* TCP connect and TLS handshake */
	int idle_timeout_ms;	/* no bytes from the server while waiting */
	int session_timeout_ms;	/* the whole connection */
};				/* a timeout <= 0 is off */

/*
 * Starts connecting; params are copied (host too), params->tls is not and
 * must outlive the conn.  host NULL: the address itself is verified.
 * Never fails: errors arrive as CONN_EV_ERROR from the loop.  When every
 * address failed to connect, conn_error() names each, in the order tried:
 * "connect to [::1]:995: Connection refused; 127.0.0.1:995: timed out
 * after 5 s".
 */
struct conn *conn_new(struct loop *l, const struct conn_params *params,
    conn_cb *cb, void *arg);
/* Closes (conn_close()) if still open, then frees; never from inside the
 * conn's own callback. */
void conn_free(struct conn **c);

/*
 * Starts TLS on an established plain connection (STLS).  Bytes already
 * received are discarded (no conn_consume() needed); a pointer from
 * conn_rdata() stays readable until the current callback returns.  The
 * state must be CONN_UP and the write buffer empty.  CONN_EV_UP fires when
 * the handshake is done; the connect timeout covers it.
 */
void conn_starttls(struct conn *c, struct conn_tls *tls);

/*
 * Received bytes: conn_rdata() then conn_consume() what was used.  Bytes
 * left unconsumed stay at the front, and the next DATA (fired only when
 * new bytes arrive) shows them again with the new ones.  With 64 KiB
 * unconsumed, reading stops until conn_consume() makes room.  The bytes
 * stay readable after CLOSED, ERROR or TIMEOUT until conn_close().
 */
const char *conn_rdata(const struct conn *c, size_t *n_r);
void conn_consume(struct conn *c, size_t n);

/*
 * Queues bytes to send; returns how many were accepted (the write buffer
 * holds 16 KiB), and sends as soon as the socket allows; bytes queued
 * before UP go out after it.  0 once CLOSED, ERROR or TIMEOUT has fired
 * or conn_close() ran.  CONN_EV_LOWAT fires once the buffer has drained
 * into the kernel after one or more writes: the moment to write the rest.
 */
size_t conn_write(struct conn *c, const void *p, size_t n);

/*
 * Whether the idle timeout runs: only while an answer is awaited, and not
 * with rbuf full (then the owner is the slow one).  Every byte received
 * restarts it; setting true again does not.
 */
void conn_set_waiting(struct conn *c, bool waiting);

/*
 * Sends TLS close_notify if possible (one non-blocking try), closes the
 * socket, fires nothing.  Harmless when already closed or ended.
 */
void conn_close(struct conn *c);

enum conn_state conn_state(const struct conn *c);
/* "connect to 127.0.0.1:995: Connection refused", "TLS handshake with
 * pop.example.com:995: certificate verify failed: certificate has
 * expired", ...; "" after an orderly close by the peer. */
const char *conn_error(const struct conn *c);
/* The server's certificate failed verification: a configuration problem
 * (CA, host name, expiry), not worth retrying soon. */
bool conn_cert_failed(const struct conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "plain". */
const char *conn_describe(const struct conn *c);

#endif
