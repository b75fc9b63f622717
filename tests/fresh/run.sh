#!/usr/bin/env bash
# make freshcheck: do the README's two commands pass the first time on a
# fresh Debian 12 machine that has only git and make?
#
#   bash tests/fresh/run.sh [test|demo|lint|crashtest ...]   default: test demo
#
# 1. The base: a minimal Debian 12 (bookworm) made by debootstrap
#    --variant=minbase from $FRESHCHECK_MIRROR (http://deb.debian.org/debian),
#    the usual /etc/hosts and sources.list, and git and make installed with
#    --no-install-recommends.  It is built once and kept as a tarball in
#    $FRESHCHECK_CACHE (/var/cache/ingestd-freshcheck); FRESHCHECK_REFRESH=1
#    builds it again.
# 2. For each command, in its own pristine copy of the base unpacked into a
#    temporary directory under $FRESHCHECK_TMP (/var/tmp): this repository's
#    HEAD (committed work only; FRESHCHECK_REV=COMMIT for another commit)
#    cloned to /root/ingestd, then `make COMMAND`
#    run there as root under chroot, with CI=true and an otherwise empty
#    environment.  The chroot has /proc, /sys (read-only), and a /dev of its
#    own: null, zero, full, random, urandom and tty from the host, and a new
#    /dev/pts and /dev/shm.
# 3. Afterwards: processes left running in the chroot are reported and
#    stopped (by pid; they are ours), the file systems unmounted, the copy
#    removed (FRESHCHECK_KEEP=1 keeps it, unmounted).
#
# The packages the commands download are kept in $FRESHCHECK_CACHE/archives
# (FRESHCHECK_APT_CACHE=0: download them every time); the machine itself
# always starts pristine.  Each command's output goes to the terminal and to
# $FRESHCHECK_LOGS/COMMAND.log (default build/freshcheck/).  The summary
# gives the time of each step.  Exits non-zero if a command failed or left
# processes behind.
#
# Needs root (debootstrap, chroot, mount) and installs debootstrap if it is
# missing.  Everything runs in a private mount namespace when unshare(1)
# can make one, so no mount outlives the run; a trap unmounts in any case.
set -euo pipefail

# The whole script is one compound command, read before any of it runs, so
# that a checkout changing under a long run does not change the run.
{
die() {
	echo "freshcheck: $*" >&2
	exit 1
}

top=$(cd "$(dirname "$0")/../.." && pwd)
suite=bookworm
mirror=${FRESHCHECK_MIRROR:-http://deb.debian.org/debian}
cache=${FRESHCHECK_CACHE:-/var/cache/ingestd-freshcheck}
tmpbase=${FRESHCHECK_TMP:-/var/tmp}
logdir=${FRESHCHECK_LOGS:-$top/build/freshcheck}
timeout=${FRESHCHECK_TIMEOUT:-3600}
base_tar=$cache/$suite-minbase-git-make.tar

if [ $# -gt 0 ]; then
	commands=("$@")
else
	commands=(test demo)
fi
for c in "${commands[@]}"; do
	case $c in
	*[!a-z-]* | '') die "not a make target: $c" ;;
	esac
done

[ "$(id -u)" -eq 0 ] ||
	die "must run as root (debootstrap, chroot and mount need it)"

# A private mount namespace: every mount made below disappears with the
# last process of this run, whatever happens to it.
if [ -z "${FRESHCHECK_NS:-}" ] && command -v unshare >/dev/null 2>&1 &&
	unshare --mount --propagation private true 2>/dev/null; then
	FRESHCHECK_NS=1 exec unshare --mount --propagation private \
	    bash "$0" "$@"
fi

rev=${FRESHCHECK_REV:-HEAD}
head=$(git -C "$top" rev-parse --verify "$rev^{commit}") ||
	die "$rev: not a commit of $top"
if [ "$rev" = HEAD ] &&
	[ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
	echo "freshcheck: note: uncommitted changes in $top are not checked;" \
	    "HEAD ($(git -C "$top" rev-parse --short HEAD)) is"
fi

# --- time -------------------------------------------------------------
now() {
	date +%s.%N
}
# Seconds from $1 to now, as "1m 23s".
since() {
	awk -v a="$1" -v b="$(now)" 'BEGIN {
		s = int(b - a + 0.5)
		if (s >= 60) printf "%dm %02ds", s / 60, s % 60
		else printf "%ds", s
	}'
}

# --- mounts and processes ----------------------------------------------
work=
# The mount points under $1, the last mounted first.
mounts_under() {
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
	    tac
}

# Processes whose root directory is under $1: started in the chroot, so
# ours.
procs_under() {
	local p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		case $r in
		"$1" | "$1"/*) echo "${p#/proc/}" ;;
		esac
	done
}

# Stops the processes left in the chroot at $1: TERM, then KILL after 10 s.
# Prints what it found; returns 1 if there was anything.
stop_leftovers() {
	local pids i
	mapfile -t pids < <(procs_under "$1")
	[ ${#pids[@]} -gt 0 ] || return 0
	echo "freshcheck: processes left running in the chroot:"
	for p in "${pids[@]}"; do
		printf '  %s %s\n' "$p" \
		    "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
	done
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for i in $(seq 100); do
		mapfile -t pids < <(procs_under "$1")
		[ ${#pids[@]} -gt 0 ] || return 1
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	sleep 0.5
	return 1
}

unmount_all() {
	local m
	for m in $(mounts_under "$1"); do
		umount "$m" 2>/dev/null || umount -l "$m" ||
			echo "freshcheck: cannot unmount $m" >&2
	done
}

tail_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$tail_pid" ]; then
		kill "$tail_pid" 2>/dev/null || true
	fi
	if [ -n "$work" ] && [ -d "$work" ]; then
		stop_leftovers "$work" >/dev/null || true
		unmount_all "$work"
		if [ -n "$(mounts_under "$work")" ]; then
			echo "freshcheck: still mounted under $work; not removed" >&2
		elif [ "${FRESHCHECK_KEEP:-0}" = 1 ]; then
			echo "freshcheck: kept $work"
		else
			rm -rf --one-file-system "$work"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The file systems a running Debian has, on the root directory $1.
mount_system() {
	local r=$1 n
	mount -t proc proc "$r/proc"
	mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys" ||
		mount --bind -o ro /sys "$r/sys"
	mount -t tmpfs -o mode=755,nosuid,size=64k dev "$r/dev"
	for n in null zero full random urandom tty; do
		: >"$r/dev/$n"
		mount --bind "/dev/$n" "$r/dev/$n"
	done
	mkdir -m 755 "$r/dev/pts"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts \
	    "$r/dev/pts"
	ln -s pts/ptmx "$r/dev/ptmx"
	mkdir -m 1777 "$r/dev/shm"
	mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
	ln -s /proc/self/fd "$r/dev/fd"
	ln -s /proc/self/fd/0 "$r/dev/stdin"
	ln -s /proc/self/fd/1 "$r/dev/stdout"
	ln -s /proc/self/fd/2 "$r/dev/stderr"
	# A fresh machine has its own name servers, and its name in
	# /etc/hosts; it shares both with this one.
	rm -f "$r/etc/resolv.conf"
	cp -L /etc/resolv.conf "$r/etc/resolv.conf"
	n=$(hostname)
	if ! grep -qw -- "$n" "$r/etc/hosts"; then
		printf '127.0.1.1\t%s\n' "$n" >>"$r/etc/hosts"
	fi
}

# The command line that runs a command in the chroot at $1, as root, with a
# clean environment (and the variables given as NAME=VALUE before it).
chroot_cmd() {
	local r=$1
	shift
	printf '%s\0' chroot "$r" /usr/bin/env -i \
	    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	    HOME=/root TERM="${TERM:-dumb}" "$@"
}
in_chroot() {
	local cmd
	mapfile -d '' cmd < <(chroot_cmd "$@")
	"${cmd[@]}"
}

# --- the base ------------------------------------------------------------
build_base() {
	local r=$work/root t
	if ! command -v debootstrap >/dev/null 2>&1; then
		echo "freshcheck: installing debootstrap"
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends debootstrap
	fi
	mkdir -p "$cache/debootstrap"
	echo "freshcheck: debootstrap --variant=minbase $suite from $mirror"
	t=$(now)
	debootstrap --variant=minbase --cache-dir="$cache/debootstrap" \
	    "$suite" "$r" "$mirror"
	# What an installed Debian 12 has and debootstrap does not write.
	cat >"$r/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
	cat >"$r/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
	mount_system "$r"
	echo "freshcheck: installing git and make in the base"
	in_chroot "$r" apt-get update -q
	in_chroot "$r" env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends git make
	in_chroot "$r" apt-get clean
	unmount_all "$work"
	rm -f "$r/etc/resolv.conf"
	rm -rf "$r"/var/lib/apt/lists/* "$r"/tmp/* "$r"/var/tmp/*
	mkdir -p "$cache"
	tar -C "$r" --numeric-owner -cpf "$base_tar.tmp" .
	mv "$base_tar.tmp" "$base_tar"
	rm -rf --one-file-system "$r"
	base_time="debootstrap and git/make $(since "$t")"
	echo "freshcheck: base built in $(since "$t"), kept in $base_tar"
}

mkdir -p "$tmpbase" "$logdir"
work=$(mktemp -d "$tmpbase/ingestd-freshcheck.XXXXXX")
chmod 755 "$work"

base_time=
if [ "${FRESHCHECK_REFRESH:-0}" = 1 ] || [ ! -f "$base_tar" ]; then
	build_base
else
	base_time="cached base from $(date -r "$base_tar" '+%F %R')"
fi

# --- the commands ----------------------------------------------------------
results=()
failed=0
for c in "${commands[@]}"; do
	r=$work/$c
	log=$logdir/$c.log
	echo
	echo "==== freshcheck: make $c, on a pristine Debian 12 with git and make"
	mkdir -m 755 "$r"
	t=$(now)
	tar -C "$r" --numeric-owner -xpf "$base_tar"
	unpack=$(since "$t")
	git clone --quiet --no-local --no-checkout "$top" "$r/root/ingestd"
	git -C "$r/root/ingestd" checkout --quiet --detach "$head"
	mount_system "$r"
	if [ "${FRESHCHECK_APT_CACHE:-1}" = 1 ]; then
		mkdir -p "$cache/archives/partial"
		mount --bind "$cache/archives" "$r/var/cache/apt/archives"
	fi

	mapfile -d '' cmd < <(chroot_cmd "$r" CI=true \
	    bash -c "cd /root/ingestd && make $c")
	: >"$log"
	t=$(now)
	rc=0
	timeout --kill-after=30 "$timeout" "${cmd[@]}" </dev/null >>"$log" 2>&1 &
	pid=$!
	# Not a pipe: a daemon the command leaves behind must not hold us.
	# In the background, so that a signal to this script is acted on
	# at once (bash runs traps only between foreground commands).
	tail -n +1 -f --pid="$pid" "$log" &
	tail_pid=$!
	wait "$pid" || rc=$?
	wait "$tail_pid" || true
	tail_pid=
	took=$(since "$t")

	# The packages are installed first thing; the last change to dpkg's
	# status file marks the end of that (apt-get update and downloads
	# included).
	pkg_time=
	st=$(stat -c %Y "$r/var/lib/dpkg/status")
	if [ "$st" -ge "${t%.*}" ]; then
		pkg_time=", of which installing packages $((st - ${t%.*}))s"
	fi

	verdict=PASS
	[ "$rc" -eq 0 ] || verdict="FAIL (exit status $rc)"
	if ! stop_leftovers "$r"; then
		verdict="$verdict, left processes behind"
		rc=1
	fi
	[ "$rc" -eq 0 ] || failed=1
	results+=("$(printf 'make %-10s %s in %s%s' "$c" "$verdict" "$took" \
	    "$pkg_time")")
	unmount_all "$r"
	if [ "${FRESHCHECK_KEEP:-0}" != 1 ]; then
		rm -rf --one-file-system "$r"
	fi
	echo "freshcheck: make $c: $verdict in $took (unpacked in $unpack)"
done

echo
echo "==== freshcheck: Debian 12 ($suite, minbase) with git and make," \
    "$(git -C "$top" rev-parse --short "$head")"
echo "base: $base_time"
printf '%s\n' "${results[@]}"
echo "logs: $logdir/"
exit "$failed"
}
