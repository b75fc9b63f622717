#include "store/mime/meta.h"

#include <stdlib.h>

static const char *const role_names[MIME_ROLE_COUNT] = {
	[MIME_ROLE_FROM] = "from",
	[MIME_ROLE_SENDER] = "sender",
	[MIME_ROLE_REPLY_TO] = "reply-to",
	[MIME_ROLE_TO] = "to",
	[MIME_ROLE_CC] = "cc",
	[MIME_ROLE_BCC] = "bcc",
	[MIME_ROLE_DELIVERED_TO] = "delivered-to",
	[MIME_ROLE_X_ORIGINAL_TO] = "x-original-to",
	[MIME_ROLE_RETURN_PATH] = "return-path",
};

const char *
mime_role_name(enum mime_role role)
{
	if ((unsigned)role >= MIME_ROLE_COUNT)
		return "unknown";
	return role_names[role];
}

const char *
mime_flag_name(enum mime_flag flag)
{
	switch (flag) {
	case MIME_F_HEADER_TRUNCATED:
		return "header_truncated";
	case MIME_F_TEXT_TRUNCATED:
		return "text_truncated";
	case MIME_F_UNKNOWN_CHARSET:
		return "unknown_charset";
	case MIME_F_BAD_CHARSET:
		return "bad_charset";
	case MIME_F_BAD_ENCODING:
		return "bad_encoding";
	case MIME_F_MISSING_BOUNDARY:
		return "missing_boundary";
	case MIME_F_TOO_DEEP:
		return "too_deep";
	case MIME_F_TOO_MANY_PARTS:
		return "too_many_parts";
	case MIME_F_TOO_MANY_ADDRESSES:
		return "too_many_addresses";
	case MIME_F_BAD_DATE:
		return "bad_date";
	case MIME_F_BAD_ADDRESS:
		return "bad_address";
	case MIME_F_8BIT_HEADER:
		return "8bit_header";
	case MIME_F_NO_HEADER:
		return "no_header";
	}
	/* Not one flag: no name. */
	return NULL;
}

void
mime_meta_free(struct mime_meta **mp)
{
	struct mime_meta *m = *mp;
	size_t i;

	if (m == NULL)
		return;
	free(m->date_raw);
	free(m->message_id);
	free(m->in_reply_to);
	free(m->references);
	free(m->subject);
	free(m->subject_raw);
	free(m->list_id);
	free(m->auto_submitted);
	for (i = 0; i < m->n_addresses; i++) {
		free(m->addresses[i].address);
		free(m->addresses[i].domain);
		free(m->addresses[i].name);
	}
	free(m->addresses);
	for (i = 0; i < m->n_parts; i++) {
		free(m->parts[i].path);
		free(m->parts[i].content_type);
		free(m->parts[i].disposition);
		free(m->parts[i].filename);
	}
	free(m->parts);
	free(m->text);
	free(m);
	*mp = NULL;
}
