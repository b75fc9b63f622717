#!/usr/bin/env bash
# Runs the unit test binaries given as arguments, shows their output, and
# ends with one line "N passed, N failed" over all of them.  A binary that
# crashes or exits non-zero counts the tests it finished as passed and one
# more as failed.  Exits non-zero if anything failed.
set -u

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
	echo "== $bin"
	if [ ! -x "$bin" ]; then
		echo "FAIL: $bin: no such executable"
		failed=$((failed + 1))
		continue
	fi
	"$bin" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ] && [ -n "$summary" ]; then
		read -r np _ nf _ <<<"$summary"
		passed=$((passed + np))
		failed=$((failed + nf))
		continue
	fi
	ok=$(grep -c '^ok ' "$log")
	passed=$((passed + ok))
	failed=$((failed + 1))
	if [ "$rc" -gt 128 ]; then
		echo "FAIL: $bin: killed by signal $((rc - 128))" \
		    "after $ok passed"
	else
		echo "FAIL: $bin: exit status $rc after $ok passed"
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
