#!/usr/bin/env bash
# Installs the Debian (12, bookworm) packages that building ingestd, its
# tests and the demo need, and only those that are missing.
#
#   bash tests/deps.sh [EXTRA-PACKAGE...]
#
# As root: `apt-get update` once, then `apt-get install` of what is
# missing.  As anyone else: if something is missing, prints the exact
# command to run and exits 1.  Extra packages named on the command line are
# checked and installed the same way (tests/bench, say, adds its peers).
#
# The tests never use the system PostgreSQL cluster or the system Dovecot
# service: they start private ones on a Unix socket and on free loopback
# ports.  So that installing the packages starts nothing, service starts are
# refused during the install (policy-rc.d) unless the machine already has
# a policy of its own.
set -euo pipefail

packages=(
	# build
	build-essential pkg-config
	libssl-dev libpq-dev libzstd-dev libconfig-dev libcurl4-openssl-dev
	# integration tests and demo: a private PostgreSQL and Dovecot
	postgresql
	dovecot-core dovecot-pop3d
	openssl ca-certificates
	python3
	# process, user and mount tools the harness, the tests and the demo
	# use (useradd, runuser, mount -t tmpfs)
	procps iproute2 passwd util-linux mount
	# the install tests: systemd-analyze, systemd-sysusers and
	# systemd-tmpfiles (systemd need not run)
	systemd
	# make fuzz / make check: clang 14 is Debian 12's; its libFuzzer and
	# sanitizer runtimes are in libclang-rt-14-dev
	clang libclang-rt-14-dev
	# make lint
	clang-format cppcheck
)
packages+=("$@")

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system; install the equivalents of:" >&2
	echo "  ${packages[*]}" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $status in
	*"install ok installed"*) ;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#packages[@]} Debian packages are installed"
	exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run this, then try again:" >&2
	echo "  sudo apt-get update && sudo $install_cmd" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
marker="# ingestd tests/deps.sh: temporary"
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n%s\nexit 101\n' "$marker" >"$policy"
	chmod 755 "$policy"
	trap 'grep -q "$marker" "$policy" 2>/dev/null && rm -f "$policy"' EXIT
fi

apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

still=()
for p in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $status in
	*"install ok installed"*) ;;
	*) still+=("$p") ;;
	esac
done
if [ ${#still[@]} -ne 0 ]; then
	echo "deps: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "deps: installed ${#missing[@]} packages"
