-- 0005_search_function: the search language in SQL.
--
--   SELECT * FROM ingestd.search('from:alice@example.com after:2024-03-01');
--
-- returns the deliveries `ingestd search` prints, in archive order.  The
-- language is the one store/query.c parses (README, ingestd(8)); this is
-- its mirror in PL/pgSQL, kept token for token and message for message
-- the same, so that a query means one thing and fails at one column in
-- both (tests/integ/test_search.py runs both over the same queries).
--
-- No value of a query ever becomes SQL text: the parser assembles the
-- statement only from the fixed fragments below, chosen by the query's
-- shape, and each value is an element of one text[] parameter, $1[k],
-- passed with EXECUTE ... USING.
--
-- FUNCTIONS (stable interface: search; the others are its parts):
--
--   search(query text)      the matching deliveries (account, uidl,
--                           sha256, size, archived_at, date, from, to,
--                           cc, subject, message_id, attachments)
--   search_count(query)     how many there are
--   search_sql(query)       the statement and its parameters, for EXPLAIN
--
-- A syntax error raises SQLSTATE 42601 with the message
-- "column N: what was expected" (N counts characters from 1).  The entry
-- points run with search_path = pg_catalog, so that no object of the
-- caller's schemas can stand in for a function the statement calls.

-- from:alice and from:alice@ look at the part before the '@'.
CREATE INDEX message_address_local
    ON ingestd.message_address ((split_part(address, '@', 1)), role);

CREATE FUNCTION ingestd.search_fail(col integer, msg text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
	RAISE EXCEPTION 'column %: %', col, msg USING ERRCODE = '42601';
END
$f$;

-- The SQL of one term; "$?" is its parameter.  by_sha fragments select
-- SHA-256s, the others delivery ids.  Mirrors store/query_sql.c.
CREATE FUNCTION ingestd.search_fragment(op text, addr text)
RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE
  WHEN op IN ('from', 'to', 'cc', 'bcc', 'deliveredto', 'addr') THEN
	'(SELECT d.id FROM ingestd.delivery d WHERE d.sha256 IN ('
	|| CASE addr
	   WHEN 'full' THEN 'SELECT a.sha256 FROM ingestd.message_address a'
		' WHERE a.address = lower($?::text)'
	   WHEN 'domain' THEN 'SELECT a.sha256 FROM ingestd.message_address a'
		' WHERE a.domain = lower($?::text)'
	   ELSE 'SELECT a.sha256 FROM ingestd.message_address a'
		' WHERE split_part(a.address, ''@'', 1) = lower($?::text)'
	   END
	|| CASE op
	   WHEN 'from' THEN ' AND a.role = ''from'''
	   WHEN 'to' THEN ' AND a.role = ''to'''
	   WHEN 'cc' THEN ' AND a.role = ''cc'''
	   WHEN 'bcc' THEN ' AND a.role = ''bcc'''
	   WHEN 'deliveredto' THEN ' AND a.role = ''delivered-to'''
	   ELSE ''
	   END
	|| '))'
  WHEN op = 'account' THEN
	'(SELECT d.id FROM ingestd.delivery d'
	' JOIN ingestd.account c ON c.id = d.account_id'
	' WHERE c.name = $?::text)'
  WHEN op = 'sha256' THEN
	'(SELECT d.id FROM ingestd.delivery d'
	' WHERE d.sha256 = decode($?::text, ''hex''))'
  WHEN op = 'received-after' THEN
	'(SELECT d.id FROM ingestd.delivery d WHERE d.archived_at >= '
	'(($?::date)::timestamp AT TIME ZONE ''UTC''))'
  WHEN op = 'received-before' THEN
	'(SELECT d.id FROM ingestd.delivery d WHERE d.archived_at < '
	'(($?::date)::timestamp AT TIME ZONE ''UTC''))'
  ELSE
	'(SELECT d.id FROM ingestd.delivery d WHERE d.sha256 IN ('
	|| CASE op
	   WHEN 'subject' THEN 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE m.subject_fts @@ phraseto_tsquery(''simple'', $?::text)'
	   WHEN 'filename' THEN 'SELECT p.sha256 FROM ingestd.message_part p'
		' WHERE lower(p.filename) = lower($?::text)'
		' AND p.filename IS NOT NULL'
	   WHEN 'has' THEN 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE m.has_attachment'
	   WHEN 'msgid' THEN 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE lower(m.message_id) = lower($?::text)'
	   WHEN 'list' THEN 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE lower(m.list_id) = lower($?::text)'
	   WHEN 'after' THEN 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE m.date >= (($?::date)::timestamp AT TIME ZONE ''UTC'')'
	   WHEN 'before' THEN 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE m.date < (($?::date)::timestamp AT TIME ZONE ''UTC'')'
	   WHEN 'larger' THEN 'SELECT b.sha256 FROM ingestd.blob b'
		' WHERE b.size > $?::bigint'
	   WHEN 'smaller' THEN 'SELECT b.sha256 FROM ingestd.blob b'
		' WHERE b.size < $?::bigint'
	   ELSE 'SELECT m.sha256 FROM ingestd.message m'
		' WHERE m.fts @@ phraseto_tsquery(''simple'', $?::text)'
	   END
	|| '))'
  END
$f$;

CREATE FUNCTION ingestd.search_distance(a text, b text)
RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
	ra text[] := string_to_array(a, NULL);
	rb text[] := string_to_array(b, NULL);
	la integer := coalesce(array_length(ra, 1), 0);
	lb integer := coalesce(array_length(rb, 1), 0);
	prev integer[];
	cur integer[];
	i integer;
	j integer;
BEGIN
	prev := ARRAY(SELECT generate_series(0, la));
	FOR j IN 1 .. lb LOOP
		cur := ARRAY[j];
		FOR i IN 1 .. la LOOP
			cur := cur || least(prev[i] + CASE WHEN ra[i] = rb[j]
			    THEN 0 ELSE 1 END, prev[i + 1] + 1, cur[i] + 1);
		END LOOP;
		prev := cur;
	END LOOP;
	RETURN prev[la + 1];
END
$f$;

-- Text in quotes starting at the '"' at pos: (value unescaped, the index
-- past the closing quote).  Characters are 1-based array indexes here.
CREATE FUNCTION ingestd.search_quoted(ch text[], pos integer,
    OUT val text, OUT nxt integer)
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
	n integer := coalesce(array_length(ch, 1), 0);
	j integer := pos + 1;
	parts text[] := '{}';
BEGIN
	WHILE j <= n AND ch[j] <> '"' LOOP
		IF ch[j] = '\' AND j + 1 <= n THEN
			j := j + 1;
		END IF;
		parts := parts || ch[j];
		j := j + 1;
	END LOOP;
	IF j > n THEN
		PERFORM ingestd.search_fail(pos, 'unterminated quote');
	END IF;
	val := array_to_string(parts, '');
	nxt := j + 1;
END
$f$;

-- The tokens of q: kinds ('leaf', '(', ')', '-', 'OR', 'end'), their
-- columns, the SQL of each leaf and the parameters.  Mirrors lx_tokenize.
CREATE FUNCTION ingestd.search_tokens(q text, OUT kinds text[],
    OUT cols integer[], OUT sqls text[], OUT params text[])
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
	ch text[] := string_to_array(q, NULL);
	n integer := coalesce(array_length(ch, 1), 0);
	i integer := 1;
	j integer;
	c text;
	colon integer;
	isname boolean;
	name text;
	op text;
	v text;
	vstart integer;
	addr text;
	leaves integer := 0;
	best integer;
	guess text;
	d integer;
	k text;
	mult numeric;
	digits text;
	ops constant text[] := ARRAY['from', 'to', 'cc', 'bcc', 'deliveredto',
	    'addr', 'account', 'subject', 'filename', 'has', 'msgid', 'list',
	    'sha256', 'after', 'before', 'received-after', 'received-before',
	    'larger', 'smaller'];
	spaces constant text[] := ARRAY[' ', E'\t', E'\n', E'\r', E'\f',
	    chr(11)];
	stops constant text[] := ARRAY[' ', E'\t', E'\n', E'\r', E'\f',
	    chr(11), '(', ')', '"'];
	mdays constant integer[] := ARRAY[31, 28, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31];
	y integer;
	m integer;
	dd integer;
	dmax integer;
BEGIN
	kinds := '{}';
	cols := '{}';
	sqls := '{}';
	params := '{}';
	IF n > 4096 THEN
		PERFORM ingestd.search_fail(4097,
		    'query longer than 4096 characters');
	END IF;
	WHILE i <= n LOOP
		c := ch[i];
		IF c = ANY (spaces) THEN
			i := i + 1;
			CONTINUE;
		ELSIF c = '(' OR c = ')' THEN
			kinds := kinds || c;
			cols := cols || i;
			sqls := sqls || NULL::text;
			i := i + 1;
			CONTINUE;
		ELSIF c = '-' THEN
			IF i + 1 > n OR ch[i + 1] = ANY (spaces) THEN
				PERFORM ingestd.search_fail(i,
				    'expected a term right after ''-''');
			END IF;
			kinds := kinds || '-'::text;
			cols := cols || i;
			sqls := sqls || NULL::text;
			i := i + 1;
			CONTINUE;
		ELSIF c = '"' THEN
			SELECT x.val, x.nxt INTO v, j
			    FROM ingestd.search_quoted(ch, i) x;
			IF v = '' THEN
				PERFORM ingestd.search_fail(i, 'empty phrase');
			END IF;
			op := 'phrase';
			addr := NULL;
			colon := i;	/* the leaf's column */
		ELSE
			/* A word, or an operator and its value. */
			isname := c ~ '^[A-Za-z]$';
			colon := NULL;
			j := i;
			WHILE j <= n AND NOT ch[j] = ANY (stops) LOOP
				IF ch[j] = ':' AND colon IS NULL AND j > i
				    AND isname THEN
					colon := j;
				END IF;
				IF colon IS NULL AND j > i
				    AND ch[j] !~ '^[A-Za-z0-9:-]$' THEN
					isname := false;
				END IF;
				j := j + 1;
			END LOOP;
			IF colon IS NULL THEN
				v := array_to_string(ch[i:j - 1], '');
				IF v = 'OR' THEN
					kinds := kinds || 'OR'::text;
					cols := cols || i;
					sqls := sqls || NULL::text;
					i := j;
					CONTINUE;
				ELSIF v = 'AND' THEN
					PERFORM ingestd.search_fail(i,
					    '''AND'' is implied between terms: '
					    'leave it out');
				END IF;
				op := 'word';
				addr := NULL;
			ELSE
				name := array_to_string(ch[i:colon - 1], '');
				op := lower(name);
				IF NOT op = ANY (ops) THEN
					IF colon - i > 32 THEN
						PERFORM ingestd.search_fail(i,
						    'unknown operator');
					END IF;
					best := 1000;
					FOREACH k IN ARRAY ops LOOP
						d := ingestd.search_distance(op,
						    k);
						IF d < best THEN
							best := d;
							guess := k;
						END IF;
					END LOOP;
					IF best <= 2 THEN
						PERFORM ingestd.search_fail(i,
						    'unknown operator ''' ||
						    name || ':''; did you mean '''
						    || guess || ':''?');
					END IF;
					PERFORM ingestd.search_fail(i,
					    'unknown operator ''' || name ||
					    ':'' (a word with '':'' must be '
					    'quoted)');
				END IF;
				vstart := colon + 1;
				IF j > vstart THEN
					v := array_to_string(ch[vstart:j - 1],
					    '');
				ELSIF j <= n AND ch[j] = '"' THEN
					SELECT x.val, x.nxt INTO v, j
					    FROM ingestd.search_quoted(ch, j) x;
					IF v = '' THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected a value '
						    'after ''' || op || ':''');
					END IF;
				ELSE
					PERFORM ingestd.search_fail(vstart,
					    'expected a value after ''' || op
					    || ':''');
				END IF;
				/* The value, checked and normalised. */
				addr := NULL;
				IF op IN ('from', 'to', 'cc', 'bcc',
				    'deliveredto', 'addr') THEN
					IF left(v, 1) = '@' THEN
						v := substr(v, 2);
						addr := 'domain';
					ELSIF right(v, 1) = '@' THEN
						v := left(v, -1);
						addr := 'local';
					ELSIF strpos(v, '@') > 0 THEN
						addr := 'full';
					ELSIF strpos(v, '.') > 0 THEN
						addr := 'domain';
					ELSE
						addr := 'local';
					END IF;
					IF v = '' THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected an '
						    'address, a domain or a '
						    'local part after ''' ||
						    op || ':''');
					END IF;
				ELSIF op = 'has' THEN
					IF lower(v) <> 'attachment' THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected '
						    '''attachment'' after '
						    '''has:''');
					END IF;
					v := NULL;
				ELSIF op IN ('msgid', 'list') THEN
					IF right(v, 1) = '>' THEN
						v := left(v, -1);
					END IF;
					IF left(v, 1) = '<' THEN
						v := substr(v, 2);
					END IF;
					IF v = '' THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected ' ||
						    CASE op WHEN 'msgid' THEN
						    'a Message-ID' ELSE
						    'a list id' END ||
						    ' after ''' || op || ':''');
					END IF;
				ELSIF op = 'sha256' THEN
					IF v !~ '^[0-9A-Fa-f]{64}$' THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected 64 '
						    'hexadecimal digits after '
						    '''sha256:''');
					END IF;
				ELSIF op IN ('after', 'before',
				    'received-after', 'received-before') THEN
					IF v !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
					THEN
						y := 0;
					ELSE
						y := substr(v, 1, 4)::integer;
						m := substr(v, 6, 2)::integer;
						dd := substr(v, 9, 2)::integer;
					END IF;
					/* February of a leap year. */
					dmax := mdays[m] + (m = 2 AND ((y % 4 =
					    0 AND y % 100 <> 0) OR y % 400 =
					    0))::integer;
					IF y < 1 OR m < 1 OR m > 12 OR dd < 1
					    OR dd > dmax THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected a date '
						    'as YYYY-MM-DD after ''' ||
						    op || ':''');
					END IF;
				ELSIF op IN ('larger', 'smaller') THEN
					mult := 1;
					digits := v;
					IF right(v, 1) IN ('k', 'K') THEN
						mult := 1024;
					ELSIF right(v, 1) IN ('m', 'M') THEN
						mult := 1048576;
					ELSIF right(v, 1) IN ('g', 'G') THEN
						mult := 1073741824;
					END IF;
					IF mult > 1 THEN
						digits := left(v, -1);
					END IF;
					IF digits !~ '^[0-9]+$' THEN
						PERFORM ingestd.search_fail(
						    vstart, 'expected a size '
						    '(digits, then optionally '
						    'K, M or G) after ''' ||
						    op || ':''');
					END IF;
					IF length(digits) > 16 OR
					    digits::numeric * mult >
					    9007199254740992 THEN
						PERFORM ingestd.search_fail(
						    vstart, 'size after ''' ||
						    op || ':'' too large');
					END IF;
					v := (digits::numeric * mult)::text;
				END IF;
			END IF;
			colon := i;	/* the leaf's column */
		END IF;
		/* A leaf at column colon, value v, ending before j. */
		IF leaves = 128 THEN
			PERFORM ingestd.search_fail(colon,
			    'more than 128 terms');
		END IF;
		leaves := leaves + 1;
		kinds := kinds || 'leaf'::text;
		cols := cols || colon;
		IF v IS NULL THEN
			sqls := sqls || ingestd.search_fragment(op, addr);
		ELSE
			params := params || v;
			sqls := sqls || replace(ingestd.search_fragment(op,
			    addr), '$?', '$1[' || array_length(params, 1) ||
			    ']');
		END IF;
		i := j;
	END LOOP;
	kinds := kinds || 'end'::text;
	cols := cols || (n + 1);
	sqls := sqls || NULL::text;
END
$f$;

CREATE FUNCTION ingestd.search_what(kind text)
RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE kind WHEN 'OR' THEN '''OR''' WHEN ')' THEN ''')'''
    ELSE 'the end of the query' END
$f$;

-- The parser: mirrors parse_unary, parse_and, parse_or and compile.  A
-- term comes back as a parenthesized query of delivery ids; a negated one
-- as its positive query with neg set.
CREATE FUNCTION ingestd.search_unary(kinds text[], cols integer[],
    sqls text[], INOUT pos integer, depth integer, OUT sql text,
    OUT neg boolean)
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
	k text := kinds[pos];
	opened integer;
	kid record;
BEGIN
	IF k = 'leaf' THEN
		sql := sqls[pos];
		neg := false;
		pos := pos + 1;
		RETURN;
	ELSIF k NOT IN ('-', '(') THEN
		PERFORM ingestd.search_fail(cols[pos], 'expected a term '
		    'before ' || ingestd.search_what(k));
	END IF;
	IF depth >= 32 THEN
		PERFORM ingestd.search_fail(cols[pos], 'nested too deeply '
		    '(at most 32 levels of ''('' and ''-'')');
	END IF;
	opened := cols[pos];
	pos := pos + 1;
	IF k = '-' THEN
		IF kinds[pos] NOT IN ('leaf', '-', '(') THEN
			PERFORM ingestd.search_fail(cols[pos],
			    'expected a term after ''-''');
		END IF;
		SELECT * INTO kid FROM ingestd.search_unary(kinds, cols, sqls,
		    pos, depth + 1);
		pos := kid.pos;
		IF kid.neg THEN
			sql := '((SELECT d.id FROM ingestd.delivery d) EXCEPT '
			    || kid.sql || ')';
		ELSE
			sql := kid.sql;
		END IF;
		neg := true;
		RETURN;
	END IF;
	SELECT * INTO kid FROM ingestd.search_or(kinds, cols, sqls, pos,
	    depth + 1);
	pos := kid.pos;
	IF kinds[pos] <> ')' THEN
		PERFORM ingestd.search_fail(cols[pos], 'expected '')'' to '
		    'close the ''('' at column ' || opened);
	END IF;
	pos := pos + 1;
	sql := kid.sql;
	neg := false;
END
$f$;

CREATE FUNCTION ingestd.search_and(kinds text[], cols integer[],
    sqls text[], INOUT pos integer, depth integer, OUT sql text)
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
	kid record;
	pos_sqls text[] := '{}';
	neg_sqls text[] := '{}';
	n integer := 0;
	s text;
BEGIN
	LOOP
		SELECT * INTO kid FROM ingestd.search_unary(kinds, cols, sqls,
		    pos, depth);
		pos := kid.pos;
		n := n + 1;
		IF kid.neg THEN
			neg_sqls := neg_sqls || kid.sql;
		ELSE
			pos_sqls := pos_sqls || kid.sql;
		END IF;
		EXIT WHEN kinds[pos] NOT IN ('leaf', '-', '(');
	END LOOP;
	IF n = 1 AND array_length(pos_sqls, 1) = 1 THEN
		sql := pos_sqls[1];
		RETURN;
	END IF;
	/* As compile_and(): positive terms as a chain of IN. */
	IF array_length(pos_sqls, 1) IS NULL THEN
		sql := '((SELECT d.id FROM ingestd.delivery d)';
	ELSIF array_length(pos_sqls, 1) = 1 THEN
		sql := '(' || pos_sqls[1];
	ELSE
		sql := '((SELECT d.id FROM ingestd.delivery d WHERE d.id IN '
		    || array_to_string(pos_sqls, ' AND d.id IN ') || ')';
	END IF;
	FOREACH s IN ARRAY neg_sqls LOOP
		sql := sql || ' EXCEPT ' || s;
	END LOOP;
	sql := sql || ')';
END
$f$;

CREATE FUNCTION ingestd.search_or(kinds text[], cols integer[],
    sqls text[], INOUT pos integer, depth integer, OUT sql text)
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
	kid record;
	parts text[] := '{}';
BEGIN
	LOOP
		SELECT * INTO kid FROM ingestd.search_and(kinds, cols, sqls,
		    pos, depth);
		pos := kid.pos;
		parts := parts || kid.sql;
		EXIT WHEN kinds[pos] <> 'OR';
		pos := pos + 1;
	END LOOP;
	IF array_length(parts, 1) = 1 THEN
		sql := parts[1];
	ELSE
		sql := '(' || array_to_string(parts, ' UNION ') || ')';
	END IF;
END
$f$;

-- The set of delivery ids a query selects, as SQL, and its parameters.
CREATE FUNCTION ingestd.search_sql(query text, OUT sql text,
    OUT params text[])
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
	t record;
	r record;
BEGIN
	SELECT * INTO t FROM ingestd.search_tokens(query);
	IF array_length(t.kinds, 1) = 1 THEN
		PERFORM ingestd.search_fail(1, 'empty query');
	END IF;
	SELECT * INTO r FROM ingestd.search_or(t.kinds, t.cols, t.sqls, 1, 0);
	IF t.kinds[r.pos] <> 'end' THEN
		PERFORM ingestd.search_fail(t.cols[r.pos], 'unexpected '')''');
	END IF;
	sql := r.sql;
	params := t.params;
END
$f$;
COMMENT ON FUNCTION ingestd.search_sql(text) IS
    'The statement (a parenthesized query of delivery ids, its values as '
    '$1[k]) and the parameter array ingestd.search() runs for a query.';

CREATE FUNCTION ingestd.search(query text)
RETURNS TABLE (account text, uidl text, sha256 text, size bigint,
    archived_at timestamptz, date timestamptz, "from" text, "to" text,
    cc text, subject text, message_id text, attachments jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
	s record;
BEGIN
	SELECT * INTO s FROM ingestd.search_sql(query);
	/* As query_compile(): the matches first, on their own. */
	RETURN QUERY EXECUTE
	    'WITH hits AS MATERIALIZED ' || s.sql ||
	    ' SELECT c.name, d.uidl, encode(d.sha256, ''hex''), b.size,'
	    ' d.archived_at, m.date,'
	    ' (SELECT string_agg(x.address, '', '' ORDER BY x.pos)'
	    '  FROM ingestd.message_address x'
	    '  WHERE x.sha256 = d.sha256 AND x.role = ''from''),'
	    ' (SELECT string_agg(x.address, '', '' ORDER BY x.pos)'
	    '  FROM ingestd.message_address x'
	    '  WHERE x.sha256 = d.sha256 AND x.role = ''to''),'
	    ' (SELECT string_agg(x.address, '', '' ORDER BY x.pos)'
	    '  FROM ingestd.message_address x'
	    '  WHERE x.sha256 = d.sha256 AND x.role = ''cc''),'
	    ' m.subject, m.message_id,'
	    ' coalesce((SELECT jsonb_agg(jsonb_build_object(''path'', p.path,'
	    '  ''filename'', p.filename, ''content_type'', p.content_type,'
	    '  ''size'', p.size, ''sha256'', encode(p.part_sha256, ''hex''))'
	    '  ORDER BY p.path) FROM ingestd.message_part p'
	    '  WHERE p.sha256 = d.sha256 AND p.attachment), ''[]'')'
	    ' FROM ingestd.delivery d'
	    ' JOIN ingestd.account c ON c.id = d.account_id'
	    ' JOIN ingestd.blob b ON b.sha256 = d.sha256'
	    ' LEFT JOIN ingestd.message m ON m.sha256 = d.sha256'
	    ' WHERE d.id IN (SELECT h.id FROM hits h)'
	    ' ORDER BY d.archived_at, d.id'
	    USING s.params;
END
$f$;
COMMENT ON FUNCTION ingestd.search(text) IS
    'Stable.  The deliveries a query of the search language matches '
    '(see ingestd(8)), in archive order: the rows `ingestd search` prints. '
    'A syntax error raises 42601 "column N: ...".';

CREATE FUNCTION ingestd.search_count(query text)
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
	s record;
	n bigint;
BEGIN
	SELECT * INTO s FROM ingestd.search_sql(query);
	EXECUTE 'SELECT count(*) FROM ' || s.sql || ' s' INTO n USING s.params;
	RETURN n;
END
$f$;
COMMENT ON FUNCTION ingestd.search_count(text) IS
    'Stable.  How many deliveries ingestd.search(query) returns.';
