-- 0006_oauth_state: accounts whose OAuth 2.0 grant the operator must renew.
--
-- An account logging in with an OAuth token is put in needs_reauth when
-- the token endpoint answers invalid_grant, invalid_client or
-- unauthorized_client, or when the POP3 server refuses a token that was
-- just issued.  ingestd then stops polling it (until refresh_token_file or
-- client_secret_file changes, or it restarts) and clears the mark after
-- the next login that works.
--
-- The view account_status gains two columns at its end and is otherwise
-- unchanged: the definition below is 0001's with those two added.

ALTER TABLE ingestd.account
	ADD COLUMN needs_reauth_since timestamptz;
COMMENT ON COLUMN ingestd.account.needs_reauth_since IS
    'Since when the OAuth grant has been refused; NULL when it works.';

CREATE OR REPLACE VIEW ingestd.account_status AS
SELECT a.name AS account,
       lp.started_at AS last_poll_at,
       lp.outcome AS last_outcome,
       ls.finished_at AS last_success_at,
       le.at AS last_error_at,
       le.error AS last_error,
       coalesce(m.messages, 0) AS messages,
       coalesce(m.on_server, 0) AS on_server,
       coalesce(m.bytes, 0) AS bytes,
       now() - ls.finished_at AS lag,
       a.needs_reauth_since IS NOT NULL AS needs_reauth,
       a.needs_reauth_since
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
COMMENT ON COLUMN ingestd.account_status.needs_reauth IS
    'The OAuth grant was refused (invalid_grant, invalid_client, or the '
    'server refused a new token): the operator must renew it; not polled '
    'until then.';
COMMENT ON COLUMN ingestd.account_status.needs_reauth_since IS
    'When needs_reauth was first found; NULL when false.';
