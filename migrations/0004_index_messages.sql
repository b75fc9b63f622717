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

-- The stable views of the index (columns are only ever added).  A
-- delivery whose message is not indexed yet (archived before this
-- version; see archive_totals.unindexed and `ingestd reindex`) still has
-- its row in messages, with NULL header fields and indexed false.

CREATE VIEW ingestd.messages AS
SELECT a.name AS account,
       d.uidl,
       encode(d.sha256, 'hex') AS sha256,
       b.size,
       d.archived_at,
       d.server_deleted_at,
       m.date,
       m.date_raw,
       m.message_id,
       m.in_reply_to,
       m.refs AS "references",
       m.subject,
       (SELECT x.address FROM ingestd.message_address x
	 WHERE x.sha256 = d.sha256 AND x.role = 'from'
	 ORDER BY x.pos LIMIT 1) AS "from",
       (SELECT string_agg(x.address, ', ' ORDER BY x.pos)
	  FROM ingestd.message_address x
	 WHERE x.sha256 = d.sha256 AND x.role = 'to') AS "to",
       (SELECT string_agg(x.address, ', ' ORDER BY x.pos)
	  FROM ingestd.message_address x
	 WHERE x.sha256 = d.sha256 AND x.role = 'cc') AS cc,
       m.list_id,
       m.auto_submitted,
       m.has_attachment,
       m.flags,
       m.sha256 IS NOT NULL AS indexed
  FROM ingestd.delivery d
  JOIN ingestd.account a ON a.id = d.account_id
  JOIN ingestd.blob b ON b.sha256 = d.sha256
  LEFT JOIN ingestd.message m ON m.sha256 = d.sha256;
COMMENT ON VIEW ingestd.messages IS
    'Stable.  One row per message archived from a mailbox (as deliveries), '
    'with the header fields the index holds.';
COMMENT ON COLUMN ingestd.messages.date IS
    'The Date header, parsed (UTC); NULL if absent or unparseable '
    '(see flags).';
COMMENT ON COLUMN ingestd.messages.date_raw IS
    'The Date header as written, unfolded.';
COMMENT ON COLUMN ingestd.messages.message_id IS
    'Message-ID without its angle brackets.';
COMMENT ON COLUMN ingestd.messages.subject IS
    'Subject, RFC 2047 encoded words decoded to UTF-8.';
COMMENT ON COLUMN ingestd.messages."from" IS
    'The first From address, lower-cased.';
COMMENT ON COLUMN ingestd.messages."to" IS
    'The To addresses, lower-cased, comma-separated (Cc is not included).';
COMMENT ON COLUMN ingestd.messages.cc IS
    'The Cc addresses, lower-cased, comma-separated.';
COMMENT ON COLUMN ingestd.messages.list_id IS
    'The id inside List-Id''s angle brackets.';
COMMENT ON COLUMN ingestd.messages.has_attachment IS
    'A part is an attachment (Content-Disposition: attachment, or a file '
    'name).';
COMMENT ON COLUMN ingestd.messages.flags IS
    'What the indexer found wrong (header_truncated, bad_date, '
    'unknown_charset, index_refused, ...); the archived bytes are '
    'complete whatever the flags say.';
COMMENT ON COLUMN ingestd.messages.indexed IS
    'The message has index rows; false only for messages archived before '
    'indexing, until `ingestd reindex`.';

CREATE VIEW ingestd.addresses AS
SELECT encode(x.sha256, 'hex') AS sha256,
       x.role,
       x.address,
       x.domain,
       x.name
  FROM ingestd.message_address x;
COMMENT ON VIEW ingestd.addresses IS
    'Stable.  Every address of every indexed message, with its role: '
    'from, sender, reply-to, to, cc, bcc, delivered-to, x-original-to, '
    'return-path.  Join messages on sha256.';
COMMENT ON COLUMN ingestd.addresses.address IS
    'local@domain, lower-cased.';
COMMENT ON COLUMN ingestd.addresses.domain IS
    'The part after the last @, lower-cased; empty if none.';
COMMENT ON COLUMN ingestd.addresses.name IS
    'Display name, RFC 2047 decoded; NULL if none.';

CREATE VIEW ingestd.attachments AS
SELECT encode(p.sha256, 'hex') AS sha256,
       p.path,
       p.content_type,
       p.filename,
       p.size,
       encode(p.part_sha256, 'hex') AS part_sha256
  FROM ingestd.message_part p
 WHERE p.attachment;
COMMENT ON VIEW ingestd.attachments IS
    'Stable.  Every attachment (Content-Disposition: attachment, or a file '
    'name) of every indexed message.  Join messages on sha256.';
COMMENT ON COLUMN ingestd.attachments.path IS
    'The part''s IMAP section number: 1, 2.1, ...';
COMMENT ON COLUMN ingestd.attachments.filename IS
    'File name, RFC 2231 and 2047 decoded; NULL if none.';
COMMENT ON COLUMN ingestd.attachments.size IS
    'Decoded size in bytes (after base64 or quoted-printable).';
COMMENT ON COLUMN ingestd.attachments.part_sha256 IS
    'SHA-256 of the decoded content, lowercase hex: the same file in '
    'different messages has the same part_sha256.';

CREATE OR REPLACE VIEW ingestd.archive_totals AS
SELECT t.messages,
       t.bytes,
       t.blobs,
       t.unique_bytes,
       t.stored_bytes,
       t.bytes::float8 / nullif(t.unique_bytes, 0) AS dedup_ratio,
       t.unique_bytes::float8 / nullif(t.stored_bytes, 0)
	   AS compression_ratio,
       t.unindexed
  FROM (SELECT (SELECT count(*) FROM ingestd.delivery) AS messages,
	       (SELECT coalesce(sum(b.size), 0)
		  FROM ingestd.delivery d
		  JOIN ingestd.blob b ON b.sha256 = d.sha256) AS bytes,
	       (SELECT count(*) FROM ingestd.blob) AS blobs,
	       (SELECT coalesce(sum(size), 0) FROM ingestd.blob)
		   AS unique_bytes,
	       (SELECT coalesce(sum(stored_size), 0) FROM ingestd.blob)
		   AS stored_bytes,
	       (SELECT count(*) FROM ingestd.blob b
		 WHERE NOT EXISTS (SELECT 1 FROM ingestd.message m
				    WHERE m.sha256 = b.sha256))
		   AS unindexed) t;
COMMENT ON COLUMN ingestd.archive_totals.unindexed IS
    'Distinct messages stored without index rows (archived before '
    'indexing): 0 after `ingestd reindex`, and always 0 for messages '
    'archived since.';
