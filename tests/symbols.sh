#!/usr/bin/env bash
# Every global symbol of libingestd.a against the dynamic symbols of the
# shared libraries ingestd links: a function of ours named like one of
# theirs (libconfig's strbuf_release, say) silently replaces it inside that
# library, which then crashes far from the cause.  Prints each clash and
# exits 1 if there is one.
#
# Usage: tests/symbols.sh BUILD_DIR
set -u

build=$1
lib=$build/libingestd.a
bin=$build/ingestd
for f in "$lib" "$bin"; do
	[ -f "$f" ] || { echo "symbols: $f is missing (build first)"; exit 1; }
done
ours=$(nm --defined-only "$lib" 2>/dev/null | awk '$2 ~ /^[TDBR]$/ {print $3}' |
    sort -u)
theirs=$(ldd "$bin" | awk '$3 ~ /^\// {print $3}' | while read -r so; do
	nm -D --defined-only "$so" 2>/dev/null | awk '{print $NF}'
done | sed 's/@.*//' | sort -u)
clash=$(comm -12 <(echo "$ours") <(echo "$theirs"))
if [ -n "$clash" ]; then
	echo "symbols: defined by ingestd and by a library it links:"
	echo "$clash" | sed 's/^/  /'
	echo "0 passed, 1 failed"
	exit 1
fi
echo "symbols: $(echo "$ours" | wc -l) global symbols, no clash with the linked libraries"
echo "1 passed, 0 failed"
