#include "store/ledger.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"
#include "store/b64.h"
#include "store/json.h"

static bool
ledger_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '-'))
			return false;
	return true;
}

/* Appends s[0, n) to *out (size *cap, used *len). */
static void
ledger_put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*out = xreallocarray(*out, *cap, 1);
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
}

char *
ledger_entry_encode(const char *kind, const struct ledger_field *f,
    size_t n, size_t *len_r)
{
	static const char hexd[] = "0123456789ABCDEF";
	char *out = NULL, esc[3];
	size_t len = 0, cap = 0, i;
	const unsigned char *v;

	if (!ledger_name_ok(kind, strlen(kind)) || n > LEDGER_FIELDS_MAX)
		return NULL;
	for (i = 0; i < n; i++)
		if (!ledger_name_ok(f[i].key, strlen(f[i].key)))
			return NULL;
	ledger_put(&out, &len, &cap, LEDGER_MAGIC "\nkind ",
	    strlen(LEDGER_MAGIC "\nkind "));
	ledger_put(&out, &len, &cap, kind, strlen(kind));
	ledger_put(&out, &len, &cap, "\n", 1);
	for (i = 0; i < n; i++) {
		ledger_put(&out, &len, &cap, f[i].key, strlen(f[i].key));
		ledger_put(&out, &len, &cap, " ", 1);
		for (v = (const unsigned char *)(f[i].value ? f[i].value :
		    ""); *v != '\0'; v++) {
			if (*v > 0x20 && *v < 0x7f && *v != '%') {
				ledger_put(&out, &len, &cap, (const char *)v,
				    1);
				continue;
			}
			esc[0] = '%';
			esc[1] = hexd[*v >> 4];
			esc[2] = hexd[*v & 15];
			ledger_put(&out, &len, &cap, esc, 3);
		}
		ledger_put(&out, &len, &cap, "\n", 1);
	}
	*len_r = len;
	return out;
}

void
ledger_entry_release(struct ledger_entry *e)
{
	size_t i;

	free(e->kind); e->kind = NULL;
	for (i = 0; i < e->n; i++) {
		free((char *)e->f[i].key);
		free((char *)e->f[i].value);
	}
	memset(e, 0, sizeof(*e));
}

static int
ledger_unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
ledger_entry_parse(const void *data, size_t n, struct ledger_entry *e,
    char *err, size_t errlen)
{
	const char *p = data, *end = p + n, *eol, *sp, *s;
	char *v;
	size_t o, line = 2;
	int hi, lo;

	memset(e, 0, sizeof(*e));
	if (n < strlen(LEDGER_MAGIC "\nkind ") ||
	    memcmp(p, LEDGER_MAGIC "\nkind ",
	    strlen(LEDGER_MAGIC "\nkind ")) != 0) {
		snprintf(err, errlen, "entry: does not start with \"%s\"",
		    LEDGER_MAGIC);
		return -1;
	}
	p += strlen(LEDGER_MAGIC "\nkind ");
	if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL ||
	    !ledger_name_ok(p, (size_t)(eol - p))) {
		snprintf(err, errlen, "entry: bad kind line");
		return -1;
	}
	e->kind = xstrndup(p, (size_t)(eol - p));
	for (p = eol + 1; p < end; p = eol + 1) {
		line++;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL ||
		    (sp = memchr(p, ' ', (size_t)(eol - p))) == NULL ||
		    !ledger_name_ok(p, (size_t)(sp - p)) ||
		    e->n == LEDGER_FIELDS_MAX) {
			snprintf(err, errlen, "entry: bad line %zu", line);
			goto fail;
		}
		v = xmalloc((size_t)(eol - sp));
		for (o = 0, s = sp + 1; s < eol; s++) {
			if (*s == '%' && eol - s >= 3 &&
			    (hi = ledger_unhex(s[1])) != -1 &&
			    (lo = ledger_unhex(s[2])) != -1 &&
			    (hi << 4 | lo) != 0 && ((hi << 4 | lo) <= 0x20 ||
			    (hi << 4 | lo) >= 0x7f || (hi << 4 | lo) == '%')) {
				/* Only what must be escaped is. */
				v[o++] = (char)(hi << 4 | lo);
				s += 2;
			} else if ((unsigned char)*s > 0x20 &&
			    (unsigned char)*s < 0x7f && *s != '%')
				v[o++] = *s;
			else {
				free(v); v = NULL;
				snprintf(err, errlen, "entry: bad value on "
				    "line %zu", line);
				goto fail;
			}
		}
		v[o] = '\0';
		e->f[e->n].key = xstrndup(p, (size_t)(sp - p));
		e->f[e->n].value = v;
		e->n++;
	}
	return 0;
fail:
	ledger_entry_release(e);
	return -1;
}

const char *
ledger_entry_get(const struct ledger_entry *e, const char *key)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (strcmp(e->f[i].key, key) == 0)
			return e->f[i].value;
	return NULL;
}

static int
ledger_hex32(const char *s, size_t n, unsigned char out[32])
{
	size_t i;
	int hi, lo;

	if (n != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		hi = s[2 * i] >= 'a' && s[2 * i] <= 'f' ? s[2 * i] - 'a' + 10 :
		    s[2 * i] >= '0' && s[2 * i] <= '9' ? s[2 * i] - '0' : -1;
		lo = s[2 * i + 1] >= 'a' && s[2 * i + 1] <= 'f' ?
		    s[2 * i + 1] - 'a' + 10 : s[2 * i + 1] >= '0' &&
		    s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : -1;
		if (hi == -1 || lo == -1)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int
ledger_proof_leaf(const struct json *j, struct ledger_proof_leaf *l,
    char *err, size_t errlen)
{
	const struct json *idx = json_get(j, "leaf_index"),
	    *ent = json_get(j, "entry"), *path = json_get(j, "audit_path");
	size_t i;

	if (idx == NULL || idx->type != JSON_INT || idx->i < 0) {
		snprintf(err, errlen, "proof: \"leaf_index\" must be a "
		    "non-negative integer");
		return -1;
	}
	l->index = (uint64_t)idx->i;
	if (ent == NULL || ent->type != JSON_STRING) {
		snprintf(err, errlen, "proof: \"entry\" must be a base64 "
		    "string");
		return -1;
	}
	l->entry = xmalloc(ent->slen / 4 * 3 + 1);
	if (b64_decode(ent->s, ent->slen, l->entry, ent->slen / 4 * 3 + 1,
	    &l->entry_len) == -1) {
		snprintf(err, errlen, "proof: \"entry\" is not base64");
		return -1;
	}
	if (path == NULL || path->type != JSON_ARRAY ||
	    path->n > MERKLE_MAX_PATH) {
		snprintf(err, errlen, "proof: \"audit_path\" must be an "
		    "array of at most %d hashes", MERKLE_MAX_PATH);
		return -1;
	}
	for (i = 0; i < path->n; i++)
		if (path->items[i]->type != JSON_STRING ||
		    ledger_hex32(path->items[i]->s, path->items[i]->slen,
		    l->path[i]) == -1) {
			snprintf(err, errlen, "proof: \"audit_path\"[%zu] is "
			    "not 64 lowercase hex digits", i);
			return -1;
		}
	l->path_len = path->n;
	return 0;
}

int
ledger_proof_parse(const char *text, size_t n, struct ledger_proof *p,
    char *err, size_t errlen)
{
	const struct json *sha, *size, *cp, *leaves, *ver;
	unsigned char dummy[32];
	struct json *j;
	size_t i;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if ((j = json_parse(text, n, err, errlen)) == NULL)
		return -1;
	if (j->type != JSON_OBJECT) {
		snprintf(err, errlen, "proof: not a JSON object");
		goto out;
	}
	ver = json_get(j, "version");
	if (ver == NULL || ver->type != JSON_INT || ver->i != 1) {
		snprintf(err, errlen, "proof: \"version\" must be 1");
		goto out;
	}
	sha = json_get(j, "sha256");
	if (sha == NULL || sha->type != JSON_STRING ||
	    ledger_hex32(sha->s, sha->slen, dummy) == -1) {
		snprintf(err, errlen, "proof: \"sha256\" must be 64 lowercase "
		    "hex digits");
		goto out;
	}
	memcpy(p->sha256, sha->s, 65);
	size = json_get(j, "tree_size");
	if (size == NULL || size->type != JSON_INT || size->i < 1) {
		snprintf(err, errlen, "proof: \"tree_size\" must be a "
		    "positive integer");
		goto out;
	}
	p->tree_size = (uint64_t)size->i;
	cp = json_get(j, "checkpoint");
	if (cp == NULL || cp->type != JSON_STRING) {
		snprintf(err, errlen, "proof: \"checkpoint\" must be the "
		    "signed note, as a string");
		goto out;
	}
	p->checkpoint = xstrndup(cp->s, cp->slen);
	p->checkpoint_len = cp->slen;
	/* All the leaves; the top level repeats the first. */
	leaves = json_get(j, "leaves");
	if (leaves != NULL && (leaves->type != JSON_ARRAY || leaves->n == 0 ||
	    leaves->n > 100000)) {
		snprintf(err, errlen, "proof: \"leaves\" must be a non-empty "
		    "array");
		goto out;
	}
	p->nleaves = leaves != NULL ? leaves->n : 1;
	p->leaves = xcalloc(p->nleaves, sizeof(*p->leaves));
	for (i = 0; i < p->nleaves; i++)
		if (ledger_proof_leaf(leaves != NULL ? leaves->items[i] : j,
		    &p->leaves[i], err, errlen) == -1)
			goto out;
	if (leaves != NULL) {
		struct ledger_proof_leaf top = { 0 };

		if (ledger_proof_leaf(j, &top, err, errlen) == -1) {
			free(top.entry); top.entry = NULL;
			goto out;
		}
		if (top.index != p->leaves[0].index ||
		    top.entry_len != p->leaves[0].entry_len ||
		    memcmp(top.entry, p->leaves[0].entry, top.entry_len) != 0) {
			snprintf(err, errlen, "proof: the top-level leaf is "
			    "not the first of \"leaves\"");
			free(top.entry); top.entry = NULL;
			goto out;
		}
		free(top.entry); top.entry = NULL;
	}
	rc = 0;
out:
	json_free(&j);
	if (rc == -1)
		ledger_proof_release(p);
	return rc;
}

void
ledger_proof_release(struct ledger_proof *p)
{
	size_t i;

	for (i = 0; i < p->nleaves && p->leaves != NULL; i++) {
		free(p->leaves[i].entry); p->leaves[i].entry = NULL;
	}
	free(p->leaves); p->leaves = NULL;
	free(p->checkpoint); p->checkpoint = NULL;
	memset(p, 0, sizeof(*p));
}

int
ledger_proof_verify(const struct ledger_proof *p,
    const struct note_verifier *v, const unsigned char msg_sha256[32],
    uint64_t msg_size, char *err, size_t errlen)
{
	static const char hexd[] = "0123456789abcdef";
	struct note_checkpoint cp;
	struct ledger_entry e;
	unsigned char leaf[32];
	const char *sha, *size;
	char hex[65], why[256], sizebuf[24];
	size_t textlen, i;

	for (i = 0; i < 32; i++) {
		hex[2 * i] = hexd[msg_sha256[i] >> 4];
		hex[2 * i + 1] = hexd[msg_sha256[i] & 15];
	}
	hex[64] = '\0';
	snprintf(sizebuf, sizeof(sizebuf), "%" PRIu64, msg_size);
	if (note_open(p->checkpoint, p->checkpoint_len, v, &textlen, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "checkpoint: %s", why);
		return -1;
	}
	if (note_checkpoint_parse(p->checkpoint, textlen, &cp, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	if (strcmp(cp.origin, v->name) != 0) {
		snprintf(err, errlen, "checkpoint: origin \"%s\" is not the "
		    "key's name \"%s\"", cp.origin, v->name);
		return -1;
	}
	if (cp.size != p->tree_size) {
		snprintf(err, errlen, "proof: tree_size %" PRIu64 " is not "
		    "the checkpoint's %" PRIu64, p->tree_size, cp.size);
		return -1;
	}
	if (strcmp(p->sha256, hex) != 0) {
		snprintf(err, errlen, "the message's SHA-256 is %s; the proof "
		    "is for %s", hex, p->sha256);
		return -1;
	}
	for (i = 0; i < p->nleaves; i++) {
		const struct ledger_proof_leaf *l = &p->leaves[i];

		if (ledger_entry_parse(l->entry, l->entry_len, &e, why,
		    sizeof(why)) == -1) {
			snprintf(err, errlen, "leaf %" PRIu64 ": %s",
			    l->index, why);
			return -1;
		}
		sha = ledger_entry_get(&e, "sha256");
		size = ledger_entry_get(&e, "size");
		if (strcmp(e.kind, "ingest") != 0 || sha == NULL ||
		    strcmp(sha, hex) != 0 || size == NULL ||
		    strcmp(size, sizebuf) != 0) {
			snprintf(err, errlen, "leaf %" PRIu64 ": the entry is "
			    "not the ingest of this message (sha256 %s, size "
			    "%s)", l->index, sha ? sha : "-",
			    size ? size : "-");
			ledger_entry_release(&e);
			return -1;
		}
		ledger_entry_release(&e);
		merkle_leaf_hash(l->entry, l->entry_len, leaf);
		if (!merkle_verify_inclusion(leaf, l->index, cp.size, l->path,
		    l->path_len, cp.root)) {
			snprintf(err, errlen, "leaf %" PRIu64 ": the audit "
			    "path does not lead to the checkpoint's root",
			    l->index);
			return -1;
		}
	}
	return 0;
}
