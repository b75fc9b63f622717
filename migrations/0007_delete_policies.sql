-- 0007_delete_policies: what the quota-clearing policies and the RFC 2449
-- signals need to remember across polls and restarts.
--
--   uidl_seen     when ingestd first saw each UIDL a mailbox lists: the
--                 clock of delete = { after_days = n; }, and the age that
--                 keep_under deletes the oldest by.  A row is written after
--                 each poll for every UIDL of a complete listing that has
--                 none (so the time is that of the first poll that listed
--                 it, archived or not), and removed once the UIDL is no
--                 longer listed or ingestd deleted its message: a server
--                 that reuses a UIDL for a new message gives it a new clock.
--   account_capa  what CAPA said after the latest login: EXPIRE (RFC 2449
--                 section 6.7; this user's value where the server gave
--                 one) and LOGIN-DELAY (section 6.8), and when.  The
--                 scheduler never logs in to a mailbox sooner than
--                 LOGIN-DELAY seconds after the login that announced it.
--
-- The view account_status gains, after its columns of 0001 and 0006:
--   server_expire       EXPIRE as the server said it ('NEVER', or days,
--                       '0' meaning at QUIT); NULL if not advertised
--   server_login_delay  LOGIN-DELAY in seconds; NULL if not advertised
--   capa_seen_at        when the login that said so happened

CREATE TABLE ingestd.uidl_seen (
	account_id bigint NOT NULL REFERENCES ingestd.account (id),
	uidl text NOT NULL,
	first_seen_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (account_id, uidl)
);
COMMENT ON TABLE ingestd.uidl_seen IS
    'When ingestd first saw each UIDL a mailbox lists.  Internal.';

CREATE TABLE ingestd.account_capa (
	account_id bigint PRIMARY KEY REFERENCES ingestd.account (id),
	expire text CHECK (expire IS NULL OR expire ~ '^(NEVER|[0-9]+)$'),
	login_delay bigint CHECK (login_delay IS NULL OR login_delay >= 0),
	seen_at timestamptz NOT NULL
);
COMMENT ON TABLE ingestd.account_capa IS
    'EXPIRE and LOGIN-DELAY from CAPA after the latest login.  Internal: '
    'read account_status.';

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
       a.needs_reauth_since,
       c.expire AS server_expire,
       c.login_delay AS server_login_delay,
       c.seen_at AS capa_seen_at
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
	 WHERE d.account_id = a.id) m ON true
  LEFT JOIN ingestd.account_capa c ON c.account_id = a.id;
COMMENT ON COLUMN ingestd.account_status.server_expire IS
    'EXPIRE from CAPA after the latest login: ''NEVER'', or days (''0'': '
    'deleted at QUIT once retrieved); NULL if not advertised.';
COMMENT ON COLUMN ingestd.account_status.server_login_delay IS
    'LOGIN-DELAY from CAPA after the latest login, in seconds: ingestd '
    'logs in no more often; NULL if not advertised.';
COMMENT ON COLUMN ingestd.account_status.capa_seen_at IS
    'When the login that reported server_expire and server_login_delay '
    'happened; NULL before the first login.';
