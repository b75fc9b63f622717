#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests.
#
#   pg.sh start DIR   initdb (if needed) and start a cluster in DIR/pgdata,
#                     listening only on a unix socket in DIR; prints the
#                     conninfo of its "ingestd" database on stdout
#   pg.sh stop DIR    stops it (fast shutdown)
#
# PostgreSQL refuses to run as root, so when run as root the cluster runs as
# the system user $PG_TEST_USER (default ingestd-test), created if missing,
# and DIR is handed over to it.  Authentication is trust, but only over a
# socket whose directory and permissions admit that user and root alone.
#
# PG_BINDIR overrides the newest /usr/lib/postgresql/N/bin.
set -euo pipefail

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	die "usage: pg.sh start|stop DIR"
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
	bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n |
	    tail -n 1)
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] ||
	die "no PostgreSQL server binaries (apt-get install postgresql)"

run_user=
if [ "$(id -u)" -eq 0 ]; then
	run_user=${PG_TEST_USER:-ingestd-test}
fi

# Runs a command as the cluster's owner.
as_owner() {
	if [ -n "$run_user" ]; then
		runuser -u "$run_user" -- "$@"
	else
		"$@"
	fi
}

case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
case $dir in
*[[:space:]\'\",\\]*) die "DIR must not contain spaces, quotes or commas" ;;
esac
# The socket path (DIR/.s.PGSQL.5432) must fit in sun_path.
[ ${#dir} -le 90 ] || die "DIR is too long for a unix socket path: $dir"

pgdata=$dir/pgdata
port=5432
# PG_TEST_FSYNC=off trades crash safety of the throwaway cluster for speed.
fsync=${PG_TEST_FSYNC:-on}
case $fsync in on|off) ;; *) die "PG_TEST_FSYNC must be on or off" ;; esac

case $cmd in
start)
	if [ -n "$run_user" ] && ! id -u "$run_user" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
		    --shell /usr/sbin/nologin "$run_user" ||
			die "cannot create user $run_user"
	fi
	mkdir -p "$dir"
	if [ -n "$run_user" ]; then
		chown "$run_user:" "$dir"
	fi
	chmod 700 "$dir"
	as_owner test -w "$dir" ||
		die "$dir is not reachable by ${run_user:-$(id -un)};" \
		    "use a directory under /tmp"
	if [ ! -f "$pgdata/PG_VERSION" ]; then
		as_owner "$bindir/initdb" -D "$pgdata" -U ingestd -E UTF8 \
		    --locale=C --auth-local=trust --auth-host=reject \
		    --no-instructions >"$dir/initdb.log" 2>&1 || {
			tail -n 20 "$dir/initdb.log" >&2
			die "initdb failed"
		}
	fi
	if ! as_owner "$bindir/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; then
		as_owner "$bindir/pg_ctl" start -w -t 60 -D "$pgdata" \
		    -l "$dir/postgresql.log" \
		    -o "-p $port -k $dir -c listen_addresses= -c unix_socket_permissions=0700 -c fsync=$fsync" \
		    >"$dir/pg_ctl.log" 2>&1 || {
			tail -n 20 "$dir/postgresql.log" >&2
			die "pg_ctl start failed"
		}
	fi
	if ! as_owner "$bindir/psql" -XAtq -h "$dir" -p $port -U ingestd \
	    -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'ingestd'" |
	    grep -q 1; then
		as_owner "$bindir/createdb" -h "$dir" -p $port -U ingestd ingestd ||
			die "createdb failed"
	fi
	echo "host=$dir port=$port dbname=ingestd user=ingestd"
	;;
stop)
	[ -f "$pgdata/PG_VERSION" ] || exit 0
	if as_owner "$bindir/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; then
		as_owner "$bindir/pg_ctl" stop -w -m fast -D "$pgdata" \
		    >/dev/null || die "pg_ctl stop failed"
	fi
	;;
*)
	usage
	;;
esac
