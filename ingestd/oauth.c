/*
 * The token thread: a loop of its own (a worker with no sessions) that
 * runs one request at a time, blocking, in the order they were posted.
 */
#include "ingestd/oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "ingestd/conf.h"
#include "ingestd/oauth_http.h"
#include "ingestd/oauth_json.h"
#include "ingestd/worker.h"
#include "pop3/sasl.h"

extern char **environ;

/* Longest file line (secret, refresh token) and command output kept. */
#define SECRET_MAX 65536
#define STDERR_MAX 4096
/* A cached token is used until this long before it expires (at most half
 * its lifetime), so a poll never starts with one about to die. */
#define EXPIRY_MARGIN_S 60

struct entry {
	char *key;
	char *access;		/* NULL: none cached */
	uint64_t expires_ms;	/* CLOCK_MONOTONIC */
	/* A rotated refresh token the file could not take yet: used, and
	 * saved again, before anything else. */
	char *unsaved_refresh;
};

struct oauth {
	struct worker *thread;
	struct entry *cache;	/* token thread only */
	size_t ncache;
};

struct forget {
	struct oauth *o;
	const struct conf_account *acct;
};

static void
wipe_free(char **p)
{
	if (*p != NULL)
		explicit_bzero(*p, strlen(*p));
	free(*p); *p = NULL;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
seterr(struct oauth_req *r, enum oauth_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(struct oauth_req *r, enum oauth_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	r->status = st;
}

/* Text from a server or a command, made fit for a log line. */
static void
printable(char *dst, size_t len, const char *src, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < len; i++)
		dst[o++] = (unsigned char)src[i] >= 0x20 &&
		    (unsigned char)src[i] < 0x7f ? src[i] : '?';
	dst[o] = '\0';
}

/* ---- files ---- */

/* The first line of path, without its ending, in a new string. */
static char *
read_first_line(const char *path, char *err, size_t errlen)
{
	char *buf = xmalloc(SECRET_MAX + 1), *nl, *line;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		free(buf);
		return NULL;
	}
	while (len < SECRET_MAX &&
	    (n = read(fd, buf + len, SECRET_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	if ((nl = memchr(buf, '\n', len)) != NULL)
		*nl = '\0';
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "%s: the first line is empty", path);
		explicit_bzero(buf, SECRET_MAX + 1);
		free(buf);
		return NULL;
	}
	line = xstrdup(buf);
	explicit_bzero(buf, SECRET_MAX + 1);
	free(buf);
	return line;
}

/*
 * Replaces path's content with line and a newline, atomically and
 * durably: a temporary file beside it with the same mode and owner,
 * fsync, rename over it, fsync of the directory.  Whoever reads the file
 * sees the old token or the new one, never a mix or nothing.
 */
static int
save_atomically(const char *path, const char *line, char *err,
    size_t errlen)
{
	char *tmp = xasprintf("%s.XXXXXX", path), *dcopy = xstrdup(path);
	size_t len = strlen(line), off = 0;
	struct stat st;
	ssize_t n;
	int fd = -1, dfd;

	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot create a file beside %s: %s",
		    path, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, st.st_mode & 07777) == -1 ||
	    ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
	    fchown(fd, st.st_uid, st.st_gid) == -1)) {
		snprintf(err, errlen, "cannot give %s the mode and owner of "
		    "%s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	while (off < len + 1) {
		n = off < len ? write(fd, line + off, len - off) :
		    write(fd, "\n", 1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "write %s: %s", tmp,
			    strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	n = close(fd);
	fd = -1;
	if (n == -1) {
		snprintf(err, errlen, "close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) == -1) {
		snprintf(err, errlen, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto fail;
	}
	if ((dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	free(tmp);
	free(dcopy);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	free(tmp);
	free(dcopy);
	return -1;
}

/* ---- token_command ---- */

/*
 * The command's argv: split at blanks, no quoting, no shell; but a
 * command that starts with "sh -c" (or bash, dash) hands the rest of the
 * line, less one pair of quotes around it, to that shell as one argument,
 * for pipes and quoting: sh -c 'pass show mail | head -1'.
 */
static char **
split_command(const char *cmd, char **copy_r)
{
	char *copy = xstrdup(cmd), *p = copy, **argv = NULL, *w;
	size_t n = 0;
	const char *base;

	*copy_r = copy;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		argv = xreallocarray(argv, n + 2, sizeof(*argv));
		if (n == 2 && strcmp(argv[1], "-c") == 0) {
			base = strrchr(argv[0], '/');
			base = base != NULL ? base + 1 : argv[0];
			if (strcmp(base, "sh") == 0 ||
			    strcmp(base, "bash") == 0 ||
			    strcmp(base, "dash") == 0) {
				w = p + strlen(p);
				while (w > p && (w[-1] == ' ' || w[-1] == '\t'))
					*--w = '\0';
				/* One pair of quotes around the script goes. */
				if (w - p >= 2 && (*p == '\'' || *p == '"') &&
				    w[-1] == *p) {
					w[-1] = '\0';
					p++;
				}
				argv[n++] = p;
				break;
			}
		}
		w = p;
		p += strcspn(p, " \t");
		if (*p != '\0')
			*p++ = '\0';
		argv[n++] = w;
	}
	argv = xreallocarray(argv, n + 1, sizeof(*argv));
	argv[n] = NULL;
	return argv;
}

/* Logs what the command wrote on stderr, a line at a time. */
static void
log_stderr(const struct conf_account *a, const char *p, size_t n,
    bool failed)
{
	char line[256];
	size_t i = 0, j;

	while (i < n) {
		for (j = i; j < n && p[j] != '\n'; j++)
			;
		if (j > i) {
			printable(line, sizeof(line), p + i, j - i);
			if (failed)
				log_warnx("mbox=%s token_command: %s", a->name,
				    line);
			else
				log_info("mbox=%s token_command: %s", a->name,
				    line);
		}
		i = j + 1;
	}
}

static void
run_command(struct oauth_req *r)
{
	const struct conf_account *a = r->acct;
	char *copy, **argv, *out = xmalloc(SECRET_MAX + 1), *nl;
	char errbuf[STDERR_MAX], first[128] = "";
	size_t outlen = 0, errlen = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, rc, status = 0;
	struct pollfd pf[2];
	uint64_t deadline;
	sigset_t none, def;
	bool timed_out = false;
	pid_t pid;
	ssize_t n;

	argv = split_command(a->token_command, &copy);
	if (pipe2(po, O_CLOEXEC) == -1 || pipe2(pe, O_CLOEXEC) == -1) {
		seterr(r, OAUTH_TEMPORARY, "token_command: pipe: %s",
		    strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	posix_spawnattr_init(&attr);
	/* Threads here block TERM, INT and HUP, and PIPE is ignored: the
	 * command gets the defaults. */
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	if (rc != 0) {
		seterr(r, OAUTH_TEMPORARY, "token_command: cannot run %s: %s",
		    argv[0], strerror(rc));
		goto out;
	}
	deadline = mono_ms() + (uint64_t)a->token_timeout * 1000;
	pf[0] = (struct pollfd){ .fd = po[0], .events = POLLIN };
	pf[1] = (struct pollfd){ .fd = pe[0], .events = POLLIN };
	while (pf[0].fd != -1 || pf[1].fd != -1) {
		uint64_t now = mono_ms();
		char sink[4096];
		int k;

		if (now >= deadline) {
			timed_out = true;
			break;
		}
		if (poll(pf, 2, (int)(deadline - now)) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (k = 0; k < 2; k++) {
			char *dst = k == 0 ? out : errbuf;
			size_t *len = k == 0 ? &outlen : &errlen;
			size_t cap = k == 0 ? SECRET_MAX : sizeof(errbuf);

			if (pf[k].fd == -1 || pf[k].revents == 0)
				continue;
			/* Past the cap, read on and drop, so the command
			 * never blocks on a full pipe. */
			if (*len < cap)
				n = read(pf[k].fd, dst + *len, cap - *len);
			else
				n = read(pf[k].fd, sink, sizeof(sink));
			if (n > 0 && *len < cap)
				*len += (size_t)n;
			else if (n == 0 || (n == -1 && errno != EINTR &&
			    errno != EAGAIN))
				pf[k].fd = -1;
		}
	}
	if (timed_out)
		(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	out[outlen] = '\0';
	if ((nl = memchr(out, '\n', outlen)) != NULL)
		*nl = '\0';
	outlen = strlen(out);
	if (outlen > 0 && out[outlen - 1] == '\r')
		out[--outlen] = '\0';
	if (errlen > 0) {
		nl = memchr(errbuf, '\n', errlen);
		printable(first, sizeof(first), errbuf,
		    nl != NULL ? (size_t)(nl - errbuf) : errlen);
	}
	log_stderr(a, errbuf, errlen, timed_out || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0);
	if (timed_out)
		seterr(r, OAUTH_TEMPORARY, "token_command timed out after %d "
		    "s and was killed", a->token_timeout);
	else if (WIFSIGNALED(status))
		seterr(r, OAUTH_TEMPORARY, "token_command was killed by "
		    "signal %d%s%s", WTERMSIG(status), first[0] ? ": " : "",
		    first);
	else if (WEXITSTATUS(status) != 0)
		seterr(r, OAUTH_TEMPORARY, "token_command exited with status "
		    "%d%s%s", WEXITSTATUS(status), first[0] ? ": " : "",
		    first);
	else if (outlen == 0)
		seterr(r, OAUTH_TEMPORARY, "token_command printed no token on "
		    "its first line");
	else if (!pop3_sasl_token_ok(out))
		seterr(r, OAUTH_TEMPORARY, "token_command printed a token of "
		    "%zu octets that holds blanks or control characters, or "
		    "is longer than %d", outlen, POP3_TOKEN_MAX);
	else {
		r->token = xstrdup(out);
		r->fresh = true;
		r->status = OAUTH_OK;
	}
out:
	if (po[0] != -1)
		close(po[0]);
	if (pe[0] != -1)
		close(pe[0]);
	explicit_bzero(out, SECRET_MAX + 1);
	free(out);
	free(argv);
	free(copy);
}

/* ---- the token endpoint ---- */

static void
form_add(char **body, size_t *len, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t vlen = strlen(value), need = strlen(name) + 3 * vlen + 3, i;
	char *p, *old = *body;

	p = xmalloc(*len + need + 1);
	memcpy(p, old, *len);
	explicit_bzero(old, *len);
	free(old);
	*body = p;
	p += *len;
	if (*len > 0)
		*p++ = '&';
	p += sprintf(p, "%s=", name);
	for (i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			*p++ = (char)c;
		else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	*len = (size_t)(p - *body);
}

static char *
cache_key(const struct conf_account *a)
{
	if (a->oauth_grant == CONF_GRANT_CLIENT_CREDENTIALS)
		return xasprintf("client_credentials\n%s\n%s\n%s",
		    a->oauth_token_url, a->oauth_client_id,
		    a->oauth_scope != NULL ? a->oauth_scope : "");
	return xasprintf("refresh_token\n%s\n%s\n%s", a->oauth_token_url,
	    a->oauth_client_id, a->oauth_refresh_token_file);
}

static struct entry *
cache_entry(struct oauth *o, const struct conf_account *a)
{
	char *key = cache_key(a);
	size_t i;

	for (i = 0; i < o->ncache; i++)
		if (strcmp(o->cache[i].key, key) == 0) {
			free(key);
			return &o->cache[i];
		}
	o->cache = xreallocarray(o->cache, o->ncache + 1, sizeof(*o->cache));
	o->cache[o->ncache] = (struct entry){ .key = key };
	return &o->cache[o->ncache++];
}

static bool
is_reauth_error(const char *e)
{
	return e != NULL && (strcmp(e, "invalid_grant") == 0 ||
	    strcmp(e, "invalid_client") == 0 ||
	    strcmp(e, "unauthorized_client") == 0);
}

static void
request_token(struct oauth *o, struct oauth_req *r)
{
	const struct conf_account *a = r->acct;
	struct entry *e = cache_entry(o, a);
	bool rt = a->oauth_grant == CONF_GRANT_REFRESH_TOKEN;
	char *body = xstrdup(""), *refresh = NULL, *secret = NULL;
	char *answer = NULL, err[512], desc[160] = "", code[64] = "";
	struct oauth_json j = { .expires_in = -1 };
	uint64_t now = mono_ms(), life;
	size_t len = 0, alen = 0;
	long status = 0;

	if (e->access != NULL && now < e->expires_ms) {
		r->token = xstrdup(e->access);
		r->status = OAUTH_OK;
		goto out;
	}
	wipe_free(&e->access);
	if (rt && e->unsaved_refresh != NULL) {
		/* Saved first: the old one in the file may be dead. */
		if (save_atomically(a->oauth_refresh_token_file,
		    e->unsaved_refresh, err, sizeof(err)) == -1) {
			seterr(r, OAUTH_TEMPORARY, "cannot save the rotated "
			    "refresh token: %s", err);
			goto out;
		}
		log_info("mbox=%s saved the rotated refresh token to %s",
		    a->name, a->oauth_refresh_token_file);
		wipe_free(&e->unsaved_refresh);
	}
	if (rt && (refresh = read_first_line(a->oauth_refresh_token_file, err,
	    sizeof(err))) == NULL) {
		seterr(r, OAUTH_PERMANENT, "refresh_token_file: %s", err);
		goto out;
	}
	if (a->oauth_client_secret_file != NULL &&
	    (secret = read_first_line(a->oauth_client_secret_file, err,
	    sizeof(err))) == NULL) {
		seterr(r, OAUTH_PERMANENT, "client_secret_file: %s", err);
		goto out;
	}
	form_add(&body, &len, "grant_type", rt ? "refresh_token" :
	    "client_credentials");
	if (rt)
		form_add(&body, &len, "refresh_token", refresh);
	form_add(&body, &len, "client_id", a->oauth_client_id);
	if (secret != NULL)
		form_add(&body, &len, "client_secret", secret);
	if (a->oauth_scope != NULL)
		form_add(&body, &len, "scope", a->oauth_scope);
	if (oauth_http_post(a->oauth_token_url, a->oauth_ca_file, body,
	    a->token_timeout, OAUTH_JSON_MAX, &status, &answer, &alen, err,
	    sizeof(err)) == -1) {
		seterr(r, OAUTH_TEMPORARY, "token request: %s", err);
		goto out;
	}
	if (oauth_json_parse(answer, alen, &j, err, sizeof(err)) == -1) {
		seterr(r, status >= 200 && status < 300 ? OAUTH_TEMPORARY :
		    status >= 500 || status == 429 ? OAUTH_TEMPORARY :
		    OAUTH_PERMANENT, "token endpoint: HTTP %ld, answer "
		    "unreadable: %s", status, err);
		goto out;
	}
	if (j.error != NULL)
		printable(code, sizeof(code), j.error, strlen(j.error));
	if (j.error_description != NULL)
		printable(desc, sizeof(desc), j.error_description,
		    strlen(j.error_description));
	if (status != 200 || j.access_token == NULL) {
		seterr(r, is_reauth_error(j.error) ? OAUTH_REAUTH :
		    status >= 500 || status == 429 || status == 200 ?
		    OAUTH_TEMPORARY : OAUTH_PERMANENT,
		    "token endpoint: HTTP %ld%s%s%s%s", status,
		    code[0] ? ", " : "", code, desc[0] ? ": " : "", desc);
		goto out;
	}
	if (!pop3_sasl_token_ok(j.access_token)) {
		seterr(r, OAUTH_TEMPORARY, "token endpoint: an access token "
		    "that holds blanks or control characters, or is longer "
		    "than %d octets", POP3_TOKEN_MAX);
		goto out;
	}
	if (j.token_type != NULL && strcasecmp(j.token_type, "bearer") != 0)
		log_warnx("mbox=%s token endpoint: token_type is not Bearer",
		    a->name);
	/* A rotated refresh token is saved before the access token that
	 * came with it is used: a crash between the two loses nothing. */
	if (rt && j.refresh_token != NULL &&
	    strcmp(j.refresh_token, refresh) != 0) {
		if (save_atomically(a->oauth_refresh_token_file,
		    j.refresh_token, err, sizeof(err)) == -1) {
			e->unsaved_refresh = xstrdup(j.refresh_token);
			seterr(r, OAUTH_TEMPORARY, "cannot save the rotated "
			    "refresh token (kept in memory and saved before "
			    "the next request): %s", err);
			goto out;
		}
		log_info("mbox=%s saved the rotated refresh token to %s",
		    a->name, a->oauth_refresh_token_file);
	}
	if (j.expires_in > 0) {
		life = (uint64_t)j.expires_in;
		life -= life / 2 < EXPIRY_MARGIN_S ? life / 2 :
		    EXPIRY_MARGIN_S;
		e->access = xstrdup(j.access_token);
		e->expires_ms = now + life * 1000;
	}
	log_info("mbox=%s got an access token from %s (expires in %lld s)",
	    a->name, a->oauth_token_url, j.expires_in);
	r->token = xstrdup(j.access_token);
	r->fresh = true;
	r->status = OAUTH_OK;
out:
	oauth_json_release(&j);
	if (answer != NULL) {
		explicit_bzero(answer, alen);
		free(answer);
	}
	explicit_bzero(body, len);
	free(body);
	wipe_free(&refresh);
	wipe_free(&secret);
}

/* ---- the thread's side ---- */

struct job {
	struct oauth *o;
	struct oauth_req *req;
};

static void
on_request(void *arg)
{
	struct job *j = arg;
	struct oauth_req *r = j->req;

	r->status = OAUTH_TEMPORARY;
	r->token = NULL;
	r->fresh = false;
	r->error[0] = '\0';
	if (r->acct->token_command != NULL)
		run_command(r);
	else
		request_token(j->o, r);
	free(j);
	loop_post(r->reply, r->done, r->arg);
}

static void
on_forget(void *arg)
{
	struct forget *f = arg;
	struct entry *e;

	if (f->acct->has_oauth) {
		e = cache_entry(f->o, f->acct);
		wipe_free(&e->access);
	}
	free(f);
}

struct oauth *
oauth_new(char *err, size_t errlen)
{
	struct oauth *o = xcalloc(1, sizeof(*o));

	if (oauth_http_init(err, errlen) == -1 ||
	    (o->thread = worker_start(-1, err, errlen)) == NULL) {
		free(o);
		return NULL;
	}
	return o;
}

void
oauth_free(struct oauth **op)
{
	struct oauth *o = *op;
	size_t i;

	if (o == NULL)
		return;
	worker_stop(&o->thread);
	for (i = 0; i < o->ncache; i++) {
		free(o->cache[i].key);
		wipe_free(&o->cache[i].access);
		wipe_free(&o->cache[i].unsaved_refresh);
	}
	free(o->cache);
	free(o); *op = NULL;
}

void
oauth_request(struct oauth *o, struct oauth_req *req)
{
	struct job *j = xmalloc(sizeof(*j));

	j->o = o;
	j->req = req;
	loop_post(worker_loop(o->thread), on_request, j);
}

void
oauth_forget(struct oauth *o, const struct conf_account *a)
{
	struct forget *f = xmalloc(sizeof(*f));

	f->o = o;
	f->acct = a;
	loop_post(worker_loop(o->thread), on_forget, f);
}

void
oauth_req_release(struct oauth_req *req)
{
	wipe_free(&req->token);
}
