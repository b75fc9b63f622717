/*
 * bench_pipeline: throughput of the message pipeline against the libraries
 * it wraps, over a synthetic mail stream.
 *
 *   bench_pipeline [MiB [level [spool_dir]]]     default 1024 MiB, level 3
 *
 * The stream is a sequence of messages (headers, text bodies, some base64
 * attachments, some lines starting with a dot) cycled from a generated
 * corpus, each fed in 64 KiB chunks, each its own pipe as in a session.
 * Lines:
 *   pipe       sha256 + zstd + spool (store/pipe.h), one pipe per message
 *   dot+pipe   the same behind the POP3 dot-unstuffer (pop3/dot.h), fed
 *              the dot-stuffed stream with its terminators
 *   read-back  what the committer adds before a message may be deleted:
 *              each new blob's spool decompressed (store/zstd.h zdec) in
 *              1 MiB pieces and hashed (store/hash.h), the digest compared;
 *              MB/s of message bytes, the spool reads themselves not
 *              counted (the committer reads the spool to send it anyway)
 *   sha256     EVP SHA-256 alone over the same messages
 *   zstd       ZSTD_compressStream2 alone, same level, same frames
 *   index+pipe the same with the indexer (store/mime/) parsing each
 *              message as it passes, as a session's pipe does
 *   overhead   pipe time / (sha256 time + zstd time)
 *   +read-back (pipe time + read-back time) / pipe time: the CPU a message
 *              costs with read-back, against without
 *   +index     index+pipe time / pipe time: the CPU a message costs with
 *              indexing, against without
 *
 * Unlike the code under store/, this file calls OpenSSL EVP and libzstd
 * directly: measuring the raw libraries is its purpose.  The raw zstd run
 * uses the parameters the zstd stage sets (level, content checksum, size
 * hint, a reused context), so the overhead line isolates our own code.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#define ZSTD_STATIC_LINKING_ONLY	/* ZSTD_c_srcSizeHint, as zstd.c */
#include <zstd.h>

#include "ingestd/base/xmalloc.h"
#include "pop3/dot.h"
#include "store/mime/meta.h"
#include "store/hash.h"
#include "store/pipe.h"
#include "store/spool.h"
#include "store/zstd.h"

#define CHUNK		(64 * 1024)
#define DB_PIECE	(1024 * 1024)	/* the committer's chunk */
#define CORPUS		(48u << 20)
#define SPOOL_MEM	(256 * 1024)	/* the configuration's default */

struct msg {
	size_t off;		/* in the plain corpus */
	size_t len;
	size_t soff;		/* in the stuffed corpus, terminator included */
	size_t slen;
	unsigned char sha[32];	/* from the plain pipe run, to check dot */
};

static struct {
	char *plain;
	size_t plain_len;
	char *stuffed;
	size_t stuffed_len;
	struct msg *msgs;
	size_t nmsgs;
} corpus;

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
put(char **p, const char *s)
{
	size_t n = strlen(s);

	memcpy(*p, s, n);
	*p += n;
}

/*
 * One message: a header block much like a real one, a text body in
 * paragraphs (with lines that start with a dot), and for about a third an
 * attachment of random bytes in base64, as most archive bytes are.
 */
static size_t
gen_message(char *p0, size_t room)
{
	static const char *words[] = {
		"the", "of", "and", "to", "a", "in", "for", "is", "on", "that",
		"by", "this", "with", "you", "it", "not", "or", "be", "are",
		"from", "at", "as", "your", "all", "have", "new", "more", "an",
		"was", "we", "will", "can", "us", "about", "if", "my", "has",
		"invoice", "quarterly", "meeting", "attached", "regards",
		"please", "report", "schedule", "compliance", "contract",
		"shipment", "account", "payment", "delivery", "customer",
		"Tuesday", "March", "2024", "thanks", "update", "review",
	};
#define NWORDS (sizeof(words) / sizeof(words[0]))
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *p = p0, line[512];
	size_t body, att, i, col;
	int k;

	snprintf(line, sizeof(line), "Return-Path: <u%u@example.org>\r\n"
	    "Received: from mx%u.example.net (mx%u.example.net "
	    "[192.0.2.%u])\r\n\tby mail.example.com with ESMTPS id %08x%08x"
	    "\r\n", rnd() % 5000, rnd() % 40, rnd() % 40, rnd() % 250,
	    rnd(), rnd());
	put(&p, line);
	snprintf(line, sizeof(line), "Message-ID: <%08x.%08x@example.net>\r\n"
	    "Date: Tue, %u Mar 2024 %02u:%02u:%02u +0000\r\n", rnd(), rnd(),
	    1 + rnd() % 28, rnd() % 24, rnd() % 60, rnd() % 60);
	put(&p, line);
	snprintf(line, sizeof(line), "From: Sender %u <s%u@example.net>\r\n"
	    "To: recipient%u@example.com\r\nSubject: Re: %s %s %u\r\n"
	    "MIME-Version: 1.0\r\n", rnd() % 900, rnd() % 900, rnd() % 90,
	    words[rnd() % NWORDS], words[rnd() % NWORDS], rnd() % 10000);
	put(&p, line);
	att = rnd() % 3 == 0 ? 2000 + rnd() % 200000 : 0;
	put(&p, att ? "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" :
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	body = 300 + rnd() % (rnd() % 8 == 0 ? 60000 : 6000);
	col = 0;
	for (i = 0; i < body;) {
		const char *w = words[rnd() % NWORDS];

		if (col == 0 && rnd() % 40 == 0) {
			put(&p, ".");	/* a line starting with a dot */
			col++;
		}
		put(&p, w);
		col += strlen(w);
		i += strlen(w) + 1;
		if (col > 66 || rnd() % 90 == 0) {
			put(&p, rnd() % 6 == 0 ? "\r\n\r\n" : "\r\n");
			col = 0;
		} else {
			put(&p, " ");
			col++;
		}
	}
	put(&p, "\r\n");
	if (att) {
		put(&p, "--b1\r\nContent-Type: application/octet-stream\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n");
		for (i = 0; i < att; i += 57) {
			for (k = 0; k < 76; k++)
				*p++ = b64[rnd() & 63];
			put(&p, "\r\n");
		}
		put(&p, "--b1--\r\n");
	}
	if ((size_t)(p - p0) > room) {
		fprintf(stderr, "bench_pipeline: message generator overran\n");
		exit(1);
	}
	return (size_t)(p - p0);
}

/* Builds the plain corpus and its dot-stuffed form with terminators. */
static void
gen_corpus(void)
{
	const size_t maxmsg = 400000;
	size_t cap = 0, i, o;
	struct msg *m;
	char *s, *e;

	corpus.plain = xmalloc(CORPUS + maxmsg);
	corpus.stuffed = xmalloc((CORPUS + maxmsg) * 2);
	while (corpus.plain_len < CORPUS) {
		if (corpus.nmsgs == cap) {
			cap = cap ? cap * 2 : 1024;
			corpus.msgs = xreallocarray(corpus.msgs, cap,
			    sizeof(*corpus.msgs));
		}
		m = &corpus.msgs[corpus.nmsgs++];
		m->off = corpus.plain_len;
		m->len = gen_message(corpus.plain + m->off, maxmsg);
		corpus.plain_len += m->len;
		/* RFC 1939 byte-stuffing, then ".\r\n" */
		m->soff = corpus.stuffed_len;
		s = corpus.plain + m->off;
		e = s + m->len;
		o = m->soff;
		for (i = 0; s + i < e; i++) {
			if (s[i] == '.' && (i == 0 || s[i - 1] == '\n'))
				corpus.stuffed[o++] = '.';
			corpus.stuffed[o++] = s[i];
		}
		memcpy(corpus.stuffed + o, ".\r\n", 3);
		o += 3;
		m->slen = o - m->soff;
		corpus.stuffed_len = o;
	}
}

/* Walks the corpus cyclically until total bytes have been produced. */
#define FOR_EACH_MESSAGE(m, total, done, idx)                            \
	for ((done) = 0, (idx) = 0;                                      \
	    (done) < (total) &&                                          \
	    ((m) = &corpus.msgs[(idx) % corpus.nmsgs], 1);               \
	    (done) += (m)->len, (idx)++)

/* The read-back of one message, as the committer does it. */
struct readback {
	struct zdec *dec;
	struct hash_sha256 h;
	unsigned char *piece;
	double t;		/* time spent decompressing and hashing */
};

static int
readback_out(void *arg, const void *p, size_t n)
{
	hash_sha256_update(&((struct readback *)arg)->h, p, n);
	return 0;
}

static int
readback(struct readback *rb, const struct pipe_result *r)
{
	unsigned char d[32];
	uint64_t off;
	ssize_t n;
	double t0;

	hash_sha256_reset(&rb->h);
	for (off = 0; off < r->stored_size; off += (uint64_t)n) {
		if ((n = spool_read(r->spool, off, rb->piece, DB_PIECE)) <= 0)
			return -1;
		t0 = now();
		if (zdec_write(rb->dec, rb->piece, (size_t)n, readback_out,
		    rb) == -1)
			return -1;
		rb->t += now() - t0;
	}
	t0 = now();
	if (zdec_finish(rb->dec) == -1)
		return -1;
	hash_sha256_final(&rb->h, d);
	rb->t += now() - t0;
	return memcmp(d, r->sha256, 32) == 0 ? 0 : -1;
}

/*
 * The pipe over total bytes of messages; with rb, each message is also
 * read back (timed apart, in rb->t, and not in *t_r).
 */
static int
run_pipe(const char *dir, int level, uint64_t total, bool dot, bool index,
    double *t_r, uint64_t *stored_r, uint64_t *nmsg_r, struct readback *rb)
{
	struct pipe_params pp;
	struct pipe_result r;
	struct pop3_dot dd;
	struct pipe *p;
	struct msg *m;
	uint64_t done, idx, stored = 0;
	size_t off, k, used, outlen, got;
	char *out = xmalloc(CHUNK + 1);
	bool end;
	double t0, t = 0;

	memset(&pp, 0, sizeof(pp));
	pp.spool_dir = dir;
	pp.spool_mem = SPOOL_MEM;
	pp.level = level;
	pp.index = index;
	FOR_EACH_MESSAGE(m, total, done, idx) {
		t0 = now();
		pp.size_hint = m->len;
		p = pipe_new(&pp);
		if (!dot) {
			for (off = 0; off < m->len; off += k) {
				k = m->len - off < CHUNK ? m->len - off : CHUNK;
				if (pipe_write(p, corpus.plain + m->off + off,
				    k) == -1)
					goto fail;
			}
		} else {
			pop3_dot_init(&dd);
			end = false;
			got = 0;
			for (off = 0; off < m->slen && !end; off += used) {
				k = m->slen - off < CHUNK ? m->slen - off :
				    CHUNK;
				used = pop3_dot_feed(&dd,
				    corpus.stuffed + m->soff + off, k, out,
				    &outlen, &end);
				got += outlen;
				if (pipe_write(p, out, outlen) == -1)
					goto fail;
			}
			if (!end || got != m->len) {
				fprintf(stderr, "bench_pipeline: dot-unstuffing"
				    " gave %zu bytes for %zu\n", got, m->len);
				return -1;
			}
		}
		if (pipe_finish(p, &r) == -1)
			goto fail;
		pipe_free(&p);
		t += now() - t0;
		if (rb != NULL && readback(rb, &r) == -1) {
			fprintf(stderr, "bench_pipeline: message %" PRIu64
			    " does not read back: %s\n", idx,
			    zdec_error(rb->dec));
			return -1;
		}
		if (idx < corpus.nmsgs && !dot)
			memcpy(m->sha, r.sha256, 32);
		else if (idx < corpus.nmsgs &&
		    memcmp(m->sha, r.sha256, 32) != 0) {
			fprintf(stderr, "bench_pipeline: message %" PRIu64
			    " digest differs through the dot-unstuffer\n",
			    idx);
			return -1;
		}
		stored += r.stored_size;
		t0 = now();
		spool_free(&r.spool);
		mime_meta_free(&r.meta);
		t += now() - t0;
	}
	*t_r = t;
	*stored_r = stored;
	*nmsg_r = idx;
	free(out);
	return 0;
fail:
	fprintf(stderr, "bench_pipeline: %s\n", pipe_error(p));
	return -1;
}

static double
run_sha(uint64_t total)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	unsigned char d[32];
	struct msg *m;
	uint64_t done, idx;
	size_t off, k;
	double t0 = now();

	FOR_EACH_MESSAGE(m, total, done, idx) {
		EVP_DigestInit_ex(ctx, md, NULL);
		for (off = 0; off < m->len; off += k) {
			k = m->len - off < CHUNK ? m->len - off : CHUNK;
			EVP_DigestUpdate(ctx, corpus.plain + m->off + off, k);
		}
		EVP_DigestFinal_ex(ctx, d, NULL);
	}
	t0 = now() - t0;
	EVP_MD_free(md);
	EVP_MD_CTX_free(ctx);
	return t0;
}

static double
run_zstd(uint64_t total, int level)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t cap = ZSTD_CStreamOutSize(), off, k, r;
	char *buf = xmalloc(cap);
	ZSTD_outBuffer ob;
	ZSTD_inBuffer ib;
	struct msg *m;
	uint64_t done, idx;
	double t0 = now();

	FOR_EACH_MESSAGE(m, total, done, idx) {
		ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
		ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
		ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
		ZSTD_CCtx_setParameter(cc, ZSTD_c_srcSizeHint, (int)m->len);
		for (off = 0; off < m->len; off += k) {
			k = m->len - off < CHUNK ? m->len - off : CHUNK;
			ib.src = corpus.plain + m->off + off;
			ib.size = k;
			ib.pos = 0;
			while (ib.pos < ib.size) {
				ob.dst = buf;
				ob.size = cap;
				ob.pos = 0;
				ZSTD_compressStream2(cc, &ob, &ib,
				    ZSTD_e_continue);
			}
		}
		do {
			ob.dst = buf;
			ob.size = cap;
			ob.pos = 0;
			ib.src = NULL;
			ib.size = ib.pos = 0;
			r = ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end);
		} while (r != 0 && !ZSTD_isError(r));
	}
	t0 = now() - t0;
	ZSTD_freeCCtx(cc);
	free(buf);
	return t0;
}

int
main(int argc, char **argv)
{
	uint64_t mib = 1024, total, stored, stored2, stored3, n, n2, n3;
	struct readback rb;
	const char *dir;
	double tp, td, ti, ts, tz;
	int level = 3;

	if (argc > 1)
		mib = strtoull(argv[1], NULL, 10);
	if (argc > 2)
		level = atoi(argv[2]);
	dir = argc > 3 ? argv[3] : getenv("TMPDIR");
	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if (mib == 0 || level < 1 || level > 19) {
		fprintf(stderr, "usage: bench_pipeline [MiB [level "
		    "[spool_dir]]]\n");
		return 2;
	}
	total = mib << 20;
	gen_corpus();

	ts = run_sha(total);
	tz = run_zstd(total, level);
	memset(&rb, 0, sizeof(rb));
	rb.dec = zdec_new(NULL, 0);
	hash_sha256_init(&rb.h);
	rb.piece = xmalloc(DB_PIECE);
	if (run_pipe(dir, level, total, false, false, &tp, &stored, &n,
	    &rb) == -1 ||
	    run_pipe(dir, level, total, true, false, &td, &stored2, &n2,
	    NULL) == -1 ||
	    run_pipe(dir, level, total, false, true, &ti, &stored3, &n3,
	    NULL) == -1)
		return 1;
	zdec_free(&rb.dec);
	hash_sha256_release(&rb.h);
	free(rb.piece);
	if (n2 != n || stored2 != stored || n3 != n || stored3 != stored) {
		fprintf(stderr, "bench_pipeline: the dot run stored %" PRIu64
		    " bytes of %" PRIu64 " messages, the plain one %" PRIu64
		    " of %" PRIu64 "\n", stored2, n2, stored, n);
		return 1;
	}
	zstd_pool_clear();

#define MBS(t) ((double)total / 1e6 / (t))
	printf("bench_pipeline: %" PRIu64 " MiB, %" PRIu64 " messages "
	    "(avg %" PRIu64 " KB), level %d, %d KiB chunks, "
	    "compressed to %.1f%%\n", mib, n, total / n / 1000, level,
	    CHUNK / 1024, 100.0 * (double)stored / (double)total);
	printf("pipe      sha256+zstd+spool      %8.1f MB/s\n", MBS(tp));
	printf("dot+pipe  unstuff+sha256+zstd+spool %5.1f MB/s\n", MBS(td));
	printf("index+pipe mime+sha256+zstd+spool %4.1f MB/s\n", MBS(ti));
	printf("read-back zdec+sha256 (committer) %4.1f MB/s\n", MBS(rb.t));
	printf("sha256    EVP alone              %8.1f MB/s\n", MBS(ts));
	printf("zstd      ZSTD_compressStream2   %8.1f MB/s\n", MBS(tz));
	printf("overhead  pipe/(sha256+zstd)     %8.3f\n", tp / (ts + tz));
	printf("+read-back (pipe+read-back)/pipe %8.3f\n", (tp + rb.t) / tp);
	printf("+index    (index+pipe)/pipe      %8.3f\n", ti / tp);
	return 0;
}
