-- 0002_bound_long_uidls: UIDLs longer than RFC 1939 allows, in 71 octets.
--
-- A UIDL is kept as the server spells it, bytes outside 0x21..0x7E written
-- as %XX, when that spelling fits RFC 1939's 70 octets.  A longer one is
-- kept as "sha256:" and the lowercase hex SHA-256 of that spelling
-- (ingestd/plan.h, plan_uidl_clean()), so that a server's long or binary
-- UIDLs cost the archive, and a poll's memory, 72 bytes a message at most.
--
-- Deliveries archived before kept the long spelling.  Rewritten to the
-- short one here, their messages are known at the next poll: not
-- downloaded again, and not taken for gone from the server because the
-- listing no longer spells their UIDL that way.  The spelling is ASCII,
-- so its UTF-8 bytes are the ones the daemon hashes.  Two deliveries can
-- only meet on the new spelling if they had the same old one, so the
-- unique index delivery_identity still holds.

UPDATE ingestd.delivery
   SET uidl = 'sha256:' || encode(sha256(convert_to(uidl, 'UTF8')), 'hex')
 WHERE length(uidl) > 70;

COMMENT ON COLUMN ingestd.deliveries.uidl IS
    'The POP3 UIDL the server gave the message, bytes outside 0x21..0x7E '
    'as %XX; a UIDL longer than 70 characters so spelt is kept as '
    '''sha256:'' and the hex SHA-256 of that spelling.  NULL if it had '
    'none.';
