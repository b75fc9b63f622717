/*
 * ingestd/oauth_json: token responses as providers send them, RFC 6749's
 * error responses, and bodies that must be refused, each with where.
 */
#include <stdio.h>
#include <string.h>

#include "ingestd/oauth_json.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                         \
	X(test_providers)                                                \
	X(test_errors)                                                   \
	X(test_escapes)                                                  \
	X(test_refused)                                                  \
	X(test_bounds)

TESTS(TEST_DECLARE)

static void
parse_ok(const char *json, struct oauth_json *r)
{
	char err[128] = "";

	if (oauth_json_parse(json, strlen(json), r, err, sizeof(err)) != 0)
		TEST_FAIL_("refused %s: %s", json, err);
}

static void
refused(const char *json, size_t n, const char *why)
{
	struct oauth_json r;
	char err[128] = "";

	if (oauth_json_parse(json, n, &r, err, sizeof(err)) == 0)
		TEST_FAIL_("accepted %.*s", n > 80 ? 80 : (int)n, json);
	if (strstr(err, why) == NULL)
		TEST_FAIL_("%.*s: \"%s\" does not say \"%s\"",
		    n > 80 ? 80 : (int)n, json, err, why);
	ASSERT_TRUE(r.access_token == NULL && r.error == NULL);
}

static void
test_providers(void)
{
	struct oauth_json r;

	/* Google */
	parse_ok("{\n  \"access_token\": \"ya29.a0AfB_byC\",\n  "
	    "\"expires_in\": 3599,\n  \"scope\": "
	    "\"https://mail.google.com/\",\n  \"token_type\": \"Bearer\"\n}",
	    &r);
	ASSERT_STREQ(r.access_token, "ya29.a0AfB_byC");
	ASSERT_EQ(r.expires_in, 3599);
	ASSERT_STREQ(r.token_type, "Bearer");
	ASSERT_TRUE(r.refresh_token == NULL && r.error == NULL);
	oauth_json_release(&r);
	ASSERT_TRUE(r.access_token == NULL);
	/* Microsoft: a rotated refresh token; v1 sent expires_in as a
	 * string. */
	parse_ok("{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office"
	    ".com/POP.AccessAsUser.All\",\"expires_in\":\"4220\",\"ext_expires_"
	    "in\":4220,\"access_token\":\"eyJ0eXAi\",\"refresh_token\":"
	    "\"0.AXEA\",\"id_token\":{\"nested\":[1,2,{\"x\":null}]}}", &r);
	ASSERT_STREQ(r.access_token, "eyJ0eXAi");
	ASSERT_STREQ(r.refresh_token, "0.AXEA");
	ASSERT_EQ(r.expires_in, 4220);
	oauth_json_release(&r);
	/* No expires_in. */
	parse_ok("{\"access_token\":\"t\"}", &r);
	ASSERT_EQ(r.expires_in, -1);
	oauth_json_release(&r);
	parse_ok(" {} ", &r);
	ASSERT_TRUE(r.access_token == NULL);
	oauth_json_release(&r);
}

static void
test_errors(void)
{
	struct oauth_json r;

	parse_ok("{\"error\":\"invalid_grant\",\"error_description\":\"Token "
	    "has been expired or revoked.\"}", &r);
	ASSERT_STREQ(r.error, "invalid_grant");
	ASSERT_STREQ(r.error_description,
	    "Token has been expired or revoked.");
	ASSERT_TRUE(r.access_token == NULL);
	oauth_json_release(&r);
	parse_ok("{\"error\":\"invalid_client\",\"error_codes\":[7000215],"
	    "\"timestamp\":\"2024-01-01 00:00:00Z\",\"trace_id\":\"a-b\"}", &r);
	ASSERT_STREQ(r.error, "invalid_client");
	oauth_json_release(&r);
}

static void
test_escapes(void)
{
	struct oauth_json r;

	parse_ok("{\"access_token\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\u20ac"
	    "\\ud83d\\ude00\"}", &r);
	ASSERT_STREQ(r.access_token,
	    "a\"b\\c/d\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	oauth_json_release(&r);
}

static void
test_refused(void)
{
	refused("", 0, "not a JSON object at byte 0");
	refused("[]", 2, "not a JSON object");
	refused("{\"access_token\":1}", 18, "expected a string value at "
	    "byte 16");
	refused("{\"access_token\":\"a\",\"access_token\":\"b\"}", 39,
	    "a member twice");
	refused("{\"expires_in\":1.5}", 18, "expires_in is not a number");
	refused("{\"expires_in\":-3}", 17, "expires_in is not a number");
	refused("{\"expires_in\":\"12x\"}", 20, "expires_in is not");
	refused("{\"expires_in\":1,\"expires_in\":2}", 31, "expires_in twice");
	refused("{\"a\":1,}", 8, "expected a string");
	refused("{\"a\":01}", 8, "expected ',' or '}'");
	refused("{\"a\":tru}", 9, "bad value");
	refused("{\"a\":\"\x01\"}", 9, "control character in a string at "
	    "byte 6");
	refused("{\"a\":\"\\x\"}", 10, "bad escape");
	refused("{\"a\":\"\\ud800\"}", 14, "lone surrogate");
	refused("{\"a\":\"\\udc00\"}", 14, "lone surrogate");
	refused("{\"access_token\":\"\\u0000\"}", 25, "NUL in a string");
	refused("{\"a\":\"abc", 9, "unterminated string");
	refused("{\"a\":1} x", 9, "data after the object at byte 8");
	refused("{\"a\":1}\0", 8, "data after the object");
	refused("{\"a\":[1 2]}", 11, "expected ',' or ']'");
}

/* {"a": followed by depth brackets: the top object makes depth + 1. */
static size_t
nest(char *out, unsigned depth)
{
	size_t n = (size_t)sprintf(out, "{\"a\":"), i;

	for (i = 0; i < depth; i++)
		out[n++] = '[';
	for (i = 0; i < depth; i++)
		out[n++] = ']';
	out[n++] = '}';
	out[n] = '\0';
	return n;
}

static void
test_bounds(void)
{
	static char big[OAUTH_JSON_MAX + 2];
	struct oauth_json r;
	char deep[64], err[128];
	size_t n;

	/* Nesting: the top object and 15 levels inside pass, 16 do not. */
	nest(deep, OAUTH_JSON_DEPTH - 1);
	parse_ok(deep, &r);
	oauth_json_release(&r);
	n = nest(deep, OAUTH_JSON_DEPTH);
	refused(deep, n, "nested too deeply");
	/* Size: a body of OAUTH_JSON_MAX bytes is read, one more is not. */
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[OAUTH_JSON_MAX - 1] = '}';
	ASSERT_EQ(oauth_json_parse(big, OAUTH_JSON_MAX, &r, err, sizeof(err)),
	    0);
	oauth_json_release(&r);
	big[OAUTH_JSON_MAX - 1] = ' ';
	big[OAUTH_JSON_MAX] = '}';
	refused(big, OAUTH_JSON_MAX + 1, "longer than 65536 bytes");
}

TEST_MAIN(TESTS)
