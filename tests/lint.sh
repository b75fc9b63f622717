#!/usr/bin/env bash
# make lint: the checks STYLE.md asks of every C file, each ending in PASS
# or FAIL, then one summary line.  Exits non-zero if any check failed.
#
#   knf          tabs, 80 columns, return type on its own line, Linux
#                braces, /* */ comments, no trailing white space
#   clang-format clang-format --dry-run -Werror with .clang-format.  The
#                established KNF has idioms clang-format 14 cannot express
#                (see .clang-format), so its differences are reported, not
#                failed on, unless LINT_FORMAT=strict.  LINT_FORMAT=diff
#                also prints them.
#   boundaries   pop3/ and store/ include only the base layer,
#                ingestd/base/, and not each other; the base layer includes
#                nothing of the project but itself; each third-party header
#                only in the files that wrap it (libpq: store/db*.c), and a
#                module's private header only in its own files (tests/ are
#                exempt)
#   includes     one include style: a project header is named by its path
#                from the top ("store/pipe.h"), never relative to the
#                includer
#   no-pkill     no pkill or killall anywhere: stop processes by their pid
#   cppcheck     cppcheck --enable=warning,portability,performance;
#                suppress a finding in place with
#                /* cppcheck-suppress <id> */ and say why
set -u

cd "$(dirname "$0")/.."

results=()
failed=0

# result NAME PASS|FAIL|REPORTED [detail...]
result() {
	local name=$1 verdict=$2
	shift 2
	results+=("$name $verdict")
	echo "== $name: $verdict${*:+ ($*)}"
	[ "$verdict" = FAIL ] && failed=1
	return 0
}

# Every C file of the project, new ones included, build output excluded:
# build*/ (make BUILD=build-x) as well as what .gitignore names.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t files < <(git ls-files --cached --others --exclude-standard \
	    -- '*.c' '*.h' | sort -u | while read -r f; do
		case $f in build*/*) continue ;; esac
		[ -f "$f" ] && echo "$f"
	done)
	mapfile -t all_files < <(git ls-files --cached --others \
	    --exclude-standard | sort -u | while read -r f; do
		case $f in build*/*) continue ;; esac
		[ -f "$f" ] && echo "$f"
	done)
else
	mapfile -t files < <(find . -path './build*' -prune -o \
	    -name '*.[ch]' -type f -print | sed 's|^\./||' | sort)
	mapfile -t all_files < <(find . -path './build*' -prune -o \
	    -path ./.git -prune -o -type f -print | sed 's|^\./||' | sort)
fi
echo "lint: ${#files[@]} C files"

# --- knf --------------------------------------------------------------
# Prints "file:line: what" per finding; exits 1 if there was one.
knf_awk='
function report(what) {
	printf "%s:%d: %s\n", FILENAME, FNR, what
	found++
}
function width(s,    i, c, w) {
	w = 0
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\t")
			w = w + 8 - w % 8
		else
			w++
	}
	return w
}
FNR == 1 {
	prev = ""; start = ""; incomment = 0
}
{
	line = $0
	if (width(line) > 80)
		report("longer than 80 columns (" width(line) ")")
	if (line ~ /[ \t]+$/)
		report("trailing white space")
	if (line ~ /^ +\t/ || line ~ /^        /)
		report("indented with spaces, not tabs")
	if (!incomment && (line ~ /^[ \t]*\/\// || line ~ /[;{})][ \t]*\/\//))
		report("// comment; use /* */")
	# A function body opens with "{" alone at column 0, after a
	# declarator that starts at column 0 with the function name.
	if (line == "{" && start != "" &&
	    start !~ /^[A-Za-z_][A-Za-z0-9_]*\(/ &&
	    start !~ /(=|^struct|^union|^enum)/)
		report("return type not on its own line: " start)
	if (line ~ /^[A-Za-z_].*\)[ \t]*\{[ \t]*$/ && line !~ /=/ &&
	    line !~ /^(struct|union|enum|typedef)/)
		report("function brace not on its own line")
	if (line ~ /^[ \t]+\{[ \t]*$/ &&
	    prev ~ /^[ \t]*(if|for|while|switch|else|do)([ (]|$)/ &&
	    prev !~ /;[ \t]*$/)
		report("brace on its own line after a control statement")
	if (line ~ /^[^ \t#\/*}]/)
		start = line
	if (line ~ /\/\*/ && line !~ /\*\//)
		incomment = 1
	if (incomment && line ~ /\*\//)
		incomment = 0
	prev = line
}
END {
	exit found > 0
}'
if out=$(awk "$knf_awk" "${files[@]}"); then
	result knf PASS
else
	echo "$out"
	result knf FAIL "$(echo "$out" | wc -l) findings"
fi

# --- clang-format -----------------------------------------------------
if ! command -v clang-format >/dev/null 2>&1; then
	echo "clang-format is missing: apt-get install clang-format"
	result clang-format FAIL "not installed"
else
	ndiff=0
	nlines=0
	for f in "${files[@]}"; do
		if ! msgs=$(clang-format --dry-run -Werror "$f" 2>&1); then
			n=$(echo "$msgs" | grep -c 'clang-format-violations')
			ndiff=$((ndiff + 1))
			nlines=$((nlines + n))
			if [ "${LINT_FORMAT:-}" = diff ]; then
				echo "$msgs"
			else
				printf '  %-40s %4d\n' "$f" "$n"
			fi
		fi
	done
	if [ "$ndiff" -eq 0 ]; then
		result clang-format PASS
	elif [ "${LINT_FORMAT:-}" = strict ]; then
		result clang-format FAIL \
		    "$ndiff files, $nlines places differ from .clang-format"
	else
		result clang-format REPORTED \
		    "$ndiff files, $nlines places differ; not failed on," \
		    "see .clang-format; LINT_FORMAT=diff shows them"
	fi
fi

# --- boundaries -------------------------------------------------------
# The file a quoted or bracketed include names: a project path if one
# exists (next to the includer, or from the top with -I.), else the
# header as written, which is then a system or third-party one.
resolve() {
	local dir=$1 kind=$2 name=$3
	if [ "$kind" = '"' ] && [ -f "$dir/$name" ]; then
		realpath -m --relative-to=. "$dir/$name"
	elif [ -f "$name" ]; then
		realpath -m --relative-to=. "$name"
	else
		echo "<$name>"
	fi
}

# The project files allowed to include a third-party or private header,
# as glob patterns, or nothing if any file may.
owners_of() {
	case $1 in
	'<libconfig.h>') echo ingestd/conf.c ;;
	'<curl/'*) echo ingestd/oauth_http.c ;;
	'<iconv.h>') echo store/mime/charset.c ;;
	'<openssl/evp.h>') echo store/hash.c store/sign.c ;;
	'<openssl/pem.h>') echo store/sign.c ;;
	'<openssl/'*) echo ingestd/conn.c ;;
	'<zstd.h>' | '<zdict.h>' | '<zstd_errors.h>') echo store/zstd.c ;;
	'<libpq-fe.h>' | '<libpq/'* | '<postgres_ext.h>') echo 'store/db*.c' ;;
	store/db_private.h) echo 'store/db*.c' ;;
	esac
}

# Whether file $1 matches one of the glob patterns that follow.
owned_by() {
	local f=$1 pat
	shift
	for pat in "$@"; do
		# shellcheck disable=SC2053 # $pat is a pattern
		[[ $f == $pat ]] && return 0
	done
	return 1
}

# The header an #include line names, and whether it said "" or <>.
inc_re='^[ \t]*#[ \t]*include[ \t]*\(["<]\)\([^">]*\)[">].*'

violations=()
for f in "${files[@]}"; do
	case $f in tests/*) continue ;; esac
	dir=$(dirname "$f")
	while IFS=: read -r lineno inc; do
		kind=$(echo "$inc" | sed -n "s/$inc_re/\1/p")
		name=$(echo "$inc" | sed -n "s/$inc_re/\2/p")
		[ -n "$name" ] || continue
		target=$(resolve "$dir" "$kind" "$name")
		why=
		case $f:$target in
		pop3/*:store/* | store/*:pop3/*)
			why="${f%%/*}/ must not use ${target%%/*}/" ;;
		pop3/*:ingestd/base/* | store/*:ingestd/base/*) ;;
		pop3/*:ingestd/* | store/*:ingestd/*)
			why="${f%%/*}/ may use only the base layer, ingestd/base/" ;;
		ingestd/base/*:ingestd/base/*) ;;
		ingestd/base/*:ingestd/* | ingestd/base/*:pop3/* | \
		    ingestd/base/*:store/*)
			why="the base layer may not use $target" ;;
		esac
		read -ra owners <<<"$(owners_of "$target")"
		if [ ${#owners[@]} -gt 0 ] && ! owned_by "$f" "${owners[@]}"; then
			why="$target belongs in ${owners[*]} only"
		fi
		[ -n "$why" ] && violations+=("$f:$lineno: $why")
	done < <(grep -n '^[ \t]*#[ \t]*include' "$f")
done
if [ ${#violations[@]} -eq 0 ]; then
	result boundaries PASS
else
	printf '%s\n' "${violations[@]}"
	result boundaries FAIL "${#violations[@]} includes"
fi

# --- includes ---------------------------------------------------------
# A quoted include must name an existing file by its path from the top.
style=()
for f in "${files[@]}"; do
	while IFS=: read -r lineno inc; do
		name=$(echo "$inc" | sed -n "s/$inc_re/\2/p")
		kind=$(echo "$inc" | sed -n "s/$inc_re/\1/p")
		[ "$kind" = '"' ] || continue
		[ -f "$name" ] && continue
		style+=("$f:$lineno: \"$name\": name a project header by its path from the top")
	done < <(grep -n '^[ \t]*#[ \t]*include' "$f")
done
if [ ${#style[@]} -eq 0 ]; then
	result includes PASS
else
	printf '%s\n' "${style[@]}"
	result includes FAIL "${#style[@]} includes"
fi

# --- no-pkill ---------------------------------------------------------
# Built from pieces so that this file does not find itself.
pat="\\b(p""kill|kill""all)\\b"
hits=$(for f in "${all_files[@]}"; do
	[ "$f" = tests/lint.sh ] && continue
	grep -IHnE "$pat" "$f" 2>/dev/null
done)
if [ -z "$hits" ]; then
	result no-pkill PASS
else
	echo "$hits"
	result no-pkill FAIL "stop processes by pid, not by name"
fi

# --- cppcheck ---------------------------------------------------------
if ! command -v cppcheck >/dev/null 2>&1; then
	echo "cppcheck is missing: apt-get install cppcheck"
	result cppcheck FAIL "not installed"
else
	cfiles=()
	for f in "${files[@]}"; do
		case $f in *.c) cfiles+=("$f") ;; esac
	done
	if cppcheck --enable=warning,portability,performance \
	    --inline-suppr --error-exitcode=1 --quiet -j2 \
	    --suppress=missingIncludeSystem --std=c11 -D_GNU_SOURCE \
	    -DINGESTD_VERSION='"lint"' -I. \
	    --template='{file}:{line}: {severity}: {message} [{id}]' \
	    "${cfiles[@]}" 2>&1; then
		result cppcheck PASS
	else
		result cppcheck FAIL
	fi
fi

echo "lint: ${results[*]}"
if [ "$failed" -ne 0 ]; then
	echo "lint: FAIL"
	exit 1
fi
echo "lint: PASS"
