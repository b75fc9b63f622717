/*
 * store/note, store/sign, store/b64, store/ledger: signed notes against
 * the vectors of Go's golang.org/x/mod/sumdb/note and the C2SP
 * signed-note specification, checkpoints, ledger entries and proof files.
 */
#include "tests/unit/test.h"

#include "ingestd/base/xmalloc.h"
#include "store/b64.h"
#include "store/hash.h"
#include "store/ledger.h"
#include "store/note.h"
#include "store/sign.h"

#define TESTS(X)                                                         \
	X(test_b64)                                                      \
	X(test_go_vector_sign)                                           \
	X(test_go_vector_open)                                           \
	X(test_c2sp_vector_open)                                         \
	X(test_verifier_key_manglings)                                   \
	X(test_checkpoint)                                               \
	X(test_entry)                                                    \
	X(test_proof_file)
TESTS(TEST_DECLARE)

/* golang.org/x/mod/sumdb/note, note_test.go and example_test.go. */
#define GO_SKEY_B64 "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
#define GO_VKEY                                                          \
	"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
#define GO_TEXT                                                          \
	"If you think cryptography is the answer to your problem,\n"     \
	"then you don't know what your problem is.\n"
#define GO_SIG                                                           \
	"\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcE" \
	"lZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
/* c2sp.org/signed-note, the example. */
#define C2SP_VKEY                                                        \
	"example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
#define C2SP_NOTE                                                        \
	"This is an example message.\n\n"                                \
	"\xe2\x80\x94 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX" \
	"ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"

static struct sign_key *
go_key(void)
{
	unsigned char raw[64];
	size_t n;
	struct sign_key *k;

	ASSERT_EQ(b64_decode(GO_SKEY_B64, strlen(GO_SKEY_B64), raw,
	    sizeof(raw), &n), 0);
	ASSERT_EQ(n, 33);
	ASSERT_EQ(raw[0], 1);
	ASSERT_TRUE((k = sign_key_from_seed(raw + 1)) != NULL);
	return k;
}

static void
test_b64(void)
{
	static const struct {
		const char *in, *out;
	} v[] = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } };
	unsigned char buf[16];
	char out[16];
	size_t i, n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		b64_encode(v[i].in, strlen(v[i].in), out);
		ASSERT_STREQ(out, v[i].out);
		ASSERT_EQ(b64_decode(v[i].out, strlen(v[i].out), buf,
		    sizeof(buf), &n), 0);
		ASSERT_EQ(n, strlen(v[i].in));
		ASSERT_MEMEQ(buf, v[i].in, n);
	}
	/* Not canonical, not padded, not base64, too long for buf. */
	ASSERT_EQ(b64_decode("Zh==", 4, buf, sizeof(buf), &n), -1);
	ASSERT_EQ(b64_decode("Zg", 2, buf, sizeof(buf), &n), -1);
	ASSERT_EQ(b64_decode("Z g=", 4, buf, sizeof(buf), &n), -1);
	ASSERT_EQ(b64_decode("Zg==Zg==", 8, buf, sizeof(buf), &n), -1);
	ASSERT_EQ(b64_decode("Zm9vYmFy", 8, buf, 5, &n), -1);
}

static void
test_go_vector_sign(void)
{
	unsigned char pub[32];
	struct sign_key *k = go_key();
	char *vkey, *note;

	sign_key_public(k, pub);
	vkey = note_verifier_key("PeterNeumann", pub);
	ASSERT_STREQ(vkey, GO_VKEY);
	/* Ed25519 is deterministic: the exact bytes Go writes. */
	note = note_sign(GO_TEXT, "PeterNeumann", k);
	ASSERT_STREQ(note, GO_TEXT "\n" GO_SIG);
	/* Unsignable text: no final newline, a control character. */
	ASSERT_TRUE(note_sign("no newline", "PeterNeumann", k) == NULL);
	ASSERT_TRUE(note_sign("tab\there\n", "PeterNeumann", k) == NULL);
	ASSERT_TRUE(note_sign("x\n", "has space", k) == NULL);
	free(vkey); vkey = NULL;
	free(note); note = NULL;
	sign_key_free(&k);
	ASSERT_TRUE(k == NULL);
}

static void
test_go_vector_open(void)
{
	const char *msg = GO_TEXT "\n" GO_SIG;
	struct note_verifier v;
	char err[256], *bad;
	size_t textlen, i;

	ASSERT_EQ(note_verifier_parse(GO_VKEY, &v, err, sizeof(err)), 0);
	ASSERT_STREQ(v.name, "PeterNeumann");
	ASSERT_EQ(note_open(msg, strlen(msg), &v, &textlen, err,
	    sizeof(err)), 0);
	ASSERT_EQ(textlen, strlen(GO_TEXT));
	/* Any byte changed fails, whatever it hits. */
	bad = xstrdup(msg);
	for (i = 0; i < strlen(msg); i++) {
		bad[i] ^= 0x01;
		ASSERT_EQ(note_open(bad, strlen(msg), &v, &textlen, err,
		    sizeof(err)), -1);
		bad[i] ^= 0x01;
	}
	free(bad); bad = NULL;
	/* Truncated. */
	ASSERT_EQ(note_open(msg, strlen(msg) - 1, &v, &textlen, err,
	    sizeof(err)), -1);
}

static void
test_c2sp_vector_open(void)
{
	struct note_verifier v, go;
	char err[256];
	size_t textlen;

	ASSERT_EQ(note_verifier_parse(C2SP_VKEY, &v, err, sizeof(err)), 0);
	ASSERT_EQ(note_open(C2SP_NOTE, strlen(C2SP_NOTE), &v, &textlen, err,
	    sizeof(err)), 0);
	ASSERT_EQ(textlen, strlen("This is an example message.\n"));
	/* Another key finds no signature of its own. */
	ASSERT_EQ(note_verifier_parse(GO_VKEY, &go, err, sizeof(err)), 0);
	ASSERT_EQ(note_open(C2SP_NOTE, strlen(C2SP_NOTE), &go, &textlen, err,
	    sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, "no signature by key PeterNeumann") != NULL);
}

static void
test_verifier_key_manglings(void)
{
	struct note_verifier v;
	char err[256], *k = xstrdup(GO_VKEY);
	size_t i, j, n = strlen(k);

	for (i = 0; i < n; i++) {
		k[i]++;
		ASSERT_EQ(note_verifier_parse(k, &v, err, sizeof(err)), -1);
		k[i]--;
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j <= n; j++) {
			char *sub;

			if (i == 0 && j == n)
				continue;
			sub = xstrndup(k + i, j - i);
			ASSERT_EQ(note_verifier_parse(sub, &v, err,
			    sizeof(err)), -1);
			free(sub); sub = NULL;
		}
	free(k); k = NULL;
}

static void
test_checkpoint(void)
{
	struct note_checkpoint c = { .origin = "archive.example/ingestd",
		.size = 8 }, back;
	char err[256], *text;
	size_t i;

	for (i = 0; i < 32; i++)
		c.root[i] = (unsigned char)i;
	text = note_checkpoint_text(&c);
	ASSERT_STREQ(text, "archive.example/ingestd\n8\n"
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
	ASSERT_EQ(note_checkpoint_parse(text, strlen(text), &back, err,
	    sizeof(err)), 0);
	ASSERT_STREQ(back.origin, c.origin);
	ASSERT_EQ(back.size, 8);
	ASSERT_MEMEQ(back.root, c.root, 32);
	free(text); text = NULL;
	ASSERT_EQ(note_checkpoint_parse("o\n08\nAA==\n", 10, &back, err,
	    sizeof(err)), -1);
	ASSERT_EQ(note_checkpoint_parse("o\n8\nAA==\n", 9, &back, err,
	    sizeof(err)), -1);
	ASSERT_EQ(note_checkpoint_parse("o\n8\n", 4, &back, err,
	    sizeof(err)), -1);
}

static void
test_entry(void)
{
	const struct ledger_field f[] = {
		{ "account", "sales team" },
		{ "uidl", "" },
		{ "sha256", "00ff" },
		{ "note", "100%\n\xc3\xa9" },
	};
	struct ledger_entry e;
	char err[256], *p;
	size_t n;

	p = ledger_entry_encode("ingest", f, 4, &n);
	ASSERT_STREQ(p, "ingestd-ledger v1\nkind ingest\n"
	    "account sales%20team\nuidl \nsha256 00ff\n"
	    "note 100%25%0A%C3%A9\n");
	ASSERT_EQ(n, strlen(p));
	ASSERT_EQ(ledger_entry_parse(p, n, &e, err, sizeof(err)), 0);
	ASSERT_STREQ(e.kind, "ingest");
	ASSERT_EQ(e.n, 4);
	ASSERT_STREQ(ledger_entry_get(&e, "account"), "sales team");
	ASSERT_STREQ(ledger_entry_get(&e, "uidl"), "");
	ASSERT_STREQ(ledger_entry_get(&e, "note"), "100%\n\xc3\xa9");
	ledger_entry_release(&e);
	free(p); p = NULL;
	/* One spelling only: an escape of a plain byte is refused. */
	p = "ingestd-ledger v1\nkind ingest\naccount %41\n";
	ASSERT_EQ(ledger_entry_parse(p, strlen(p), &e, err, sizeof(err)), -1);
	p = "ingestd-ledger v1\nkind ingest\naccount a";
	ASSERT_EQ(ledger_entry_parse(p, strlen(p), &e, err, sizeof(err)), -1);
	p = "ingestd-ledger v2\nkind ingest\n";
	ASSERT_EQ(ledger_entry_parse(p, strlen(p), &e, err, sizeof(err)), -1);
	ASSERT_TRUE(ledger_entry_encode("Bad", f, 1, &n) == NULL);
}

static int
one_leaf(void *arg, unsigned level, uint64_t index, unsigned char out[32])
{
	memcpy(out, arg, 32);
	return 0;
}

/* A proof file for a one-leaf tree, signed with the Go test key. */
static void
test_proof_file(void)
{
	const char *msg = "Subject: x\r\n\r\nhello\r\n";
	unsigned char sha[32], leaf[32], other[32];
	struct note_checkpoint c = { .origin = "PeterNeumann", .size = 1 };
	struct ledger_field f[5];
	struct ledger_proof p;
	struct note_verifier v;
	struct sign_key *k = go_key();
	char hex[65], *entry, *text, *note, *json, *b64, err[256];
	size_t n, i, j, jlen;

	hash_sha256(msg, strlen(msg), sha);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	f[0] = (struct ledger_field){ "account", "a" };
	f[1] = (struct ledger_field){ "uidl", "u1" };
	f[2] = (struct ledger_field){ "sha256", hex };
	f[3] = (struct ledger_field){ "size", "21" };
	f[4] = (struct ledger_field){ "archived_at",
		"2026-01-01T00:00:00.000000Z" };
	entry = ledger_entry_encode("ingest", f, 5, &n);
	merkle_leaf_hash(entry, n, leaf);
	merkle_root(one_leaf, leaf, 1, c.root);
	text = note_checkpoint_text(&c);
	note = note_sign(text, "PeterNeumann", k);
	b64 = xmalloc(B64_LEN(n) + 1);
	b64_encode(entry, n, b64);
	/* The note's newlines escaped as JSON must. */
	json = xasprintf("{\"version\": 1, \"sha256\": \"%s\", \"tree_size\": "
	    "1, \"leaf_index\": 0, \"entry\": \"%s\", \"audit_path\": [], "
	    "\"checkpoint\": \"", hex, b64);
	jlen = strlen(json);
	json = xreallocarray(json, jlen + 2 * strlen(note) + 8, 1);
	for (j = 0; note[j] != '\0'; j++) {
		if (note[j] == '\n') {
			json[jlen++] = '\\';
			json[jlen++] = 'n';
		} else
			json[jlen++] = note[j];
	}
	memcpy(json + jlen, "\"}", 3);
	ASSERT_EQ(ledger_proof_parse(json, strlen(json), &p, err,
	    sizeof(err)), 0);
	ASSERT_EQ(note_verifier_parse(GO_VKEY, &v, err, sizeof(err)), 0);
	ASSERT_EQ(ledger_proof_verify(&p, &v, sha, strlen(msg), err,
	    sizeof(err)), 0);
	/* Another message, another size. */
	memcpy(other, sha, 32);
	other[0] ^= 1;
	ASSERT_EQ(ledger_proof_verify(&p, &v, other, strlen(msg), err,
	    sizeof(err)), -1);
	ASSERT_EQ(ledger_proof_verify(&p, &v, sha, 20, err, sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, "not the ingest of this message") != NULL);
	/* The wrong key. */
	ASSERT_EQ(note_verifier_parse(C2SP_VKEY, &v, err, sizeof(err)), 0);
	ASSERT_EQ(ledger_proof_verify(&p, &v, sha, strlen(msg), err,
	    sizeof(err)), -1);
	ledger_proof_release(&p);
	/* Truncated anywhere, the file is refused, never crashes. */
	for (i = 0; i < strlen(json); i++)
		ASSERT_EQ(ledger_proof_parse(json, i, &p, err, sizeof(err)),
		    -1);
	free(json); json = NULL;
	free(b64); b64 = NULL;
	free(note); note = NULL;
	free(text); text = NULL;
	free(entry); entry = NULL;
	sign_key_free(&k);
}

TEST_MAIN(TESTS)
