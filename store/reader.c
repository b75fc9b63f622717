/*
 * Export and verify (see reader.h).
 *
 * One path for both: chunks from db_blob_read() go through a zdec, and the
 * decompressed bytes through SHA-256 and, for export, into a file.  A blob
 * passes only if the digest and size match what was recorded at archive
 * time and the zstd frame itself ended cleanly (its own checksum included).
 */
#include "store/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingestd/base/fdio.h"
#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db.h"
#include "store/hash.h"
#include "store/json.h"
#include "store/pipe.h"
#include "store/query.h"
#include "store/zstd.h"

/*
 * Decompressors kept across blobs, one per dictionary (0: none).  Blobs
 * come in hash order, so those of different dictionaries interleave: one
 * decompressor per dictionary loads each dictionary once per run rather
 * than once per blob.  An archive holds few dictionaries; past this many
 * the least recently used one is dropped.
 */
#define READER_DECS	8

/*
 * Damaged blobs verify remembers to name their accounts at the end.  Past
 * this many the archive is broken wholesale and the list would only cost
 * memory; each blob was still reported as it was found.
 */
#define READER_DAMAGED_MAX	100000

static reader_progress_cb *reader_progress;
static void *reader_progress_arg;

void
reader_set_progress(reader_progress_cb *cb, void *arg)
{
	reader_progress = cb;
	reader_progress_arg = arg;
}

struct reader_dec {
	int64_t dict_id;
	struct zdec *dec;	/* NULL: slot free */
	uint64_t used;		/* r->tick when last used */
};

struct reader {
	struct db *db;
	struct reader_dec decs[READER_DECS];
	uint64_t tick;
	struct zdec *dec;	/* the blob in progress's, from decs */
	size_t cur;		/* its slot */
	/* The blob in progress. */
	struct hash_sha256 h;
	uint64_t size;
	int fd;			/* -1 when only verifying */
	bool write_failed;	/* the file failed, not the blob */
	const char *path;	/* for messages */
	char why[512];		/* why the blob in progress failed */
	/* Export. */
	int out_fd;		/* the export directory */
	const char *out_name;	/* its path, for messages */
	char *acct;		/* account whose directory is acct_fd */
	char *acct_path;	/* out_name/<its directory>, for messages */
	int acct_fd;		/* -1: none open */
	bool flat;		/* by query: every file in acct_fd */
	uint64_t count, bad;
	/* Progress: messages and bytes read, and the totals if known. */
	uint64_t done, done_bytes, total, total_bytes;
	/* reader_stream(): where the bytes go. */
	int (*tap)(void *arg, const void *p, size_t n);
	void *tap_arg;
};

/* name as one safe file name component; the caller frees it. */
static char *
reader_dirname(const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char *out, *w;

	w = out = xmalloc(strlen(name) * 3 + 2);
	if (*name == '\0')
		*w++ = '_';
	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '@' ||
		    *p == '+' || *p == '-' || (*p == '.' && p != (const
		    unsigned char *)name))
			*w++ = *p;
		else {
			*w++ = '%';
			*w++ = hex[*p >> 4];
			*w++ = hex[*p & 15];
		}
	}
	*w = '\0';
	return out;
}

/* Decompressed bytes: hashed, counted, and written when exporting. */
static int
reader_out(void *arg, const void *p, size_t n)
{
	struct reader *r = arg;

	hash_sha256_update(&r->h, p, n);
	r->size += n;
	if (r->tap != NULL && r->tap(r->tap_arg, p, n) == -1) {
		snprintf(r->why, sizeof(r->why), "its reader stopped");
		return -1;
	}
	if (r->fd != -1 && fd_write_all(r->fd, p, n) == -1) {
		snprintf(r->why, sizeof(r->why), "writing %s: %s", r->path,
		    strerror(errno));
		r->write_failed = true;
		return -1;
	}
	return 0;
}

/* Compressed bytes from the database, one chunk at a time. */
static int
reader_in(void *arg, const void *p, size_t n)
{
	struct reader *r = arg;

	if (zdec_write(r->dec, p, n, reader_out, r) == -1) {
		if (r->why[0] == '\0')
			snprintf(r->why, sizeof(r->why), "%s",
			    zdec_error(r->dec));
		return -1;
	}
	return 0;
}

/* Makes r->dec the decompressor for dictionary id (0: none). */
static int
reader_dec(struct reader *r, int64_t dict_id)
{
	struct reader_dec *slot = &r->decs[0];
	void *dict = NULL;
	size_t i, dictlen = 0;

	r->tick++;
	r->dec = NULL;
	for (i = 0; i < READER_DECS; i++) {
		if (r->decs[i].dec != NULL && r->decs[i].dict_id == dict_id) {
			slot = &r->decs[i];
			goto found;
		}
		/* A free slot, or else the least recently used. */
		if (slot->dec != NULL && (r->decs[i].dec == NULL ||
		    r->decs[i].used < slot->used))
			slot = &r->decs[i];
	}
	zdec_free(&slot->dec);
	if (dict_id != 0) {
		if (db_dict_load(r->db, dict_id, &dict, &dictlen) == -1) {
			snprintf(r->why, sizeof(r->why), "%s",
			    db_error(r->db));
			return -1;
		}
		log_debug("loaded dictionary %" PRId64 " (%zu bytes)",
		    dict_id, dictlen);
	}
	slot->dec = zdec_new(dict, dictlen);
	slot->dict_id = dict_id;
	free(dict); dict = NULL;
found:
	slot->used = r->tick;
	r->dec = slot->dec;
	r->cur = (size_t)(slot - r->decs);
	return 0;
}

/* Frees every decompressor kept. */
static void
reader_decs_free(struct reader *r)
{
	size_t i;

	for (i = 0; i < READER_DECS; i++)
		zdec_free(&r->decs[i].dec);
	r->dec = NULL;
}

/*
 * The database's reason a blob could not be read.  What db_blob_read()
 * found wrong with the blob itself ("database: blob <hex>: chunk 1 of 3
 * missing") loses its prefix, since every report names the blob already.
 */
static void
reader_db_why(struct reader *r, const char *hex)
{
	const char *e = db_error(r->db);
	char *prefix = xasprintf("database: blob %s: ", hex);
	size_t n = strlen(prefix);

	if (strncmp(e, prefix, n) == 0)
		e += n;
	snprintf(r->why, sizeof(r->why), "%s", e);
	free(prefix); prefix = NULL;
}

/*
 * Streams one blob through the decompressor and checks it.  0 if it
 * matches; -1 with r->why set if not (r->write_failed tells whether the
 * output file rather than the blob failed); -2 if the database went away
 * (the blob is then unjudged).
 */
static int
reader_blob(struct reader *r, const struct db_message *m)
{
	unsigned char digest[32];
	char hex[65];
	int rc = -1;

	r->why[0] = '\0';
	r->write_failed = false;
	r->size = 0;
	if (reader_dec(r, m->dict_id) == -1)
		return db_connected(r->db) ? -1 : -2;
	hash_sha256_init(&r->h);
	if (db_blob_read(r->db, m->sha256_hex, reader_in, r) == -1) {
		if (r->why[0] == '\0') {
			reader_db_why(r, m->sha256_hex);
			if (!db_connected(r->db))
				rc = -2;
		}
		goto out;
	}
	if (zdec_finish(r->dec) == -1) {
		snprintf(r->why, sizeof(r->why), "%s", zdec_error(r->dec));
		goto out;
	}
	hash_sha256_final(&r->h, digest);
	pipe_hex(digest, hex);
	if (strcmp(hex, m->sha256_hex) != 0)
		snprintf(r->why, sizeof(r->why), "SHA-256 mismatch: the "
		    "bytes read back hash to %s", hex);
	else if (r->size != m->size)
		snprintf(r->why, sizeof(r->why), "size mismatch: %" PRIu64
		    " bytes read back, %" PRIu64 " recorded", r->size,
		    m->size);
	else
		rc = 0;
out:
	hash_sha256_release(&r->h);
	r->done++;
	r->done_bytes += m->size;
	if (reader_progress != NULL)
		reader_progress(reader_progress_arg, r->done, r->done_bytes,
		    r->total, r->total_bytes);
	/* After an error a zdec is good only for freeing. */
	if (rc != 0) {
		zdec_free(&r->decs[r->cur].dec);
		r->dec = NULL;
	}
	return rc;
}

/* "user NAME (uid N)", or "uid N" for a uid with no name. */
static void
reader_user(uid_t uid, char *buf, size_t len)
{
	const struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, len, "user %s (uid %u)", pw->pw_name,
		    (unsigned)uid);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
}

int
reader_outdir_open(const char *path, char *err, size_t errlen)
{
	char owner[128], me[128], *p;
	struct stat st;
	size_t n;
	int fd = -1;

	/* "DIR/" names what a symbolic link DIR points to, and O_NOFOLLOW
	 * would not see the link: judge DIR itself. */
	p = xstrdup(path);
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "--out: an empty path");
		goto fail;
	}
	if (mkdir(p, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "creating %s: %s", p, strerror(errno));
		goto fail;
	}
	if ((fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if ((errno == ELOOP || errno == ENOTDIR) &&
		    lstat(p, &st) == 0 && S_ISLNK(st.st_mode))
			snprintf(err, errlen, "%s is a symbolic link; export "
			    "writes only into a real directory, never "
			    "through a link", p);
		else if (errno == ENOTDIR)
			snprintf(err, errlen, "%s is not a directory", p);
		else
			snprintf(err, errlen, "opening %s: %s", p,
			    strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		reader_user(st.st_uid, owner, sizeof(owner));
		reader_user(geteuid(), me, sizeof(me));
		snprintf(err, errlen, "%s is owned by %s, not by %s running "
		    "the export; its owner could change what the export "
		    "writes", p, owner, me);
		goto fail;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(err, errlen, "%s is writable by %s (mode %04o); "
		    "export writes only into a directory no one but its "
		    "owner can write, sticky or not (chmod go-w)", p,
		    (st.st_mode & S_IWOTH) != 0 ? "others" : "its group",
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	free(p); p = NULL;
	return fd;
fail:
	if (fd != -1)
		close(fd);
	free(p); p = NULL;
	return -1;
}

/* What name in dir is, for a message saying why it is in the way. */
static const char *
reader_what(int dir, const char *name)
{
	struct stat st;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return "something";
	if (S_ISLNK(st.st_mode))
		return "a symbolic link";
	if (S_ISDIR(st.st_mode))
		return "a directory";
	if (S_ISREG(st.st_mode))
		return "a file";
	return "a special file";
}

/* Makes what was created and renamed in the account directory durable,
 * and closes it. */
static int
reader_acct_close(struct reader *r)
{
	int rc = 0;

	if (r->acct_fd == -1)
		return 0;
	if (fsync(r->acct_fd) == -1) {
		snprintf(r->why, sizeof(r->why), "syncing %s: %s",
		    r->acct_path, strerror(errno));
		rc = -1;
	}
	close(r->acct_fd);
	r->acct_fd = -1;
	return rc;
}

/*
 * Creates the directory of m's account and opens it.  It must be new:
 * one that exists is an earlier export's (whose files must not be
 * replaced) or was planted, and either way the export stops.
 */
static int
reader_acct_open(struct reader *r, const char *account)
{
	char *name;
	int rc = -1;

	if (reader_acct_close(r) == -1)
		return -1;
	free(r->acct);
	free(r->acct_path);
	r->acct = xstrdup(account);
	name = reader_dirname(account);
	r->acct_path = xasprintf("%s/%s", r->out_name, name);
	if (mkdirat(r->out_fd, name, 0700) == -1) {
		if (errno == EEXIST)
			snprintf(r->why, sizeof(r->why), "%s already exists "
			    "(%s); export never writes into an account "
			    "directory it did not create: export into a new "
			    "directory", r->acct_path,
			    reader_what(r->out_fd, name));
		else
			snprintf(r->why, sizeof(r->why), "creating %s: %s",
			    r->acct_path, strerror(errno));
		goto out;
	}
	if ((r->acct_fd = openat(r->out_fd, name, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1) {
		snprintf(r->why, sizeof(r->why), "opening %s: %s",
		    r->acct_path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(name); name = NULL;
	return rc;
}

/*
 * Gives the finished temporary file tmp its final name dst, in one step
 * that never replaces an existing dst.  renameat2() does it where the
 * file system can; NFS cannot, and there a hard link and an unlink do it,
 * which a crash between them leaves as two names of one complete file.
 */
static int
reader_publish(int dir, const char *tmp, const char *dst)
{
	if (renameat2(dir, tmp, dir, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (linkat(dir, tmp, dir, dst, 0) == -1)
		return -1;
	(void)unlinkat(dir, tmp, 0);
	return 0;
}

/*
 * Exports one message.  Returns 0 when it was written, or was damaged and
 * reported (the export goes on); -1 with r->why set when the export must
 * stop.
 */
static int
reader_export_one(void *arg, const struct db_message *m)
{
	struct reader *r = arg;
	char *tmp = NULL, *dst = NULL, *tmp_path = NULL;
	bool created = false;
	int rc = -1;

	if (!r->flat && (r->acct == NULL ||
	    strcmp(r->acct, m->account) != 0) &&
	    reader_acct_open(r, m->account) == -1)
		return -1;
	tmp = xasprintf(".%s.eml.tmp", m->sha256_hex);
	dst = xasprintf("%s.eml", m->sha256_hex);
	tmp_path = xasprintf("%s/%s", r->acct_path, tmp);
	r->path = tmp_path;
	if ((r->fd = openat(r->acct_fd, tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1) {
		snprintf(r->why, sizeof(r->why), "creating %s: %s", tmp_path,
		    strerror(errno));
		goto out;
	}
	created = true;
	switch (reader_blob(r, m)) {
	case 0:
		break;
	case -1:
		if (r->write_failed)
			goto out;
		/* The blob is damaged, not the export: say so, go on. */
		log_warnx("export: damaged blob %s of account %s not "
		    "exported: %s", m->sha256_hex, m->account, r->why);
		r->bad++;
		rc = 0;
		goto out;
	default:
		goto out;
	}
	if (fsync(r->fd) == -1 || close(r->fd) == -1) {
		r->fd = -1;
		snprintf(r->why, sizeof(r->why), "writing %s: %s", tmp_path,
		    strerror(errno));
		goto out;
	}
	r->fd = -1;
	if (reader_publish(r->acct_fd, tmp, dst) == -1) {
		if (errno == EEXIST)
			snprintf(r->why, sizeof(r->why), "%s/%s already "
			    "exists (%s); export never replaces a file",
			    r->acct_path, dst, reader_what(r->acct_fd, dst));
		else
			snprintf(r->why, sizeof(r->why), "renaming %s: %s",
			    tmp_path, strerror(errno));
		goto out;
	}
	created = false;
	r->count++;
	rc = 0;
out:
	if (r->fd != -1) {
		close(r->fd);
		r->fd = -1;
	}
	if (created)
		(void)unlinkat(r->acct_fd, tmp, 0);
	r->path = NULL;
	free(tmp); tmp = NULL;
	free(dst); dst = NULL;
	free(tmp_path); tmp_path = NULL;
	return rc;
}

int
reader_export(struct db *db, int dir_fd, const char *dir_name,
    const char *account, uint64_t *count_r, uint64_t *bad_r, char *err,
    size_t errlen)
{
	struct reader r = {
		.db = db, .fd = -1, .out_fd = dir_fd, .out_name = dir_name,
		.acct_fd = -1,
	};
	int rc = -1;

	if (db_each_message(db, account, reader_export_one, &r) == -1) {
		snprintf(err, errlen, "%s", r.why[0] != '\0' ? r.why :
		    db_error(db));
		goto out;
	}
	if (reader_acct_close(&r) == -1) {
		snprintf(err, errlen, "%s", r.why);
		goto out;
	}
	/* The account directories' own names. */
	if (fsync(dir_fd) == -1) {
		snprintf(err, errlen, "syncing %s: %s", dir_name,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	*count_r = r.count;
	*bad_r = r.bad;
	if (r.acct_fd != -1)
		close(r.acct_fd);
	reader_decs_free(&r);
	free(r.acct); r.acct = NULL;
	free(r.acct_path); r.acct_path = NULL;
	return rc;
}

/* A damaged blob, kept to name the accounts that hold it. */
struct reader_damaged {
	char hex[65];
	char *why;
	bool held;		/* some account holds it */
};

struct reader_verify {
	struct reader r;
	const char *account;	/* NULL: every blob */
	uint64_t ok, bad;
	bool lost;		/* the database went away */
	struct reader_damaged *damaged;	/* sorted by hex */
	size_t ndamaged, damaged_cap;
};

static int
reader_verify_one(void *arg, const struct db_message *m)
{
	struct reader_verify *v = arg;
	struct reader_damaged *d;

	switch (reader_blob(&v->r, m)) {
	case 0:
		v->ok++;
		return 0;
	case -1:
		v->bad++;
		if (v->account != NULL) {
			log_warnx("verify: damaged blob %s of account %s: %s",
			    m->sha256_hex, v->account, v->r.why);
			return 0;
		}
		log_warnx("verify: damaged blob %s: %s", m->sha256_hex,
		    v->r.why);
		if (v->ndamaged == READER_DAMAGED_MAX)
			return 0;
		/* Blobs come in hash order, so the list stays sorted. */
		if (v->ndamaged == v->damaged_cap) {
			v->damaged_cap = v->damaged_cap * 2 + 16;
			v->damaged = xreallocarray(v->damaged, v->damaged_cap,
			    sizeof(*v->damaged));
		}
		d = &v->damaged[v->ndamaged++];
		snprintf(d->hex, sizeof(d->hex), "%s", m->sha256_hex);
		d->why = xstrdup(v->r.why);
		d->held = false;
		return 0;
	default:
		v->lost = true;
		return -1;
	}
}

static int
reader_damaged_cmp(const void *key, const void *elem)
{
	const struct reader_damaged *d = elem;

	return strcmp(key, d->hex);
}

/* The second pass of a verify of every blob: who holds a damaged one. */
static int
reader_verify_holder(void *arg, const struct db_message *m)
{
	struct reader_verify *v = arg;
	struct reader_damaged *d;

	d = v->ndamaged == 0 ? NULL : bsearch(m->sha256_hex, v->damaged,
	    v->ndamaged, sizeof(*v->damaged), reader_damaged_cmp);
	if (d != NULL) {
		d->held = true;
		log_warnx("verify: damaged blob %s of account %s: %s", d->hex,
		    m->account, d->why);
	}
	return 0;
}

int
reader_verify(struct db *db, const char *account, uint64_t *ok_r,
    uint64_t *bad_r, char *err, size_t errlen)
{
	struct reader_verify v = {
		.r = { .db = db, .fd = -1, .acct_fd = -1 },
		.account = account,
	};
	size_t i;
	int rc;

	/* All blobs once each, or those one account refers to. */
	if (account == NULL)
		rc = db_each_blob(db, reader_verify_one, &v);
	else
		rc = db_each_message(db, account, reader_verify_one, &v);
	if (rc == -1)
		snprintf(err, errlen, "%s", v.lost ? v.r.why : db_error(db));
	else if (v.ndamaged > 0) {
		/* A blob is stored once for all who hold it: name them. */
		if (db_each_message(db, NULL, reader_verify_holder,
		    &v) == -1) {
			snprintf(err, errlen, "finding the accounts of "
			    "damaged blobs: %s", db_error(db));
			rc = -1;
		}
		for (i = 0; rc == 0 && i < v.ndamaged; i++)
			if (!v.damaged[i].held)
				log_warnx("verify: damaged blob %s is held by "
				    "no account", v.damaged[i].hex);
		if (v.bad > v.ndamaged)
			log_warnx("verify: the accounts of %" PRIu64 " more "
			    "damaged blobs are not named", v.bad - v.ndamaged);
	}
	*ok_r = v.ok;
	*bad_r = v.bad;
	for (i = 0; i < v.ndamaged; i++) {
		free(v.damaged[i].why); v.damaged[i].why = NULL;
	}
	free(v.damaged); v.damaged = NULL;
	reader_decs_free(&v.r);
	return rc;
}

/* ---- export by query ---- */

/* A delivery's blob, to export once however many deliveries share it. */
struct reader_hit {
	char hex[65];
	uint64_t size;
	int64_t dict_id;
	char *account;		/* the first delivery's, for messages */
	bool written;
};

struct reader_query {
	FILE *manifest;
	struct reader_hit *hits;
	size_t nhits, cap;
	uint64_t deliveries;
	char why[256];
};

/* Creates name in dir (never replacing, never through a link) for
 * writing. */
static FILE *
reader_create(int dir, const char *dir_name, const char *name, char *why,
    size_t whylen)
{
	FILE *f;
	int fd;

	if ((fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		if (errno == EEXIST)
			snprintf(why, whylen, "%s/%s already exists (%s); "
			    "export never replaces a file: export into a new "
			    "directory", dir_name, name, reader_what(dir,
			    name));
		else
			snprintf(why, whylen, "creating %s/%s: %s", dir_name,
			    name, strerror(errno));
		return NULL;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		snprintf(why, whylen, "%s/%s: %s", dir_name, name,
		    strerror(errno));
		close(fd);
	}
	return f;
}

/* Flushes f to disk and closes it; 0 or -1 with why set. */
static int
reader_close_file(FILE *f, const char *dir_name, const char *name,
    char *why, size_t whylen)
{
	int rc = 0;

	if (fflush(f) == EOF || ferror(f) || fsync(fileno(f)) == -1)
		rc = -1;
	if (fclose(f) == EOF)
		rc = -1;
	if (rc == -1)
		snprintf(why, whylen, "writing %s/%s: %s", dir_name, name,
		    strerror(errno));
	return rc;
}

/* One manifest line per delivery, and its blob remembered. */
static int
reader_query_row(void *arg, int ncols, const char *const *v)
{
	struct reader_query *q = arg;
	struct reader_hit *h;
	FILE *f = q->manifest;

	if (ncols < QUERY_COL_COUNT || v[QUERY_COL_SHA256] == NULL ||
	    strlen(v[QUERY_COL_SHA256]) != 64) {
		snprintf(q->why, sizeof(q->why), "search: unexpected row");
		return -1;
	}
	putc('{', f);
	json_field(f, "account", v[QUERY_COL_ACCOUNT], 1);
	json_field(f, "uidl", v[QUERY_COL_UIDL], 0);
	json_field(f, "sha256", v[QUERY_COL_SHA256], 0);
	json_num(f, "size", v[QUERY_COL_SIZE]);
	json_field(f, "archived_at", v[QUERY_COL_ARCHIVED_AT], 0);
	json_field(f, "date", v[QUERY_COL_DATE], 0);
	json_field(f, "from", v[QUERY_COL_FROM], 0);
	json_field(f, "to", v[QUERY_COL_TO], 0);
	json_field(f, "cc", v[QUERY_COL_CC], 0);
	json_field(f, "subject", v[QUERY_COL_SUBJECT], 0);
	json_field(f, "message_id", v[QUERY_COL_MESSAGE_ID], 0);
	/* JSON made by the server. */
	fprintf(f, ",\"attachments\":%s}\n", v[QUERY_COL_ATTACHMENTS] != NULL ?
	    v[QUERY_COL_ATTACHMENTS] : "[]");
	q->deliveries++;
	if (q->nhits == q->cap) {
		q->cap = q->cap * 2 + 64;
		q->hits = xreallocarray(q->hits, q->cap, sizeof(*q->hits));
	}
	h = &q->hits[q->nhits++];
	snprintf(h->hex, sizeof(h->hex), "%s", v[QUERY_COL_SHA256]);
	h->size = strtoull(v[QUERY_COL_SIZE], NULL, 10);
	h->dict_id = v[QUERY_COL_DICT_ID] != NULL ?
	    strtoll(v[QUERY_COL_DICT_ID], NULL, 10) : 0;
	h->account = xstrdup(v[QUERY_COL_ACCOUNT]);
	h->written = false;
	return 0;
}

static int
reader_hit_cmp(const void *a, const void *b)
{
	const struct reader_hit *x = a, *y = b;

	return strcmp(x->hex, y->hex);
}

/* The SHA-256 of name in dir, read back, as hex; 0 or -1 with why. */
static int
reader_hash_file(int dir, const char *dir_name, const char *name,
    char hex[65], char *why, size_t whylen)
{
	struct hash_sha256 h;
	unsigned char buf[65536], digest[32];
	ssize_t n;
	int fd;

	if ((fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1) {
		snprintf(why, whylen, "reading %s/%s: %s", dir_name, name,
		    strerror(errno));
		return -1;
	}
	hash_sha256_init(&h);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		hash_sha256_update(&h, buf, (size_t)n);
	if (n == -1) {
		snprintf(why, whylen, "reading %s/%s: %s", dir_name, name,
		    strerror(errno));
		hash_sha256_release(&h);
		close(fd);
		return -1;
	}
	hash_sha256_final(&h, digest);
	hash_sha256_release(&h);
	close(fd);
	pipe_hex(digest, hex);
	return 0;
}

int
reader_export_query(struct db *db, int dir_fd, const char *dir_name,
    const char *query_text, const struct query_sql *sql,
    struct reader_export_stats *st, char *err, size_t errlen)
{
	struct reader r = {
		.db = db, .fd = -1, .out_fd = dir_fd, .out_name = dir_name,
		.acct_fd = -1, .flat = true,
	};
	struct reader_query q = { 0 };
	struct db_message m;
	char ran_at[32], hex[65];
	FILE *f = NULL;
	time_t now = time(NULL);
	struct tm tm;
	size_t i, n;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	gmtime_r(&now, &tm);
	strftime(ran_at, sizeof(ran_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	r.acct_path = xasprintf("%s/messages", dir_name);
	if (mkdirat(dir_fd, "messages", 0700) == -1) {
		if (errno == EEXIST)
			snprintf(err, errlen, "%s already exists (%s); export "
			    "never writes into a directory it did not create: "
			    "export into a new directory", r.acct_path,
			    reader_what(dir_fd, "messages"));
		else
			snprintf(err, errlen, "creating %s: %s", r.acct_path,
			    strerror(errno));
		goto out;
	}
	if ((r.acct_fd = openat(dir_fd, "messages", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "opening %s: %s", r.acct_path,
		    strerror(errno));
		goto out;
	}
	if ((q.manifest = reader_create(dir_fd, dir_name, "manifest.jsonl",
	    err, errlen)) == NULL)
		goto out;
	if (db_search(db, sql, false, reader_query_row, &q) == -1) {
		snprintf(err, errlen, "%s", q.why[0] != '\0' ? q.why :
		    db_error(db));
		goto out;
	}
	f = q.manifest;
	q.manifest = NULL;
	if (reader_close_file(f, dir_name, "manifest.jsonl", err,
	    errlen) == -1)
		goto out;
	st->deliveries = q.deliveries;

	/* Each distinct blob once, in hash order. */
	if (q.nhits > 0)
		qsort(q.hits, q.nhits, sizeof(*q.hits), reader_hit_cmp);
	for (i = n = 0; i < q.nhits; i++) {
		if (n > 0 && strcmp(q.hits[n - 1].hex, q.hits[i].hex) == 0) {
			free(q.hits[i].account); q.hits[i].account = NULL;
			continue;
		}
		q.hits[n++] = q.hits[i];
	}
	q.nhits = n;
	st->messages = n;
	r.total = n;
	for (i = 0; i < n; i++)
		r.total_bytes += q.hits[i].size;
	for (i = 0; i < q.nhits; i++) {
		uint64_t before = r.count;

		m.account = q.hits[i].account;
		m.sha256_hex = q.hits[i].hex;
		m.size = q.hits[i].size;
		m.dict_id = q.hits[i].dict_id;
		if (reader_export_one(&r, &m) == -1) {
			snprintf(err, errlen, "%s", r.why);
			goto out;
		}
		q.hits[i].written = r.count > before;
	}
	st->written = r.count;
	st->bad = r.bad;
	if (fsync(r.acct_fd) == -1) {
		snprintf(err, errlen, "syncing %s: %s", r.acct_path,
		    strerror(errno));
		goto out;
	}

	if ((f = reader_create(dir_fd, dir_name, "query.json", err,
	    errlen)) == NULL)
		goto out;
	putc('{', f);
	json_field(f, "query", query_text, 1);
	json_field(f, "ran_at", ran_at, 0);
	fprintf(f, ",\"deliveries\":%" PRIu64 ",\"messages\":%" PRIu64
	    ",\"exported\":%" PRIu64 ",\"damaged\":%" PRIu64 "}\n",
	    st->deliveries, st->messages, st->written, st->bad);
	if (reader_close_file(f, dir_name, "query.json", err, errlen) == -1)
		goto out;

	/* Every other file, as `sha256sum -c` in dir_name reads it. */
	if ((f = reader_create(dir_fd, dir_name, "SHA256SUMS", err,
	    errlen)) == NULL)
		goto out;
	for (i = 0; i < q.nhits; i++)
		if (q.hits[i].written)
			fprintf(f, "%s  messages/%s.eml\n", q.hits[i].hex,
			    q.hits[i].hex);
	if (reader_hash_file(dir_fd, dir_name, "manifest.jsonl", hex, err,
	    errlen) == -1)
		goto fail_sums;
	fprintf(f, "%s  manifest.jsonl\n", hex);
	snprintf(st->manifest_sha256, sizeof(st->manifest_sha256), "%s", hex);
	if (reader_hash_file(dir_fd, dir_name, "query.json", hex, err,
	    errlen) == -1)
		goto fail_sums;
	fprintf(f, "%s  query.json\n", hex);
	if (reader_close_file(f, dir_name, "SHA256SUMS", err, errlen) == -1)
		goto out;
	f = NULL;
	if (reader_hash_file(dir_fd, dir_name, "SHA256SUMS", st->sums_sha256,
	    err, errlen) == -1)
		goto out;
	if (fsync(dir_fd) == -1) {
		snprintf(err, errlen, "syncing %s: %s", dir_name,
		    strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail_sums:
	fclose(f);
out:
	if (q.manifest != NULL)
		fclose(q.manifest);
	for (i = 0; i < q.nhits; i++)
		free(q.hits[i].account);
	free(q.hits); q.hits = NULL;
	if (r.acct_fd != -1)
		close(r.acct_fd);
	reader_decs_free(&r);
	free(r.acct_path); r.acct_path = NULL;
	return rc;
}

struct reader *
reader_new(struct db *db)
{
	struct reader *r = xcalloc(1, sizeof(*r));

	r->db = db;
	r->fd = -1;
	r->out_fd = -1;
	r->acct_fd = -1;
	return r;
}

int
reader_stream(struct reader *r, const struct db_message *m,
    int (*cb)(void *arg, const void *p, size_t n), void *arg, char *why,
    size_t whylen)
{
	int rc;

	r->tap = cb;
	r->tap_arg = arg;
	rc = reader_blob(r, m);
	r->tap = NULL;
	r->tap_arg = NULL;
	if (rc != 0)
		snprintf(why, whylen, "%s", r->why);
	return rc;
}

void
reader_free(struct reader **rp)
{
	struct reader *r = *rp;

	if (r == NULL)
		return;
	reader_decs_free(r);
	free(r);
	*rp = NULL;
}
struct reader_each {
	struct reader r;
	void (*cb)(void *arg, const char *sha256_hex, const char *why);
	void *arg;
	uint64_t ok, bad;
	bool lost;
};

static int
reader_each_one(void *arg, const struct db_message *m)
{
	struct reader_each *v = arg;

	switch (reader_blob(&v->r, m)) {
	case 0:
		v->ok++;
		return 0;
	case -1:
		v->bad++;
		v->cb(v->arg, m->sha256_hex, v->r.why);
		return 0;
	default:
		v->lost = true;
		return -1;
	}
}

int
reader_verify_each(struct db *db,
    void (*cb)(void *arg, const char *sha256_hex, const char *why),
    void *arg, uint64_t *ok_r, uint64_t *bad_r, char *err, size_t errlen)
{
	struct reader_each v = {
		.r = { .db = db, .fd = -1, .acct_fd = -1 },
		.cb = cb,
		.arg = arg,
	};
	int rc;

	if ((rc = db_each_blob(db, reader_each_one, &v)) == -1)
		snprintf(err, errlen, "%s", v.lost ? v.r.why : db_error(db));
	*ok_r = v.ok;
	*bad_r = v.bad;
	reader_decs_free(&v.r);
	return rc;
}
