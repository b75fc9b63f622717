/*
 * The transport against real sockets on 127.0.0.1: a server thread per test
 * (blocking sockets, blocking OpenSSL) and the conn under test on a loop in
 * the main thread.  Certificates are made at start-up with the OpenSSL API:
 * a CA, a leaf for localhost and 127.0.0.1, an expired leaf and a
 * self-signed one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ingestd/conn.h"
#include "ingestd/loop.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                        \
	X(test_tls_settings)                                            \
	X(test_plain_echo)                                              \
	X(test_tls_up)                                                  \
	X(test_tls_ip_literal)                                          \
	X(test_tls_wrong_host)                                          \
	X(test_tls_wrong_ip)                                            \
	X(test_tls_self_signed)                                         \
	X(test_tls_expired)                                             \
	X(test_tls_not_tls)                                             \
	X(test_handshake_eof)                                           \
	X(test_handshake_reset)                                         \
	X(test_handshake_close_notify)                                  \
	X(test_connect_refused)                                         \
	X(test_connect_timeout)                                         \
	X(test_handshake_timeout)                                       \
	X(test_idle_timeout)                                            \
	X(test_idle_only_while_waiting)                                 \
	X(test_idle_rbuf_full)                                          \
	X(test_session_timeout)                                         \
	X(test_socket_error)                                            \
	X(test_starttls)                                                \
	X(test_starttls_handshake_not_idle)                             \
	X(test_large_tls)                                               \
	X(test_rbuf_full_no_spin)                                       \
	X(test_rbuf_full_no_spin_tls)                                   \
	X(test_peer_close_plain)                                        \
	X(test_peer_close_tls)                                          \
	X(test_tls_truncated)                                           \
	X(test_read_reset_plain)                                        \
	X(test_read_reset_tls)                                          \
	X(test_tls_bad_record)                                          \
	X(test_write_reset_plain)                                       \
	X(test_write_reset_tls)                                         \
	X(test_close_in_callback)                                       \
	X(test_connect_next_address)                                    \
	X(test_connect_every_address_fails)
TESTS(TEST_DECLARE)

/* ---- certificates ---- */

static struct {
	bool ready;
	char dir[64];
	char ca_path[96];
	EVP_PKEY *ca_key, *key;
	X509 *ca, *good, *expired, *self;
	struct conn_tls *tls;	/* trusts the CA */
} fx;

static void
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e;

	e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* Signed by issuer/ikey, or self-signed when issuer is NULL. */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
    bool ca, const char *san, long from_s, long to_s)
{
	static long serial = 1;
	X509V3_CTX v3;
	X509_NAME *name;
	X509 *x;

	ASSERT_TRUE((x = X509_new()) != NULL);
	ASSERT_EQ(X509_set_version(x, 2), 1);
	ASSERT_EQ(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	ASSERT_TRUE(X509_gmtime_adj(X509_getm_notBefore(x), from_s) != NULL);
	ASSERT_TRUE(X509_gmtime_adj(X509_getm_notAfter(x), to_s) != NULL);
	ASSERT_EQ(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	ASSERT_EQ(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	ASSERT_EQ(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name), 1);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints,
	    ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, &v3, NID_subject_key_identifier, "hash");
	if (ca)
		add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (issuer != NULL) {
		add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
		add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
	}
	if (!ca)
		add_ext(x, &v3, NID_ext_key_usage, "serverAuth");
	if (san != NULL)
		add_ext(x, &v3, NID_subject_alt_name, san);
	ASSERT_TRUE(X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) > 0);
	return x;
}

static void
fixtures_cleanup(void)
{
	char p[128];

	unlink(fx.ca_path);
	snprintf(p, sizeof(p), "%s/garbage.pem", fx.dir);
	unlink(p);
	rmdir(fx.dir);
}

static void
fixtures(void)
{
	char err[256];
	FILE *f;

	if (fx.ready)
		return;
	/* A peer that resets must show up as an error, not kill the run. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_conn.XXXXXX");
	ASSERT_TRUE(mkdtemp(fx.dir) != NULL);
	atexit(fixtures_cleanup);
	ASSERT_TRUE((fx.ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256")) != NULL);
	ASSERT_TRUE((fx.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256")) != NULL);
	fx.ca = make_cert("ingestd test CA", fx.ca_key, NULL, NULL, true,
	    NULL, -3600, 86400);
	fx.good = make_cert("localhost", fx.key, fx.ca, fx.ca_key, false,
	    "DNS:localhost,IP:127.0.0.1", -3600, 86400);
	fx.expired = make_cert("localhost", fx.key, fx.ca, fx.ca_key, false,
	    "DNS:localhost,IP:127.0.0.1", -2 * 86400, -86400);
	fx.self = make_cert("localhost", fx.key, NULL, NULL, false,
	    "DNS:localhost,IP:127.0.0.1", -3600, 86400);
	snprintf(fx.ca_path, sizeof(fx.ca_path), "%s/ca.pem", fx.dir);
	ASSERT_TRUE((f = fopen(fx.ca_path, "w")) != NULL);
	ASSERT_EQ(PEM_write_X509(f, fx.ca), 1);
	ASSERT_EQ(fclose(f), 0);
	fx.tls = conn_tls_new(fx.ca_path, err, sizeof(err));
	if (fx.tls == NULL)
		TEST_FAIL_("conn_tls_new: %s", err);
	fx.ready = true;
}

/* ---- the server thread ---- */

struct srv;
typedef void srv_fn(struct srv *s);

struct srv {
	int lfd;
	unsigned short port;
	SSL_CTX *ctx;		/* non-NULL: TLS from the start */
	SSL_CTX *stls_ctx;	/* for a scenario that starts TLS later */
	int stls_delay_ms;	/* pause before the STLS handshake */
	srv_fn *fn;		/* the scenario, after accept (and TLS) */
	pthread_t th;
	int fd;
	SSL *ssl;
	bool accepted;
	bool tls_failed;	/* SSL_accept failed: fn not called */
	bool ok;		/* the scenario's own verdict */
	char got[256];
};

static SSL_CTX *
server_ctx(X509 *cert)
{
	SSL_CTX *ctx;

	ASSERT_TRUE((ctx = SSL_CTX_new(TLS_server_method())) != NULL);
	ASSERT_EQ(SSL_CTX_use_certificate(ctx, cert), 1);
	ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx, fx.key), 1);
	return ctx;
}

static int
srv_tls_accept(struct srv *s, SSL_CTX *ctx)
{
	ASSERT_TRUE((s->ssl = SSL_new(ctx)) != NULL);
	ASSERT_EQ(SSL_set_fd(s->ssl, s->fd), 1);
	if (SSL_accept(s->ssl) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	struct timeval tv = { .tv_sec = 10 };
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };

	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	if ((s->fd = accept(s->lfd, NULL, NULL)) == -1)
		return NULL;
	s->accepted = true;
	/* A stuck test ends instead of hanging. */
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (s->ctx != NULL && srv_tls_accept(s, s->ctx) == -1)
		s->tls_failed = true;
	else if (s->fn != NULL)
		s->fn(s);
	SSL_free(s->ssl);
	s->ssl = NULL;
	close(s->fd);
	return NULL;
}

static int
listen_socket(int backlog, unsigned short *port_r)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	ASSERT_TRUE((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) !=
	    -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (backlog >= 0)
		ASSERT_EQ(listen(fd, backlog), 0);
	ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port_r = ntohs(sin.sin_port);
	return fd;
}

/* Prepares a server; srv_run() starts its thread. */
static void
srv_init(struct srv *s, X509 *cert, srv_fn *fn)
{
	fixtures();
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->lfd = listen_socket(8, &s->port);
	s->ctx = cert != NULL ? server_ctx(cert) : NULL;
	s->fn = fn;
}

static void
srv_run(struct srv *s)
{
	ASSERT_EQ(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_start(struct srv *s, X509 *cert, srv_fn *fn)
{
	srv_init(s, cert, fn);
	srv_run(s);
}

static void
srv_join(struct srv *s)
{
	ASSERT_EQ(pthread_join(s->th, NULL), 0);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
	s->ctx = NULL;
	SSL_CTX_free(s->stls_ctx);
	s->stls_ctx = NULL;
}

static int
srv_send(struct srv *s, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if (s->ssl != NULL)
			w = SSL_write(s->ssl, c, (int)n);
		else
			w = send(s->fd, c, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t
srv_recv(struct srv *s, void *p, size_t n)
{
	if (s->ssl != NULL)
		return SSL_read(s->ssl, p, (int)n);
	return recv(s->fd, p, n, 0);
}

/* Reads up to and including LF into s->got; -1 on EOF or error. */
static int
srv_line(struct srv *s)
{
	size_t n = 0;
	char ch;

	while (n < sizeof(s->got) - 1) {
		if (srv_recv(s, &ch, 1) != 1)
			return -1;
		s->got[n++] = ch;
		if (ch == '\n')
			break;
	}
	s->got[n] = '\0';
	return 0;
}

/* Waits until the client closes. */
static void
srv_drain(struct srv *s)
{
	char b[4096];

	while (srv_recv(s, b, sizeof(b)) > 0)
		continue;
}

static void
msleep(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* The next close(2) of the socket sends RST instead of FIN. */
static void
srv_linger0(struct srv *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	ASSERT_EQ(setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
	    0);
}

/* Waits for the client's first bytes (a ClientHello) and reads them. */
static int
srv_hello(struct srv *s)
{
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	char b[4096];

	if (poll(&pfd, 1, 5000) != 1)
		return -1;
	return recv(s->fd, b, sizeof(b), 0) > 0 ? 0 : -1;
}

/* ---- the client ---- */

struct cl;
typedef void cl_hook(struct cl *t, enum conn_ev ev);

struct cl {
	struct loop *l;
	struct conn *c;
	cl_hook *hook;		/* NULL: keep all data, consume it */
	char evs[64];		/* "UDLCET", one letter per event */
	size_t nev;
	int count[6];
	bool end;		/* CLOSED, ERROR or TIMEOUT seen */
	bool stop;		/* set by hooks: cl_run() returns */
	int phase;
	char data[4096];
	size_t ndata;
	void *ctx;
};

static void
cl_cb(struct conn *c, enum conn_ev ev, void *arg)
{
	struct cl *t = arg;
	const char *p;
	size_t n;

	ASSERT_TRUE(c == t->c);
	ASSERT_TRUE(!t->end);
	ASSERT_TRUE((int)ev >= 0 && ev <= CONN_EV_TIMEOUT);
	t->count[ev]++;
	if (t->nev < sizeof(t->evs) - 1)
		t->evs[t->nev++] = "UDLCET"[ev];
	if (ev == CONN_EV_CLOSED || ev == CONN_EV_ERROR ||
	    ev == CONN_EV_TIMEOUT)
		t->end = true;
	if (t->hook != NULL) {
		t->hook(t, ev);
		return;
	}
	if (ev == CONN_EV_DATA) {
		p = conn_rdata(c, &n);
		ASSERT_TRUE(n > 0 && t->ndata + n < sizeof(t->data));
		memcpy(t->data + t->ndata, p, n);
		t->ndata += n;
		t->data[t->ndata] = '\0';
		conn_consume(c, n);
	}
}

static void
cl_start_t(struct cl *t, unsigned short port, const char *host,
    struct conn_tls *tls, cl_hook *hook, int connect_ms, int idle_ms,
    int session_ms)
{
	struct conn_params p;
	struct sockaddr_in *sin = (struct sockaddr_in *)&p.addr;
	char err[256];

	memset(t, 0, sizeof(*t));
	memset(&p, 0, sizeof(p));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p.addrlen = sizeof(*sin);
	p.host = host;
	p.tls = tls;
	p.connect_timeout_ms = connect_ms;
	p.idle_timeout_ms = idle_ms;
	p.session_timeout_ms = session_ms;
	t->hook = hook;
	if ((t->l = loop_new(err, sizeof(err))) == NULL)
		TEST_FAIL_("loop_new: %s", err);
	t->c = conn_new(t->l, &p, cl_cb, t);
}

static void
cl_start(struct cl *t, unsigned short port, const char *host,
    struct conn_tls *tls, cl_hook *hook)
{
	cl_start_t(t, port, host, tls, hook, 5000, 0, 0);
	ASSERT_EQ(conn_state(t->c), CONN_CONNECTING);
	ASSERT_STREQ(conn_describe(t->c), "plain");
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until *flag or 10 s pass (a failure). */
static void
cl_run(struct cl *t, const bool *flag)
{
	uint64_t deadline = now_ms() + 10000;

	while (!*flag) {
		if (now_ms() > deadline)
			TEST_FAIL_("timed out; events \"%.*s\" error \"%s\"",
			    (int)t->nev, t->evs,
			    t->c ? conn_error(t->c) : "");
		ASSERT_EQ(loop_run_once(t->l, 50), 0);
	}
}

static void
cl_done(struct cl *t)
{
	conn_free(&t->c);
	ASSERT_TRUE(t->c == NULL);
	loop_free(&t->l);
}

static void
expect_error(const struct cl *t, enum conn_ev ev, const char *want)
{
	ASSERT_EQ(t->count[ev], 1);
	ASSERT_TRUE(t->end);
	ASSERT_EQ(conn_state(t->c), CONN_CLOSING);
	ASSERT_STREQ(conn_error(t->c), want);
}

/* ---- tests ---- */

static void
test_tls_settings(void)
{
	char err[256], path[128];
	struct conn_tls *t;
	FILE *f;

	fixtures();
	t = conn_tls_new("/nonexistent/ca.pem", err, sizeof(err));
	ASSERT_TRUE(t == NULL);
	ASSERT_STREQ(err, "CA file /nonexistent/ca.pem: No such file or "
	    "directory");

	snprintf(path, sizeof(path), "%s/garbage.pem", fx.dir);
	ASSERT_TRUE((f = fopen(path, "w")) != NULL);
	fputs("this is not a certificate\n", f);
	fclose(f);
	t = conn_tls_new(path, err, sizeof(err));
	ASSERT_TRUE(t == NULL);
	ASSERT_TRUE(strncmp(err, "CA file ", 8) == 0);
	ASSERT_TRUE(strstr(err, path) != NULL);
	ASSERT_TRUE(strstr(err, "no usable certificate") != NULL);

	/* The system store loads even where it is empty. */
	t = conn_tls_new(NULL, err, sizeof(err));
	ASSERT_TRUE(t != NULL);
	conn_tls_free(&t);
	ASSERT_TRUE(t == NULL);
	conn_tls_free(&t);
}


/* Writes t->ctx on UP; keeps and consumes all data; stops at a CRLF. */
static void
hook_say(struct cl *t, enum conn_ev ev)
{
	const char *p, *say = t->ctx;
	size_t n;

	switch (ev) {
	case CONN_EV_UP:
		ASSERT_EQ(conn_state(t->c), CONN_UP);
		ASSERT_EQ(conn_write(t->c, say, strlen(say)), strlen(say));
		break;
	case CONN_EV_DATA:
		p = conn_rdata(t->c, &n);
		ASSERT_TRUE(t->ndata + n < sizeof(t->data));
		memcpy(t->data + t->ndata, p, n);
		t->ndata += n;
		t->data[t->ndata] = '\0';
		conn_consume(t->c, n);
		if (strstr(t->data, "\r\n") != NULL)
			t->stop = true;
		break;
	default:
		break;
	}
}

static void
srv_echo(struct srv *s)
{
	char reply[300];

	if (srv_line(s) == -1)
		return;
	snprintf(reply, sizeof(reply), "echo: %s", s->got);
	if (srv_send(s, reply, strlen(reply)) == -1)
		return;
	srv_drain(s);
	s->ok = true;
}

static void
test_plain_echo(void)
{
	struct srv s;
	struct cl t;

	srv_start(&s, NULL, srv_echo);
	cl_start(&t, s.port, "localhost", NULL, hook_say);
	t.ctx = "hello\r\n";
	cl_run(&t, &t.stop);
	ASSERT_STREQ(t.data, "echo: hello\r\n");
	/* UP, the write drained (LOWAT), then the answer. */
	ASSERT_STREQ(t.evs, "ULD");
	ASSERT_STREQ(conn_describe(t.c), "plain");
	ASSERT_STREQ(conn_error(t.c), "");
	conn_close(t.c);
	ASSERT_EQ(conn_state(t.c), CONN_CLOSING);
	ASSERT_EQ(conn_write(t.c, "x", 1), 0);
	conn_close(t.c);	/* twice is harmless */
	srv_join(&s);
	ASSERT_TRUE(s.ok);
	cl_done(&t);
}

/* Answers "ping" with "pong", then sends close_notify. */
static void
srv_pong(struct srv *s)
{
	if (srv_line(s) == -1 || strcmp(s->got, "ping\r\n") != 0)
		return;
	if (srv_send(s, "pong\r\n", 6) == -1)
		return;
	SSL_shutdown(s->ssl);
	srv_drain(s);
	s->ok = true;
}

static void
run_pong(const char *host)
{
	struct srv s;
	struct cl t;

	srv_start(&s, fx.good, srv_pong);
	cl_start(&t, s.port, host, fx.tls, hook_say);
	t.ctx = "ping\r\n";
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.data, "pong\r\n");
	ASSERT_STREQ(t.evs, "ULDC");
	/* An orderly close_notify leaves no error text. */
	ASSERT_STREQ(conn_error(t.c), "");
	ASSERT_EQ(conn_state(t.c), CONN_CLOSING);
	ASSERT_TRUE(strncmp(conn_describe(t.c), "TLSv1.", 6) == 0);
	ASSERT_TRUE(strchr(conn_describe(t.c), ' ') != NULL);
	/* conn_free() closes and sends close_notify back. */
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
	ASSERT_TRUE(!s.tls_failed);
}

static void
test_tls_up(void)
{
	fixtures();
	run_pong("localhost");
}

/* An address is checked against the certificate's IP entries; no host
 * at all means the connected address. */
static void
test_tls_ip_literal(void)
{
	fixtures();
	run_pong("127.0.0.1");
	run_pong(NULL);
}

static void
run_refused_cert(X509 *cert, const char *host, const char *why)
{
	char want[256];
	struct srv s;
	struct cl t;

	srv_start(&s, cert, NULL);
	cl_start(&t, s.port, host, fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "E");
	snprintf(want, sizeof(want), "TLS handshake with %s:%u: "
	    "certificate verify failed: %s", host, s.port, why);
	expect_error(&t, CONN_EV_ERROR, want);
	ASSERT_STREQ(conn_describe(t.c), "plain");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.tls_failed);
}

static void
test_tls_wrong_host(void)
{
	fixtures();
	run_refused_cert(fx.good, "mail.example.org", "hostname mismatch");
}

static void
test_tls_wrong_ip(void)
{
	fixtures();
	run_refused_cert(fx.good, "127.0.0.2", "IP address mismatch");
}

static void
test_tls_self_signed(void)
{
	fixtures();
	run_refused_cert(fx.self, "localhost", X509_verify_cert_error_string(
	    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT));
}

static void
test_tls_expired(void)
{
	fixtures();
	run_refused_cert(fx.expired, "localhost", "certificate has expired");
}

static void
srv_greet(struct srv *s)
{
	if (srv_send(s, "+OK POP3 ready\r\n", 16) == -1)
		return;
	srv_drain(s);
	s->ok = true;
}

/* A plaintext server on a TLS port. */
static void
test_tls_not_tls(void)
{
	char want[128];
	struct srv s;
	struct cl t;

	srv_start(&s, NULL, srv_greet);
	cl_start(&t, s.port, "localhost", fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "E");
	snprintf(want, sizeof(want), "TLS handshake with localhost:%u: ",
	    s.port);
	ASSERT_TRUE(strncmp(conn_error(t.c), want, strlen(want)) == 0);
	ASSERT_TRUE(strlen(conn_error(t.c)) > strlen(want));
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/* A server that hangs up (FIN, no alert) after the ClientHello. */
static void
srv_hs_eof(struct srv *s)
{
	if (srv_hello(s) == -1 || shutdown(s->fd, SHUT_WR) == -1)
		return;
	srv_drain(s);
	s->ok = true;
}

/* A server that resets the connection after the ClientHello. */
static void
srv_hs_reset(struct srv *s)
{
	if (srv_hello(s) == -1)
		return;
	srv_linger0(s);
	s->ok = true;
}

/* A server that answers the ClientHello with a close_notify alert. */
static void
srv_hs_close_notify(struct srv *s)
{
	static const unsigned char alert[] = { 21, 3, 3, 0, 2, 1, 0 };

	if (srv_hello(s) == -1 || srv_send(s, alert, sizeof(alert)) == -1)
		return;
	srv_drain(s);
	s->ok = true;
}

static void
run_handshake_fail(srv_fn *fn, const char *why)
{
	char want[160];
	struct srv s;
	struct cl t;

	srv_start(&s, NULL, fn);
	cl_start(&t, s.port, "localhost", fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "E");
	snprintf(want, sizeof(want), "TLS handshake with localhost:%u: %s",
	    s.port, why);
	expect_error(&t, CONN_EV_ERROR, want);
	ASSERT_TRUE(!conn_cert_failed(t.c));
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

static void
test_handshake_eof(void)
{
	fixtures();
	run_handshake_fail(srv_hs_eof, "the server closed the connection");
}

static void
test_handshake_reset(void)
{
	fixtures();
	run_handshake_fail(srv_hs_reset, strerror(ECONNRESET));
}

static void
test_handshake_close_notify(void)
{
	fixtures();
	run_handshake_fail(srv_hs_close_notify,
	    "the server closed the connection");
}

static void
test_connect_refused(void)
{
	unsigned short port;
	char want[128];
	struct cl t;
	int fd;

	fixtures();
	/* Bound but not listening: the port is ours and answers RST. */
	fd = listen_socket(-1, &port);
	cl_start(&t, port, "localhost", fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "E");
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: Connection "
	    "refused", port);
	expect_error(&t, CONN_EV_ERROR, want);
	cl_done(&t);
	close(fd);
}

/*
 * A listener whose accept queue is full drops further SYNs, so a connect
 * to it stays pending: fill the queue (listen(fd, 0) takes about one) and
 * keep the connection that no longer completes.
 */
static void
test_connect_timeout(void)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	unsigned short port;
	char want[128];
	int lfd, fill[8], nfill, i;
	uint64_t t0;
	struct cl t;

	fixtures();
	lfd = listen_socket(0, &port);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (nfill = 0; nfill < 8; nfill++) {
		fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		ASSERT_TRUE(fill[nfill] != -1);
		if (connect(fill[nfill], (struct sockaddr *)&sin,
		    sizeof(sin)) == -1)
			ASSERT_EQ(errno, EINPROGRESS);
		pfd.fd = fill[nfill];
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 200) == 0) {
			nfill++;
			break;
		}
	}
	ASSERT_TRUE(nfill < 8 || poll(&pfd, 1, 0) == 0);

	t0 = now_ms();
	cl_start_t(&t, port, "localhost", fx.tls, NULL, 300, 0, 0);
	cl_run(&t, &t.end);
	ASSERT_TRUE(now_ms() - t0 >= 290);
	ASSERT_STREQ(t.evs, "T");
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: timed out "
	    "after 300 ms", port);
	expect_error(&t, CONN_EV_TIMEOUT, want);
	cl_done(&t);
	for (i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
}

static void
srv_silent(struct srv *s)
{
	srv_drain(s);
	s->ok = true;
}

/* The connect timeout covers the handshake of a server that never
 * answers the ClientHello. */
static void
test_handshake_timeout(void)
{
	char want[128];
	struct srv s;
	struct cl t;

	srv_start(&s, NULL, srv_silent);
	cl_start_t(&t, s.port, "localhost", fx.tls, NULL, 300, 0, 0);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "T");
	snprintf(want, sizeof(want), "TLS handshake with localhost:%u: "
	    "timed out after 300 ms", s.port);
	expect_error(&t, CONN_EV_TIMEOUT, want);
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/* Four lines 100 ms apart, then silence. */
static void
srv_tick(struct srv *s)
{
	int i;

	for (i = 0; i < 4; i++) {
		msleep(100);
		if (srv_send(s, "+OK\r\n", 5) == -1)
			return;
	}
	srv_drain(s);
	s->ok = true;
}

static void
hook_wait(struct cl *t, enum conn_ev ev)
{
	const char *p;
	size_t n;

	if (ev == CONN_EV_UP)
		conn_set_waiting(t->c, true);
	if (ev == CONN_EV_DATA) {
		p = conn_rdata(t->c, &n);
		ASSERT_TRUE(t->ndata + n < sizeof(t->data));
		memcpy(t->data + t->ndata, p, n);
		t->ndata += n;
		t->data[t->ndata] = '\0';
		conn_consume(t->c, n);
	}
}

/* Every byte restarts the idle timer; silence ends the connection. */
static void
test_idle_timeout(void)
{
	struct srv s;
	struct cl t;
	uint64_t t0 = now_ms();

	srv_start(&s, NULL, srv_tick);
	cl_start_t(&t, s.port, "localhost", NULL, hook_wait, 5000, 250, 0);
	cl_run(&t, &t.end);
	ASSERT_TRUE(now_ms() - t0 >= 600);
	ASSERT_STREQ(t.data, "+OK\r\n+OK\r\n+OK\r\n+OK\r\n");
	ASSERT_STREQ(t.evs, "UDDDDT");
	expect_error(&t, CONN_EV_TIMEOUT,
	    "idle timeout after 250 ms waiting for the server");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

static void
run_for(struct cl *t, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end)
		ASSERT_EQ(loop_run_once(t->l, 10), 0);
}

static void
hook_up(struct cl *t, enum conn_ev ev)
{
	if (ev == CONN_EV_UP)
		t->stop = true;
}

static void
test_idle_only_while_waiting(void)
{
	struct srv s;
	struct cl t;
	uint64_t t0;

	srv_start(&s, NULL, srv_silent);
	cl_start_t(&t, s.port, "localhost", NULL, hook_up, 5000, 100, 0);
	cl_run(&t, &t.stop);
	ASSERT_STREQ(t.evs, "U");
	run_for(&t, 300);
	ASSERT_STREQ(t.evs, "U");
	conn_set_waiting(t.c, true);
	run_for(&t, 50);
	conn_set_waiting(t.c, false);
	run_for(&t, 200);
	ASSERT_STREQ(t.evs, "U");
	t0 = now_ms();
	conn_set_waiting(t.c, true);
	cl_run(&t, &t.end);
	ASSERT_TRUE(now_ms() - t0 >= 95);
	ASSERT_STREQ(t.evs, "UT");
	expect_error(&t, CONN_EV_TIMEOUT,
	    "idle timeout after 100 ms waiting for the server");
	cl_done(&t);
	srv_join(&s);
}

/* Sends exactly what fills the client's rbuf. */
static int
srv_send_rbuf(struct srv *s)
{
	static char b[64 * 1024];

	memset(b, 'x', sizeof(b));
	return srv_send(s, b, sizeof(b));
}

static void
srv_fill(struct srv *s)
{
	if (srv_send_rbuf(s) == -1)
		return;
	srv_drain(s);
	s->ok = true;
}

/* Keeps all data unconsumed; notes a full rbuf and a drained write. */
static void
hook_full(struct cl *t, enum conn_ev ev)
{
	bool *full = t->ctx;
	size_t n;

	if (ev == CONN_EV_DATA) {
		(void)conn_rdata(t->c, &n);
		if (n == 64 * 1024)
			*full = true;
	}
	if (ev == CONN_EV_LOWAT)
		t->stop = true;
}

/*
 * An owner that leaves rbuf full is the slow one: the server's silence is
 * not held against it until conn_consume() makes room.
 */
static void
test_idle_rbuf_full(void)
{
	struct srv s;
	struct cl t;
	bool full = false;
	uint64_t t0;
	size_t n;

	srv_start(&s, NULL, srv_fill);
	cl_start_t(&t, s.port, "localhost", NULL, hook_full, 5000, 200, 0);
	t.ctx = &full;
	conn_set_waiting(t.c, true);
	cl_run(&t, &full);
	run_for(&t, 500);
	ASSERT_TRUE(!t.end);
	t0 = now_ms();
	(void)conn_rdata(t.c, &n);
	ASSERT_EQ(n, 64 * 1024);
	conn_consume(t.c, n);
	cl_run(&t, &t.end);
	ASSERT_TRUE(now_ms() - t0 >= 195);
	ASSERT_TRUE(t.count[CONN_EV_DATA] > 0);
	expect_error(&t, CONN_EV_TIMEOUT,
	    "idle timeout after 200 ms waiting for the server");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

static void
test_session_timeout(void)
{
	struct srv s;
	struct cl t;

	srv_start(&s, NULL, srv_tick);
	cl_start_t(&t, s.port, "localhost", NULL, NULL, 5000, 0, 250);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.data, "+OK\r\n+OK\r\n");
	ASSERT_STREQ(t.evs, "UDDT");
	expect_error(&t, CONN_EV_TIMEOUT, "session timeout after 250 ms");
	cl_done(&t);
	srv_join(&s);
}

/*
 * A failure inside conn_new() (here socket() refusing the address family)
 * is reported from the loop, never from inside the call.
 */
static void
test_socket_error(void)
{
	struct conn_params p;
	char err[256];
	struct cl t;

	memset(&t, 0, sizeof(t));
	memset(&p, 0, sizeof(p));
	p.addr.ss_family = AF_UNSPEC;
	p.addrlen = sizeof(p.addr);
	p.host = "localhost";
	p.connect_timeout_ms = 1000;
	if ((t.l = loop_new(err, sizeof(err))) == NULL)
		TEST_FAIL_("loop_new: %s", err);
	t.c = conn_new(t.l, &p, cl_cb, &t);
	ASSERT_TRUE(t.c != NULL);
	ASSERT_EQ(t.nev, 0);
	ASSERT_EQ(conn_write(t.c, "x", 1), 1);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "E");
	snprintf(err, sizeof(err), "connect to address family 0: socket: %s",
	    strerror(EAFNOSUPPORT));
	expect_error(&t, CONN_EV_ERROR, err);
	/* Nothing more fires, the 1 s connect timeout included. */
	ASSERT_EQ(loop_run_once(t.l, 0), 0);
	ASSERT_STREQ(t.evs, "E");
	cl_done(&t);
}

/*
 * STLS: the answer and injected bytes arrive in one segment; the client
 * must drop the injected bytes and speak TLS next.
 */
static void
srv_stls(struct srv *s)
{
	static const char go[] = "+OK go\r\nINJECTED\r\n";

	if (srv_send(s, "+OK hi\r\n", 8) == -1 || srv_line(s) == -1 ||
	    strcmp(s->got, "STLS\r\n") != 0)
		return;
	if (srv_send(s, go, sizeof(go) - 1) == -1)
		return;
	if (s->stls_delay_ms > 0)
		msleep(s->stls_delay_ms);
	if (srv_tls_accept(s, s->stls_ctx) == -1) {
		s->tls_failed = true;
		return;
	}
	if (srv_line(s) == -1 || strcmp(s->got, "CAPA\r\n") != 0)
		return;
	if (srv_send(s, "+OK secure\r\n", 12) == -1)
		return;
	SSL_shutdown(s->ssl);
	srv_drain(s);
	s->ok = true;
}

static void
hook_stls(struct cl *t, enum conn_ev ev)
{
	const char *p;
	size_t n;

	p = conn_rdata(t->c, &n);
	switch (t->phase) {
	case 0:
		if (ev != CONN_EV_DATA)
			break;
		ASSERT_TRUE(n == 8 && memcmp(p, "+OK hi\r\n", 8) == 0);
		conn_consume(t->c, n);
		ASSERT_EQ(conn_write(t->c, "STLS\r\n", 6), 6);
		t->phase = 1;
		break;
	case 1:
		if (ev != CONN_EV_DATA)
			break;
		ASSERT_TRUE(n > 8 && memcmp(p, "+OK go\r\n", 8) == 0);
		ASSERT_TRUE(memmem(p, n, "INJECTED", 8) != NULL);
		/* As the session does: no consume, straight to TLS. */
		conn_starttls(t->c, fx.tls);
		ASSERT_EQ(conn_state(t->c), CONN_TLS_HANDSHAKE);
		(void)conn_rdata(t->c, &n);
		ASSERT_EQ(n, 0);
		/* The owner may still read what it was handed. */
		ASSERT_TRUE(memcmp(p, "+OK go\r\n", 8) == 0);
		t->phase = 2;
		break;
	case 2:
		ASSERT_EQ(ev, CONN_EV_UP);
		ASSERT_TRUE(strncmp(conn_describe(t->c), "TLSv1.", 6) == 0);
		ASSERT_EQ(conn_write(t->c, "CAPA\r\n", 6), 6);
		t->phase = 3;
		break;
	case 3:
		if (ev == CONN_EV_DATA) {
			ASSERT_TRUE(t->ndata + n < sizeof(t->data));
			memcpy(t->data + t->ndata, p, n);
			t->ndata += n;
			t->data[t->ndata] = '\0';
			conn_consume(t->c, n);
		}
		break;
	}
}

static void
test_starttls(void)
{
	struct srv s;
	struct cl t;

	srv_init(&s, NULL, srv_stls);
	s.stls_ctx = server_ctx(fx.good);
	srv_run(&s);
	cl_start(&t, s.port, "localhost", NULL, hook_stls);
	cl_run(&t, &t.end);
	ASSERT_EQ(t.phase, 3);
	ASSERT_STREQ(t.data, "+OK secure\r\n");
	ASSERT_STREQ(t.evs, "UDLDULDC");
	ASSERT_STREQ(conn_error(t.c), "");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/* The owner waits for the STLS reply, as a session does; the waiting
 * flag is still set when the handshake starts. */
static void
hook_stls_waiting(struct cl *t, enum conn_ev ev)
{
	hook_stls(t, ev);
	if (t->phase == 1)
		conn_set_waiting(t->c, true);
}

/*
 * A slow STLS handshake is bounded by the connect timeout, as an implicit
 * TLS one is, not by the idle timeout meant for POP3 answers.
 */
static void
test_starttls_handshake_not_idle(void)
{
	struct srv s;
	struct cl t;

	srv_init(&s, NULL, srv_stls);
	s.stls_ctx = server_ctx(fx.good);
	s.stls_delay_ms = 600;
	srv_run(&s);
	cl_start_t(&t, s.port, "localhost", NULL, hook_stls_waiting, 5000,
	    200, 0);
	cl_run(&t, &t.end);
	ASSERT_EQ(t.phase, 3);
	ASSERT_STREQ(t.data, "+OK secure\r\n");
	ASSERT_STREQ(conn_error(t.c), "");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/* ---- a large transfer through TLS ---- */

/* More than tcp_wmem[2] (4 MiB): the client's socket fills and waits. */
#define UP_SIZE		(6 * 1024 * 1024)
#define DOWN_SIZE	(8 * 1024 * 1024)
#define CHUNK		16384

static unsigned char
pat(size_t i)
{
	return (unsigned char)((i % 251) ^ (i >> 16));
}

static void
srv_bulk(struct srv *s)
{
	unsigned char b[CHUNK];
	size_t off = 0, i, n;
	ssize_t r;

	/* Let the client's socket buffer fill: its writes must wait. */
	msleep(200);
	while (off < UP_SIZE) {
		n = UP_SIZE - off < sizeof(b) ? UP_SIZE - off : sizeof(b);
		if ((r = srv_recv(s, b, n)) <= 0)
			return;
		for (i = 0; i < (size_t)r; i++)
			if (b[i] != pat(off + i))
				return;
		off += (size_t)r;
	}
	for (off = 0; off < DOWN_SIZE; off += CHUNK) {
		/* TLS 1.3: new keys both ways halfway through. */
		if (off == DOWN_SIZE / 2 && SSL_version(s->ssl) ==
		    TLS1_3_VERSION && SSL_key_update(s->ssl,
		    SSL_KEY_UPDATE_REQUESTED) != 1)
			return;
		for (i = 0; i < CHUNK; i++)
			b[i] = pat(off + i);
		if (srv_send(s, b, CHUNK) == -1)
			return;
	}
	SSL_shutdown(s->ssl);
	srv_drain(s);
	s->ok = true;
}

struct bulk {
	size_t sent;		/* uploaded */
	size_t base;		/* stream offset of conn_rdata() */
	size_t checked;		/* bytes of conn_rdata() verified */
	size_t next_hold;
	bool holding;		/* consuming nothing until bulk_release() */
	int holds, releases, datas;
	struct loop_timer release;
	struct cl *t;
};

static void
bulk_upload(struct cl *t, struct bulk *b)
{
	unsigned char chunk[4096];
	size_t i, n, w;

	while (b->sent < UP_SIZE) {
		n = UP_SIZE - b->sent < sizeof(chunk) ? UP_SIZE - b->sent :
		    sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = pat(b->sent + i);
		w = conn_write(t->c, chunk, n);
		b->sent += w;
		if (w < n)
			break;	/* full: LOWAT brings us back */
	}
}

/*
 * Consumes from outside any callback, as a session whose pipeline drained
 * would: reading resumes, and what OpenSSL held gets read.
 */
static void
bulk_release(struct loop *l, void *arg)
{
	struct bulk *b = arg;
	size_t n, k;

	b->releases++;
	b->holding = false;
	(void)conn_rdata(b->t->c, &n);
	k = n > 100 ? n - 100 : 0;
	conn_consume(b->t->c, k);
	b->base += k;
	b->checked -= k;
}

static void
hook_bulk(struct cl *t, enum conn_ev ev)
{
	struct bulk *b = t->ctx;
	const unsigned char *p;
	size_t n, i, k;

	switch (ev) {
	case CONN_EV_UP:
	case CONN_EV_LOWAT:
		bulk_upload(t, b);
		break;
	case CONN_EV_DATA:
	case CONN_EV_CLOSED:
		b->datas += ev == CONN_EV_DATA;
		p = (const unsigned char *)conn_rdata(t->c, &n);
		ASSERT_TRUE(n >= b->checked);
		for (i = b->checked; i < n; i++)
			if (p[i] != pat(b->base + i))
				TEST_FAIL_("byte %zu: %u != %u", b->base + i,
				    p[i], pat(b->base + i));
		b->checked = n;
		if (ev == CONN_EV_CLOSED) {
			ASSERT_EQ(b->base + n, DOWN_SIZE);
			conn_consume(t->c, n);
			break;
		}
		if (b->holding)
			break;
		/* Every MiB, consume nothing for a moment: rbuf fills. */
		if (b->base + n >= b->next_hold) {
			b->next_hold += 1024 * 1024;
			b->holds++;
			b->holding = true;
			loop_timer_add(t->l, &b->release, 2, bulk_release, b);
			break;
		}
		/* Leave a tail unconsumed: it must still be there next time. */
		k = n > 100 ? n - 100 : 0;
		conn_consume(t->c, k);
		b->base += k;
		b->checked -= k;
		break;
	default:
		break;
	}
}

static void
test_large_tls(void)
{
	struct bulk b = { .next_hold = 1024 * 1024 };
	struct srv s;
	struct cl t;
	int small = 16384;

	fixtures();
	srv_init(&s, fx.good, srv_bulk);
	/* Inherited by the accepted socket: a small window to fill. */
	ASSERT_EQ(setsockopt(s.lfd, SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)), 0);
	srv_run(&s);
	cl_start(&t, s.port, "localhost", fx.tls, hook_bulk);
	b.t = &t;
	t.ctx = &b;
	cl_run(&t, &t.end);
	ASSERT_STREQ(conn_error(t.c), "");
	ASSERT_EQ(t.count[CONN_EV_CLOSED], 1);
	ASSERT_EQ(b.sent, UP_SIZE);
	ASSERT_TRUE(t.count[CONN_EV_LOWAT] >= UP_SIZE / (16 * 1024));
	ASSERT_EQ(b.holds, 8);
	ASSERT_TRUE(b.releases >= 7);
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/* ---- backpressure ---- */

#define HOLD_SIZE	(200 * 1024)

/*
 * In writes of 10000 bytes: as TLS records, 64 KiB of rbuf then ends inside
 * a record, and OpenSSL holds the rest where epoll cannot see it.
 */
static void
srv_flood(struct srv *s)
{
	static char b[HOLD_SIZE];
	size_t off, n;

	memset(b, 'x', sizeof(b));
	for (off = 0; off < sizeof(b); off += n) {
		n = sizeof(b) - off < 10000 ? sizeof(b) - off : 10000;
		if (srv_send(s, b + off, n) == -1)
			return;
	}
	srv_drain(s);
	s->ok = true;
}

struct hold {
	bool consume;
	bool full;
	size_t total;
};

static void
hook_hold(struct cl *t, enum conn_ev ev)
{
	struct hold *h = t->ctx;
	size_t n;

	if (ev != CONN_EV_DATA)
		return;
	(void)conn_rdata(t->c, &n);
	if (n == 64 * 1024)
		h->full = true;
	if (h->consume) {
		conn_consume(t->c, n);
		h->total += n;
		if (h->total == HOLD_SIZE)
			t->stop = true;
	}
}

/*
 * Unconsumed bytes fill rbuf; then the loop sleeps instead of spinning, and
 * consuming from outside a callback brings the rest, including what
 * OpenSSL held.
 */
static void
run_rbuf_full(X509 *cert, struct conn_tls *tls)
{
	struct hold h = { .consume = false };
	struct srv s;
	struct cl t;
	uint64_t t0;
	int datas;
	size_t n;

	srv_start(&s, cert, srv_flood);
	cl_start(&t, s.port, "localhost", tls, hook_hold);
	t.ctx = &h;
	cl_run(&t, &h.full);
	datas = t.count[CONN_EV_DATA];
	t0 = loop_now_ms(t.l);
	ASSERT_EQ(loop_run_once(t.l, 200), 0);
	ASSERT_TRUE(loop_now_ms(t.l) - t0 >= 150);
	ASSERT_EQ(t.count[CONN_EV_DATA], datas);
	/* Consumed outside any callback: reading resumes. */
	(void)conn_rdata(t.c, &n);
	ASSERT_EQ(n, 64 * 1024);
	conn_consume(t.c, n);
	h.total = n;
	h.consume = true;
	cl_run(&t, &t.stop);
	ASSERT_EQ(h.total, HOLD_SIZE);
	ASSERT_TRUE(!t.end);
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

static void
test_rbuf_full_no_spin(void)
{
	run_rbuf_full(NULL, NULL);
}

static void
test_rbuf_full_no_spin_tls(void)
{
	fixtures();
	run_rbuf_full(fx.good, fx.tls);
}

/* ---- closing ---- */

static void
srv_bye(struct srv *s)
{
	/* Just close: for TLS, without close_notify. */
	if (srv_send(s, "bye\r\n", 5) == -1)
		return;
	s->ok = true;
}

static void
test_peer_close_plain(void)
{
	struct srv s;
	struct cl t;

	srv_start(&s, NULL, srv_bye);
	cl_start(&t, s.port, "localhost", NULL, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.data, "bye\r\n");
	ASSERT_STREQ(t.evs, "UDC");
	expect_error(&t, CONN_EV_CLOSED, "");
	cl_done(&t);
	srv_join(&s);
}

static void
srv_bye_notify(struct srv *s)
{
	if (srv_send(s, "bye\r\n", 5) == -1)
		return;
	SSL_shutdown(s->ssl);
	s->ok = true;
}

static void
test_peer_close_tls(void)
{
	struct srv s;
	struct cl t;

	fixtures();
	srv_start(&s, fx.good, srv_bye_notify);
	cl_start(&t, s.port, "localhost", fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.data, "bye\r\n");
	ASSERT_STREQ(t.evs, "UDC");
	expect_error(&t, CONN_EV_CLOSED, "");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/* A TLS peer that closes the socket without close_notify. */
static void
test_tls_truncated(void)
{
	char want[128];
	struct srv s;
	struct cl t;

	fixtures();
	srv_start(&s, fx.good, srv_bye);
	cl_start(&t, s.port, "localhost", fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.data, "bye\r\n");
	ASSERT_STREQ(t.evs, "UDC");
	snprintf(want, sizeof(want), "localhost:%u closed the connection "
	    "without TLS close_notify", s.port);
	expect_error(&t, CONN_EV_CLOSED, want);
	cl_done(&t);
	srv_join(&s);
}

/* Reads the client's line, then resets the connection. */
static void
srv_line_reset(struct srv *s)
{
	if (srv_line(s) == -1)
		return;
	srv_linger0(s);
	s->ok = true;
}

static void
run_read_reset(X509 *cert, struct conn_tls *tls, const char *what)
{
	char want[160];
	struct srv s;
	struct cl t;

	srv_start(&s, cert, srv_line_reset);
	cl_start(&t, s.port, "localhost", tls, hook_say);
	t.ctx = "hello\r\n";
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "ULE");
	snprintf(want, sizeof(want), "%s localhost:%u: %s", what, s.port,
	    strerror(ECONNRESET));
	expect_error(&t, CONN_EV_ERROR, want);
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

static void
test_read_reset_plain(void)
{
	run_read_reset(NULL, NULL, "read from");
}

static void
test_read_reset_tls(void)
{
	fixtures();
	run_read_reset(fx.good, fx.tls, "TLS read from");
}

/* After the handshake, a record that does not decrypt. */
static void
srv_bad_record(struct srv *s)
{
	unsigned char rec[5 + 32] = { 23, 3, 3, 0, 32 };

	if (send(s->fd, rec, sizeof(rec), MSG_NOSIGNAL) != sizeof(rec))
		return;
	srv_drain(s);
	s->ok = true;
}

static void
test_tls_bad_record(void)
{
	char want[160];
	struct srv s;
	struct cl t;

	fixtures();
	srv_start(&s, fx.good, srv_bad_record);
	cl_start(&t, s.port, "localhost", fx.tls, NULL);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "UE");
	snprintf(want, sizeof(want), "TLS read from localhost:%u: decryption "
	    "failed or bad record mac", s.port);
	expect_error(&t, CONN_EV_ERROR, want);
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}

/*
 * Fills the client's rbuf, which the owner leaves full so that it stops
 * reading, then resets the connection once the client says "ping".
 */
static void
srv_fill_reset(struct srv *s)
{
	if (srv_send_rbuf(s) == -1 || srv_line(s) == -1 ||
	    strcmp(s->got, "ping\r\n") != 0)
		return;
	srv_linger0(s);
	s->ok = true;
}

/*
 * With rbuf full nothing reads, so the reset is found by a write, and is
 * reported as a write error.
 */
static void
run_write_reset(X509 *cert, struct conn_tls *tls, const char *what)
{
	char want[160];
	struct srv s;
	struct cl t;
	bool full = false;
	size_t n;

	srv_start(&s, cert, srv_fill_reset);
	cl_start(&t, s.port, "localhost", tls, hook_full);
	t.ctx = &full;
	cl_run(&t, &full);
	ASSERT_EQ(conn_write(t.c, "ping\r\n", 6), 6);
	cl_run(&t, &t.stop);	/* LOWAT: sent */
	srv_join(&s);
	ASSERT_TRUE(s.ok);
	/* The RST has arrived; this write finds it. */
	run_for(&t, 50);
	ASSERT_TRUE(!t.end);
	ASSERT_EQ(conn_write(t.c, "more\r\n", 6), 6);
	cl_run(&t, &t.end);
	snprintf(want, sizeof(want), "%s localhost:%u: %s", what, s.port,
	    strerror(ECONNRESET));
	expect_error(&t, CONN_EV_ERROR, want);
	/* What was received stays readable. */
	(void)conn_rdata(t.c, &n);
	ASSERT_EQ(n, 64 * 1024);
	cl_done(&t);
}

static void
test_write_reset_plain(void)
{
	run_write_reset(NULL, NULL, "write to");
}

static void
test_write_reset_tls(void)
{
	fixtures();
	run_write_reset(fx.good, fx.tls, "TLS write to");
}

/* Sends a line, then expects the client's close_notify. */
static void
srv_expect_notify(struct srv *s)
{
	char b[64];
	int r;

	if (srv_send(s, "one\r\n", 5) == -1)
		return;
	r = SSL_read(s->ssl, b, sizeof(b));
	if (r <= 0 && SSL_get_error(s->ssl, r) == SSL_ERROR_ZERO_RETURN)
		s->ok = true;
}

static void
free_later(void *arg)
{
	struct cl *t = arg;

	conn_free(&t->c);
	t->stop = true;
}

static void
hook_close(struct cl *t, enum conn_ev ev)
{
	size_t n;

	if (ev != CONN_EV_DATA)
		return;
	conn_close(t->c);
	ASSERT_EQ(conn_state(t->c), CONN_CLOSING);
	ASSERT_EQ(conn_write(t->c, "x", 1), 0);
	/* What was handed over stays readable until we return. */
	(void)conn_rdata(t->c, &n);
	ASSERT_EQ(n, 5);
	loop_defer(t->l, free_later, t);
}

/* conn_close() from inside a callback: nothing more fires, no use after
 * free, and close_notify reaches the server. */
static void
test_close_in_callback(void)
{
	struct srv s;
	struct cl t;

	fixtures();
	srv_start(&s, fx.good, srv_expect_notify);
	cl_start(&t, s.port, "localhost", fx.tls, hook_close);
	cl_run(&t, &t.stop);
	ASSERT_TRUE(t.c == NULL);
	ASSERT_STREQ(t.evs, "UD");
	run_for(&t, 100);
	ASSERT_STREQ(t.evs, "UD");
	cl_done(&t);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
}


static void
loopback(struct sockaddr_storage *ss, socklen_t *len_r, unsigned short port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len_r = sizeof(*sin);
}

/* Starts a plain conn to first (NULL: an address socket() refuses), then
 * to the more addresses in order. */
static void
cl_start_addrs(struct cl *t, const unsigned short *first,
    const struct conn_addr *more, size_t nmore)
{
	struct conn_params p;
	char err[256];

	memset(t, 0, sizeof(*t));
	memset(&p, 0, sizeof(p));
	if (first != NULL)
		loopback(&p.addr, &p.addrlen, *first);
	else {
		p.addr.ss_family = AF_UNSPEC;
		p.addrlen = sizeof(p.addr);
	}
	p.more_addrs = more;
	p.nmore = nmore;
	p.host = "localhost";
	p.connect_timeout_ms = 5000;
	t->hook = hook_say;
	t->ctx = "hello\r\n";
	if ((t->l = loop_new(err, sizeof(err))) == NULL)
		TEST_FAIL_("loop_new: %s", err);
	t->c = conn_new(t->l, &p, cl_cb, t);
}

/*
 * A name that resolves to several addresses (::1 and 127.0.0.1 for
 * "localhost"): an address socket() refuses, then one that refuses the
 * connection, then the one that listens.  The conn comes up on the last,
 * and nothing of the failures reaches the owner.
 */
static void
test_connect_next_address(void)
{
	struct conn_addr more[2];
	unsigned short dead;
	struct srv s;
	struct cl t;
	int fd;

	fd = listen_socket(-1, &dead);	/* bound, not listening: RST */
	srv_start(&s, NULL, srv_echo);
	loopback(&more[0].addr, &more[0].addrlen, dead);
	loopback(&more[1].addr, &more[1].addrlen, s.port);
	cl_start_addrs(&t, NULL, more, 2);
	cl_run(&t, &t.stop);
	ASSERT_STREQ(t.data, "echo: hello\r\n");
	ASSERT_STREQ(t.evs, "ULD");
	ASSERT_STREQ(conn_error(t.c), "");
	conn_close(t.c);
	srv_join(&s);
	ASSERT_TRUE(s.ok);
	cl_done(&t);
	close(fd);
}

/* Every address refuses: one error, naming each address in order. */
static void
test_connect_every_address_fails(void)
{
	struct conn_addr more[1];
	unsigned short d1, d2;
	char want[200];
	struct cl t;
	int fd1, fd2;

	fd1 = listen_socket(-1, &d1);
	fd2 = listen_socket(-1, &d2);
	loopback(&more[0].addr, &more[0].addrlen, d2);
	cl_start_addrs(&t, &d1, more, 1);
	cl_run(&t, &t.end);
	ASSERT_STREQ(t.evs, "E");
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: Connection "
	    "refused; 127.0.0.1:%u: Connection refused", d1, d2);
	expect_error(&t, CONN_EV_ERROR, want);
	cl_done(&t);
	close(fd1);
	close(fd2);
}

TEST_MAIN(TESTS)
