/*
 * ingestd/progress: the progress line's text for known and unknown
 * totals, the rate, the time left, and units.
 */
#include <string.h>

#include "ingestd/progress.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                               \
	X(test_unknown_totals)                                                 \
	X(test_known_totals)                                                   \
	X(test_messages_only)                                                  \
	X(test_units)                                                          \
	X(test_short_buffer)

TESTS(TEST_DECLARE)

static const char *
fmt(const char *what, uint64_t done, uint64_t bytes, uint64_t total,
    uint64_t total_bytes, double elapsed)
{
	static char buf[256];
	struct progress p = { what, done, bytes, total, total_bytes, elapsed };

	progress_format(&p, buf, sizeof(buf));
	return buf;
}

static void
test_unknown_totals(void)
{
	ASSERT_STREQ(fmt("verify", 0, 0, 0, 0, 0), "verify: 0 messages, 0 B");
	/* No rate before a tenth of a second. */
	ASSERT_STREQ(fmt("verify", 3, 2048, 0, 0, 0.05),
	    "verify: 3 messages, 2.0 KiB");
	ASSERT_STREQ(fmt("verify", 120, 12582912, 0, 0, 4),
	    "verify: 120 messages, 12.0 MiB, 3.0 MiB/s");
}

static void
test_known_totals(void)
{
	ASSERT_STREQ(fmt("export", 120, 12582912, 400, 41943040, 4),
	    "export: 120 of 400 messages, 12.0 MiB of 40.0 MiB, 3.0 MiB/s, "
	    "0:00:09 left");
	/* Hours, minutes and seconds. */
	ASSERT_STREQ(fmt("export", 1, 1024, 10, 1024ULL * 10000, 1),
	    "export: 1 of 10 messages, 1.0 KiB of 9.8 MiB, 1.0 KiB/s, "
	    "2:46:39 left");
	ASSERT_STREQ(fmt("export", 400, 41943040, 400, 41943040, 10),
	    "export: 400 of 400 messages, 40.0 MiB of 40.0 MiB, 4.0 MiB/s, "
	    "0:00:00 left");
	/* Nothing read yet: no time left to tell. */
	ASSERT_STREQ(fmt("export", 0, 0, 5, 5000, 1),
	    "export: 0 of 5 messages, 0 B of 4.9 KiB, 0 B/s");
}

static void
test_messages_only(void)
{
	/* By messages when the bytes' total is unknown. */
	ASSERT_STREQ(fmt("export", 25, 100, 100, 0, 5),
	    "export: 25 of 100 messages, 100 B, 20 B/s, 0:00:15 left");
}

static void
test_units(void)
{
	ASSERT_STREQ(fmt("v", 1, 1023, 0, 0, 0), "v: 1 messages, 1023 B");
	ASSERT_STREQ(fmt("v", 1, 1536ULL << 30, 0, 0, 0),
	    "v: 1 messages, 1.5 TiB");
	ASSERT_STREQ(fmt("v", 1, 3ULL << 50, 0, 0, 0),
	    "v: 1 messages, 3072.0 TiB");
}

static void
test_short_buffer(void)
{
	struct progress p = { "export", 120, 12582912, 400, 41943040, 4 };
	char buf[16];

	memset(buf, 'x', sizeof(buf));
	progress_format(&p, buf, sizeof(buf));
	ASSERT_STREQ(buf, "export: 120 of ");
}

TEST_MAIN(TESTS)
