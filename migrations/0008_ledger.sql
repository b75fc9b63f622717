-- 0008_ledger: the tamper-evident ledger (README "The ledger").
--
-- Every event (a message archived, a delivery or blob deleted, and what
-- later features record through ingestd.ledger_append()) is first a row of
-- ledger_pending, written by a trigger or a call IN THE TRANSACTION OF
-- WHAT IT RECORDS, so it commits or rolls back with it.  Inserting there
-- takes no lock beyond the row's own: commits are not serialized.
--
-- `ingestd ledger checkpoint` (and `run`, every ledger.checkpoint_interval
-- seconds) then sequences the pending events under an advisory lock: each
-- gets the next leaf index (gapless, in event order), its entry bytes and
-- leaf hash (store/ledger.h), and the complete subtrees it completes go to
-- ledger_node, so that proofs read O(log n) rows.  A checkpoint signs the
-- tree head.
--
-- ledger, ledger_node and ledger_checkpoint refuse UPDATE, DELETE and
-- TRUNCATE through triggers ENABLE ALWAYS (session_replication_role =
-- replica does not skip them).  A superuser can still disable them and
-- rewrite: what makes that detectable is the signed checkpoints sent out
-- with ledger.checkpoint_command.

CREATE TABLE ingestd.ledger_pending (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind text NOT NULL CHECK (kind ~ '^[a-z0-9_-]{1,64}$'),
	-- key, value, key, value, ... in the order the kind fixes.
	fields text[] NOT NULL
	    CHECK (coalesce(array_length(fields, 1), 0) % 2 = 0),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ingestd.ledger_pending IS
    'Ledger events not yet given a leaf index.  Internal.';

CREATE TABLE ingestd.ledger (
	idx bigint PRIMARY KEY CHECK (idx >= 0),
	entry bytea NOT NULL,
	leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
	-- Copied from the entry, for lookups and for ledger verify's joins.
	kind text NOT NULL,
	sha256 bytea,
	account text,
	uidl text,
	size bigint,
	at text,
	sequenced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_message ON ingestd.ledger (sha256)
    WHERE sha256 IS NOT NULL;
COMMENT ON TABLE ingestd.ledger IS
    'The leaves of the ledger''s Merkle tree, one per event.  Append-only.';

-- Complete subtree (level, idx): leaves [idx * 2^level, (idx + 1) * 2^level).
CREATE TABLE ingestd.ledger_node (
	level smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
	idx bigint NOT NULL CHECK (idx >= 0),
	hash bytea NOT NULL CHECK (octet_length(hash) = 32),
	PRIMARY KEY (level, idx)
);
COMMENT ON TABLE ingestd.ledger_node IS
    'Hashes of the complete subtrees of the ledger.  Append-only.';

CREATE TABLE ingestd.ledger_checkpoint (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tree_size bigint NOT NULL CHECK (tree_size >= 0),
	root_hash bytea NOT NULL CHECK (octet_length(root_hash) = 32),
	note text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_checkpoint_size ON ingestd.ledger_checkpoint (tree_size);
COMMENT ON TABLE ingestd.ledger_checkpoint IS
    'Signed tree heads (C2SP tlog-checkpoint notes).  Append-only.';

CREATE FUNCTION ingestd.ledger_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'ingestd: % on %.% is refused: the ledger is '
	    'append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
	    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE
    ON ingestd.ledger FOR EACH ROW EXECUTE FUNCTION ingestd.ledger_refuse();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE
    ON ingestd.ledger EXECUTE FUNCTION ingestd.ledger_refuse();
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE
    ON ingestd.ledger_node FOR EACH ROW
    EXECUTE FUNCTION ingestd.ledger_refuse();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE
    ON ingestd.ledger_node EXECUTE FUNCTION ingestd.ledger_refuse();
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE
    ON ingestd.ledger_checkpoint FOR EACH ROW
    EXECUTE FUNCTION ingestd.ledger_refuse();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE
    ON ingestd.ledger_checkpoint EXECUTE FUNCTION ingestd.ledger_refuse();
-- Pending events leave only by being sequenced (DELETE); never edited.
CREATE TRIGGER ledger_append_only BEFORE UPDATE
    ON ingestd.ledger_pending FOR EACH ROW
    EXECUTE FUNCTION ingestd.ledger_refuse();
ALTER TABLE ingestd.ledger ENABLE ALWAYS TRIGGER ledger_append_only;
ALTER TABLE ingestd.ledger ENABLE ALWAYS TRIGGER ledger_no_truncate;
ALTER TABLE ingestd.ledger_node ENABLE ALWAYS TRIGGER ledger_append_only;
ALTER TABLE ingestd.ledger_node ENABLE ALWAYS TRIGGER ledger_no_truncate;
ALTER TABLE ingestd.ledger_checkpoint
    ENABLE ALWAYS TRIGGER ledger_append_only;
ALTER TABLE ingestd.ledger_checkpoint
    ENABLE ALWAYS TRIGGER ledger_no_truncate;
ALTER TABLE ingestd.ledger_pending ENABLE ALWAYS TRIGGER ledger_append_only;

-- How archive times are spelt in entries: UTC, microseconds.
CREATE FUNCTION ingestd.ledger_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
	SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The one call for any other event, in the caller's transaction:
--   SELECT ingestd.ledger_append('hold-add', 'name', 'matter-17',
--                                'reason', 'Smith v. Acme');
-- kind and keys are [a-z0-9_-]{1,64}; values any text.  Returns the
-- pending id (the leaf index is given when the event is sequenced).
CREATE FUNCTION ingestd.ledger_append(event_kind text,
    VARIADIC event_fields text[] DEFAULT ARRAY[]::text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	i integer;
	pending_id bigint;
BEGIN
	IF event_kind IS NULL OR event_kind !~ '^[a-z0-9_-]{1,64}$' THEN
		RAISE EXCEPTION 'ledger_append: bad kind "%"', event_kind;
	END IF;
	IF coalesce(array_length(event_fields, 1), 0) % 2 <> 0 THEN
		RAISE EXCEPTION 'ledger_append: fields come in key, value pairs';
	END IF;
	FOR i IN 1 .. coalesce(array_length(event_fields, 1), 0) BY 2 LOOP
		IF event_fields[i] IS NULL OR
		    event_fields[i] !~ '^[a-z0-9_-]{1,64}$' THEN
			RAISE EXCEPTION 'ledger_append: bad key "%"',
			    event_fields[i];
		END IF;
	END LOOP;
	INSERT INTO ingestd.ledger_pending (kind, fields)
	    VALUES (event_kind,
	            array(SELECT coalesce(f, '')
	                    FROM unnest(event_fields) WITH ORDINALITY u(f, o)
	                   ORDER BY o))
	    RETURNING id INTO pending_id;
	RETURN pending_id;
END
$$;

-- A message archived: one event per delivery row inserted, in the
-- committing transaction (ON CONFLICT DO NOTHING inserts no row, so a
-- re-commit adds no event).
-- The trigger functions run as their owner (SECURITY DEFINER, with a
-- fixed search_path), so a role that may insert deliveries needs no right
-- on ledger_pending.
CREATE FUNCTION ingestd.ledger_on_ingest() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ingestd
AS $$
BEGIN
	INSERT INTO ingestd.ledger_pending (kind, fields)
	SELECT 'ingest', ARRAY['account', a.name,
	                       'uidl', coalesce(n.uidl, ''),
	                       'sha256', encode(n.sha256, 'hex'),
	                       'size', b.size::text,
	                       'archived_at', ingestd.ledger_time(n.archived_at)]
	  FROM new_rows n
	  JOIN ingestd.account a ON a.id = n.account_id
	  JOIN ingestd.blob b ON b.sha256 = n.sha256
	 ORDER BY n.id;
	RETURN NULL;
END
$$;
CREATE TRIGGER ledger_ingest AFTER INSERT ON ingestd.delivery
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.ledger_on_ingest();
ALTER TABLE ingestd.delivery ENABLE ALWAYS TRIGGER ledger_ingest;

-- A delivery or blob deleted: a tombstone.  Inside a purge (which sets
-- ingestd.purge to the plan's hash for its transaction) the kind is "delete" or
-- "blob-delete"; anywhere else "delete-unauthorized" or
-- "blob-delete-unauthorized", which ledger verify reports as damage.
CREATE FUNCTION ingestd.ledger_on_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ingestd
AS $$
DECLARE
	suffix text := CASE WHEN coalesce(current_setting('ingestd.purge',
	    true), '') <> '' THEN '' ELSE '-unauthorized' END;
BEGIN
	IF TG_TABLE_NAME = 'delivery' THEN
		INSERT INTO ingestd.ledger_pending (kind, fields)
		SELECT 'delete' || suffix,
		       ARRAY['account', coalesce(a.name, ''),
		             'uidl', coalesce(o.uidl, ''),
		             'sha256', encode(o.sha256, 'hex'),
		             'actor', session_user::text,
		             'at', ingestd.ledger_time(now())]
		  FROM old_rows o
		  LEFT JOIN ingestd.account a ON a.id = o.account_id
		 ORDER BY o.id;
	ELSE
		INSERT INTO ingestd.ledger_pending (kind, fields)
		SELECT 'blob-delete' || suffix,
		       ARRAY['sha256', encode(o.sha256, 'hex'),
		             'actor', session_user::text,
		             'at', ingestd.ledger_time(now())]
		  FROM old_rows o
		 ORDER BY o.sha256;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER ledger_delete AFTER DELETE ON ingestd.delivery
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.ledger_on_delete();
CREATE TRIGGER ledger_delete AFTER DELETE ON ingestd.blob
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.ledger_on_delete();
ALTER TABLE ingestd.delivery ENABLE ALWAYS TRIGGER ledger_delete;
ALTER TABLE ingestd.blob ENABLE ALWAYS TRIGGER ledger_delete;

-- Deliveries archived before this migration enter the ledger first, in
-- the order they were archived.
INSERT INTO ingestd.ledger_pending (kind, fields)
SELECT 'ingest', ARRAY['account', a.name,
                       'uidl', coalesce(d.uidl, ''),
                       'sha256', encode(d.sha256, 'hex'),
                       'size', b.size::text,
                       'archived_at', ingestd.ledger_time(d.archived_at)]
  FROM ingestd.delivery d
  JOIN ingestd.account a ON a.id = d.account_id
  JOIN ingestd.blob b ON b.sha256 = d.sha256
 ORDER BY d.id;
