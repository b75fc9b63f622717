/* fuzz-sources: pop3/client.c pop3/dot.c pop3/parse.c pop3/sasl.c */
/* fuzz-sources: ingestd/base/log.c ingestd/base/xmalloc.c */
/* fuzz-sources: ingestd/base/buf.c */
/* fuzz-args: -max_len=20000 */
/*
 * pop3/client: a whole session from arbitrary server bytes.  The first two
 * input bytes choose the parameters and the owner's behaviour; the rest is
 * what the server says.  The owner queues RETR (or TOP) and DELE for every
 * listed message and QUIT, from ready() or as bodies end.  Each input is
 * replayed whole, one byte at a time and in pseudo-random pieces; unless
 * STLS was accepted (then what is discarded depends on the pieces), all
 * replays must produce the same events, body bytes and commands.
 *
 *   byte 0: bits 0-1 auth mode, bit 2 STLS, bit 3 no MD5, bits 4-5 window
 *           (default, 1, 2, 128), bit 6 DELE after each body instead of
 *           all at once, bit 7 TOP instead of RETR
 *   byte 1: bit 0 body() refuses message 2, bit 1 max_msgs = 3, bit 2 a
 *           listing budget of 64 bytes of UIDLs, bit 3 a bearer token
 *           (bit 4: one of 300 octets, past the one-line AUTH), bit 5
 *           auth XOAUTH2 or (byte 0 bit 0) OAUTHBEARER
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/client.h"

#define CHECK(e) ((e) ? (void)0 : abort())

struct owner {
	struct pop3_client *c;
	uint8_t cfg0, cfg1;
	uint64_t ev;		/* hash of the events and body bytes */
	uint64_t out;		/* hash of the command bytes */
	bool in_body;
	enum pop3_cmd body_cmd;
	uint32_t body_num;
	bool tls_wanted, tls_seen;
	bool ready_seen, quit_queued, finished, failed;
	size_t nmsgs, settled;
};

static void
hash(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n-- > 0)
		*h = (*h ^ *b++) * 0x100000001b3ULL;
}

/* Not MD5, but it fills the digest from all of its input. */
static void
fake_md5(const void *p, size_t n, unsigned char out[16])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	hash(&h, p, n);
	for (i = 0; i < 16; i++)
		out[i] = (unsigned char)(h >> (8 * (i % 8))) ^ (unsigned char)i;
}

static void
drain(struct owner *o)
{
	const char *p;
	size_t n;

	for (;;) {
		pop3_client_pending(o->c, &p, &n);
		if (n == 0)
			return;
		CHECK(p != NULL);
		hash(&o->out, p, n);
		pop3_client_sent(o->c, n);
	}
}

static struct owner *
event(void *arg, char tag)
{
	struct owner *o = arg;

	CHECK(!o->finished);
	o->in_body = false;
	hash(&o->ev, &tag, 1);
	return o;
}

static void
quit_once(struct owner *o)
{
	if (!o->quit_queued) {
		o->quit_queued = true;
		pop3_client_quit(o->c);
	}
}

static void
settle(struct owner *o)
{
	if ((o->cfg0 & 0x40) != 0 && ++o->settled >= o->nmsgs)
		quit_once(o);
}

static void
cb_start_tls(void *arg)
{
	struct owner *o = event(arg, 'S');

	CHECK(!o->tls_wanted);
	o->tls_wanted = o->tls_seen = true;
}

static void
fetch(struct owner *o, uint32_t num)
{
	if (o->cfg0 & 0x80)
		pop3_client_top(o->c, num, num % 3);
	else
		pop3_client_retr(o->c, num);
}

static void
cb_ready(void *arg, const struct pop3_msg *msgs, size_t n)
{
	struct owner *o = event(arg, 'R');
	size_t i;

	CHECK(!o->ready_seen);
	o->ready_seen = true;
	o->nmsgs = n;
	hash(&o->ev, &n, sizeof(n));
	for (i = 0; i < n; i++) {
		CHECK(msgs[i].num > 0);
		CHECK(i == 0 || msgs[i].num > msgs[i - 1].num);
		hash(&o->ev, &msgs[i].num, sizeof(msgs[i].num));
		hash(&o->ev, &msgs[i].size, sizeof(msgs[i].size));
		if (msgs[i].uidl != NULL)
			hash(&o->ev, msgs[i].uidl, strlen(msgs[i].uidl) + 1);
	}
	if (o->cfg0 & 0x40) {
		for (i = 0; i < n; i++)
			fetch(o, msgs[i].num);
		if (n == 0)
			quit_once(o);
		return;
	}
	for (i = 0; i < n; i++) {
		fetch(o, msgs[i].num);
		pop3_client_dele(o->c, msgs[i].num);
	}
	quit_once(o);
}

static int
cb_body(void *arg, enum pop3_cmd cmd, uint32_t num, const char *p, size_t n)
{
	struct owner *o = arg;

	CHECK(!o->finished && o->ready_seen);
	CHECK(n > 0 && n <= 16384 + 1);
	CHECK(cmd == ((o->cfg0 & 0x80) ? POP3_CMD_TOP : POP3_CMD_RETR));
	if ((o->cfg1 & 1) && num == 2)
		return -1;
	if (!o->in_body || o->body_cmd != cmd || o->body_num != num) {
		hash(&o->ev, "B", 1);
		hash(&o->ev, &num, sizeof(num));
		o->in_body = true;
		o->body_cmd = cmd;
		o->body_num = num;
	}
	hash(&o->ev, p, n);
	return 0;
}

static void
cb_body_end(void *arg, enum pop3_cmd cmd, uint32_t num)
{
	struct owner *o = event(arg, 'E');

	hash(&o->ev, &num, sizeof(num));
	if (o->cfg0 & 0x40)
		pop3_client_dele(o->c, num);
}

static void
cb_deleted(void *arg, uint32_t num)
{
	struct owner *o = event(arg, 'D');

	hash(&o->ev, &num, sizeof(num));
	settle(o);
}

static void
cb_cmd_failed(void *arg, enum pop3_cmd cmd, uint32_t num, const char *text)
{
	struct owner *o = event(arg, 'F');

	CHECK(text != NULL);
	hash(&o->ev, &num, sizeof(num));
	hash(&o->ev, text, strlen(text));
	settle(o);
}

static void
cb_done(void *arg)
{
	struct owner *o = event(arg, 'Q');

	CHECK(o->quit_queued);
	o->finished = true;
}

static void
cb_failed(void *arg, enum pop3_fail why, const char *text)
{
	struct owner *o = event(arg, 'X');

	CHECK(text != NULL && strlen(text) < 512);
	hash(&o->ev, &why, sizeof(why));
	hash(&o->ev, text, strlen(text));
	drain(o);
	o->finished = o->failed = true;
}

static const struct pop3_client_cb owner_cb = {
	.start_tls = cb_start_tls,
	.ready = cb_ready,
	.body = cb_body,
	.body_end = cb_body_end,
	.deleted = cb_deleted,
	.cmd_failed = cb_cmd_failed,
	.done = cb_done,
	.failed = cb_failed,
};

static char long_token[301];

static void
session(const uint8_t *data, size_t size, uint32_t step, struct owner *o)
{
	static const unsigned windows[] = { 0, 1, 2, 128 };
	struct pop3_client_params params = {
		.user = "user",
		.password = "pass word",
	};
	size_t pos = 0, piece;
	int r;

	if (long_token[0] == '\0')
		memset(long_token, 't', sizeof(long_token) - 1);
	memset(o, 0, sizeof(*o));
	o->cfg0 = data[0];
	o->cfg1 = data[1];
	o->ev = o->out = 0xcbf29ce484222325ULL;
	params.auth = (enum pop3_auth)(o->cfg0 & 3);
	params.starttls = (o->cfg0 & 4) != 0;
	params.md5 = (o->cfg0 & 8) ? NULL : fake_md5;
	params.pipeline_window = windows[(o->cfg0 >> 4) & 3];
	params.max_msgs = (o->cfg1 & 2) ? 3 : 0;
	params.max_listing_bytes = (o->cfg1 & 4) ? 64 : 0;
	if (o->cfg1 & 8)
		params.token = (o->cfg1 & 16) ? long_token : "tok";
	if (o->cfg1 & 32)
		params.auth = (o->cfg0 & 1) ? POP3_AUTH_OAUTHBEARER :
		    POP3_AUTH_XOAUTH2;
	params.host = "pop.example";
	params.port = 995;
	o->c = pop3_client_new(&params, &owner_cb, o);
	data += 2;
	size -= 2;
	while (pos < size) {
		if (step == 0)
			piece = size - pos;
		else if (step == 1)
			piece = 1;
		else {
			step = step * 1103515245u + 12345u;
			piece = 1 + (step >> 16) % 600;
			if (piece > size - pos)
				piece = size - pos;
		}
		r = pop3_client_feed(o->c, (const char *)data + pos, piece);
		CHECK(r == (o->failed ? -1 : 0));
		CHECK(pop3_client_what(o->c)[0] != '\0');
		CHECK((pop3_client_state(o->c) == P3_FAILED) == o->failed);
		drain(o);
		if (o->tls_wanted && !o->finished) {
			o->tls_wanted = false;
			pop3_client_tls_ready(o->c);
			drain(o);
		}
		pos += piece;
	}
	if (o->ready_seen || o->finished)
		(void)pop3_client_idle(o->c);
	pop3_client_free(&o->c);
	CHECK(o->c == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct owner whole, other;

	if (size < 2)
		return 0;
	session(data, size, 0, &whole);
	session(data, size, 1, &other);
	if (!whole.tls_seen && !other.tls_seen)
		CHECK(whole.ev == other.ev && whole.out == other.out);
	session(data, size, 2 + (uint32_t)size, &other);
	if (!whole.tls_seen && !other.tls_seen)
		CHECK(whole.ev == other.ev && whole.out == other.out);
	return 0;
}
