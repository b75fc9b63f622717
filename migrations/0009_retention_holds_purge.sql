-- 0009_retention_holds_purge: retention policies, legal holds, the
-- two-step purge, and the events that record each of them.
--
-- Everything here is append-only: a policy change is a new version, a
-- release is a row of its own, a plan is never edited, and the triggers
-- at the end refuse UPDATE, DELETE and TRUNCATE on every table of this
-- migration (ENABLE ALWAYS, so session_replication_role = replica does
-- not bypass them).  Deliveries and blobs leave the archive only through
-- ingestd.purge_execute_batch(), which re-checks every item.
--
-- The decision of what is due is made by ingestd/retention.c (README,
-- "Retention, holds and purge"); the database gathers its inputs, holds
-- the plan and executes it.
--
-- TABLES (internal):
--
--   policy_version    one row per version of a retention policy
--   hold              one row per legal hold (matter)
--   hold_scope        its scopes: account, query (compiled), message
--   hold_member       messages (sha256) a query scope matched, decided
--                     at hold creation and, for mail archived later, in
--                     the transaction that commits it (standing holds)
--   hold_release      one row per released hold
--   purge_plan        a plan as `purge --plan` wrote it, by its SHA-256
--   purge_item        its lines
--   purge_approval    approvals of a plan
--   purge_done        plans fully executed
--   retention_event   one row per event, with its canonical text (entry)
--
-- VIEWS (stable: columns only ever added):
--
--   policies          every version of every policy, and which is newest
--   holds             every hold, active or released, with its scopes
--   held_deliveries   each delivery an active hold protects, and by which
--   purge_plans       every plan: items, approvals, executed or not
--   retention_due     the items of plans not yet executed
--   retention_events  the events, oldest first

-- Who did it: the PostgreSQL role (session_user, which a client cannot
-- choose once connected) and the OS user the client reports (set by
-- ingestd as the setting ingestd.os_user; '' when not set).
CREATE FUNCTION ingestd.retention_os_user()
RETURNS text LANGUAGE sql STABLE AS $f$
SELECT coalesce(current_setting('ingestd.os_user', true), '')
$f$;

CREATE TABLE ingestd.policy_version (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL
	    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
	version integer NOT NULL CHECK (version >= 1),
	keep text NOT NULL CHECK (keep ~ '^[0-9]+[dwmy]$'),
	period_n integer NOT NULL CHECK (period_n >= 0),
	period_unit text NOT NULL CHECK (period_unit IN ('d', 'w', 'm', 'y')),
	clock text NOT NULL
	    CHECK (clock IN ('archive', 'date', 'end-of-year')),
	match text,
	match_sql text,
	match_params text[],
	shortens boolean NOT NULL,
	cooling_off_ends_at timestamptz NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user(),
	UNIQUE (name, version)
);
COMMENT ON TABLE ingestd.policy_version IS
    'Retention policy versions; never edited.  Internal: read policies.';

CREATE TABLE ingestd.hold (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL UNIQUE
	    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
	reason text NOT NULL CHECK (reason <> ''),
	from_date date,
	to_date date,
	created_at timestamptz NOT NULL DEFAULT now(),
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user(),
	CHECK (from_date IS NULL OR to_date IS NULL OR from_date <= to_date)
);
COMMENT ON TABLE ingestd.hold IS
    'Legal holds, kept forever.  Internal: read holds.';

CREATE TABLE ingestd.hold_scope (
	hold_id bigint NOT NULL REFERENCES ingestd.hold (id),
	pos integer NOT NULL,
	kind text NOT NULL CHECK (kind IN ('account', 'query', 'message')),
	value text NOT NULL,
	sql text,
	params text[],
	fn text,
	PRIMARY KEY (hold_id, pos),
	CHECK ((kind = 'query') = (sql IS NOT NULL)),
	CHECK ((kind = 'query') = (fn IS NOT NULL)),
	CHECK (kind <> 'message' OR value ~ '^[0-9a-f]{64}$')
);
CREATE INDEX hold_scope_value ON ingestd.hold_scope (kind, value);

CREATE TABLE ingestd.hold_member (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	hold_id bigint NOT NULL REFERENCES ingestd.hold (id),
	sha256 bytea NOT NULL CHECK (octet_length(sha256) = 32),
	delivery_id bigint NOT NULL,
	added_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (hold_id, sha256)
);
CREATE INDEX hold_member_sha256 ON ingestd.hold_member (sha256);
COMMENT ON TABLE ingestd.hold_member IS
    'Messages a query hold matched (delivery_id: the delivery that '
    'matched first); every delivery of them is held.';

CREATE TABLE ingestd.hold_release (
	hold_id bigint PRIMARY KEY REFERENCES ingestd.hold (id),
	reason text NOT NULL CHECK (reason <> ''),
	released_at timestamptz NOT NULL DEFAULT now(),
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user()
);

CREATE TABLE ingestd.purge_plan (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sha256 bytea NOT NULL UNIQUE CHECK (octet_length(sha256) = 32),
	planned_at timestamptz NOT NULL,
	items integer NOT NULL,
	approvals_needed integer NOT NULL CHECK (approvals_needed IN (1, 2)),
	text text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user()
);

CREATE TABLE ingestd.purge_item (
	plan_id bigint NOT NULL REFERENCES ingestd.purge_plan (id),
	pos integer NOT NULL,
	delivery_id bigint NOT NULL,
	account text NOT NULL,
	uidl text,
	sha256 bytea NOT NULL,
	policy text NOT NULL,
	version integer NOT NULL,
	due_at timestamptz NOT NULL,
	PRIMARY KEY (plan_id, pos)
);

CREATE TABLE ingestd.purge_approval (
	plan_id bigint NOT NULL REFERENCES ingestd.purge_plan (id),
	approved_at timestamptz NOT NULL DEFAULT now(),
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user(),
	PRIMARY KEY (plan_id, actor_role)
);

CREATE TABLE ingestd.purge_done (
	plan_id bigint PRIMARY KEY REFERENCES ingestd.purge_plan (id),
	done_at timestamptz NOT NULL DEFAULT now(),
	deliveries bigint NOT NULL,
	blobs bigint NOT NULL,
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user()
);

-- The events.  entry is the canonical text, built by the trigger below
-- from the other columns (whatever a client sends for it is replaced):
--
--   ingestd-retention/1 id=N at=YYYY-MM-DDTHH:MM:SS.UUUUUUZ kind=KIND
--       role=ROLE os-user=USER key=value ...
--
-- one line, fields separated by one space, in the order of fields; a
-- value is percent-encoded (UTF-8 bytes other than A-Z a-z 0-9 and
-- -._~:@/+ as %XX, upper case; the empty value as %00-free ""), so it
-- never holds a space, '=' or a newline.  Free text a person wrote
-- (reasons, queries) appears only as its SHA-256 (reason-sha256=,
-- query-sha256=): an entry holds identifiers and hashes, no personal
-- data, so a ledger over it never needs erasing.
CREATE TABLE ingestd.retention_event (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now(),
	kind text NOT NULL,
	actor_role text NOT NULL DEFAULT session_user,
	actor_os text NOT NULL DEFAULT ingestd.retention_os_user(),
	fields text[] NOT NULL DEFAULT '{}',
	entry text NOT NULL DEFAULT ''
);
COMMENT ON TABLE ingestd.retention_event IS
    'Append-only: one row per retention, hold or purge event; entry is '
    'its canonical text (see migration 0009).';

CREATE FUNCTION ingestd.retention_enc(v text)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
	b bytea := convert_to(v, 'UTF8');
	out text := '';
	c integer;
	i integer;
BEGIN
	FOR i IN 0 .. octet_length(b) - 1 LOOP
		c := get_byte(b, i);
		IF (c BETWEEN 48 AND 57) OR (c BETWEEN 65 AND 90) OR
		    (c BETWEEN 97 AND 122) OR c IN (45, 46, 95, 126, 58, 64, 47,
		    43) THEN
			out := out || chr(c);
		ELSE
			out := out || '%' || upper(lpad(to_hex(c), 2, '0'));
		END IF;
	END LOOP;
	RETURN out;
END
$f$;

CREATE FUNCTION ingestd.retention_sha(v text)
RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE WHEN v IS NULL THEN '-'
	    ELSE encode(sha256(convert_to(v, 'UTF8')), 'hex') END
$f$;

CREATE FUNCTION ingestd.retention_time(t timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE WHEN t IS NULL THEN '-'
	    ELSE to_char(t AT TIME ZONE 'UTC',
		'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END
$f$;

CREATE FUNCTION ingestd.retention_event_entry()
RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	i integer;
	e text;
BEGIN
	IF coalesce(array_length(NEW.fields, 1), 0) % 2 <> 0 THEN
		RAISE EXCEPTION 'retention_event: fields must be key, value pairs';
	END IF;
	e := 'ingestd-retention/1 id=' || NEW.id
	    || ' at=' || ingestd.retention_time(NEW.at)
	    || ' kind=' || ingestd.retention_enc(NEW.kind)
	    || ' role=' || ingestd.retention_enc(NEW.actor_role)
	    || ' os-user=' || ingestd.retention_enc(NEW.actor_os);
	FOR i IN 1 .. coalesce(array_length(NEW.fields, 1), 0) / 2 LOOP
		e := e || ' ' || ingestd.retention_enc(NEW.fields[2 * i - 1])
		    || '=' || ingestd.retention_enc(coalesce(
			NEW.fields[2 * i], '-'));
	END LOOP;
	NEW.entry := e;
	RETURN NEW;
END
$f$;
CREATE TRIGGER retention_event_entry BEFORE INSERT
    ON ingestd.retention_event
    FOR EACH ROW EXECUTE FUNCTION ingestd.retention_event_entry();
ALTER TABLE ingestd.retention_event
    ENABLE ALWAYS TRIGGER retention_event_entry;

CREATE FUNCTION ingestd.retention_log(kind text, fields text[])
RETURNS void LANGUAGE sql AS $f$
INSERT INTO ingestd.retention_event (kind, fields) VALUES (kind, fields)
$f$;

-- Append-only, enforced.
CREATE FUNCTION ingestd.retention_refuse()
RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	RAISE EXCEPTION '%: % is refused: the table is append-only',
	    TG_TABLE_NAME, TG_OP USING ERRCODE = '42501';
END
$f$;

DO $d$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['policy_version', 'hold', 'hold_scope',
	    'hold_member', 'hold_release', 'purge_plan', 'purge_item',
	    'purge_approval', 'purge_done', 'retention_event'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE '
		    'ON ingestd.%I FOR EACH ROW '
		    'EXECUTE FUNCTION ingestd.retention_refuse()',
		    t || '_append_only', t);
		EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE '
		    'ON ingestd.%I FOR EACH STATEMENT '
		    'EXECUTE FUNCTION ingestd.retention_refuse()',
		    t || '_no_truncate', t);
		EXECUTE format('ALTER TABLE ingestd.%I ENABLE ALWAYS TRIGGER %I',
		    t, t || '_append_only');
		EXECUTE format('ALTER TABLE ingestd.%I ENABLE ALWAYS TRIGGER %I',
		    t, t || '_no_truncate');
	END LOOP;
END
$d$;

-- Deliveries and blobs leave the archive only through a purge: a DELETE
-- elsewhere is refused (UPDATE stays: server_deleted_at is recorded on
-- deliveries).  purge_execute_batch() says it is purging with the
-- transaction-local setting ingestd.purge.  This guards against mistakes
-- and stray tools; against a role that could set the setting itself, the
-- guard is not to grant DELETE (README, Security).
CREATE FUNCTION ingestd.retention_guard()
RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF coalesce(current_setting('ingestd.purge', true), '') = '' THEN
		RAISE EXCEPTION '%: % is refused: messages leave the archive '
		    'only through ingestd purge', TG_TABLE_NAME, TG_OP
		    USING ERRCODE = '42501';
	END IF;
	RETURN CASE WHEN TG_LEVEL = 'ROW' THEN OLD END;
END
$f$;
CREATE TRIGGER delivery_purge_only BEFORE DELETE ON ingestd.delivery
    FOR EACH ROW EXECUTE FUNCTION ingestd.retention_guard();
CREATE TRIGGER delivery_no_truncate BEFORE TRUNCATE ON ingestd.delivery
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.retention_guard();
CREATE TRIGGER blob_purge_only BEFORE DELETE ON ingestd.blob
    FOR EACH ROW EXECUTE FUNCTION ingestd.retention_guard();
CREATE TRIGGER blob_no_truncate BEFORE TRUNCATE ON ingestd.blob
    FOR EACH STATEMENT EXECUTE FUNCTION ingestd.retention_guard();
ALTER TABLE ingestd.delivery ENABLE ALWAYS TRIGGER delivery_purge_only;
ALTER TABLE ingestd.delivery ENABLE ALWAYS TRIGGER delivery_no_truncate;
ALTER TABLE ingestd.blob ENABLE ALWAYS TRIGGER blob_purge_only;
ALTER TABLE ingestd.blob ENABLE ALWAYS TRIGGER blob_no_truncate;

-- Policies.

-- A version shortens its policy when it could purge something earlier
-- than the version in force before it: a shorter period (months against
-- months, days against days exactly; across the two, any month counted
-- as 28 to 31 days), an earlier clock (date < archive < end-of-year), or
-- a different scope.  The first version of a name never shortens.
CREATE FUNCTION ingestd.policy_shorter(n integer, u text, on_ integer,
    ou text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE
  WHEN u IN ('m', 'y') AND ou IN ('m', 'y') THEN
	n * (CASE u WHEN 'y' THEN 12 ELSE 1 END) <
	    on_ * (CASE ou WHEN 'y' THEN 12 ELSE 1 END)
  WHEN u IN ('d', 'w') AND ou IN ('d', 'w') THEN
	n * (CASE u WHEN 'w' THEN 7 ELSE 1 END) <
	    on_ * (CASE ou WHEN 'w' THEN 7 ELSE 1 END)
  ELSE
	n::bigint * (CASE u WHEN 'd' THEN 1 WHEN 'w' THEN 7 WHEN 'm' THEN 28
	    ELSE 365 END) <
	on_::bigint * (CASE ou WHEN 'd' THEN 1 WHEN 'w' THEN 7 WHEN 'm' THEN 31
	    ELSE 366 END)
  END
$f$;

CREATE FUNCTION ingestd.policy_add(p_name text, p_keep text, p_clock text,
    p_match text, p_cooling_off interval)
RETURNS ingestd.policy_version LANGUAGE plpgsql AS $f$
DECLARE
	prev ingestd.policy_version;
	r ingestd.policy_version;
	m_sql text;
	m_params text[];
	n integer;
	u text;
	rank_new integer;
	rank_old integer;
	short boolean := false;
BEGIN
	IF p_keep !~ '^[0-9]{1,6}[dwmy]$' THEN
		RAISE EXCEPTION 'period ''%'': expected a number followed by '
		    'd, w, m or y', p_keep USING ERRCODE = '22023';
	END IF;
	n := substr(p_keep, 1, length(p_keep) - 1)::integer;
	u := right(p_keep, 1);
	IF p_match IS NOT NULL THEN
		SELECT x.sql, x.params INTO m_sql, m_params
		  FROM ingestd.search_sql(p_match) x;
	END IF;
	-- One version at a time per name.
	PERFORM pg_advisory_xact_lock(hashtext('ingestd.policy:' || p_name));
	-- The version in force now: the newest not cooling off.
	SELECT * INTO prev FROM ingestd.policy_version v
	 WHERE v.name = p_name
	   AND (NOT v.shortens OR v.cooling_off_ends_at <= now())
	 ORDER BY v.version DESC LIMIT 1;
	IF FOUND THEN
		rank_new := array_position(ARRAY['date', 'archive',
		    'end-of-year'], p_clock);
		rank_old := array_position(ARRAY['date', 'archive',
		    'end-of-year'], prev.clock);
		short := ingestd.policy_shorter(n, u, prev.period_n,
		    prev.period_unit) OR rank_new < rank_old OR
		    prev.match IS DISTINCT FROM p_match;
	END IF;
	INSERT INTO ingestd.policy_version (name, version, keep, period_n,
	    period_unit, clock, match, match_sql, match_params, shortens,
	    cooling_off_ends_at)
	VALUES (p_name, coalesce((SELECT max(v.version)
	    FROM ingestd.policy_version v WHERE v.name = p_name), 0) + 1,
	    p_keep, n, u, p_clock, p_match, m_sql, m_params, short,
	    CASE WHEN short THEN now() + p_cooling_off ELSE now() END)
	RETURNING * INTO r;
	PERFORM ingestd.retention_log('policy-version', ARRAY[
	    'policy', r.name, 'version', r.version::text, 'keep', r.keep,
	    'clock', r.clock, 'match-sha256', ingestd.retention_sha(r.match),
	    'shortens', CASE WHEN r.shortens THEN 'yes' ELSE 'no' END,
	    'applies-from', ingestd.retention_time(r.cooling_off_ends_at)]);
	RETURN r;
END
$f$;
COMMENT ON FUNCTION ingestd.policy_add(text, text, text, text, interval) IS
    'Adds a version of a retention policy (ingestd policy add) and its '
    'event.';

CREATE VIEW ingestd.policies AS
SELECT v.name,
       v.version,
       v.keep,
       v.clock,
       v.match,
       v.shortens,
       v.cooling_off_ends_at AS applies_from,
       v.version = max(v.version) OVER (PARTITION BY v.name) AS newest,
       v.created_at,
       v.actor_role,
       v.actor_os
  FROM ingestd.policy_version v;
COMMENT ON VIEW ingestd.policies IS
    'Stable.  Every version of every retention policy.  A version that '
    'shortens applies to purge plans made from applies_from on; until then '
    'the version before it goes on applying.';
COMMENT ON COLUMN ingestd.policies.keep IS 'The period: 30d, 12w, 18m, 7y.';
COMMENT ON COLUMN ingestd.policies.clock IS
    'archive, date (Date header, clamped) or end-of-year.';
COMMENT ON COLUMN ingestd.policies.match IS
    'The search-language query of its scope; NULL: every message.';
COMMENT ON COLUMN ingestd.policies.shortens IS
    'Whether it could purge earlier than the version before it.';

-- Holds.

-- Whether a delivery archived at a, of a message dated dt, falls in a
-- hold's date range (inclusive UTC days; NULL bounds are open).  Either
-- date inside is enough: a hold errs on the side of keeping.
CREATE FUNCTION ingestd.hold_in_range(f date, t date, a timestamptz,
    dt timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $f$
SELECT (f IS NULL AND t IS NULL)
    OR ((f IS NULL OR (a AT TIME ZONE 'UTC')::date >= f)
	AND (t IS NULL OR (a AT TIME ZONE 'UTC')::date <= t))
    OR (dt IS NOT NULL
	AND (f IS NULL OR (dt AT TIME ZONE 'UTC')::date >= f)
	AND (t IS NULL OR (dt AT TIME ZONE 'UTC')::date <= t))
$f$;

CREATE VIEW ingestd.hold_cover AS
SELECT d.id AS delivery_id, h.id AS hold_id, h.name AS hold
  FROM ingestd.hold h
  JOIN ingestd.hold_scope s ON s.hold_id = h.id AND s.kind = 'account'
  JOIN ingestd.account a ON a.name = s.value
  JOIN ingestd.delivery d ON d.account_id = a.id
  LEFT JOIN ingestd.message m ON m.sha256 = d.sha256
 WHERE NOT EXISTS (SELECT 1 FROM ingestd.hold_release r
		    WHERE r.hold_id = h.id)
   AND ingestd.hold_in_range(h.from_date, h.to_date, d.archived_at, m.date)
UNION ALL
SELECT d.id, h.id, h.name
  FROM ingestd.hold h
  JOIN ingestd.hold_scope s ON s.hold_id = h.id AND s.kind = 'message'
  JOIN ingestd.delivery d ON d.sha256 = decode(s.value, 'hex')
  LEFT JOIN ingestd.message m ON m.sha256 = d.sha256
 WHERE NOT EXISTS (SELECT 1 FROM ingestd.hold_release r
		    WHERE r.hold_id = h.id)
   AND ingestd.hold_in_range(h.from_date, h.to_date, d.archived_at, m.date)
UNION ALL
SELECT d.id, h.id, h.name
  FROM ingestd.hold h
  JOIN ingestd.hold_member hm ON hm.hold_id = h.id
  JOIN ingestd.delivery d ON d.sha256 = hm.sha256
  LEFT JOIN ingestd.message m ON m.sha256 = d.sha256
 WHERE NOT EXISTS (SELECT 1 FROM ingestd.hold_release r
		    WHERE r.hold_id = h.id)
   AND ingestd.hold_in_range(h.from_date, h.to_date, d.archived_at, m.date);
COMMENT ON VIEW ingestd.hold_cover IS
    'Internal: (delivery, active hold) pairs; read held_deliveries.';

CREATE VIEW ingestd.held_deliveries AS
SELECT c.hold,
       a.name AS account,
       d.uidl,
       encode(d.sha256, 'hex') AS sha256,
       d.archived_at
  FROM ingestd.hold_cover c
  JOIN ingestd.delivery d ON d.id = c.delivery_id
  JOIN ingestd.account a ON a.id = d.account_id;
COMMENT ON VIEW ingestd.held_deliveries IS
    'Stable.  One row per delivery and active hold protecting it: a held '
    'delivery is never purged.';

-- A query scope's matches in the whole archive, when a hold is added.
CREATE FUNCTION ingestd.hold_match(p_hold bigint, p_sql text,
    p_params text[])
RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	EXECUTE 'INSERT INTO ingestd.hold_member (hold_id, sha256, '
	    'delivery_id) SELECT $2, d.sha256, min(d.id) '
	    'FROM ingestd.delivery d WHERE d.id IN ' || p_sql ||
	    ' GROUP BY d.sha256 ON CONFLICT DO NOTHING'
	    USING p_params, p_hold;
END
$f$;

-- p_kinds[i], p_values[i]: the scopes, in the order given.
CREATE FUNCTION ingestd.hold_add(p_name text, p_reason text,
    p_kinds text[], p_values text[], p_from date, p_to date)
RETURNS ingestd.hold LANGUAGE plpgsql AS $f$
DECLARE
	h ingestd.hold;
	s record;
	i integer;
	fn text;
	ev text[];
BEGIN
	IF EXISTS (SELECT 1 FROM ingestd.hold x WHERE x.name = p_name) THEN
		RAISE EXCEPTION 'hold ''%'' exists already (holds are kept '
		    'forever, released or not): choose another name', p_name
		    USING ERRCODE = '23505';
	END IF;
	IF coalesce(array_length(p_kinds, 1), 0) = 0 THEN
		RAISE EXCEPTION 'hold ''%'': at least one scope (--query, '
		    '--account or --message) is needed', p_name
		    USING ERRCODE = '22023';
	END IF;
	INSERT INTO ingestd.hold (name, reason, from_date, to_date)
	VALUES (p_name, p_reason, p_from, p_to) RETURNING * INTO h;
	ev := ARRAY['hold', h.name, 'reason-sha256',
	    ingestd.retention_sha(h.reason), 'from', coalesce(p_from::text,
	    '-'), 'to', coalesce(p_to::text, '-')];
	FOR i IN 1 .. array_length(p_kinds, 1) LOOP
		IF p_kinds[i] = 'query' THEN
			SELECT * INTO s FROM ingestd.search_sql(p_values[i]);
			-- The scope's test of one delivery, compiled once: a
			-- PL/pgSQL function's static statement keeps its plan
			-- for the session, where EXECUTE would plan it for
			-- every message.  Its text is search_sql()'s fixed
			-- fragments; the query's values stay in $1.
			fn := format('hold_query_%s_%s', h.id, i);
			EXECUTE format('CREATE FUNCTION ingestd.%I(p text[], '
			    'did bigint) RETURNS boolean LANGUAGE plpgsql '
			    'STABLE AS %L', fn, 'BEGIN RETURN EXISTS (SELECT 1 '
			    'FROM ' || s.sql || ' s(id) WHERE s.id = $2); END');
			INSERT INTO ingestd.hold_scope VALUES (h.id, i, 'query',
			    p_values[i], s.sql, s.params, fn);
			PERFORM ingestd.hold_match(h.id, s.sql, s.params);
			ev := ev || ARRAY['query-sha256',
			    ingestd.retention_sha(p_values[i])];
		ELSIF p_kinds[i] = 'message' THEN
			IF p_values[i] !~ '^[0-9a-f]{64}$' THEN
				RAISE EXCEPTION 'hold ''%'': --message ''%'': '
				    'expected a SHA-256 in 64 lowercase hex '
				    'digits', p_name, p_values[i]
				    USING ERRCODE = '22023';
			END IF;
			INSERT INTO ingestd.hold_scope VALUES (h.id, i,
			    'message', p_values[i], NULL, NULL, NULL);
			ev := ev || ARRAY['message', p_values[i]];
		ELSIF p_kinds[i] = 'account' THEN
			INSERT INTO ingestd.hold_scope VALUES (h.id, i,
			    'account', p_values[i], NULL, NULL, NULL);
			ev := ev || ARRAY['account', p_values[i]];
		ELSE
			RAISE EXCEPTION 'hold scope kind ''%''', p_kinds[i];
		END IF;
	END LOOP;
	PERFORM ingestd.retention_log('hold-added', ev);
	RETURN h;
END
$f$;
COMMENT ON FUNCTION ingestd.hold_add(text, text, text[], text[], date,
    date) IS
    'Adds a hold (ingestd hold add): its scopes, the messages its queries '
    'match now, and its event.';

CREATE FUNCTION ingestd.hold_release(p_name text, p_reason text)
RETURNS ingestd.hold_release LANGUAGE plpgsql AS $f$
DECLARE
	h ingestd.hold;
	r ingestd.hold_release;
BEGIN
	SELECT * INTO h FROM ingestd.hold x WHERE x.name = p_name
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no hold named ''%''', p_name
		    USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT 1 FROM ingestd.hold_release x
		    WHERE x.hold_id = h.id) THEN
		RAISE EXCEPTION 'hold ''%'' is released already', p_name
		    USING ERRCODE = '22023';
	END IF;
	INSERT INTO ingestd.hold_release (hold_id, reason)
	VALUES (h.id, p_reason) RETURNING * INTO r;
	PERFORM ingestd.retention_log('hold-released', ARRAY['hold', h.name,
	    'reason-sha256', ingestd.retention_sha(p_reason)]);
	RETURN r;
END
$f$;

-- Standing holds: each active query hold is evaluated against a delivery
-- when the transaction that archives it commits (a deferred constraint
-- trigger fires at COMMIT, after the message's index rows of the same
-- transaction are written), so the membership commits with the message
-- or not at all.
CREATE FUNCTION ingestd.hold_standing()
RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	s record;
	hit boolean;
BEGIN
	FOR s IN SELECT sc.hold_id, sc.params, sc.fn
		   FROM ingestd.hold_scope sc
		  WHERE sc.kind = 'query'
		    AND NOT EXISTS (SELECT 1 FROM ingestd.hold_release r
				     WHERE r.hold_id = sc.hold_id)
		    AND NOT EXISTS (SELECT 1 FROM ingestd.hold_member m
				     WHERE m.hold_id = sc.hold_id
				       AND m.sha256 = NEW.sha256) LOOP
		EXECUTE format('SELECT ingestd.%I($1, $2)', s.fn) INTO hit
		    USING s.params, NEW.id;
		IF hit THEN
			INSERT INTO ingestd.hold_member (hold_id, sha256,
			    delivery_id)
			VALUES (s.hold_id, NEW.sha256, NEW.id)
			ON CONFLICT DO NOTHING;
		END IF;
	END LOOP;
	RETURN NULL;
END
$f$;
CREATE CONSTRAINT TRIGGER delivery_hold_standing
    AFTER INSERT ON ingestd.delivery
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ingestd.hold_standing();
ALTER TABLE ingestd.delivery ENABLE ALWAYS TRIGGER delivery_hold_standing;

CREATE VIEW ingestd.holds AS
SELECT h.name,
       h.reason,
       (SELECT string_agg(s.kind || ':' || s.value, ' ' ORDER BY s.pos)
	  FROM ingestd.hold_scope s WHERE s.hold_id = h.id) AS scopes,
       h.from_date,
       h.to_date,
       h.created_at,
       h.actor_role,
       h.actor_os,
       r.released_at,
       r.reason AS release_reason,
       r.actor_role AS released_by_role,
       r.actor_os AS released_by_os,
       r.hold_id IS NULL AS active,
       (SELECT count(*) FROM ingestd.hold_cover c
	 WHERE c.hold_id = h.id) AS deliveries
  FROM ingestd.hold h
  LEFT JOIN ingestd.hold_release r ON r.hold_id = h.id;
COMMENT ON VIEW ingestd.holds IS
    'Stable.  Every legal hold, active or released (released holds are '
    'kept forever), with its scopes and how many deliveries it protects '
    '(0 once released).';
COMMENT ON COLUMN ingestd.holds.scopes IS
    'account:NAME, query:QUERY, message:SHA256, space-separated.';
COMMENT ON COLUMN ingestd.holds.from_date IS
    'Date range (inclusive, UTC): a delivery is covered when its archive '
    'day or its Date header''s day falls in it; NULL: open.';

-- Purge.

-- Records a plan: text is the plan file, whose SHA-256 names it.
CREATE FUNCTION ingestd.purge_plan_record(p_text text,
    p_planned_at timestamptz, p_approvals integer)
RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	p ingestd.purge_plan;
BEGIN
	INSERT INTO ingestd.purge_plan (sha256, planned_at, items,
	    approvals_needed, text)
	VALUES (sha256(convert_to(p_text, 'UTF8')), p_planned_at,
	    CASE WHEN p_text = '' THEN 0 ELSE array_length(
		regexp_split_to_array(rtrim(p_text, E'\n'), E'\n'), 1) END,
	    p_approvals, p_text)
	RETURNING * INTO p;
	INSERT INTO ingestd.purge_item
	SELECT p.id, l.n::integer, (j->>'delivery')::bigint, j->>'account',
	       j->>'uidl', decode(j->>'sha256', 'hex'), j->>'policy',
	       (j->>'version')::integer, (j->>'due_at')::timestamptz
	  FROM regexp_split_to_table(rtrim(p_text, E'\n'), E'\n')
	       WITH ORDINALITY AS l(line, n),
	       LATERAL (SELECT l.line::jsonb AS j) x
	 WHERE p_text <> '';
	PERFORM ingestd.retention_log('purge-planned', ARRAY[
	    'plan', encode(p.sha256, 'hex'),
	    'items', (SELECT count(*) FROM ingestd.purge_item i
		       WHERE i.plan_id = p.id)::text,
	    'planned-at', ingestd.retention_time(p_planned_at),
	    'approvals', p_approvals::text]);
	RETURN encode(p.sha256, 'hex');
END
$f$;

CREATE FUNCTION ingestd.purge_approve(p_plan text)
RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
	p ingestd.purge_plan;
BEGIN
	SELECT * INTO p FROM ingestd.purge_plan x
	 WHERE x.sha256 = decode(p_plan, 'hex');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no purge plan %', p_plan
		    USING ERRCODE = '22023';
	END IF;
	IF p.actor_role = session_user THEN
		RAISE EXCEPTION 'plan % was made by role %: its approval must '
		    'come from a different PostgreSQL role', p_plan,
		    p.actor_role USING ERRCODE = '42501';
	END IF;
	IF EXISTS (SELECT 1 FROM ingestd.purge_done d WHERE d.plan_id = p.id)
	THEN
		RAISE EXCEPTION 'plan % is executed already', p_plan
		    USING ERRCODE = '22023';
	END IF;
	INSERT INTO ingestd.purge_approval (plan_id) VALUES (p.id)
	    ON CONFLICT DO NOTHING;
	IF FOUND THEN
		PERFORM ingestd.retention_log('purge-approved', ARRAY[
		    'plan', p_plan]);
	END IF;
END
$f$;

-- Removes up to p_max items of plan p_plan not removed yet, in the
-- caller's (serializable) transaction: refuses if a policy version was
-- added since p_policies (the highest policy_version.id the caller
-- re-checked the plan against) or if any item is held now.  Returns the
-- deliveries and blobs removed; (0, 0) when nothing was left, after
-- recording the plan as done.
CREATE FUNCTION ingestd.purge_execute_batch(p_plan text,
    p_policies bigint, p_max integer, OUT deliveries integer,
    OUT blobs integer)
LANGUAGE plpgsql AS $f$
DECLARE
	p ingestd.purge_plan;
	it record;
	held text;
	hex text;
BEGIN
	deliveries := 0;
	blobs := 0;
	SELECT * INTO p FROM ingestd.purge_plan x
	 WHERE x.sha256 = decode(p_plan, 'hex');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no purge plan %', p_plan
		    USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT 1 FROM ingestd.purge_done d WHERE d.plan_id = p.id)
	THEN
		RAISE EXCEPTION 'plan % is executed already', p_plan
		    USING ERRCODE = '22023';
	END IF;
	IF p.approvals_needed > 1 AND NOT EXISTS (SELECT 1
	    FROM ingestd.purge_approval a WHERE a.plan_id = p.id
	     AND a.actor_role <> p.actor_role) THEN
		RAISE EXCEPTION 'plan % needs the approval of a PostgreSQL role '
		    'other than %, its planner', p_plan, p.actor_role
		    USING ERRCODE = '42501';
	END IF;
	PERFORM set_config('ingestd.purge', p_plan, true);
	IF coalesce((SELECT max(v.id) FROM ingestd.policy_version v), 0)
	    <> p_policies THEN
		RAISE EXCEPTION 'plan %: a retention policy changed during '
		    'execution; make a new plan', p_plan;
	END IF;
	FOR it IN SELECT i.*, d.id AS did
		    FROM ingestd.purge_item i
		    JOIN ingestd.delivery d ON d.id = i.delivery_id
		   WHERE i.plan_id = p.id
		   ORDER BY i.pos LIMIT p_max LOOP
		SELECT c.hold INTO held FROM ingestd.hold_cover c
		 WHERE c.delivery_id = it.did LIMIT 1;
		IF held IS NOT NULL THEN
			RAISE EXCEPTION 'plan %: account % uidl % (sha256 %) '
			    'is held by % now; make a new plan', p_plan,
			    it.account, coalesce(it.uidl, '-'),
			    encode(it.sha256, 'hex'), held;
		END IF;
		hex := encode(it.sha256, 'hex');
		DELETE FROM ingestd.delivery WHERE id = it.did;
		deliveries := deliveries + 1;
		PERFORM ingestd.retention_log('delivery-purged', ARRAY[
		    'plan', p_plan, 'account', it.account,
		    'uidl', coalesce(it.uidl, '-'), 'sha256', hex,
		    'policy', it.policy, 'version', it.version::text,
		    'due', ingestd.retention_time(it.due_at)]);
		-- The blob goes with its last delivery, unless a hold names it.
		IF NOT EXISTS (SELECT 1 FROM ingestd.delivery d
				WHERE d.sha256 = it.sha256)
		   AND NOT EXISTS (SELECT 1 FROM ingestd.hold_scope s
				    WHERE s.kind = 'message' AND s.value = hex
				      AND NOT EXISTS (SELECT 1
					FROM ingestd.hold_release r
				       WHERE r.hold_id = s.hold_id))
		   AND NOT EXISTS (SELECT 1 FROM ingestd.hold_member m
				    WHERE m.sha256 = it.sha256
				      AND NOT EXISTS (SELECT 1
					FROM ingestd.hold_release r
				       WHERE r.hold_id = m.hold_id)) THEN
			DELETE FROM ingestd.blob WHERE sha256 = it.sha256;
			IF FOUND THEN
				blobs := blobs + 1;
				PERFORM ingestd.retention_log('blob-purged',
				    ARRAY['plan', p_plan, 'sha256', hex]);
			END IF;
		END IF;
	END LOOP;
	IF deliveries = 0 THEN
		INSERT INTO ingestd.purge_done (plan_id, deliveries, blobs)
		SELECT p.id,
		       count(*) FILTER (WHERE e.kind = 'delivery-purged'),
		       count(*) FILTER (WHERE e.kind = 'blob-purged')
		  FROM ingestd.retention_event e
		 WHERE e.kind IN ('delivery-purged', 'blob-purged')
		   AND e.fields[2] = p_plan;
		PERFORM ingestd.retention_log('purge-executed', ARRAY[
		    'plan', p_plan,
		    'deliveries', (SELECT d.deliveries::text
			FROM ingestd.purge_done d WHERE d.plan_id = p.id),
		    'blobs', (SELECT d.blobs::text
			FROM ingestd.purge_done d WHERE d.plan_id = p.id)]);
	END IF;
END
$f$;

CREATE VIEW ingestd.purge_plans AS
SELECT encode(p.sha256, 'hex') AS sha256,
       p.planned_at,
       p.items,
       (SELECT count(*) FROM ingestd.purge_item i
	 WHERE i.plan_id = p.id) AS deliveries,
       p.approvals_needed,
       (SELECT count(*) FROM ingestd.purge_approval a
	 WHERE a.plan_id = p.id) AS approvals,
       p.actor_role,
       p.actor_os,
       d.done_at AS executed_at,
       d.deliveries AS purged_deliveries,
       d.blobs AS purged_blobs
  FROM ingestd.purge_plan p
  LEFT JOIN ingestd.purge_done d ON d.plan_id = p.id;
COMMENT ON VIEW ingestd.purge_plans IS
    'Stable.  Every purge plan by its hash: when made and by whom, its '
    'approvals, and whether and when it was executed.';

CREATE VIEW ingestd.retention_due AS
SELECT encode(p.sha256, 'hex') AS plan,
       p.planned_at,
       i.account,
       i.uidl,
       encode(i.sha256, 'hex') AS sha256,
       i.policy,
       i.version,
       i.due_at
  FROM ingestd.purge_item i
  JOIN ingestd.purge_plan p ON p.id = i.plan_id
 WHERE NOT EXISTS (SELECT 1 FROM ingestd.purge_done d
		    WHERE d.plan_id = p.id)
   AND EXISTS (SELECT 1 FROM ingestd.delivery x
		WHERE x.id = i.delivery_id);
COMMENT ON VIEW ingestd.retention_due IS
    'Stable.  Deliveries found due by purge plans not executed yet, with '
    'the policy version that made them due; run `ingestd purge --plan` '
    'for the current answer.';

CREATE VIEW ingestd.retention_events AS
SELECT e.id, e.at, e.kind, e.actor_role, e.actor_os, e.entry
  FROM ingestd.retention_event e;
COMMENT ON VIEW ingestd.retention_events IS
    'Stable.  Every retention, hold and purge event, oldest first by id; '
    'entry is its canonical text.';

-- Inputs of the decision (ingestd/retention.c), one delivery per row:
-- times in microseconds since 1970 UTC, the first active hold covering
-- it, and the ids of the policy versions whose scope matches it (a
-- version without a query matches every delivery and is not listed).
CREATE FUNCTION ingestd.policy_matches()
RETURNS TABLE (version_id bigint, delivery_id bigint)
LANGUAGE plpgsql STABLE AS $f$
DECLARE
	v record;
BEGIN
	FOR v IN SELECT x.id, x.match_sql, x.match_params
		   FROM ingestd.policy_version x
		  WHERE x.match_sql IS NOT NULL LOOP
		RETURN QUERY EXECUTE 'SELECT $2::bigint, s.id FROM '
		    || v.match_sql || ' s(id)' USING v.match_params, v.id;
	END LOOP;
END
$f$;
