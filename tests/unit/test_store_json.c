/*
 * store/json: strings from any bytes become valid JSON: quotes,
 * backslashes and control characters escaped, valid UTF-8 kept, anything
 * else U+FFFD; numbers only when they are numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/json.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                               \
	X(test_plain)                                                          \
	X(test_escapes)                                                        \
	X(test_utf8)                                                           \
	X(test_fields)

TESTS(TEST_DECLARE)

static char out[1024];

static const char *
str(const char *s)
{
	FILE *f = fmemopen(out, sizeof(out), "w");

	json_str(f, s);
	fclose(f);
	return out;
}

static void
test_plain(void)
{
	ASSERT_STREQ(str("abc"), "\"abc\"");
	ASSERT_STREQ(str(""), "\"\"");
	ASSERT_STREQ(str(NULL), "null");
}

static void
test_escapes(void)
{
	ASSERT_STREQ(str("a\"b\\c"), "\"a\\\"b\\\\c\"");
	ASSERT_STREQ(str("\n\r\t"), "\"\\n\\r\\t\"");
	ASSERT_STREQ(str("\x01\x1f\x7f/"), "\"\\u0001\\u001f\\u007f/\"");
}

static void
test_utf8(void)
{
	ASSERT_STREQ(str("stra\xc3\x9f"
			 "e \xe2\x82\xac \xf0\x9f\x93\xa7"),
	    "\"stra\xc3\x9f"
	    "e \xe2\x82\xac \xf0\x9f\x93\xa7\"");
	/* A lone continuation byte, a truncated sequence, an overlong
	 * '/', a surrogate, beyond U+10FFFF, 0xff. */
	ASSERT_STREQ(str("a\x80"
			 "b"),
	    "\"a\\ufffdb\"");
	ASSERT_STREQ(str("\xe2\x82"), "\"\\ufffd\\ufffd\"");
	ASSERT_STREQ(str("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
	ASSERT_STREQ(str("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
	ASSERT_STREQ(str("\xf4\x90\x80\x80"),
	    "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	ASSERT_STREQ(str("\xff"), "\"\\ufffd\"");
}

static void
test_fields(void)
{
	FILE *f = fmemopen(out, sizeof(out), "w");

	json_field(f, "a", "x", 1);
	json_field(f, "b", NULL, 0);
	json_num(f, "n", "42");
	json_num(f, "m", "-7");
	json_num(f, "bad", "4x");
	json_num(f, "dash", "-");
	json_num(f, "none", NULL);
	fclose(f);
	ASSERT_STREQ(out,
	    "\"a\":\"x\",\"b\":null,\"n\":42,\"m\":-7,"
	    "\"bad\":null,\"dash\":null,\"none\":null");
}

TEST_MAIN(TESTS)
