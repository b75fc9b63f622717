#!/usr/bin/env bash
# Fuzz targets: tests/fuzz/<name>.c (name = fuzz_*), each with a dictionary
# tests/fuzz/<name>.dict and seeds in tests/fuzz/corpus/<name>/ (both
# optional).
#
#   run.sh replay [target...]    build each target with $CC (default cc)
#                                and a plain driver (replay_main.c) into
#                                $BUILD/fuzz/ and run it over its corpus
#   run.sh SECONDS [target...]   build each with clang and libFuzzer into
#                                build-fuzz/ and fuzz it for SECONDS
#
# A target names the sources it needs, relative to the top directory, in a
# comment line of its own (globs work, but "/*" inside a C comment draws a
# -Wcomment warning, so list files where you can; the line may repeat):
#   /* fuzz-sources: pop3/dot.c ingestd/base/log.c */
# and optionally the pkg-config packages they include and extra libFuzzer
# options:
#   /* fuzz-pkgs: libconfig */
#   /* fuzz-args: -max_len=20000 */
# Targets are named by file (tests/fuzz/fuzz_x.c) or by name (fuzz_x).
set -eu

cd "$(dirname "$0")/../.."
top=$PWD

usage() {
	echo "usage: $0 replay | SECONDS [target...]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
mode=$1
shift
case $mode in
replay) ;;
*[!0-9]* | '') usage ;;
esac

if [ $# -gt 0 ]; then
	targets=()
	for t in "$@"; do
		t=${t##*/}
		targets+=("tests/fuzz/${t%.c}.c")
	done
else
	targets=(tests/fuzz/fuzz_*.c)
fi

# The values of a target's "/* key: value */" lines, joined, or nothing.
directive() {
	sed -n "s|^/\* $2: \(.*\) \*/\$|\1|p" "$1" | tr '\n' ' '
}

# The sources a target needs, globs expanded.
sources() {
	local s f out=()
	s=$(directive "$1" fuzz-sources)
	for f in $s; do
		[ -e "$f" ] || { echo "$1: no source $f" >&2; return 1; }
		out+=("$f")
	done
	echo "${out[@]}"
}

pkg_flags() {
	local p
	p=$(directive "$1" fuzz-pkgs)
	[ -n "$p" ] || return 0
	pkg-config --cflags --libs $p
}

WARN="-Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes"
WARN="$WARN -Wno-unused-parameter"
CSTD="-std=c11 -D_GNU_SOURCE -I$top"

if [ "$mode" = replay ]; then
	cc=${CC:-cc}
	out=${BUILD:-build}/fuzz
	mkdir -p "$out/obj"
	status=0
	for t in "${targets[@]}"; do
		name=$(basename "$t" .c)
		srcs=$(sources "$t")
		pkgs=$(pkg_flags "$t")
		objs=()
		# Library sources become objects shared by all targets.
		for s in $srcs; do
			o=$out/obj/${s//\//_}
			o=${o%.c}.o
			if [ ! -e "$o" ] || [ "$s" -nt "$o" ]; then
				$cc $CSTD ${OPT:--O1 -g} ${SAN:-} $WARN $pkgs \
				    -c -o "$o" "$s"
			fi
			objs+=("$o")
		done
		$cc $CSTD ${OPT:--O1 -g} ${SAN:-} $WARN -o "$out/$name" "$t" \
		    tests/fuzz/replay_main.c "${objs[@]}" $pkgs
		corpus=tests/fuzz/corpus/$name
		[ -d "$corpus" ] || corpus=
		if ! "$out/$name" $corpus; then
			echo "FAIL: $name" >&2
			status=1
		fi
	done
	exit $status
fi

seconds=$mode
if ! command -v clang >/dev/null 2>&1; then
	echo "clang is missing: apt-get install clang libclang-rt-14-dev" >&2
	exit 1
fi
out=build-fuzz
mkdir -p "$out"
# Debian ships libFuzzer in libclang-rt-<version>-dev, apart from clang.
echo 'int LLVMFuzzerTestOneInput(const char *p, unsigned long n)
{ return p == 0 && n > 0; }' >"$out/probe.c"
if ! clang -fsanitize=fuzzer -o "$out/probe" "$out/probe.c" 2>/dev/null; then
	echo "clang cannot link libFuzzer:" \
	    "apt-get install clang libclang-rt-14-dev" >&2
	exit 1
fi
rm -f "$out/probe" "$out/probe.c"

FLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1"
status=0
summary=()
for t in "${targets[@]}"; do
	name=$(basename "$t" .c)
	srcs=$(sources "$t")
	pkgs=$(pkg_flags "$t")
	clang $CSTD $FLAGS $WARN -o "$out/$name" "$t" $srcs $pkgs
	# New inputs go to a work corpus; the seeds in git stay as they are.
	mkdir -p "$out/corpus/$name" "$out/artifacts"
	args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10
	    -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$name-")
	[ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
	args+=($(directive "$t" fuzz-args))
	seeds=tests/fuzz/corpus/$name
	[ -d "$seeds" ] || seeds=
	echo "== $name: ${seconds}s"
	log=$out/$name.log
	if "$out/$name" "${args[@]}" "$out/corpus/$name" $seeds >"$log" 2>&1
	then
		result=ok
	else
		result="FAILED (see $log and $out/artifacts/)"
		status=1
		tail -n 40 "$log"
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	# The last status line: "#N DONE cov: C ft: F corp: K/..."
	re='.*cov: \([0-9]*\).*ft: \([0-9]*\).*corp: \([0-9]*\).*'
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 |
	    sed -n "s/$re/cov \\1, ft \\2, corpus \\3/p")
	summary+=("$name: ${runs:-?} runs, ${cov:-no coverage line}: $result")
done
printf '%s\n' "${summary[@]}"
exit $status
