/*
 * The one HTTP request ingestd makes: a form-encoded POST to an OAuth 2.0
 * token endpoint over verified TLS.  oauth_http.c is the only user of
 * libcurl.  Blocking: only the token thread (ingestd/oauth.h) calls it,
 * never a worker's loop.
 */
#ifndef INGESTD_OAUTH_HTTP_H
#define INGESTD_OAUTH_HTTP_H

#include <stddef.h>

/* Once, on the main thread, before any request. 0, or -1 with err. */
int oauth_http_init(char *err, size_t errlen);

/*
 * POSTs body (application/x-www-form-urlencoded) to url, which must be
 * https://; the server's certificate and name are verified against
 * ca_file, or the system trust store if NULL.  No redirects are followed.
 * The whole exchange may take timeout_s seconds.  On an HTTP answer of any
 * status, returns 0 with the status in *status_r and the body (at most
 * max bytes, NUL-terminated, xmalloc'd; the caller wipes and frees it) in
 * *body_r, *len_r.  Returns -1 with err filled when no answer came
 * (network, TLS, timeout) or the body exceeds max.
 */
int oauth_http_post(const char *url, const char *ca_file, const char *body,
    int timeout_s, size_t max, long *status_r, char **body_r, size_t *len_r,
    char *err, size_t errlen);

#endif
