#!/usr/bin/env bash
# make bench: ingestd against fetchmail, mpop and getmail6 on a private
# Dovecot, plus the pipeline micro-benchmark and the memory scenarios,
# search latency (bench_search.py) and the ledger's cost (bench_ledger.py).
#
#   bash tests/bench/run.sh [bench.py options]
#   make bench BENCH_ARGS="--quick"        # about a minute
#   BENCH_SCALE=0.5 make bench             # half the mailboxes
#
# Installs the peers (Debian packages) through tests/deps.sh, builds what
# is missing, runs tests/bench/bench.py, and keeps a copy of the report
# in build/bench/report.txt.  Exits non-zero if a contender did not
# drain everything.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/deps.sh fetchmail mpop getmail6
build=${BUILD:-build}
if [ ! -x "$build/ingestd" ] || [ ! -x "$build/tests/bench/rusage_run" ] ||
	[ ! -x "$build/tests/bench/maildir_mda" ] ||
	[ ! -x "$build/tests/bench/bench_pipeline" ]; then
	make --no-print-directory BUILD="$build" all
fi
mkdir -p "$build/bench"
# Search latency per operator over a generated archive of
# BENCH_SEARCH_DELIVERIES (default 1,000,000) messages; BENCH_SEARCH=0
# skips it.  Its report is kept in build/bench/search.txt.
if [ "${BENCH_SEARCH:-1}" != 0 ]; then
	INGESTD="$build/ingestd" python3 tests/bench/bench_search.py \
		--report "$build/bench/search.txt"
fi
# The ledger's and the standing holds' cost: ingest with them on and off,
# checkpoint and proof times over BENCH_LEDGER_ENTRIES (default 1,000,000)
# ledger entries; BENCH_LEDGER=0 skips it.  Report: build/bench/ledger.txt.
if [ "${BENCH_LEDGER:-1}" != 0 ]; then
	lq=
	case " ${BENCH_ARGS:-} " in *" --quick "*) lq=--quick ;; esac
	INGESTD="$build/ingestd" python3 tests/bench/bench_ledger.py \
		--report "$build/bench/ledger.txt" ${lq:+"$lq"}
fi
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
exec env BUILD="$build" python3 tests/bench/bench.py \
	--report "$build/bench/report.txt" ${BENCH_ARGS:-} "$@"
