-- 0001_create_archive: the archive itself.
--
-- Everything ingestd owns lives in schema "ingestd"; the role named ingestd
-- (the embedded cluster's) finds it through the default search_path
-- ("$user", public).  Other roles qualify names or run
-- SET search_path = ingestd.
--
-- TABLES are internal and may change in later migrations:
--
--   account     one row per mailbox (config name)
--   dict        zstd dictionaries that blobs were compressed with
--   blob        one row per distinct message (SHA-256 of its bytes)
--   blob_chunk  the blob's zstd frame, 1 MiB per row, in seq order
--   delivery    one row per (account, UIDL, message) archived
--   poll        one row per poll of a mailbox
--
-- VIEWS are the stable interface for dashboards and reports: columns are
-- only ever added, never renamed, retyped or removed.
--
--   deliveries      one row per archived message per mailbox
--                   (account, uidl, sha256, size, archived_at,
--                   server_deleted_at)
--   blobs           one row per distinct stored message
--                   (sha256, size, stored_size, created_at)
--   polls           one row per poll (account, started_at, finished_at,
--                   duration, outcome, error, listed, fetched, archived,
--                   deduplicated, deleted, bytes)
--   account_status  one row per mailbox (account, last_poll_at,
--                   last_outcome, last_success_at, last_error_at,
--                   last_error, messages, on_server, bytes, lag)
--   archive_daily   one row per mailbox and UTC day (account, day,
--                   messages, bytes)
--   archive_totals  one row (messages, bytes, blobs, unique_bytes,
--                   stored_bytes, dedup_ratio, compression_ratio)
--
-- Hashes appear in views as lowercase hex text; sizes are bytes; times are
-- timestamptz.

CREATE SCHEMA IF NOT EXISTS ingestd;

CREATE TABLE ingestd.account (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ingestd.account IS
    'Mailboxes, by their configured name.  Internal: read the views.';

CREATE TABLE ingestd.dict (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	data bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ingestd.dict IS
    'zstd dictionaries.  A blob compressed with one needs it to be read.';

-- The key is the SHA-256 of the exact archived bytes, so a message that
-- reached many mailboxes is stored once.
CREATE TABLE ingestd.blob (
	sha256 bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
	size bigint NOT NULL CHECK (size >= 0),
	stored_size bigint NOT NULL CHECK (stored_size >= 0),
	dict_id bigint REFERENCES ingestd.dict (id),
	chunks integer NOT NULL CHECK (chunks >= 0),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ingestd.blob IS
    'One row per distinct message.  Internal: read the view blobs.';

-- Chunked so that no single value (and no single libpq buffer) has to hold
-- a whole message.
CREATE TABLE ingestd.blob_chunk (
	sha256 bytea NOT NULL REFERENCES ingestd.blob (sha256)
	    ON DELETE CASCADE,
	seq integer NOT NULL CHECK (seq >= 0),
	data bytea NOT NULL,
	PRIMARY KEY (sha256, seq)
);
-- The data is zstd already: a second compression by TOAST would only cost
-- CPU.
ALTER TABLE ingestd.blob_chunk ALTER COLUMN data SET STORAGE EXTERNAL;
COMMENT ON TABLE ingestd.blob_chunk IS
    'The zstd frame of a blob, 1 MiB of compressed bytes per row.';

CREATE TABLE ingestd.delivery (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES ingestd.account (id),
	uidl text,
	sha256 bytea NOT NULL REFERENCES ingestd.blob (sha256),
	list_size bigint NOT NULL CHECK (list_size >= 0),
	head_sha256 bytea NOT NULL CHECK (octet_length(head_sha256) = 32),
	archived_at timestamptz NOT NULL DEFAULT now(),
	server_deleted_at timestamptz
);
COMMENT ON TABLE ingestd.delivery IS
    'A message as archived from one mailbox.  Internal: read deliveries.';

-- Re-committing a delivery is a no-op (ON CONFLICT DO NOTHING), while two
-- different messages under one UIDL are both kept.  coalesce() makes a
-- missing UIDL compare equal to itself on any PostgreSQL version; a real
-- UIDL is never empty (RFC 1939: 1 to 70 printable characters).  The column
-- order also serves per-account lookups and export's walk of an account's
-- blobs in hash order.
CREATE UNIQUE INDEX delivery_identity
    ON ingestd.delivery (account_id, sha256, (coalesce(uidl, '')));
-- Retention works by age.
CREATE INDEX delivery_archived_at ON ingestd.delivery (archived_at);
-- Deleting a blob must find its deliveries without a scan.
CREATE INDEX delivery_sha256 ON ingestd.delivery (sha256);
-- Reconciliation looks only at what is still on the server.
CREATE INDEX delivery_on_server ON ingestd.delivery (account_id)
    WHERE server_deleted_at IS NULL;

CREATE TABLE ingestd.poll (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES ingestd.account (id),
	started_at timestamptz NOT NULL,
	finished_at timestamptz,
	outcome text NOT NULL
	    CHECK (outcome IN ('ok', 'temporary', 'permanent')),
	error text,
	listed bigint NOT NULL DEFAULT 0,
	fetched bigint NOT NULL DEFAULT 0,
	archived bigint NOT NULL DEFAULT 0,
	deduplicated bigint NOT NULL DEFAULT 0,
	deleted bigint NOT NULL DEFAULT 0,
	bytes bigint NOT NULL DEFAULT 0
);
CREATE INDEX poll_account_started
    ON ingestd.poll (account_id, started_at DESC);
COMMENT ON TABLE ingestd.poll IS
    'One row per poll of a mailbox.  Internal: read polls.';

-- The stable views.

CREATE VIEW ingestd.deliveries AS
SELECT a.name AS account,
       d.uidl,
       encode(d.sha256, 'hex') AS sha256,
       b.size,
       d.archived_at,
       d.server_deleted_at
  FROM ingestd.delivery d
  JOIN ingestd.account a ON a.id = d.account_id
  JOIN ingestd.blob b ON b.sha256 = d.sha256;
COMMENT ON VIEW ingestd.deliveries IS
    'Stable.  One row per message archived from a mailbox.  The same message '
    'in two mailboxes is two rows sharing one sha256 (stored once, see '
    'blobs).';
COMMENT ON COLUMN ingestd.deliveries.account IS
    'Mailbox name, as configured.';
COMMENT ON COLUMN ingestd.deliveries.uidl IS
    'The POP3 UIDL the server gave the message; NULL if it had none.';
COMMENT ON COLUMN ingestd.deliveries.sha256 IS
    'SHA-256 of the archived bytes, lowercase hex; joins blobs.sha256.';
COMMENT ON COLUMN ingestd.deliveries.size IS
    'Archived size in bytes (exactly what RETR delivered, unstuffed).';
COMMENT ON COLUMN ingestd.deliveries.archived_at IS
    'When the transaction holding the message committed.';
COMMENT ON COLUMN ingestd.deliveries.server_deleted_at IS
    'When the message was seen gone from the server (deleted by ingestd or '
    'found absent at a later poll); NULL while still on the server.';

CREATE VIEW ingestd.blobs AS
SELECT encode(b.sha256, 'hex') AS sha256,
       b.size,
       b.stored_size,
       b.created_at
  FROM ingestd.blob b;
COMMENT ON VIEW ingestd.blobs IS
    'Stable.  One row per distinct message stored, however many mailboxes '
    'received it.';
COMMENT ON COLUMN ingestd.blobs.sha256 IS
    'SHA-256 of the message bytes, lowercase hex.';
COMMENT ON COLUMN ingestd.blobs.size IS
    'Message size in bytes.';
COMMENT ON COLUMN ingestd.blobs.stored_size IS
    'Compressed (zstd) size in bytes, as stored.';
COMMENT ON COLUMN ingestd.blobs.created_at IS
    'When the first copy was archived.';

CREATE VIEW ingestd.polls AS
SELECT a.name AS account,
       p.started_at,
       p.finished_at,
       p.finished_at - p.started_at AS duration,
       p.outcome,
       p.error,
       p.listed,
       p.fetched,
       p.archived,
       p.deduplicated,
       p.deleted,
       p.bytes
  FROM ingestd.poll p
  JOIN ingestd.account a ON a.id = p.account_id;
COMMENT ON VIEW ingestd.polls IS
    'Stable.  One row per poll of a mailbox.';
COMMENT ON COLUMN ingestd.polls.account IS 'Mailbox name.';
COMMENT ON COLUMN ingestd.polls.started_at IS 'When the poll started.';
COMMENT ON COLUMN ingestd.polls.finished_at IS
    'When the poll ended; NULL if unknown.';
COMMENT ON COLUMN ingestd.polls.duration IS 'finished_at - started_at.';
COMMENT ON COLUMN ingestd.polls.outcome IS
    '''ok''; ''temporary'' (will be retried: network, server busy, '
    'database); or ''permanent'' (needs a person: authentication, TLS '
    'verification, configuration).';
COMMENT ON COLUMN ingestd.polls.error IS
    'What went wrong, for a poll that was not ok; NULL otherwise.';
COMMENT ON COLUMN ingestd.polls.listed IS
    'Messages the server listed.';
COMMENT ON COLUMN ingestd.polls.fetched IS
    'Messages downloaded (RETR).';
COMMENT ON COLUMN ingestd.polls.archived IS
    'Messages committed to the archive in this poll.';
COMMENT ON COLUMN ingestd.polls.deduplicated IS
    'Of those, messages whose bytes were already stored.';
COMMENT ON COLUMN ingestd.polls.deleted IS
    'Messages deleted from the server (DELE confirmed by QUIT).';
COMMENT ON COLUMN ingestd.polls.bytes IS
    'Message bytes downloaded.';

CREATE VIEW ingestd.account_status AS
SELECT a.name AS account,
       lp.started_at AS last_poll_at,
       lp.outcome AS last_outcome,
       ls.finished_at AS last_success_at,
       le.at AS last_error_at,
       le.error AS last_error,
       coalesce(m.messages, 0) AS messages,
       coalesce(m.on_server, 0) AS on_server,
       coalesce(m.bytes, 0) AS bytes,
       now() - ls.finished_at AS lag
  FROM ingestd.account a
  LEFT JOIN LATERAL (
	SELECT p.started_at, p.outcome
	  FROM ingestd.poll p
	 WHERE p.account_id = a.id
	 ORDER BY p.started_at DESC
	 LIMIT 1) lp ON true
  LEFT JOIN LATERAL (
	SELECT coalesce(p.finished_at, p.started_at) AS finished_at
	  FROM ingestd.poll p
	 WHERE p.account_id = a.id AND p.outcome = 'ok'
	 ORDER BY p.started_at DESC
	 LIMIT 1) ls ON true
  LEFT JOIN LATERAL (
	SELECT coalesce(p.finished_at, p.started_at) AS at, p.error
	  FROM ingestd.poll p
	 WHERE p.account_id = a.id AND p.outcome <> 'ok'
	 ORDER BY p.started_at DESC
	 LIMIT 1) le ON true
  LEFT JOIN LATERAL (
	SELECT count(*) AS messages,
	       count(*) FILTER (WHERE d.server_deleted_at IS NULL)
		   AS on_server,
	       sum(b.size) AS bytes
	  FROM ingestd.delivery d
	  JOIN ingestd.blob b ON b.sha256 = d.sha256
	 WHERE d.account_id = a.id) m ON true;
COMMENT ON VIEW ingestd.account_status IS
    'Stable.  One row per mailbox: its latest poll, success and error, and '
    'what the archive holds for it.';
COMMENT ON COLUMN ingestd.account_status.account IS 'Mailbox name.';
COMMENT ON COLUMN ingestd.account_status.last_poll_at IS
    'Start of the latest poll; NULL if never polled.';
COMMENT ON COLUMN ingestd.account_status.last_outcome IS
    'Outcome of the latest poll (see polls.outcome).';
COMMENT ON COLUMN ingestd.account_status.last_success_at IS
    'End of the latest successful poll; NULL if none.';
COMMENT ON COLUMN ingestd.account_status.last_error_at IS
    'End of the latest failed poll; NULL if none.';
COMMENT ON COLUMN ingestd.account_status.last_error IS
    'Error of the latest failed poll.';
COMMENT ON COLUMN ingestd.account_status.messages IS
    'Deliveries archived for the mailbox.';
COMMENT ON COLUMN ingestd.account_status.on_server IS
    'Of those, how many are still on the server as far as ingestd knows.';
COMMENT ON COLUMN ingestd.account_status.bytes IS
    'Archived bytes for the mailbox (before deduplication and compression).';
COMMENT ON COLUMN ingestd.account_status.lag IS
    'now() - last_success_at: how stale the archive of this mailbox may be; '
    'NULL if never successful.';

CREATE VIEW ingestd.archive_daily AS
SELECT a.name AS account,
       (d.archived_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS messages,
       sum(b.size) AS bytes
  FROM ingestd.delivery d
  JOIN ingestd.account a ON a.id = d.account_id
  JOIN ingestd.blob b ON b.sha256 = d.sha256
 GROUP BY a.name, (d.archived_at AT TIME ZONE 'UTC')::date;
COMMENT ON VIEW ingestd.archive_daily IS
    'Stable.  Messages and bytes archived per mailbox per UTC day.';
COMMENT ON COLUMN ingestd.archive_daily.account IS 'Mailbox name.';
COMMENT ON COLUMN ingestd.archive_daily.day IS 'UTC date of archived_at.';
COMMENT ON COLUMN ingestd.archive_daily.messages IS
    'Deliveries archived that day.';
COMMENT ON COLUMN ingestd.archive_daily.bytes IS
    'Their size in bytes (before deduplication and compression).';

CREATE VIEW ingestd.archive_totals AS
SELECT t.messages,
       t.bytes,
       t.blobs,
       t.unique_bytes,
       t.stored_bytes,
       t.bytes::float8 / nullif(t.unique_bytes, 0) AS dedup_ratio,
       t.unique_bytes::float8 / nullif(t.stored_bytes, 0)
	   AS compression_ratio
  FROM (SELECT (SELECT count(*) FROM ingestd.delivery) AS messages,
	       (SELECT coalesce(sum(b.size), 0)
		  FROM ingestd.delivery d
		  JOIN ingestd.blob b ON b.sha256 = d.sha256) AS bytes,
	       (SELECT count(*) FROM ingestd.blob) AS blobs,
	       (SELECT coalesce(sum(size), 0) FROM ingestd.blob)
		   AS unique_bytes,
	       (SELECT coalesce(sum(stored_size), 0) FROM ingestd.blob)
		   AS stored_bytes) t;
COMMENT ON VIEW ingestd.archive_totals IS
    'Stable.  One row: the whole archive, with deduplication and '
    'compression savings.';
COMMENT ON COLUMN ingestd.archive_totals.messages IS
    'Deliveries archived, all mailboxes.';
COMMENT ON COLUMN ingestd.archive_totals.bytes IS
    'Their total size in bytes, as if each were stored separately.';
COMMENT ON COLUMN ingestd.archive_totals.blobs IS
    'Distinct messages stored.';
COMMENT ON COLUMN ingestd.archive_totals.unique_bytes IS
    'Size of the distinct messages in bytes, before compression.';
COMMENT ON COLUMN ingestd.archive_totals.stored_bytes IS
    'Compressed bytes actually stored.';
COMMENT ON COLUMN ingestd.archive_totals.dedup_ratio IS
    'bytes / unique_bytes: what deduplication saves (1 = nothing).';
COMMENT ON COLUMN ingestd.archive_totals.compression_ratio IS
    'unique_bytes / stored_bytes: what compression saves (1 = nothing).';
