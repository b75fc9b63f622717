-- 0011_roles: the database enforces who may change what (README,
-- "Database roles").
--
-- The role that runs the migrations owns the schema and everything in it;
-- the roles below are NOLOGIN groups an operator makes login roles
-- members of:
--
--   ingestd_reader     SELECT on every table and view (search, export,
--                      verify, prove, ledger verify, hold/policy list);
--                      ledger_append() for the verify event
--   ingestd_archiver   what `once` and `run` do: INSERT archive rows;
--                      UPDATE only delivery.server_deleted_at,
--                      list_size and head_sha256 (a message seen gone,
--                      or back in a restored mailbox) and the daemon's
--                      bookkeeping; DELETE only refusal and uidl_seen
--                      rows and pending ledger events it sequences
--   ingestd_custodian  policy_add(), hold_add(), hold_release()
--   ingestd_purger     purge_plan_record(), purge_approve(),
--                      purge_execute_batch()
--
-- archiver, custodian and purger are members of reader.  None may
-- UPDATE or DELETE blob, blob_chunk, delivery (but the columns above),
-- message*, the ledger's tables, or the retention tables of 0009: those
-- change only through the SECURITY DEFINER functions above, which run as
-- the owner with a fixed search_path and record session_user (which a
-- client cannot change once connected) and ingestd.os_user as the actor.
--
-- A later migration that adds a table or column the daemon writes, or a
-- function a role calls that must run as the owner, grants it here too:
-- only SELECT for ingestd_reader is a default privilege.
--
-- Roles belong to the cluster, grants to a database: several archives in
-- one cluster share the four roles, each database granting them its own
-- objects.  A role that exists already is left as it is.  Creating one
-- needs CREATEROLE; without it, an administrator creates them first
-- (README gives the statements).

DO $r$
DECLARE
	r text;
	may boolean;
BEGIN
	SELECT rolsuper OR rolcreaterole INTO may
	  FROM pg_catalog.pg_roles WHERE rolname = current_user;
	FOREACH r IN ARRAY ARRAY['ingestd_reader', 'ingestd_archiver',
	    'ingestd_custodian', 'ingestd_purger'] LOOP
		IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r)
		THEN
			CONTINUE;
		END IF;
		IF NOT coalesce(may, false) THEN
			RAISE EXCEPTION 'role % does not exist, and role % may '
			    'not create it: have a role with CREATEROLE run '
			    'CREATE ROLE % NOLOGIN, then migrate again '
			    '(README, Database roles)', r, current_user, r
			    USING ERRCODE = '42501';
		END IF;
		-- Another database of the cluster may be migrating too.
		BEGIN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL;
		END;
	END LOOP;
	FOREACH r IN ARRAY ARRAY['ingestd_archiver', 'ingestd_custodian',
	    'ingestd_purger'] LOOP
		IF pg_catalog.pg_has_role(r, 'ingestd_reader', 'MEMBER') THEN
			CONTINUE;
		END IF;
		IF NOT coalesce(may, false) THEN
			RAISE EXCEPTION 'role % is not a member of ingestd_reader, '
			    'and role % may not make it one: have a role with '
			    'CREATEROLE run GRANT ingestd_reader TO %, then '
			    'migrate again (README, Database roles)', r,
			    current_user, r USING ERRCODE = '42501';
		END IF;
		BEGIN
			EXECUTE format('GRANT ingestd_reader TO %I', r);
		EXCEPTION WHEN unique_violation THEN
			NULL;
		END;
	END LOOP;
END
$r$;

-- Who archived each delivery, and who ran each poll: rows from before
-- this migration say NULL (not known).
ALTER TABLE ingestd.delivery ADD COLUMN actor_role text,
    ADD COLUMN actor_os text;
ALTER TABLE ingestd.delivery ALTER COLUMN actor_role SET DEFAULT session_user,
    ALTER COLUMN actor_os SET DEFAULT ingestd.retention_os_user();
COMMENT ON COLUMN ingestd.delivery.actor_role IS
    'The PostgreSQL role (session_user) that archived it; NULL before 0011.';
COMMENT ON COLUMN ingestd.delivery.actor_os IS
    'The OS user of the ingestd that archived it; NULL before 0011.';
ALTER TABLE ingestd.poll ADD COLUMN actor_role text,
    ADD COLUMN actor_os text;
ALTER TABLE ingestd.poll ALTER COLUMN actor_role SET DEFAULT session_user,
    ALTER COLUMN actor_os SET DEFAULT ingestd.retention_os_user();
COMMENT ON COLUMN ingestd.poll.actor_role IS
    'The PostgreSQL role (session_user) of the poll; NULL before 0011.';
COMMENT ON COLUMN ingestd.poll.actor_os IS
    'The OS user of the ingestd that polled; NULL before 0011.';

-- The functions that change holds, policies and purges run as the owner
-- (so the roles need no right on the tables, and hold_add() no CREATE on
-- the schema for a standing hold's test), with a search_path no caller
-- can redirect.  Every function is executable by PUBLIC by default:
-- these only by their role.
ALTER FUNCTION ingestd.policy_add(text, text, text, text, interval)
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
ALTER FUNCTION ingestd.hold_add(text, text, text[], text[], date, date)
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
ALTER FUNCTION ingestd.hold_release(text, text)
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
ALTER FUNCTION ingestd.purge_plan_record(text, timestamptz, integer)
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
ALTER FUNCTION ingestd.purge_approve(text)
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
ALTER FUNCTION ingestd.purge_execute_batch(text, bigint, integer)
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
ALTER FUNCTION ingestd.ledger_append(text, text[])
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;
-- The standing holds' trigger, which the archiver's inserts fire: it
-- reads the holds and adds hold_member rows the archiver may not write.
ALTER FUNCTION ingestd.hold_standing()
    SECURITY DEFINER SET search_path = pg_catalog, ingestd, pg_temp;

REVOKE EXECUTE ON FUNCTION
    ingestd.policy_add(text, text, text, text, interval),
    ingestd.hold_add(text, text, text[], text[], date, date),
    ingestd.hold_release(text, text),
    ingestd.purge_plan_record(text, timestamptz, integer),
    ingestd.purge_approve(text),
    ingestd.purge_execute_batch(text, bigint, integer),
    ingestd.ledger_append(text, text[]),
    ingestd.hold_standing()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ingestd.policy_add(text, text, text, text, interval),
    ingestd.hold_add(text, text, text[], text[], date, date),
    ingestd.hold_release(text, text)
    TO ingestd_custodian;
GRANT EXECUTE ON FUNCTION
    ingestd.purge_plan_record(text, timestamptz, integer),
    ingestd.purge_approve(text),
    ingestd.purge_execute_batch(text, bigint, integer)
    TO ingestd_purger;
GRANT EXECUTE ON FUNCTION ingestd.ledger_append(text, text[])
    TO ingestd_reader;

-- Reading.
GRANT USAGE ON SCHEMA ingestd TO ingestd_reader, ingestd_archiver,
    ingestd_custodian, ingestd_purger;
GRANT SELECT ON ALL TABLES IN SCHEMA ingestd TO ingestd_reader;
-- Tables and views of later migrations, made by the same owner.
ALTER DEFAULT PRIVILEGES IN SCHEMA ingestd
    GRANT SELECT ON TABLES TO ingestd_reader;

-- Archiving (store/index.c holds every statement `once` and `run` send).
GRANT INSERT ON ingestd.account, ingestd.dict, ingestd.blob,
    ingestd.blob_chunk, ingestd.delivery, ingestd.poll, ingestd.message,
    ingestd.message_address, ingestd.message_part, ingestd.refusal,
    ingestd.uidl_seen, ingestd.account_capa, ingestd.ledger,
    ingestd.ledger_node, ingestd.ledger_checkpoint
    TO ingestd_archiver;
GRANT UPDATE (server_deleted_at, list_size, head_sha256)
    ON ingestd.delivery TO ingestd_archiver;
GRANT UPDATE (needs_reauth_since) ON ingestd.account TO ingestd_archiver;
GRANT UPDATE (reason, size_limit, error, failures, last_seen)
    ON ingestd.refusal TO ingestd_archiver;
GRANT UPDATE (expire, login_delay, seen_at)
    ON ingestd.account_capa TO ingestd_archiver;
-- Its own bookkeeping, and the pending ledger events it sequences into
-- the ledger (a pending event removed otherwise is a delivery without
-- its ingest entry, which ledger verify reports).
GRANT DELETE ON ingestd.refusal, ingestd.uidl_seen, ingestd.ledger_pending
    TO ingestd_archiver;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA ingestd TO ingestd_archiver;

-- The actors in the stable views, as columns added at the end.
CREATE OR REPLACE VIEW ingestd.deliveries AS
SELECT a.name AS account,
       d.uidl,
       encode(d.sha256, 'hex') AS sha256,
       b.size,
       d.archived_at,
       d.server_deleted_at,
       d.actor_role,
       d.actor_os
  FROM ingestd.delivery d
  JOIN ingestd.account a ON a.id = d.account_id
  JOIN ingestd.blob b ON b.sha256 = d.sha256;
COMMENT ON COLUMN ingestd.deliveries.actor_role IS
    'The PostgreSQL role that archived it; NULL if archived before roles '
    'were recorded.';
COMMENT ON COLUMN ingestd.deliveries.actor_os IS
    'The OS user of the ingestd that archived it; NULL likewise.';

CREATE OR REPLACE VIEW ingestd.polls AS
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
       p.bytes,
       p.actor_role,
       p.actor_os
  FROM ingestd.poll p
  JOIN ingestd.account a ON a.id = p.account_id;
COMMENT ON COLUMN ingestd.polls.actor_role IS
    'The PostgreSQL role that polled; NULL before roles were recorded.';
COMMENT ON COLUMN ingestd.polls.actor_os IS
    'The OS user of the ingestd that polled; NULL likewise.';

-- Message bytes and what a delivery is never change, whoever asks, the
-- owner included: blob and blob_chunk refuse UPDATE, blob_chunk refuses
-- DELETE and TRUNCATE outside a purge (which removes chunks with their
-- blob), and a delivery's identity and actor are never rewritten (what
-- the archiver may update is listed above).  Triggers ENABLE ALWAYS, so
-- session_replication_role = replica does not skip them.  A superuser
-- is not stopped (it could disable them as well): ingestd verify and
-- ledger verify, against checkpoints kept outside, detect what it does.
CREATE FUNCTION ingestd.archive_refuse()
RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF TG_OP IN ('DELETE', 'TRUNCATE') AND
	    coalesce(current_setting('ingestd.purge', true), '') <> '' THEN
		RETURN CASE WHEN TG_LEVEL = 'ROW' THEN OLD END;
	END IF;
	IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r
	     WHERE r.rolname = current_user) THEN
		RETURN CASE WHEN TG_LEVEL = 'ROW' AND TG_OP = 'DELETE' THEN OLD
		    WHEN TG_LEVEL = 'ROW' THEN NEW END;
	END IF;
	RAISE EXCEPTION '%: % is refused: archived messages are never '
	    'rewritten, and leave the archive only through ingestd purge',
	    TG_TABLE_NAME, TG_OP USING ERRCODE = '42501';
END
$f$;
CREATE TRIGGER blob_immutable BEFORE UPDATE ON ingestd.blob
    FOR EACH ROW EXECUTE FUNCTION ingestd.archive_refuse();
CREATE TRIGGER blob_chunk_immutable BEFORE UPDATE OR DELETE
    ON ingestd.blob_chunk
    FOR EACH ROW EXECUTE FUNCTION ingestd.archive_refuse();
CREATE TRIGGER blob_chunk_no_truncate BEFORE TRUNCATE ON ingestd.blob_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.archive_refuse();
CREATE TRIGGER delivery_identity_immutable
    BEFORE UPDATE OF id, account_id, uidl, sha256, archived_at,
    actor_role, actor_os ON ingestd.delivery
    FOR EACH ROW EXECUTE FUNCTION ingestd.archive_refuse();
ALTER TABLE ingestd.blob ENABLE ALWAYS TRIGGER blob_immutable;
ALTER TABLE ingestd.blob_chunk ENABLE ALWAYS TRIGGER blob_chunk_immutable;
ALTER TABLE ingestd.blob_chunk ENABLE ALWAYS TRIGGER blob_chunk_no_truncate;
ALTER TABLE ingestd.delivery
    ENABLE ALWAYS TRIGGER delivery_identity_immutable;
