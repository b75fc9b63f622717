-- 0004_index_messages: the message index, for finding archived mail.
--
-- One row in message per distinct message (keyed, like blob, by the
-- SHA-256 of its archived bytes, so deliveries of one message share it),
-- with its addresses and MIME parts.  The rows of a message are written in
-- the transaction that stores its blob (store/commit.c), so no blob
-- archived by this version lacks them; `ingestd reindex` writes them for
-- blobs archived before, or by an older parser (parser_version).
--
-- Text is matched case-insensitively through the 'simple' text search
-- configuration: no stemming and no stop words, since a legal search must
-- find the words as written, in any language.

CREATE TABLE ingestd.message (
	sha256 bytea PRIMARY KEY REFERENCES ingestd.blob (sha256)
	    ON DELETE CASCADE,
	parser_version integer NOT NULL,
	indexed_at timestamptz NOT NULL DEFAULT now(),
	flags text[] NOT NULL DEFAULT '{}',
	date timestamptz,
	date_raw text,
	message_id text,
	in_reply_to text,
	refs text,
	subject text,
	subject_raw text,
	list_id text,
	auto_submitted text,
	has_attachment boolean NOT NULL,
	subject_fts tsvector NOT NULL,
	fts tsvector NOT NULL
);

CREATE INDEX message_date ON ingestd.message (date);
CREATE INDEX message_message_id ON ingestd.message (lower(message_id));
CREATE INDEX message_list_id ON ingestd.message (lower(list_id));
CREATE INDEX message_has_attachment ON ingestd.message (sha256)
    WHERE has_attachment;
CREATE INDEX message_parser_version ON ingestd.message (parser_version);
CREATE INDEX message_subject_fts ON ingestd.message USING gin (subject_fts);
CREATE INDEX message_fts ON ingestd.message USING gin (fts);

CREATE TABLE ingestd.message_address (
	sha256 bytea NOT NULL REFERENCES ingestd.message (sha256)
	    ON DELETE CASCADE,
	role text NOT NULL CHECK (role IN ('from', 'sender', 'reply-to',
	    'to', 'cc', 'bcc', 'delivered-to', 'x-original-to',
	    'return-path')),
	pos integer NOT NULL,
	address text NOT NULL,
	domain text NOT NULL,
	name text,
	PRIMARY KEY (sha256, role, pos)
);

CREATE INDEX message_address_address
    ON ingestd.message_address (address, role);
CREATE INDEX message_address_domain
    ON ingestd.message_address (domain, role);

CREATE TABLE ingestd.message_part (
	sha256 bytea NOT NULL REFERENCES ingestd.message (sha256)
	    ON DELETE CASCADE,
	path text NOT NULL,
	content_type text NOT NULL,
	disposition text,
	filename text,
	size bigint NOT NULL,
	part_sha256 bytea CHECK (octet_length(part_sha256) = 32),
	attachment boolean NOT NULL,
	PRIMARY KEY (sha256, path)
);

CREATE INDEX message_part_filename
    ON ingestd.message_part (lower(filename)) WHERE filename IS NOT NULL;
CREATE INDEX message_part_part_sha256
    ON ingestd.message_part (part_sha256) WHERE part_sha256 IS NOT NULL;

-- larger:/smaller: compare the archived size.
CREATE INDEX blob_size ON ingestd.blob (size);
