-- 0003_record_refusals: messages a poll refused, so that the next polls
-- skip them instead of downloading them again.
--
-- TABLE (internal):
--
--   refusal     one row per message refused, per mailbox, by its listing
--               identity: the UIDL as the archive spells it, and the LIST
--               size.  A message without a UIDL has no identity from poll
--               to poll and is never recorded.
--
-- VIEW (stable: columns are only ever added):
--
--   refusals    one row per refused message (account, uidl, list_size,
--               reason, size_limit, error, failures, first_seen,
--               last_seen)
--
-- What the planner does with a row (ingestd/plan.h, plan_refused()):
--
--   too_large   the message's bytes passed the bound then in force
--               (max_message_size, or the bound relative to its LIST
--               size).  Skipped while the bound that would apply now is
--               no larger than size_limit; raising max_message_size,
--               list_size_factor or list_size_slack, or a server that now
--               lists another size, has it tried again.
--   failed      retrieved, but not archived (a commit, the spool or the
--               read-back failed).  On an account whose server deletes at
--               QUIT what was retrieved (EXPIRE 0, implicit_delete), such
--               a message makes each poll end without QUIT; after 3
--               consecutive failures it is skipped, so that the account's
--               other messages are deleted again.  Elsewhere it is
--               fetched again at each poll.
--
-- A refused message is never deleted by ingestd.  A row goes when the
-- message is archived under the same UIDL and LIST size, or when a
-- complete listing no longer holds its UIDL.

CREATE TABLE ingestd.refusal (
	account_id bigint NOT NULL REFERENCES ingestd.account (id),
	uidl text NOT NULL,
	list_size bigint NOT NULL CHECK (list_size >= 0),
	reason text NOT NULL CHECK (reason IN ('too_large', 'failed')),
	size_limit bigint NOT NULL CHECK (size_limit >= 0),
	error text,
	failures integer NOT NULL DEFAULT 1 CHECK (failures > 0),
	first_seen timestamptz NOT NULL DEFAULT now(),
	last_seen timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (account_id, uidl, list_size)
);
COMMENT ON TABLE ingestd.refusal IS
    'Messages a poll refused, by listing identity.  Internal: read '
    'refusals.';

CREATE VIEW ingestd.refusals AS
SELECT a.name AS account,
       r.uidl,
       r.list_size,
       r.reason,
       r.size_limit,
       r.error,
       r.failures,
       r.first_seen,
       r.last_seen
  FROM ingestd.refusal r
  JOIN ingestd.account a ON a.id = r.account_id;
COMMENT ON VIEW ingestd.refusals IS
    'Stable.  One row per message a poll refused and that is still on the '
    'server: not archived, never deleted by ingestd.  Needs an operator: '
    'raise the size cap, or fix what failed.';
COMMENT ON COLUMN ingestd.refusals.account IS 'Mailbox name.';
COMMENT ON COLUMN ingestd.refusals.uidl IS
    'The UIDL, spelt as in deliveries.uidl.';
COMMENT ON COLUMN ingestd.refusals.list_size IS
    'The size LIST gave; with uidl, the message''s identity.';
COMMENT ON COLUMN ingestd.refusals.reason IS
    '''too_large'': its bytes passed size_limit; skipped while the bound '
    'in force is no larger.  ''failed'': retrieved, not archived; on '
    'accounts whose server deletes at QUIT, skipped after 3 failures.';
COMMENT ON COLUMN ingestd.refusals.size_limit IS
    'The bound in bytes in force when it was last refused.';
COMMENT ON COLUMN ingestd.refusals.error IS
    'Why, as the poll logged it.';
COMMENT ON COLUMN ingestd.refusals.failures IS
    'Consecutive polls that refused it.';
COMMENT ON COLUMN ingestd.refusals.first_seen IS
    'When it was first refused.';
COMMENT ON COLUMN ingestd.refusals.last_seen IS
    'When it was last refused, or last skipped by a poll.';

COMMENT ON COLUMN ingestd.deliveries.server_deleted_at IS
    'When the message was seen gone from the server (deleted by ingestd or '
    'found absent at a later poll); NULL while still on the server, and '
    'again once a message taken for gone is listed and downloaded again '
    '(a restored mailbox).';
