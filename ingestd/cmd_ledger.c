/*
 * The ledger's commands (cmd_ledger.h): key generation, checkpoints,
 * verification of the whole ledger against the archive, proofs of a
 * message's ingest, and their offline verification.
 */
#include "ingestd/cmd_ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "ingestd/cmdline.h"
#include "ingestd/conf.h"
#include "ingestd/pgembed.h"
#include "store/b64.h"
#include "store/db.h"
#include "store/hash.h"
#include "store/ledger.h"
#include "store/merkle.h"
#include "store/note.h"
#include "store/pipe.h"
#include "store/reader.h"
#include "store/sign.h"

#define DEFAULT_CONFIG "/etc/ingestd/ingestd.conf"

enum {
	EX_OK = 0,
	EX_FAILED = 1,
	EX_USAGE = 2,
	EX_STARTUP = 3,
};

/* Files a proof or a message is read from: bounded, not the archive. */
#define PROOF_MAX (16 << 20)

struct lopts {
	const char *config;
	const char *out;
	const char *name;
	const char *key;
	const char *since;
	char *const *args;	/* after the command */
	int nargs;
};

struct lctx {
	struct conf *conf;
	char *conninfo;
	bool embedded;
	struct db *db;
};

static const char *const ledger_cmds[] = { "ledger", "prove",
	"verify-proof" };

bool
cmd_ledger_wants(int argc, char **argv)
{
	int i = cmdline_command(argc, argv);
	size_t k;

	for (k = 0; i > 0 && k < sizeof(ledger_cmds) / sizeof(ledger_cmds[0]);
	    k++)
		if (strcmp(argv[i], ledger_cmds[k]) == 0)
			return true;
	return false;
}

static void
lusage(FILE *f)
{
	fprintf(f,
	    "usage: ingestd [-c FILE] [-v] ledger keygen --out FILE "
	    "[--name NAME]\n"
	    "       ingestd [-c FILE] [-v] ledger checkpoint\n"
	    "       ingestd [-c FILE] [-v] ledger verify [--since CHECKPOINT] "
	    "[--key VERIFIERKEY]\n"
	    "       ingestd [-c FILE] [-v] prove SHA256 --out FILE\n"
	    "       ingestd verify-proof PROOF MESSAGE --key VERIFIERKEY\n");
}

/* Reads a whole file of at most max bytes; NULL with err filled. */
static char *
read_file(const char *path, size_t max, size_t *n_r, char *err,
    size_t errlen)
{
	char *buf = NULL;
	size_t n = 0, cap = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				snprintf(err, errlen, "%s: larger than %zu "
				    "bytes", path, max);
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			buf = xreallocarray(buf, cap + 1, 1);
		}
		if ((r = read(fd, buf + n, cap - n)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*n_r = n;
	return buf;
fail:
	close(fd);
	free(buf); buf = NULL;
	return NULL;
}

static int
lopen_database(struct lctx *x)
{
	char err[1024];
	int applied;

	if (x->conf->conninfo != NULL)
		x->conninfo = xstrdup(x->conf->conninfo);
	else {
		if (mkdir(x->conf->state_dir, 0700) == -1 && errno != EEXIST) {
			log_warnx("cannot create state_dir %s: %s",
			    x->conf->state_dir, strerror(errno));
			return -1;
		}
		if (pgembed_start(x->conf->state_dir, x->conf->pg_bindir,
		    &x->conninfo, &x->embedded, err, sizeof(err)) == -1) {
			log_warnx("embedded PostgreSQL under %s: %s",
			    x->conf->state_dir, err);
			return -1;
		}
	}
	if ((x->db = db_connect(x->conninfo, err, sizeof(err))) == NULL) {
		log_warnx("%s", err);
		return -1;
	}
	if (db_migrate(x->db, &applied) == -1) {
		log_warnx("database migration: %s", db_error(x->db));
		return -1;
	}
	return 0;
}

static void
lclose_database(struct lctx *x)
{
	db_close(&x->db);
	if (x->embedded)
		pgembed_stop(x->conf->state_dir, x->conf->pg_bindir);
	free(x->conninfo); x->conninfo = NULL;
}

/* The configured key and its verifier; NULL with the reason logged. */
static struct sign_key *
lkey_load(const struct conf *c, struct note_verifier *v)
{
	unsigned char pub[SIGN_PUBLIC_LEN];
	struct sign_key *k;
	char err[512];

	if (c->ledger_signing_key == NULL) {
		log_warnx("%s: 'ledger.signing_key' is not set; make a key "
		    "with ingestd ledger keygen --out FILE and name it there",
		    c->path);
		return NULL;
	}
	if ((k = sign_key_load(c->ledger_signing_key, err,
	    sizeof(err))) == NULL) {
		log_warnx("'ledger.signing_key': %s", err);
		return NULL;
	}
	sign_key_public(k, pub);
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", c->ledger_key_name);
	memcpy(v->pub, pub, SIGN_PUBLIC_LEN);
	note_key_id(v->name, pub, v->id);
	return k;
}

/* Runs cmd (no shell, no arguments) with text on its stdin; 0 or -1. */
static int
run_command(const char *cmd, const char *text)
{
	size_t n = strlen(text), off = 0;
	int fds[2], status;
	ssize_t w;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		log_warn("checkpoint_command %s: pipe", cmd);
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("checkpoint_command %s: fork", cmd);
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		char *const argv[] = { (char *)cmd, NULL };
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(fds[0], STDIN_FILENO) == -1)
			_exit(127);
		execv(cmd, argv);
		_exit(127);
	}
	close(fds[0]);
	while (off < n) {
		if ((w = write(fds[1], text + off, n - off)) == -1) {
			if (errno == EINTR)
				continue;
			break;	/* it stopped reading; its status says more */
		}
		off += (size_t)w;
	}
	close(fds[1]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			log_warn("checkpoint_command %s: waitpid", cmd);
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("checkpoint_command %s failed (%s %d); the "
		    "checkpoint is stored in the database all the same", cmd,
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -1;
	}
	return 0;
}

/*
 * Sequences pending events, then signs and stores a checkpoint if the
 * tree grew since the newest one (or there is none), and hands it to
 * checkpoint_command.  *note_r (unless NULL) gets the new note, or NULL
 * if none was needed.  0 or -1 (logged).
 */
static int
checkpoint(const struct conf *c, struct db *db, const struct sign_key *k,
    char **note_r)
{
	struct db_ledger_checkpoint *cps = NULL;
	struct note_checkpoint cp;
	uint64_t added, size;
	unsigned char root[32];
	char *text = NULL, *note = NULL;
	size_t ncps;
	int rc = -1;

	if (note_r != NULL)
		*note_r = NULL;
	if (db_ledger_sequence(db, &added, &size, root) == -1) {
		log_warnx("ledger: sequencing: %s", db_error(db));
		return -1;
	}
	if (db_ledger_checkpoints(db, true, &cps, &ncps) == -1) {
		log_warnx("ledger: %s", db_error(db));
		return -1;
	}
	if (size == 0 || (ncps > 0 && cps[0].size >= size)) {
		log_debug("ledger: %" PRIu64 " leaves, already checkpointed",
		    size);
		db_ledger_checkpoints_free(&cps, ncps);
		return 0;
	}
	db_ledger_checkpoints_free(&cps, ncps);
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "%s", c->ledger_key_name);
	cp.size = size;
	memcpy(cp.root, root, 32);
	text = note_checkpoint_text(&cp);
	if ((note = note_sign(text, c->ledger_key_name, k)) == NULL) {
		log_warnx("ledger: cannot sign the checkpoint");
		goto out;
	}
	if (db_ledger_checkpoint_store(db, size, root, note) == -1) {
		log_warnx("ledger: storing the checkpoint: %s", db_error(db));
		goto out;
	}
	log_info("ledger: checkpoint of %" PRIu64 " leaves (%" PRIu64
	    " new)", size, added);
	rc = 0;
	if (c->ledger_checkpoint_command != NULL &&
	    run_command(c->ledger_checkpoint_command, note) == -1)
		rc = -1;
	if (note_r != NULL) {
		*note_r = note;
		note = NULL;
	}
out:
	free(text); text = NULL;
	free(note); note = NULL;
	return rc;
}

void
ledger_record_verify(struct db *db, const char *account, bool complete,
    uint64_t ok, uint64_t bad)
{
	char oks[24], bads[24];
	struct ledger_field f[4] = {
		{ "account", account != NULL ? account : "" },
		{ "complete", complete ? "yes" : "no" },
		{ "ok", oks },
		{ "damaged", bads },
	};

	snprintf(oks, sizeof(oks), "%" PRIu64, ok);
	snprintf(bads, sizeof(bads), "%" PRIu64, bad);
	if (db_ledger_append(db, "verify", f, 4) == -1)
		log_warnx("ledger: recording the verify run: %s",
		    db_error(db));
}

void
ledger_record_export(struct db *db, const char *account, const char *query,
    bool complete, uint64_t deliveries, uint64_t written, uint64_t bad,
    const char *manifest_sha256, const char *sums_sha256)
{
	unsigned char digest[32];
	char qhex[65] = "", dels[24], wrs[24], bads[24];
	struct ledger_field f[8] = {
		{ "account", account != NULL ? account : "" },
		{ "query_sha256", qhex },
		{ "complete", complete ? "yes" : "no" },
		{ "deliveries", dels },
		{ "messages", wrs },
		{ "damaged", bads },
		{ "manifest_sha256", manifest_sha256 },
		{ "sums_sha256", sums_sha256 },
	};

	if (query != NULL) {
		hash_sha256(query, strlen(query), digest);
		pipe_hex(digest, qhex);
	}
	snprintf(dels, sizeof(dels), "%" PRIu64, deliveries);
	snprintf(wrs, sizeof(wrs), "%" PRIu64, written);
	snprintf(bads, sizeof(bads), "%" PRIu64, bad);
	if (db_ledger_append(db, "export", f, 8) == -1)
		log_warnx("ledger: recording the export: %s", db_error(db));
}

struct ledger_timer {
	const struct conf *conf;
	struct db *db;
	struct sign_key *key;
};

struct ledger_timer *
ledger_timer_new(const struct conf *c, struct db *db, char *err,
    size_t errlen)
{
	struct ledger_timer *t;
	struct sign_key *k;

	err[0] = '\0';
	if (c->ledger_signing_key == NULL || c->ledger_checkpoint_interval == 0)
		return NULL;
	if ((k = sign_key_load(c->ledger_signing_key, err, errlen)) == NULL)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->conf = c;
	t->db = db;
	t->key = k;
	return t;
}

unsigned
ledger_timer_interval(const struct ledger_timer *t)
{
	return (unsigned)t->conf->ledger_checkpoint_interval;
}

void
ledger_timer_fire(void *arg)
{
	struct ledger_timer *t = arg;

	(void)checkpoint(t->conf, t->db, t->key, NULL);
}

void
ledger_timer_free(struct ledger_timer **tp)
{
	struct ledger_timer *t = *tp;

	if (t == NULL)
		return;
	sign_key_free(&t->key);
	free(t); *tp = NULL;
}

static int
cmd_keygen(const struct lopts *o)
{
	unsigned char pub[SIGN_PUBLIC_LEN];
	struct conf *c = NULL;
	const char *name = o->name;
	char err[1024], *vkey;

	if (o->out == NULL) {
		fprintf(stderr, "ingestd: ledger keygen needs --out FILE\n");
		return EX_USAGE;
	}
	if (name == NULL) {
		if ((c = conf_load(o->config, err, sizeof(err))) == NULL) {
			log_warnx("%s", err);
			log_warnx("ledger keygen: the key name comes from "
			    "'ledger.key_name', or give --name NAME");
			return EX_STARTUP;
		}
		if ((name = c->ledger_key_name) == NULL) {
			log_warnx("%s: 'ledger.key_name' is not set; set it or "
			    "give --name NAME", c->path);
			conf_free(&c);
			return EX_STARTUP;
		}
	}
	if (!note_name_ok(name)) {
		log_warnx("ledger keygen: \"%s\" cannot be a key name (no "
		    "spaces, '+' or control characters)", name);
		conf_free(&c);
		return EX_USAGE;
	}
	if (sign_keygen(o->out, pub, err, sizeof(err)) == -1) {
		log_warnx("ledger keygen: %s", err);
		conf_free(&c);
		return EX_FAILED;
	}
	vkey = note_verifier_key(name, pub);
	printf("%s\n", vkey);
	free(vkey); vkey = NULL;
	conf_free(&c);
	return EX_OK;
}

static int
cmd_checkpoint(struct lctx *x)
{
	struct note_verifier v;
	struct sign_key *k;
	char *note = NULL;
	int rc;

	if ((k = lkey_load(x->conf, &v)) == NULL)
		return EX_STARTUP;
	rc = checkpoint(x->conf, x->db, k, &note) == 0 ? EX_OK : EX_FAILED;
	if (note != NULL)
		fputs(note, stdout);
	else if (rc == EX_OK)
		printf("ledger: nothing new to checkpoint\n");
	free(note); note = NULL;
	sign_key_free(&k);
	return rc;
}

/* ---- ledger verify ---- */

struct vcp {
	int64_t id;		/* 0: the --since checkpoint */
	uint64_t size;
	unsigned char root[32];
	bool seen;
};

struct verify {
	struct db *db;
	struct merkle_frontier f;
	struct vcp *cps;
	size_t ncps, next;
	uint64_t expect;
	uint64_t problems;
};

static void
damaged(struct verify *v, const char *sha, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One finding: stdout, "damaged <sha256>: what" or "damaged ledger: what". */
static void
damaged(struct verify *v, const char *sha, const char *fmt, ...)
{
	va_list ap;

	printf("damaged %s: ", sha != NULL && sha[0] != '\0' ? sha :
	    "ledger");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	v->problems++;
}

static void
check_roots(struct verify *v)
{
	unsigned char root[32];
	char hex[65];

	while (v->next < v->ncps && v->cps[v->next].size <= v->f.size) {
		struct vcp *c = &v->cps[v->next++];

		if (c->size != v->f.size)
			continue;	/* a size with no leaves: later */
		c->seen = true;
		merkle_frontier_root(&v->f, root);
		if (memcmp(root, c->root, 32) != 0) {
			pipe_hex(root, hex);
			damaged(v, NULL, "%s of tree size %" PRIu64 " has a "
			    "root other than the ledger's entries give (%s): "
			    "the ledger was rewritten after it was signed",
			    c->id ? "checkpoint" : "the --since checkpoint",
			    c->size, hex);
		}
	}
}

static int
verify_leaf(void *arg, const struct db_ledger_row *r)
{
	struct verify *v = arg;
	struct ledger_entry e;
	unsigned char leaf[32];
	const char *sha = r->sha256_hex, *want;
	char hex[65], err[256];
	bool parsed;

	if (r->idx != v->expect) {
		damaged(v, NULL, "leaves %" PRIu64 " to %" PRIu64 " are "
		    "missing", v->expect, r->idx - 1);
		/* The tree is broken from here; go on for the messages. */
		v->expect = r->idx;
	}
	v->expect++;
	merkle_leaf_hash(r->entry, r->entry_len, leaf);
	pipe_hex(leaf, hex);
	parsed = ledger_entry_parse(r->entry, r->entry_len, &e, err,
	    sizeof(err)) == 0;
	if (parsed && (want = ledger_entry_get(&e, "sha256")) != NULL)
		sha = want;
	if (!parsed)
		damaged(v, sha, "leaf %" PRIu64 ": %s", r->idx, err);
	if (strcmp(hex, r->leaf_hash_hex) != 0)
		damaged(v, sha, "leaf %" PRIu64 ": the entry does not hash to "
		    "the leaf hash stored with it: one of them was altered",
		    r->idx);
	if (parsed) {
		const char *acc = ledger_entry_get(&e, "account"),
		    *uidl = ledger_entry_get(&e, "uidl"),
		    *size = ledger_entry_get(&e, "size"),
		    *at = ledger_entry_get(&e, "archived_at");

		if (at == NULL)
			at = ledger_entry_get(&e, "at");
		if (strcmp(e.kind, r->kind) != 0 ||
		    strcmp(sha ? sha : "", r->sha256_hex) != 0 ||
		    strcmp(acc ? acc : "", r->account) != 0 ||
		    strcmp(uidl ? uidl : "", r->uidl) != 0 ||
		    strcmp(size ? size : "", r->size) != 0 ||
		    strcmp(at ? at : "", r->at) != 0)
			damaged(v, sha, "leaf %" PRIu64 ": the columns stored "
			    "with it differ from its entry", r->idx);
		ledger_entry_release(&e);
	}
	/* The entries are the truth the checkpoints signed. */
	merkle_frontier_append(&v->f, leaf, NULL, NULL);
	check_roots(v);
	return 0;
}

static void
audit_cb(void *arg, const char *sha, const char *what)
{
	damaged(arg, sha, "%s", what);
}

static void
node_cb(void *arg, const char *what)
{
	damaged(arg, NULL, "%s", what);
}

static int
vcp_cmp(const void *a, const void *b)
{
	const struct vcp *x = a, *y = b;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Reads and checks a note against v; fills c.  0, or -1 (reported). */
static int
verify_note(struct verify *vs, const struct note_verifier *v,
    const char *note, size_t n, const char *what, struct note_checkpoint *c)
{
	char err[512];
	size_t textlen;

	if (note_open(note, n, v, &textlen, err, sizeof(err)) == -1) {
		damaged(vs, NULL, "%s: %s", what, err);
		return -1;
	}
	if (note_checkpoint_parse(note, textlen, c, err, sizeof(err)) == -1) {
		damaged(vs, NULL, "%s: %s", what, err);
		return -1;
	}
	if (strcmp(c->origin, v->name) != 0) {
		damaged(vs, NULL, "%s: origin \"%s\" is not \"%s\"", what,
		    c->origin, v->name);
		return -1;
	}
	return 0;
}

static int
cmd_verify(struct lctx *x, const struct lopts *o)
{
	struct db_ledger_checkpoint *cps = NULL;
	struct verify vs = { .db = x->db };
	struct note_checkpoint c;
	struct note_verifier v;
	struct sign_key *k = NULL;
	unsigned char path[MERKLE_MAX_PATH][32], root[32], prev_root[32];
	uint64_t ok = 0, bad = 0, prev_size = 0;
	char err[1024], what[128], *since = NULL;
	size_t ncps = 0, i, len, slen;
	bool have_key = false;
	int rc = EX_FAILED;

	if (o->key != NULL) {
		if (note_verifier_parse(o->key, &v, err, sizeof(err)) == -1) {
			log_warnx("--key: %s", err);
			return EX_USAGE;
		}
		have_key = true;
	} else if (x->conf->ledger_signing_key != NULL) {
		if ((k = lkey_load(x->conf, &v)) == NULL)
			return EX_STARTUP;
		sign_key_free(&k);
		have_key = true;
	} else
		log_warnx("no key (ledger.signing_key or --key): checkpoint "
		    "signatures are not checked");
	if (o->since != NULL) {
		if (!have_key) {
			log_warnx("--since needs the key that signed it");
			return EX_USAGE;
		}
		if ((since = read_file(o->since, NOTE_MAX, &slen, err,
		    sizeof(err))) == NULL) {
			log_warnx("--since: %s", err);
			return EX_STARTUP;
		}
	}
	if (db_ledger_checkpoints(x->db, false, &cps, &ncps) == -1) {
		log_warnx("ledger verify: %s", db_error(x->db));
		goto out;
	}
	vs.cps = xcalloc(ncps + 1, sizeof(*vs.cps));
	for (i = 0; i < ncps; i++) {
		snprintf(what, sizeof(what), "checkpoint %" PRId64
		    " (tree size %" PRIu64 ")", cps[i].id, cps[i].size);
		if (have_key && verify_note(&vs, &v, cps[i].note,
		    strlen(cps[i].note), what, &c) == 0 &&
		    (c.size != cps[i].size)) {
			damaged(&vs, NULL, "%s: its note says tree size %"
			    PRIu64, what, c.size);
		}
		vs.cps[vs.ncps].id = cps[i].id;
		vs.cps[vs.ncps].size = cps[i].size;
		if (strlen(cps[i].root_hex) == 64) {
			unsigned h;
			size_t j;

			for (j = 0; j < 32; j++) {
				if (sscanf(cps[i].root_hex + 2 * j, "%2x",
				    &h) != 1)
					break;
				vs.cps[vs.ncps].root[j] = (unsigned char)h;
			}
		}
		/* The root signed is what counts, if the note verifies. */
		if (have_key && note_open(cps[i].note, strlen(cps[i].note),
		    &v, &len, err, sizeof(err)) == 0 &&
		    note_checkpoint_parse(cps[i].note, len, &c, err,
		    sizeof(err)) == 0) {
			if (memcmp(c.root, vs.cps[vs.ncps].root, 32) != 0)
				damaged(&vs, NULL, "%s: the root stored with "
				    "it is not the one signed", what);
			memcpy(vs.cps[vs.ncps].root, c.root, 32);
		}
		vs.ncps++;
	}
	if (since != NULL) {
		if (verify_note(&vs, &v, since, slen, o->since, &c) == 0) {
			vs.cps[vs.ncps].id = 0;
			vs.cps[vs.ncps].size = c.size;
			memcpy(vs.cps[vs.ncps].root, c.root, 32);
			vs.ncps++;
		}
	}
	if (vs.ncps > 0)
		qsort(vs.cps, vs.ncps, sizeof(*vs.cps), vcp_cmp);
	/* The empty tree. */
	check_roots(&vs);
	if (db_ledger_each(x->db, verify_leaf, &vs) == -1) {
		log_warnx("ledger verify: %s", db_error(x->db));
		goto out;
	}
	for (i = 0; i < vs.ncps; i++)
		if (!vs.cps[i].seen)
			damaged(&vs, NULL, "%s of tree size %" PRIu64 " covers "
			    "more leaves than the ledger holds (%" PRIu64 "): "
			    "leaves were removed", vs.cps[i].id ?
			    "checkpoint" : "the --since checkpoint",
			    vs.cps[i].size, vs.f.size);
	/* The stored tree, which proofs are made from, agrees. */
	for (i = 0; i < vs.ncps; i++) {
		if (!vs.cps[i].seen || vs.cps[i].size == 0)
			continue;
		if (prev_size > 0 && (merkle_consistency_proof(db_ledger_get,
		    x->db, prev_size, vs.cps[i].size, path, &len) == -1 ||
		    !merkle_verify_consistency(prev_size, vs.cps[i].size,
		    prev_root, vs.cps[i].root, path, len)))
			damaged(&vs, NULL, "the stored tree gives no valid "
			    "consistency proof from tree size %" PRIu64 " to %"
			    PRIu64, prev_size, vs.cps[i].size);
		prev_size = vs.cps[i].size;
		memcpy(prev_root, vs.cps[i].root, 32);
	}
	if (vs.f.size > 0) {
		unsigned char want[32];

		merkle_frontier_root(&vs.f, want);
		if (merkle_root(db_ledger_get, x->db, vs.f.size, root) == -1 ||
		    memcmp(root, want, 32) != 0)
			damaged(&vs, NULL, "the stored tree's nodes do not "
			    "give the root of its leaves");
	}
	if (db_ledger_check_nodes(x->db, vs.f.size, node_cb, &vs) == -1) {
		log_warnx("ledger verify: %s", db_error(x->db));
		goto out;
	}
	if (db_ledger_audit(x->db, audit_cb, &vs) == -1) {
		log_warnx("ledger verify: %s", db_error(x->db));
		goto out;
	}
	if (reader_verify_each(x->db, audit_cb, &vs, &ok, &bad, err,
	    sizeof(err)) == -1) {
		log_warnx("ledger verify: %s", err);
		goto out;
	}
	printf("ledger verify: %" PRIu64 " leaves, %zu checkpoints, %" PRIu64
	    " blobs read back; %" PRIu64 " problems\n", vs.f.size, ncps,
	    ok + bad, vs.problems);
	rc = vs.problems > 0 ? EX_FAILED : EX_OK;
out:
	db_ledger_checkpoints_free(&cps, ncps);
	free(vs.cps); vs.cps = NULL;
	free(since); since = NULL;
	return rc;
}

/* ---- prove ---- */

struct prove {
	struct db *db;
	uint64_t size;
	unsigned char root[32];
	FILE *out;
	unsigned nleaves;
	bool failed;
	char *first;		/* the first leaf's members, for the top */
};

/* Writes s as a JSON string. */
static void
json_str(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static int
prove_leaf(void *arg, uint64_t idx, const unsigned char *entry, size_t n)
{
	struct prove *p = arg;
	unsigned char path[MERKLE_MAX_PATH][32], leaf[32];
	char *b64, hex[65], *buf = NULL;
	size_t len, i, blen = 0;
	FILE *m;

	if (merkle_inclusion_proof(db_ledger_get, p->db, idx, p->size, path,
	    &len) == -1) {
		log_warnx("prove: leaf %" PRIu64 ": %s", idx,
		    db_error(p->db));
		p->failed = true;
		return -1;
	}
	merkle_leaf_hash(entry, n, leaf);
	if (!merkle_verify_inclusion(leaf, idx, p->size, path, len, p->root)) {
		log_warnx("prove: leaf %" PRIu64 ": the stored tree does not "
		    "prove it under the checkpoint; run ingestd ledger "
		    "verify", idx);
		p->failed = true;
		return -1;
	}
	if ((m = open_memstream(&buf, &blen)) == NULL) {
		p->failed = true;
		return -1;
	}
	b64 = xmalloc(B64_LEN(n) + 1);
	b64_encode(entry, n, b64);
	fprintf(m, "\"leaf_index\": %" PRIu64 ", \"entry\": \"%s\", "
	    "\"audit_path\": [", idx, b64);
	for (i = 0; i < len; i++) {
		pipe_hex(path[i], hex);
		fprintf(m, "%s\"%s\"", i ? ", " : "", hex);
	}
	fputs("]", m);
	fclose(m);
	free(b64); b64 = NULL;
	fprintf(p->out, "%s    { %s }", p->nleaves ? ",\n" : "", buf);
	if (p->first == NULL)
		p->first = buf;
	else
		free(buf);
	p->nleaves++;
	return 0;
}

static int
cmd_prove(struct lctx *x, const struct lopts *o)
{
	struct db_ledger_checkpoint *cps = NULL;
	struct prove p = { .db = x->db };
	struct note_checkpoint c;
	char *leaves = NULL, err[512], *sha;
	const char *sep;
	size_t ncps = 0, llen = 0, textlen;
	FILE *f = NULL;
	int fd, rc = EX_FAILED;

	if (o->nargs != 1 || o->out == NULL) {
		fprintf(stderr, "ingestd: prove needs SHA256 and --out FILE\n");
		return EX_USAGE;
	}
	sha = o->args[0];
	if (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64) {
		fprintf(stderr, "ingestd: prove: \"%s\" is not a SHA-256 in "
		    "lowercase hex\n", sha);
		return EX_USAGE;
	}
	if (db_ledger_checkpoints(x->db, true, &cps, &ncps) == -1) {
		log_warnx("prove: %s", db_error(x->db));
		return EX_FAILED;
	}
	if (ncps == 0) {
		log_warnx("prove: no checkpoint yet; run ingestd ledger "
		    "checkpoint");
		goto out;
	}
	/* The note is what a verifier trusts: take size and root from it. */
	sep = strstr(cps[0].note, "\n\n");
	textlen = sep != NULL ? (size_t)(sep - cps[0].note) + 1 : 0;
	if (textlen == 0 || note_checkpoint_parse(cps[0].note, textlen, &c,
	    err, sizeof(err)) == -1 || c.size != cps[0].size) {
		log_warnx("prove: the newest checkpoint (%" PRId64 ") is "
		    "malformed; run ingestd ledger verify", cps[0].id);
		goto out;
	}
	p.size = c.size;
	memcpy(p.root, c.root, 32);
	if ((p.out = open_memstream(&leaves, &llen)) == NULL)
		goto out;
	if (db_ledger_message_leaves(x->db, sha, p.size, prove_leaf,
	    &p) == -1 || p.failed) {
		if (!p.failed)
			log_warnx("prove: %s", db_error(x->db));
		fclose(p.out);
		goto out;
	}
	fclose(p.out);
	if (p.nleaves == 0) {
		log_warnx("prove: message %s has no ingest entry in the "
		    "newest checkpoint (tree size %" PRIu64 "); if it was "
		    "archived since, run ingestd ledger checkpoint", sha,
		    p.size);
		goto out;
	}
	if ((fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1 || (f = fdopen(fd, "w")) == NULL) {
		log_warn("prove: %s", o->out);
		if (fd != -1)
			close(fd);
		goto out;
	}
	fprintf(f, "{\n  \"version\": 1,\n  \"sha256\": \"%s\",\n"
	    "  \"tree_size\": %" PRIu64 ",\n  %s,\n  \"checkpoint\": ", sha,
	    p.size, p.first);
	json_str(f, cps[0].note);
	fprintf(f, ",\n  \"leaves\": [\n%s\n  ]\n}\n", leaves);
	if (fflush(f) != 0 || fsync(fileno(f)) == -1 || ferror(f)) {
		log_warn("prove: %s", o->out);
		fclose(f);
		goto out;
	}
	fclose(f);
	printf("wrote %s: %u leaves of %s under tree size %" PRIu64 "\n",
	    o->out, p.nleaves, sha, p.size);
	rc = EX_OK;
out:
	free(p.first); p.first = NULL;
	free(leaves); leaves = NULL;
	db_ledger_checkpoints_free(&cps, ncps);
	return rc;
}

/* ---- verify-proof: files and a key only ---- */

/* SHA-256 and size of a file, read 64 KiB at a time; 0 or -1. */
static int
hash_file(const char *path, unsigned char sha[32], uint64_t *size_r,
    char *err, size_t errlen)
{
	struct hash_sha256 h;
	char *buf;
	ssize_t r;
	int fd, rc = -1;

	*size_r = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(65536);
	hash_sha256_init(&h);
	for (;;) {
		if ((r = read(fd, buf, 65536)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		hash_sha256_update(&h, buf, (size_t)r);
		*size_r += (uint64_t)r;
	}
	hash_sha256_final(&h, sha);
	rc = 0;
out:
	hash_sha256_release(&h);
	free(buf); buf = NULL;
	close(fd);
	return rc;
}

static int
cmd_verify_proof(const struct lopts *o)
{
	struct ledger_proof p;
	struct note_verifier v;
	unsigned char sha[32];
	char err[1024], *json;
	size_t jlen;
	uint64_t mlen;
	int rc;

	if (o->nargs != 2 || o->key == NULL) {
		fprintf(stderr, "ingestd: verify-proof needs PROOF MESSAGE "
		    "--key VERIFIERKEY\n");
		return EX_USAGE;
	}
	if (note_verifier_parse(o->key, &v, err, sizeof(err)) == -1) {
		fprintf(stderr, "ingestd: verify-proof: --key: %s\n", err);
		return EX_USAGE;
	}
	if ((json = read_file(o->args[0], PROOF_MAX, &jlen, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "ingestd: verify-proof: %s\n", err);
		return EX_FAILED;
	}
	if (ledger_proof_parse(json, jlen, &p, err, sizeof(err)) == -1) {
		fprintf(stderr, "ingestd: verify-proof: %s: %s\n", o->args[0],
		    err);
		free(json); json = NULL;
		return EX_FAILED;
	}
	free(json); json = NULL;
	/* The message may be large: hashed as it is read. */
	if (hash_file(o->args[1], sha, &mlen, err, sizeof(err)) == -1) {
		fprintf(stderr, "ingestd: verify-proof: %s\n", err);
		ledger_proof_release(&p);
		return EX_FAILED;
	}
	if (ledger_proof_verify(&p, &v, sha, mlen, err, sizeof(err)) == -1) {
		printf("FAILED: %s: %s\n", o->args[1], err);
		rc = EX_FAILED;
	} else {
		printf("OK: %s (sha256 %s) was archived: %zu ledger leaves "
		    "under a checkpoint of %" PRIu64 " leaves signed by %s\n",
		    o->args[1], p.sha256, p.nleaves, p.tree_size, v.name);
		rc = EX_OK;
	}
	ledger_proof_release(&p);
	return rc;
}

int
cmd_ledger_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "out", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'n' },
		{ "key", required_argument, NULL, 'k' },
		{ "since", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	struct lopts o = { .config = DEFAULT_CONFIG };
	struct lctx x = { 0 };
	const char *cmd, *sub = NULL;
	char err[1024];
	int ch, verbosity = 0, rc;

	while ((ch = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.config = optarg;
			break;
		case 'v':
			verbosity++;
			break;
		case 'h':
			lusage(stdout);
			return EX_OK;
		case 'o':
			o.out = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 's':
			o.since = optarg;
			break;
		default:
			lusage(stderr);
			return EX_USAGE;
		}
	}
	log_init(verbosity);
	signal(SIGPIPE, SIG_IGN);
	if (optind >= argc) {
		lusage(stderr);
		return EX_USAGE;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "ledger") == 0) {
		if (optind >= argc) {
			lusage(stderr);
			return EX_USAGE;
		}
		sub = argv[optind++];
	}
	o.args = argv + optind;
	o.nargs = argc - optind;
	if (strcmp(cmd, "verify-proof") == 0)
		return cmd_verify_proof(&o);
	if (sub != NULL && strcmp(sub, "keygen") == 0)
		return o.nargs == 0 ? cmd_keygen(&o) : EX_USAGE;
	if (!(strcmp(cmd, "prove") == 0 || (sub != NULL &&
	    (strcmp(sub, "checkpoint") == 0 || strcmp(sub, "verify") == 0) &&
	    o.nargs == 0))) {
		fprintf(stderr, "ingestd: unknown command \"%s%s%s\"\n", cmd,
		    sub ? " " : "", sub ? sub : "");
		lusage(stderr);
		return EX_USAGE;
	}
	if ((x.conf = conf_load(o.config, err, sizeof(err))) == NULL) {
		log_warnx("%s", err);
		return EX_STARTUP;
	}
	if (lopen_database(&x) == -1) {
		lclose_database(&x);
		conf_free(&x.conf);
		return EX_STARTUP;
	}
	if (strcmp(cmd, "prove") == 0)
		rc = cmd_prove(&x, &o);
	else if (strcmp(sub, "checkpoint") == 0)
		rc = cmd_checkpoint(&x);
	else
		rc = cmd_verify(&x, &o);
	lclose_database(&x);
	conf_free(&x.conf);
	return rc;
}
