/* fuzz-sources: ingestd/conf.c ingestd/base/log.c ingestd/base/xmalloc.c */
/* fuzz-sources: ingestd/retention.c */
/* fuzz-pkgs: libconfig */
/*
 * ingestd/conf: the input is written to a memfd and loaded as a config
 * file.  A refused config must name the file in its message; an accepted
 * one must hold only what the loader promises: every setting within what
 * its row in conf_settings() allows, every account with a password and
 * a unique name.
 *
 * conf_load() opens the files that password_file and ca_file name.  A few
 * safe ones wait in SANDBOX for the fuzzer to name (see fuzz_conf.dict).
 * Inputs that would make the loader read a device, a FIFO or /proc (which
 * can block or never end) or @include another file are skipped, as such a
 * run would test the host rather than the loader.
 */
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingestd/conf.h"

#define CHECK(e) ((e) ? (void)0 : abort())

#define SANDBOX "/tmp/ingestd-fuzz-conf"

static int memfd = -1;
static char conf_path[64];

static void
put_bytes(const char *name, mode_t mode, const void *p, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), SANDBOX "/%s", name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	CHECK(fd != -1);
	CHECK(write(fd, p, n) == (ssize_t)n);
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static void
put(const char *name, mode_t mode, const char *text)
{
	put_bytes(name, mode, text, strlen(text));
}

static void
init(void)
{
	static char long_line[5000];

	if (memfd != -1)
		return;
	memset(long_line, 'k', sizeof(long_line));
	if (mkdir(SANDBOX, 0700) == -1)
		CHECK(access(SANDBOX, W_OK) == 0);
	put("pw", 0600, "secret\n");
	put("pw-crlf", 0600, "secret\r\nnext\r\n");
	put("pw-open", 0644, "secret\n");
	put("pw-empty", 0600, "");
	put("pw-blank", 0600, "\r\nsecret\n");
	put_bytes("pw-nul", 0600, "p\0w\n", 4);
	put_bytes("pw-long", 0600, long_line, sizeof(long_line));
	put("ca.pem", 0644, "-----BEGIN CERTIFICATE-----\n");
	put("ca-locked.pem", 0000, "x\n");
	memfd = memfd_create("ingestd.conf", MFD_CLOEXEC);
	CHECK(memfd != -1);
	/* Mode 0600, so only a password file draws the warning. */
	CHECK(fchmod(memfd, 0600) == 0);
	snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", memfd);
}

/* Whether conf_load() may open path: nothing that can block or not end. */
static bool
safe_path(const char *path)
{
	char real[PATH_MAX];
	struct stat st;

	if (stat(path, &st) == -1)
		return true;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return false;
	if (realpath(path, real) == NULL)
		return false;
	return strncmp(real, "/proc/", 6) != 0 &&
	    strncmp(real, "/sys/", 5) != 0 && strncmp(real, "/dev/", 5) != 0;
}

/* Every string anywhere in the config, since any may end up a path. */
static bool
safe_setting(const config_setting_t *s, int depth)
{
	int i, n;

	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return safe_path(config_setting_get_string(s));
	if (!config_setting_is_aggregate(s))
		return true;
	/* conf.c looks three levels deep; deeper strings are never opened. */
	if (depth > 3)
		return true;
	n = config_setting_length(s);
	for (i = 0; i < n; i++)
		if (!safe_setting(config_setting_get_elem(s, i), depth + 1))
			return false;
	return true;
}

/* Parses the input as conf_load() will, to see what it would open. */
static bool
safe_input(const uint8_t *data, size_t size)
{
	config_t cfg;
	bool ok = true;
	FILE *f;

	if (memmem(data, size, "@include", 8) != NULL)
		return false;
	if (size == 0)
		return true;
	CHECK((f = fmemopen((void *)data, size, "r")) != NULL);
	config_init(&cfg);
	if (config_read(&cfg, f) == CONFIG_TRUE)
		ok = safe_setting(config_root_setting(&cfg), 0);
	config_destroy(&cfg);
	fclose(f);
	return ok;
}

/*
 * Every field a row of section id fills in base holds what the row
 * allows: a number in its range, one of its choices, a required string.
 */
static void
check_rows(enum conf_section id, const void *base)
{
	const struct conf_setting *t, *r;
	const struct conf_choice *ch;
	const char *p, *str;
	long long v;
	size_t k, n, z;
	unsigned u;
	int i;

	t = conf_settings(id, &n);
	for (k = 0; k < n; k++) {
		r = &t[k];
		p = (const char *)base + r->offset;
		switch (r->type) {
		case CONF_T_INT:
			memcpy(&i, p, sizeof(i));
			v = i;
			break;
		case CONF_T_UINT:
			memcpy(&u, p, sizeof(u));
			v = u;
			break;
		case CONF_T_SIZE:
			memcpy(&z, p, sizeof(z));
			v = (long long)z;
			break;
		case CONF_T_CHOICE:
			memcpy(&i, p, sizeof(i));
			for (ch = r->choices; ch->name != NULL; ch++)
				if (ch->value == i)
					break;
			CHECK(ch->name != NULL);
			continue;
		case CONF_T_STRING:
		case CONF_T_PATH:
		case CONF_T_FILE:
			memcpy(&str, p, sizeof(str));
			CHECK(!(r->flags & CONF_F_REQUIRED) ||
			    (str != NULL && *str != '\0'));
			continue;
		default:
			continue;
		}
		CHECK(v >= r->min && v <= r->max);
	}
}

static void
check_conf(const struct conf *c)
{
	size_t i, j, plen = strlen(conf_path);

	CHECK(strcmp(c->path, conf_path) == 0);
	CHECK(c->state_dir != NULL);
	check_rows(CONF_SECTION_TOP, c);
	check_rows(CONF_SECTION_DATABASE, c);
	CHECK(c->naccounts >= 1 && c->accounts != NULL);
	for (i = 0; i < c->naccounts; i++) {
		const struct conf_account *a = &c->accounts[i];

		check_rows(CONF_SECTION_ACCOUNT, a);
		CHECK(a->password != NULL && *a->password != '\0');
		CHECK(a->tls != CONF_TLS_NONE || a->allow_plaintext);
		CHECK(a->where != NULL && strncmp(a->where, conf_path,
		    plen) == 0 && a->where[plen] == ':');
		for (j = 0; j < i; j++)
			CHECK(strcmp(a->name, c->accounts[j].name) != 0);
	}
}

/*
 * libconfig 1.5 leaks the text of string tokens that its parser discards
 * at a syntax error or a duplicate setting (a plain libconfig program
 * shows the same).  That is its leak, bounded and only in a config that
 * is refused at start, so only leaks allocated by its scanner are let go;
 * a setting left allocated by a missing config_destroy() is still caught.
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct conf *c;
	size_t plen;

	init();
	if (!safe_input(data, size))
		return 0;
	CHECK(ftruncate(memfd, 0) == 0);
	CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);

	memset(err, 'x', sizeof(err));
	c = conf_load(conf_path, err, sizeof(err));
	if (c == NULL) {
		/* Every message starts with the file, and fits. */
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		plen = strlen(conf_path);
		CHECK(strncmp(err, conf_path, plen) == 0);
		CHECK(err[plen] == ':');
		return 0;
	}
	check_conf(c);
	conf_free(&c);
	CHECK(c == NULL);
	return 0;
}
