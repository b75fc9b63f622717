/* fuzz-sources: store/ledger.c store/json.c store/merkle.c store/note.c */
/* fuzz-sources: store/b64.c store/sign.c store/hash.c ingestd/base/fdio.c */
/* fuzz-sources: ingestd/base/xmalloc.c ingestd/base/log.c */
/* fuzz-pkgs: libcrypto */
/*
 * store/ledger and store/json: the input is a proof file, parsed and then
 * verified against Go's test key and a fixed message (which must fail,
 * never crash); and a ledger entry, which when it parses must encode back
 * to exactly the input (one spelling per entry).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/json.h"
#include "store/ledger.h"

#define CHECK(e) ((e) ? (void)0 : abort())

#define GO_VKEY                                                          \
	"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct note_verifier go;
	static int ready;
	static const unsigned char sha[32];
	struct ledger_proof p;
	struct ledger_entry e;
	struct json *j;
	char err[512], *back;
	size_t n;

	if (!ready) {
		CHECK(note_verifier_parse(GO_VKEY, &go, err, sizeof(err)) == 0);
		ready = 1;
	}
	if ((j = json_parse((const char *)data, size, err,
	    sizeof(err))) != NULL)
		json_free(&j);
	CHECK(j == NULL);
	if (ledger_proof_parse((const char *)data, size, &p, err,
	    sizeof(err)) == 0) {
		CHECK(p.nleaves > 0);
		/* No one holds the Go key's signature of such a note. */
		(void)ledger_proof_verify(&p, &go, sha, 0, err, sizeof(err));
		ledger_proof_release(&p);
	}
	if (ledger_entry_parse(data, size, &e, err, sizeof(err)) == 0) {
		back = ledger_entry_encode(e.kind, e.f, e.n, &n);
		CHECK(back != NULL && n == size && memcmp(back, data, n) == 0);
		free(back);
		ledger_entry_release(&e);
	}
	return 0;
}
