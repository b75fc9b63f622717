/*
 * OAuth 2.0 access tokens for the accounts that log in with one: from a
 * command (token_command) or from the provider's token endpoint (oauth =
 * { ... }, grant refresh_token or client_credentials).
 *
 * Getting a token blocks (a process to wait for, an HTTPS request), so it
 * runs on a thread of its own, never on a worker's loop and never on the
 * scheduler's: the scheduler asks with oauth_request() before it starts a
 * poll, and the answer comes back to the scheduler's loop through
 * loop_post().  The token cache lives on that thread alone:
 *   - refresh_token: one access token per refresh_token_file, kept until
 *     shortly before expires_in.  A rotated refresh token is written back
 *     to its file (temporary file, fsync, rename, same mode and owner)
 *     before the new access token is handed out.
 *   - client_credentials: one access token per (token_url, client_id,
 *     scope), shared by every account that names them.
 *   - token_command: run before each login; nothing is cached.
 */
#ifndef INGESTD_OAUTH_H
#define INGESTD_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "ingestd/loop.h"

struct conf_account;
struct oauth;

enum oauth_status {
	OAUTH_OK,
	OAUTH_TEMPORARY,	/* network, timeout, 5xx, a failed command */
	OAUTH_PERMANENT,	/* the endpoint refused the request itself */
	OAUTH_REAUTH,		/* invalid_grant / invalid_client: the grant
				 * is dead until the operator renews it */
};

struct oauth_req {
	/* The caller's, unchanged until done runs. */
	const struct conf_account *acct;
	struct loop *reply;	/* where done(arg) runs */
	loop_func *done;
	void *arg;
	/* The answer, valid when done runs. */
	enum oauth_status status;
	char *token;		/* OAUTH_OK: xmalloc'd; oauth_req_release() */
	bool fresh;		/* requested for this call, not cached */
	char error[512];	/* otherwise: why, never holding a secret */
};

/* Starts the token thread.  NULL with err filled. */
struct oauth *oauth_new(char *err, size_t errlen);
/* Stops it (a request under way finishes first) and wipes the cache. */
void oauth_free(struct oauth **o);

/*
 * Thread-safe.  Gets a token for req->acct on the token thread, then posts
 * req->done(req->arg) to req->reply; exactly once unless a loop is freed.
 */
void oauth_request(struct oauth *o, struct oauth_req *req);

/*
 * Thread-safe.  The server refused a cached token of a: forget it, so the
 * next request asks the endpoint.
 */
void oauth_forget(struct oauth *o, const struct conf_account *a);

/* Wipes and frees the token. */
void oauth_req_release(struct oauth_req *req);

#endif
