#!/usr/bin/env bash
# make test: every tier in turn, each printing its own results, then one
# closing line "N passed, N failed" over all of them.
#
#   symbols  no global symbol of ours shadows one of a linked library
#   unit     tests/unit/run.sh over the unit binaries (no services)
#   fuzz     the fuzz corpora replayed through each target
#   fake     the fault-injecting POP3 server's own self-tests
#   integ    real PostgreSQL + real Dovecot + the ingestd binary
#
# Usage: tests/run.sh BUILD_DIR UNIT_BINARY...
set -u

build=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
report=""

# Runs a tier, adds its closing "N passed, N failed" line to the totals;
# a tier that exits non-zero without such a line counts as one failure.
tier() {
	local name=$1 out rc line np nf
	shift
	echo "==== $name"
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	rm -f "$out"
	if [ -n "$line" ]; then
		read -r np _ nf _ <<<"$line"
	elif [ "$rc" -eq 0 ]; then
		np=1 nf=0
	else
		np=0 nf=1
	fi
	if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		nf=1
	fi
	passed=$((passed + np))
	failed=$((failed + nf))
	report+=$(printf '%-6s %5d passed, %d failed' "$name" "$np" "$nf")$'\n'
}

tier symbols bash "$top/tests/symbols.sh" "$build"
tier unit bash "$top/tests/unit/run.sh" "$@"
tier fuzz env BUILD="$build" bash "$top/tests/fuzz/run.sh" replay
tier fake python3 "$top/tests/fake/test_fakepop3.py"
tier integ env INGESTD="$build/ingestd" BUILD="$build" \
    python3 "$top/tests/integ/run.py"

echo "===="
printf '%s' "$report"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
