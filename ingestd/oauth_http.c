/*
 * libcurl's easy interface, one handle per request: token requests are
 * rare (once per token lifetime per account or application), so there is
 * nothing to gain from keeping connections.
 */
#include "ingestd/oauth_http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"

struct sink {
	char *p;
	size_t len, cap, max;
	bool over;
};

static size_t
on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb, ncap;
	char *np;

	if (n > s->max - s->len) {
		s->over = true;
		return 0;	/* makes curl fail the transfer */
	}
	if (s->cap - s->len < n + 1) {
		ncap = (s->len + n + 1) * 2;
		if (ncap > s->max + 1)
			ncap = s->max + 1;
		np = xmalloc(ncap);
		if (s->p != NULL) {
			memcpy(np, s->p, s->len);
			explicit_bzero(s->p, s->cap);
			free(s->p);
		}
		s->p = np;
		s->cap = ncap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
	return n;
}

int
oauth_http_init(char *err, size_t errlen)
{
	CURLcode rc;

	if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

int
oauth_http_post(const char *url, const char *ca_file, const char *body,
    int timeout_s, size_t max, long *status_r, char **body_r, size_t *len_r,
    char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct sink s = { .max = max };
	struct curl_slist *hdr = NULL;
	CURL *h;
	CURLcode rc;
	int r = -1;

	if (strncmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "%s: not an https:// URL", url);
		return -1;
	}
	if ((h = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "libcurl: cannot create a handle");
		return -1;
	}
	hdr = curl_slist_append(hdr, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "ingestd");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	rc = curl_easy_perform(h);
	if (s.over)
		snprintf(err, errlen, "%s: answer longer than %zu bytes", url,
		    max);
	else if (rc != CURLE_OK)
		snprintf(err, errlen, "%s: %s", url, cerr[0] != '\0' ? cerr :
		    curl_easy_strerror(rc));
	else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status_r);
		if (s.p == NULL)
			s.p = xstrdup("");
		*body_r = s.p;
		*len_r = s.len;
		s.p = NULL;
		r = 0;
	}
	if (s.p != NULL) {
		explicit_bzero(s.p, s.cap);
		free(s.p);
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return r;
}
