-- 0010_more_ledger_events: the ledger (migration 0008) also records, each
-- in the transaction that makes it:
--
-- * every retention, hold and purge event (migration 0009's
--   retention_event): a policy added, a hold added or released, a purge
--   planned, approved or executed are then as provable as the ingests and
--   deletions they govern.  Kind "retention", one field "entry": the
--   event's canonical text, which 0009 builds (ingestd-retention/1 id=N
--   at=... kind=... ...; reasons and queries only as their SHA-256);
-- * every archived message found gone from the server, deleted by
--   ingestd after its commit (DELE, then +OK to QUIT) or found absent at
--   a later poll: kind "server-gone" with account, uidl, sha256, at (when
--   server_deleted_at was set).  A message that comes back and is taken
--   for gone again is recorded again.

CREATE FUNCTION ingestd.retention_event_to_ledger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ingestd
AS $$
BEGIN
	PERFORM ingestd.ledger_append('retention', 'entry', NEW.entry);
	RETURN NULL;
END
$$;

CREATE TRIGGER retention_event_ledger AFTER INSERT
    ON ingestd.retention_event
    FOR EACH ROW EXECUTE FUNCTION ingestd.retention_event_to_ledger();
ALTER TABLE ingestd.retention_event
    ENABLE ALWAYS TRIGGER retention_event_ledger;

CREATE FUNCTION ingestd.ledger_on_server_gone() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ingestd
AS $$
BEGIN
	INSERT INTO ingestd.ledger_pending (kind, fields)
	SELECT 'server-gone', ARRAY['account', a.name,
	                            'uidl', coalesce(n.uidl, ''),
	                            'sha256', encode(n.sha256, 'hex'),
	                            'at', ingestd.ledger_time(
	                                n.server_deleted_at)]
	  FROM new_rows n
	  JOIN old_rows o ON o.id = n.id
	  JOIN ingestd.account a ON a.id = n.account_id
	 WHERE o.server_deleted_at IS NULL
	   AND n.server_deleted_at IS NOT NULL
	 ORDER BY n.id;
	RETURN NULL;
END
$$;
CREATE TRIGGER ledger_server_gone AFTER UPDATE ON ingestd.delivery
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.ledger_on_server_gone();
ALTER TABLE ingestd.delivery ENABLE ALWAYS TRIGGER ledger_server_gone;
