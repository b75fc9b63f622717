/*
 * The POP3 client session, sans-I/O: it owns no socket, no TLS, no timer.
 * The owner feeds it the server's bytes with pop3_client_feed(), sends what
 * pop3_client_pending() returns, and receives events through struct
 * pop3_client_cb.  Tests and fuzzers drive it with plain buffers.
 *
 * Sequence: greeting -> CAPA -> [STLS -> (owner does TLS) -> CAPA] ->
 * AUTH PLAIN | AUTH XOAUTH2 | AUTH OAUTHBEARER | APOP | USER/PASS ->
 * [CAPA] -> UIDL -> LIST -> ready().
 * CAPA is issued again after login only when the first one said "EXPIRE
 * ... USER" (RFC 2449 section 6.7), to learn this user's value.  After ready()
 * the owner queues RETR/TOP/DELE and finally QUIT; the client pipelines them
 * when the server advertises PIPELINING (RFC 2449), with a bounded window,
 * and sends them one at a time otherwise.
 */
#ifndef POP3_CLIENT_H
#define POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pop3_client;
struct pop3_expire;
struct pop3_login_delay;

enum pop3_auth {
	POP3_AUTH_AUTO,		/* best the server offers: PLAIN, APOP, USER */
	POP3_AUTH_USER,
	POP3_AUTH_APOP,
	POP3_AUTH_PLAIN,
	POP3_AUTH_XOAUTH2,     /* these two need a token, and take no */
	POP3_AUTH_OAUTHBEARER, /* password */
};

enum pop3_cmd {
	POP3_CMD_RETR,
	POP3_CMD_TOP,
	POP3_CMD_DELE,
};

/* Why a session failed; the owner maps these to retry policy. */
enum pop3_fail {
	POP3_FAIL_PROTOCOL,	/* malformed or unexpected response */
	POP3_FAIL_AUTH,		/* credentials refused ([AUTH] or plain -ERR);
				 * with a token: the token was refused */
	POP3_FAIL_TEMP,		/* [IN-USE], [LOGIN-DELAY], [SYS/TEMP]: later */
	POP3_FAIL_PERM,		/* [SYS/PERM] or a refused command we need */
	POP3_FAIL_NO_STLS,	/* STLS required but not offered or refused */
	POP3_FAIL_NO_AUTH,	/* no mechanism both sides allow */
	POP3_FAIL_LOCAL,	/* a callback returned -1 */
};

/* Where the conversation is; every transition is logged at trace level. */
enum pop3_state {
	P3_GREETING,
	P3_CAPA,
	P3_STLS,
	P3_TLS,		/* owner runs the handshake; input is discarded */
	P3_AUTH,	/* AUTH PLAIN */
	P3_OAUTH,	/* AUTH XOAUTH2 or AUTH OAUTHBEARER */
	P3_USER,
	P3_PASS,
	P3_APOP,
	P3_UIDL,
	P3_LIST,
	P3_STAT,	/* only with params.stat: after LIST */
	P3_READY,	/* listed; no command in flight */
	P3_RETR,	/* status line of RETR or TOP */
	P3_BODY,	/* body of RETR or TOP */
	P3_DELE,
	P3_QUIT,
	P3_DONE,
	P3_FAILED,
};

/* One message of the listing.  uidl is NULL if the server has no UIDL. */
struct pop3_msg {
	uint32_t num;
	uint64_t size;		/* as LIST reported it; may be wrong */
	char *uidl;
};

struct pop3_client_params {
	const char *user;
	const char *password;	/* borrowed; must outlive the client */
	/*
	 * An OAuth 2.0 access token, borrowed like the password, or NULL.
	 * With a token only XOAUTH2 and OAUTHBEARER are spoken and the
	 * password is never sent: auth POP3_AUTH_AUTO picks XOAUTH2 if CAPA
	 * lists it (Gmail and Outlook list it, and Outlook documents only
	 * it for POP), else OAUTHBEARER, else (no CAPA) tries XOAUTH2;
	 * POP3_AUTH_USER, _APOP and _PLAIN fail with POP3_FAIL_NO_AUTH.
	 */
	const char *token;
	const char *host; /* for OAUTHBEARER's host and port, or NULL */
	unsigned port;
	enum pop3_auth auth;
	bool starttls;		/* issue STLS after CAPA; fail if not offered */
	/* MD5 for APOP, from the owner, so pop3/ needs no crypto library */
	void (*md5)(const void *p, size_t n, unsigned char out[16]);
	unsigned pipeline_window; /* in-flight commands with PIPELINING; 0: 16,
				   * at most 128 */
	/* Bounds the listing's memory against a hostile server: a listing of
	 * more messages fails with POP3_FAIL_PERM.  0: 1000000. */
	uint32_t max_msgs;
	/* Bounds it in bytes too: UIDLs of more bytes in all (each counted
	 * with a terminating NUL) fail the session with POP3_FAIL_PERM.
	 * 0: POP3_LISTING_BYTES_DEFAULT. */
	size_t max_listing_bytes;
	/* Send STAT after the listing, for pop3_client_stat(): what the
	 * server counts the mailbox as (the delete policy's keep_under). */
	bool stat;
};

/*
 * The default listing budget, 64 MiB of UIDL bytes a session.  A UIDL may
 * fill a 512-octet line, so the message count alone lets a listing take
 * half a gigabyte; 64 MiB holds 100,000 UIDLs of 500 bytes, or 1,000,000
 * of 66.  The owner keeps at most a short digest of each (ingestd/plan.h),
 * and the client gives its own copy back once ready() returns.
 */
#define POP3_LISTING_BYTES_DEFAULT ((size_t)64 * 1024 * 1024)

/*
 * Events.  Each receives the arg given to pop3_client_new().  The callbacks
 * may call pop3_client_retr/top/dele/quit but must not free the client.
 * After failed() or done() no further event fires.
 */
struct pop3_client_cb {
	/* STLS accepted: the owner must discard any bytes already received,
	 * run the TLS handshake and call pop3_client_tls_ready(). */
	void (*start_tls)(void *arg);
	/* Logged in and listed.  msgs and its UIDLs are valid during the
	 * call only: the client frees them when it returns, so a listing
	 * is not held twice. */
	void (*ready)(void *arg, const struct pop3_msg *msgs, size_t n);
	/* Unstuffed body bytes of RETR or TOP for message num; return 0, or
	 * -1 to fail the session with POP3_FAIL_LOCAL. */
	int (*body)(void *arg, enum pop3_cmd cmd, uint32_t num, const char *p,
	    size_t n);
	/* The terminating "." line of RETR or TOP arrived. */
	void (*body_end)(void *arg, enum pop3_cmd cmd, uint32_t num);
	/* +OK to DELE: the server marked it; it is removed at QUIT. */
	void (*deleted)(void *arg, uint32_t num);
	/* -ERR to RETR, TOP or DELE: that message only; the session goes on. */
	void (*cmd_failed)(void *arg, enum pop3_cmd cmd, uint32_t num,
	    const char *text);
	/* +OK to QUIT: deletions are applied. */
	void (*done)(void *arg);
	void (*failed)(void *arg, enum pop3_fail why, const char *text);
};

/* params and cb are copied; strings in params are borrowed. */
struct pop3_client *pop3_client_new(const struct pop3_client_params *params,
    const struct pop3_client_cb *cb, void *arg);
void pop3_client_free(struct pop3_client **c);

/*
 * Consumes n bytes from the server, firing events as responses complete.
 * Returns 0, or -1 once the session has failed (failed() has fired).
 * After start_tls() fires, the rest of p is discarded (RFC 2595: plaintext
 * after the STLS reply must not be trusted).
 */
int pop3_client_feed(struct pop3_client *c, const char *p, size_t n);

/*
 * Bytes to send, or *n_r = 0.  Call pop3_client_sent() with what went out;
 * it may move further queued commands into the buffer.  After failed()
 * there is nothing more to send: the owner closes the connection.
 */
void pop3_client_pending(struct pop3_client *c, const char **p_r,
    size_t *n_r);
void pop3_client_sent(struct pop3_client *c, size_t n);

/* TLS is up after STLS: the client re-issues CAPA and continues. */
void pop3_client_tls_ready(struct pop3_client *c);

/* Queue commands; only after ready().  lines is TOP's line count. */
void pop3_client_retr(struct pop3_client *c, uint32_t num);
void pop3_client_top(struct pop3_client *c, uint32_t num, unsigned lines);
void pop3_client_dele(struct pop3_client *c, uint32_t num);
void pop3_client_quit(struct pop3_client *c);

/* No command queued or awaiting a response. */
bool pop3_client_idle(const struct pop3_client *c);
/* Whether CAPA advertised PIPELINING / TOP (valid after ready()). */
bool pop3_client_pipelining(const struct pop3_client *c);
bool pop3_client_has_top(const struct pop3_client *c);
/*
 * What CAPA said of EXPIRE (pop3/parse.h), this user's value where the
 * server gave one after login; valid after ready(), owned by the client.
 */
const struct pop3_expire *pop3_client_expire(const struct pop3_client *c);
/*
 * What CAPA said of LOGIN-DELAY (pop3/parse.h), this user's value where
 * the server gave one after login; valid after ready(), owned by the
 * client.
 */
const struct pop3_login_delay *pop3_client_login_delay(
    const struct pop3_client *c);
/*
 * Whether the server deletes every message retrieved in this session when
 * QUIT enters the UPDATE state, DELE or not: EXPIRE 0 (or unreadable).
 * Then QUIT is safe only once everything retrieved is archived.
 */
bool pop3_client_expires_at_quit(const struct pop3_client *c);
/*
 * The maildrop size STAT gave (params.stat), valid after ready(); false
 * if STAT was not asked for, refused, or unreadable.
 */
bool pop3_client_stat(const struct pop3_client *c, uint64_t *size_r);
/* The current state; P3_FAILED after failed(), P3_DONE after done(). */
enum pop3_state pop3_client_state(const struct pop3_client *c);
/*
 * Name of the current state with its command ("RETR 5", "RETR 5 body"),
 * for log lines ("while ...").  After failed(), where it failed.
 */
const char *pop3_client_what(const struct pop3_client *c);

#endif
