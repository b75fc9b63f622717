#!/bin/sh
# The system user ingestd runs as, and who owns its files: what `make
# install` does last as root on the live system (DESTDIR empty), and what
# a tree installed with DESTDIR (an image) needs once, given as ROOT.
#
#   deploy/install-owners.sh [ROOT [PREFIX]]      default: / /usr/local
#
# ROOT/PREFIX/lib/sysusers.d/ingestd.conf declares the user and group,
# ROOT/PREFIX/lib/tmpfiles.d/ingestd.conf the directories, as make install
# put them.  systemd-sysusers and systemd-tmpfiles apply them; where they
# are missing, useradd, chown and chmod do the same.  Then the
# configuration file is given to group ingestd and made readable by it,
# not by others: an existing file too, since the service, which runs as
# ingestd, could not read it otherwise.  Password files are the
# operator's (README.md, Installing).
set -eu

root=${1:-/}
prefix=${2:-/usr/local}
user=ingestd
sysusers=$root$prefix/lib/sysusers.d/ingestd.conf
tmpfiles=$root$prefix/lib/tmpfiles.d/ingestd.conf
conf=$root/etc/ingestd/ingestd.conf

say() {
	echo "install-owners: $*"
}

for f in "$sysusers" "$tmpfiles"; do
	if [ ! -f "$f" ]; then
		say "$f is missing: run make install first" >&2
		exit 1
	fi
done

# The ids in ROOT's own user and group files, which may not be ours.
id_of() {
	awk -F: -v n="$2" '$1 == n { print $3; exit }' "$root/etc/$1"
}

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --root="$root" "$sysusers"
elif [ -z "$(id_of passwd "$user")" ]; then
	if [ -n "$(id_of group "$user")" ]; then
		group_opt="--gid $user"
	else
		group_opt=--user-group
	fi
	# shellcheck disable=SC2086 # group_opt is two words or one
	useradd --prefix "$root" --system $group_opt --no-create-home \
	    --home-dir /var/lib/ingestd --shell /usr/sbin/nologin \
	    --comment "ingestd mail archiver" "$user"
fi
uid=$(id_of passwd "$user")
gid=$(id_of group "$user")
if [ -z "$uid" ] || [ -z "$gid" ]; then
	say "no user and group $user in $root/etc after creating them" >&2
	exit 1
fi
say "user $user (uid $uid), group $user (gid $gid)"

if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --root="$root" --create "$tmpfiles"
else
	mkdir -p "$root/etc/ingestd" "$root/var/lib/ingestd"
	chown "0:$gid" "$root/etc/ingestd"
	chmod 750 "$root/etc/ingestd"
	chown "$uid:$gid" "$root/var/lib/ingestd"
	chmod 700 "$root/var/lib/ingestd"
fi

# Names only where ROOT's users are ours.
if [ "$root" = / ]; then
	fmt='%U:%G %a'
else
	fmt='%u:%g %a'
fi
if [ -f "$conf" ]; then
	before=$(stat -c "$fmt" "$conf")
	chgrp "$gid" "$conf"
	chmod g+r,g-wx,o-rwx "$conf"
	after=$(stat -c "$fmt" "$conf")
	if [ "$before" != "$after" ]; then
		say "$conf: $before -> $after"
	fi
fi
