#!/usr/bin/env bash
# make demo: archive a private demo POP3S server end to end.
#
#  1. starts a Dovecot POP3S server on loopback (free ports, its own CA)
#     with four mailboxes of sample mail: plain, 8-bit, HTML, attachments
#     up to a few MB, dot lines, and one message sent to every mailbox;
#  2. runs `ingestd -c DEMO/ingestd.conf once` as an unprivileged user,
#     with no database configured, so ingestd runs its own PostgreSQL
#     cluster under DEMO/state;
#  3. prints what was archived, from SQL (deliveries, blobs, polls);
#  4. stops the demo server and the database.
#
# As root it runs ingestd as the system user "ingestd" (created if
# missing); otherwise as the invoking user.  DEMO is $INGESTD_DEMO_DIR,
# default /tmp/ingestd-demo (root) or /tmp/ingestd-demo-$USER.
#
# It can be run again: the archive in DEMO/state is kept, and the
# mailboxes are refilled each time with the same sample mail plus a few
# new messages, so a second run shows new messages archived and the known
# ones deduplicated (stored once however often they arrive).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
bin=${INGESTD:-$root/build/ingestd}
if [ ! -x "$bin" ] || [ -d "$bin" ]; then
	echo "demo: $bin is not built; run make first" >&2
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	runas=ingestd
	if ! getent passwd "$runas" >/dev/null; then
		echo "demo: creating system user $runas"
		# As deploy/ingestd.sysusers declares it.
		useradd --system --user-group --no-create-home \
		    --home-dir /var/lib/ingestd --shell /usr/sbin/nologin \
		    --comment "ingestd mail archiver" "$runas"
	fi
	demo=${INGESTD_DEMO_DIR:-/tmp/ingestd-demo}
else
	runas=$(id -un)
	demo=${INGESTD_DEMO_DIR:-/tmp/ingestd-demo-$runas}
fi
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		# From a directory $runas may enter: the checkout may be closed
		# to it (a clone in /root), and PostgreSQL's programs say so.
		(cd "$demo" && runuser -u "$runas" -- "$@")
	else
		"$@"
	fi
}

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pgbin" ]; then
	echo "demo: PostgreSQL is not installed: apt-get install postgresql" >&2
	exit 1
fi

mkdir -p "$demo"
chmod 755 "$demo"
demo=$(cd "$demo" && pwd)
state=$demo/state
pgdata=$state/pgdata
pg_started=
cleanup() {
	if [ -n "$pg_started" ]; then
		as_user "$pgbin/pg_ctl" stop -D "$pgdata" -m fast -w >/dev/null ||
		    true
	fi
	python3 "$root/tests/integ/harness.py" demo-stop "$demo" || true
}
trap cleanup EXIT

# The unprivileged user runs its own copy, whatever the checkout's
# permissions.
install -m 755 "$bin" "$demo/ingestd"

echo "== starting a demo POP3S server and filling its mailboxes"
conf=$(python3 "$root/tests/integ/harness.py" demo-server "$demo" "$runas")
echo "   config: $conf"

echo
echo "== $demo/ingestd -c $conf once    (as $runas)"
rc=0
as_user "$demo/ingestd" -c "$conf" once || rc=$?
echo "   exit status $rc"

if [ ! -d "$pgdata" ]; then
	echo "demo: no database was created under $state" >&2
	exit 1
fi

# ingestd stops the cluster it started; start it again to read it.
if ! as_user "$pgbin/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; then
	as_user "$pgbin/pg_ctl" start -D "$pgdata" -w -t 60 \
	    -l "$state/demo-postgresql.log" \
	    -o "-p 5432 -k '$state' -c listen_addresses=''" >/dev/null
	pg_started=1
fi
# The socket directory and port are in postmaster.pid (lines 5 and 4).
sock=$(sed -n 5p "$pgdata/postmaster.pid")
port=$(sed -n 4p "$pgdata/postmaster.pid")
conninfo="host=$sock port=$port dbname=ingestd user=ingestd"
psql_demo() {
	as_user "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -P pager=off \
	    -d "$conninfo" "$@"
}

echo
echo "== what the archive holds (SQL views deliveries, blobs, messages, polls; ingestd.search())"
psql_demo <<'SQL'
SET search_path = ingestd, public;
\echo 'Messages per mailbox (deliveries):'
SELECT account,
       count(*) AS messages,
       pg_size_pretty(sum(size)) AS bytes,
       count(server_deleted_at) AS deleted_from_server,
       max(archived_at)::timestamp(0) AS last_archived
  FROM deliveries GROUP BY account ORDER BY account;
\echo 'Largest distinct messages (blobs), with the mailboxes that got them:'
SELECT left(b.sha256, 16) || '…' AS sha256,
       b.size,
       b.stored_size,
       round(100.0 * b.stored_size / greatest(b.size, 1), 1)
           AS "stored %",
       (SELECT count(*) FROM deliveries d WHERE d.sha256 = b.sha256)
           AS deliveries
  FROM blobs b ORDER BY b.size DESC LIMIT 12;
\echo 'Whole archive:'
SELECT (SELECT count(*) FROM deliveries) AS deliveries,
       (SELECT count(*) FROM blobs) AS blobs,
       pg_size_pretty((SELECT sum(size) FROM deliveries)) AS received,
       pg_size_pretty((SELECT sum(size) FROM blobs)) AS distinct,
       pg_size_pretty((SELECT sum(stored_size) FROM blobs)) AS stored;
\echo 'The index: who wrote, when, about what (view messages, newest first):'
SELECT account, date::timestamp(0) AS date, "from",
       left(subject, 40) AS subject, has_attachment
  FROM messages ORDER BY date DESC NULLS LAST, account LIMIT 8;
\echo 'A search, as `ingestd search` runs it: has:attachment'
SELECT account, "from", left(subject, 30) AS subject,
       jsonb_array_length(attachments) AS attachments
  FROM ingestd.search('has:attachment') ORDER BY account LIMIT 8;
\echo 'Latest polls:'
SELECT account, started_at::timestamp(0) AS started, outcome, listed,
       fetched, archived, deduplicated, deleted, bytes, error
  FROM polls ORDER BY started_at DESC, account LIMIT 12;
SQL

if [ "$(id -u)" -eq 0 ]; then
	prefix="runuser -u $runas -- "
else
	prefix=
fi
echo "The archive stays in $state; its database is stopped.  To query it:"
echo "  ${prefix}$pgbin/pg_ctl start -D $pgdata -l $state/demo-postgresql.log \\"
echo "      -o \"-p 5432 -k '$state' -c listen_addresses=''\""
echo "  ${prefix}psql \"$conninfo\""
echo "Run make demo again: the mailboxes are refilled with the same sample"
echo "mail plus new messages; the new ones are archived and the known ones"
echo "deduplicated (stored once, however often they arrive)."
exit "$rc"
