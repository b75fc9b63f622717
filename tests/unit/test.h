/*
 * A minimal unit-test framework.  A test file defines
 *
 *   #define TESTS(X) X(test_one) X(test_two)
 *   TESTS(TEST_DECLARE)
 *   ... static void test_one(void) { ... } ...
 *   TEST_MAIN(TESTS)
 *
 * The ASSERT_* macros print both operands and abort() even under NDEBUG, so
 * a failure can never pass silently.  main() prints one line per test and a
 * closing "N passed, N failed" line.
 */
#ifndef INGESTD_TEST_H
#define INGESTD_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL_(...)                                                  \
	do {                                                             \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);          \
		fprintf(stderr, __VA_ARGS__);                            \
		fputc('\n', stderr);                                     \
		abort();                                                 \
	} while (0)

#define ASSERT_TRUE(e)                                                   \
	do {                                                             \
		if (!(e))                                                \
			TEST_FAIL_("expected true: %s", #e);             \
	} while (0)

#define ASSERT_EQ(a, b)                                                  \
	do {                                                             \
		intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);         \
		if (a_ != b_)                                            \
			TEST_FAIL_("%s == %s: %jd != %jd", #a, #b, a_, b_); \
	} while (0)

#define ASSERT_STREQ(a, b)                                               \
	do {                                                             \
		const char *a_ = (a), *b_ = (b);                         \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)     \
			TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b,  \
			    a_ ? a_ : "(null)", b_ ? b_ : "(null)");     \
	} while (0)

#define ASSERT_MEMEQ(a, b, n)                                            \
	do {                                                             \
		size_t n_ = (n);                                         \
		if (memcmp((a), (b), n_) != 0)                           \
			TEST_FAIL_("%s == %s (%zu bytes): \"%.*s\" != " \
			    "\"%.*s\"", #a, #b, n_, (int)n_,               \
			    (const char *)(a),                           \
			    (int)n_, (const char *)(b));                 \
	} while (0)

#define TEST_DECLARE(name) static void name(void);
#define TEST_ENTRY(name) { #name, name },

#define TEST_MAIN(LIST)                                                  \
	int                                                              \
	main(void)                                                       \
	{                                                                \
		static const struct {                                    \
			const char *name;                                \
			void (*fn)(void);                                \
		} tests[] = { LIST(TEST_ENTRY) };                        \
		size_t i, n = sizeof(tests) / sizeof(tests[0]);          \
		for (i = 0; i < n; i++) {                                \
			tests[i].fn();                                   \
			printf("ok %s\n", tests[i].name);                \
		}                                                        \
		printf("%zu passed, 0 failed\n", n);                     \
		return 0;                                                \
	}

#endif
