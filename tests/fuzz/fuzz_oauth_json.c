/* fuzz-sources: ingestd/oauth_json.c ingestd/base/xmalloc.c */
/* fuzz-sources: ingestd/base/log.c */
/*
 * ingestd/oauth_json: any input is parsed or refused without reading past
 * it; what is kept is a NUL-terminated string with no NUL inside, no
 * longer than the input; a refusal leaves nothing allocated and says
 * where; the verdict does not depend on the bytes after the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/oauth_json.h"

#define CHECK(e) ((e) ? (void)0 : abort())

static void
check_str(const char *s, size_t n)
{
	if (s != NULL)
		CHECK(strlen(s) <= n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oauth_json r, r2;
	char err[128], err2[128];
	char *copy;
	int rc, rc2;

	rc = oauth_json_parse((const char *)data, size, &r, err, sizeof(err));
	if (rc == 0) {
		check_str(r.access_token, size);
		check_str(r.refresh_token, size);
		check_str(r.token_type, size);
		check_str(r.error, size);
		check_str(r.error_description, size);
		CHECK(r.expires_in >= -1);
	} else {
		CHECK(err[0] != '\0');
		CHECK(r.access_token == NULL && r.refresh_token == NULL &&
		    r.token_type == NULL && r.error == NULL &&
		    r.error_description == NULL);
	}
	/* The same bytes followed by others: the parse of the first size
	 * bytes must not change. */
	copy = malloc(size + 8);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	memcpy(copy + size, "\"}]0 x", 7);
	rc2 = oauth_json_parse(copy, size, &r2, err2, sizeof(err2));
	CHECK(rc == rc2);
	if (rc == 0) {
		CHECK((r.access_token == NULL) == (r2.access_token == NULL));
		if (r.access_token != NULL)
			CHECK(strcmp(r.access_token, r2.access_token) == 0);
		CHECK(r.expires_in == r2.expires_in);
		oauth_json_release(&r2);
	}
	free(copy);
	oauth_json_release(&r);
	return 0;
}
