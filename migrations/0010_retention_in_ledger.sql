-- 0010_retention_in_ledger: every retention, hold and purge event
-- (migration 0009's retention_event) becomes a ledger entry (migration
-- 0008), in the transaction that records it: a policy added, a hold added
-- or released, a purge planned, approved or executed are then as provable
-- as the ingests and deletions they govern.
--
-- The ledger entry is kind "retention" with one field, "entry": the
-- event's canonical text, which 0009 builds (ingestd-retention/1 id=N
-- at=... kind=... ...; reasons and queries only as their SHA-256).

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
