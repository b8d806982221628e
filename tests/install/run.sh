#!/usr/bin/env bash
# tests/install/run.sh — `scons install` gives a user what the docs promise.
#
# Installs the release build into a temporary PREFIX (and once more staged
# under a DESTDIR), then builds tests/install/demo.c the way a user would,
# with nothing but `pkg-config ... quanta` (PKG_CONFIG_PATH at the prefix):
# once linked statically (--static, libquanta.a through -Bstatic) and once
# shared (run through LD_LIBRARY_PATH, and through an rpath).  Each must
# print exactly demo.expected; the shared ones must need libquanta.so.1,
# the library's soname; the static one must need no libquanta at all; and
# the release library must still end a double free in its diagnostic and
# abort.  The installed libquanta-malloc.so must serve a program under
# LD_PRELOAD (its QUANTA_MALLOC_STATS line) and export the C allocation API
# alone (malloc/exports.map).  Also pins the installed file list, the functions the shared
# library exports (install/quanta.map's) and the man page links.
# Exit 0 iff all hold; prints what differed otherwise.  About 2 seconds once
# the release variant is built (ci/check builds it first).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/install
cc=${CC:-gcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install-test: FAIL: $*"; exit 1; }

scons -Q install PREFIX="$prefix" >"$tmp/install.log" ||
	{ cat "$tmp/install.log"; fail "scons install PREFIX=$prefix"; }

# The layout, exactly.
(cd "$prefix" && find . -path ./share/man -prune -o -print | sort) >"$tmp/files"
cat >"$tmp/files.want" <<'LIST'
.
./include
./include/umem.h
./include/vmem.h
./lib
./lib/libquanta-malloc.so
./lib/libquanta.a
./lib/libquanta.so
./lib/libquanta.so.1
./lib/libquanta.so.1.0.0
./lib/pkgconfig
./lib/pkgconfig/quanta.pc
./share
LIST
diff -u "$tmp/files.want" "$tmp/files" || fail "installed files"
[ "$(readlink "$prefix/lib/libquanta.so.1")" = libquanta.so.1.0.0 ] || fail "libquanta.so.1 link"
[ "$(readlink "$prefix/lib/libquanta.so")" = libquanta.so.1.0.0 ] || fail "libquanta.so link"
readelf -d "$prefix/lib/libquanta.so.1.0.0" | grep -q 'Library soname: \[libquanta.so.1\]' ||
	fail "soname of libquanta.so.1.0.0: $(readelf -d "$prefix/lib/libquanta.so.1.0.0" | grep -i soname)"

# The shared library exports the calls of install/quanta.map, no more.
sed -n '/^global:/,/^local:/s/^[[:space:]]*\([a-z_]*\);$/\1/p' install/quanta.map |
	LC_ALL=C sort >"$tmp/exports.want"
nm -D --defined-only "$prefix/lib/libquanta.so.1.0.0" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' |
	LC_ALL=C sort >"$tmp/exports"
[ "$(wc -l <"$tmp/exports.want")" -gt 20 ] || fail "install/quanta.map lists $(wc -l <"$tmp/exports.want") calls"
diff -u "$tmp/exports.want" "$tmp/exports" || fail "the exported functions of libquanta.so"

# The malloc front end: preloaded, it serves a program (its stats line, a
# non-zero allocation count) and the program's output is unchanged; it
# exports the calls of malloc/exports.map, no more.
malloc_so=$prefix/lib/libquanta-malloc.so
# (bash, not coreutils: their exit closes stderr before the line is written.)
out=$(LD_PRELOAD=$malloc_so QUANTA_MALLOC_STATS=1 bash -c 'echo served' 2>"$tmp/stats") ||
	fail "bash under LD_PRELOAD=$malloc_so"
[ "$out" = served ] || fail "bash under the front end printed: $out"
grep -Eq '^quanta-malloc: pid [0-9]+ \(bash\) alloc [1-9][0-9]* ' "$tmp/stats" ||
	fail "no stats line from the installed libquanta-malloc.so: $(cat "$tmp/stats")"
sed -n '/global:/,/local:/p' malloc/exports.map | tr -s ' \t;' '\n\n\n' |
	grep -E '^[a-z_]+$' | grep -vx -e global -e local | LC_ALL=C sort >"$tmp/malloc-exports.want"
nm -D --defined-only "$malloc_so" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' |
	LC_ALL=C sort >"$tmp/malloc-exports"
[ "$(wc -l <"$tmp/malloc-exports.want")" -eq 11 ] || fail "malloc/exports.map lists $(wc -l <"$tmp/malloc-exports.want") calls, not 11"
diff -u "$tmp/malloc-exports.want" "$tmp/malloc-exports" || fail "the exported functions of libquanta-malloc.so"

# Man pages: a call without its own page is a link to its family's page.
[ "$(readlink "$prefix/share/man/man3/vmem_xalloc.3")" = vmem_alloc.3 ] || fail "vmem_xalloc.3 link"
MANPATH=$prefix/share/man MANWIDTH=80 man -P cat vmem_xalloc 2>/dev/null | head -1 |
	grep -q '^VMEM_ALLOC(3)' || fail "man vmem_xalloc does not show the vmem_alloc page"
(cd / && MANWIDTH=80 man -l "$prefix/share/man/man3/umem_zalloc.3" 2>/dev/null) | head -1 |
	grep -q '^UMEM_ALLOC(3)' || fail "man -l umem_zalloc.3 does not show the umem_alloc page"
for page in "$prefix"/share/man/man3/*.3; do
	[ -L "$page" ] && continue
	says=$(LC_ALL=C groff -man -Tutf8 -ww -z "$page" 2>&1)
	[ -z "$says" ] || fail "groff warns about $(basename "$page"): $says"
done

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion quanta)" = 1.0.0 ] || fail "pkg-config --modversion"
[ "$(pkg-config --static --libs-only-other quanta | xargs)" = -pthread ] || fail "Libs.private"
cflags=$(pkg-config --cflags quanta)
warn="-std=c11 -Wall -Wextra -Werror"

# Static: libquanta.a, through pkg-config --static.
# shellcheck disable=SC2046,SC2086
$cc $warn $cflags -o "$tmp/demo-static" $here/demo.c -Wl,-Bstatic \
	$(pkg-config --static --libs-only-L --libs-only-l quanta) -Wl,-Bdynamic \
	$(pkg-config --static --libs-only-other quanta)
if readelf -d "$tmp/demo-static" | grep -q 'NEEDED.*libquanta'; then fail "the static demo needs libquanta.so"; fi
"$tmp/demo-static" >"$tmp/out-static"
diff -u $here/demo.expected "$tmp/out-static" || fail "static demo output"

# Shared: through LD_LIBRARY_PATH, then through an rpath.
# shellcheck disable=SC2046,SC2086
$cc $warn $cflags -o "$tmp/demo-shared" $here/demo.c $(pkg-config --libs quanta)
readelf -d "$tmp/demo-shared" | grep -q 'NEEDED.*\[libquanta.so.1\]' || fail "the shared demo does not need libquanta.so.1"
LD_LIBRARY_PATH=$prefix/lib "$tmp/demo-shared" >"$tmp/out-shared"
diff -u $here/demo.expected "$tmp/out-shared" || fail "shared demo output (LD_LIBRARY_PATH)"
# shellcheck disable=SC2046,SC2086
$cc $warn $cflags -o "$tmp/demo-rpath" $here/demo.c $(pkg-config --libs quanta) -Wl,-rpath,"$prefix/lib"
"$tmp/demo-rpath" >"$tmp/out-rpath"
diff -u $here/demo.expected "$tmp/out-rpath" || fail "shared demo output (rpath)"

# The release library keeps the hard misuse checks.
# (The substitution's own stderr is dropped: bash's "Aborted" line.)
rc=$(exec 2>/dev/null; "$tmp/demo-rpath" double-free >/dev/null 2>"$tmp/err"; echo $?)
[ $rc -eq 134 ] || fail "double free: exit $rc, not 134 (SIGABRT)"
want='quanta: vmem_free(arena "once", addr 0x1, size 0x1): bad free: no allocated segment starts there (already free)'
[ "$(cat "$tmp/err")" = "$want" ] || fail "double free said: $(cat "$tmp/err")"

# DESTDIR: the files under DESTDIR/PREFIX, PREFIX alone in quanta.pc.
scons -Q install PREFIX=/opt/quanta DESTDIR="$tmp/stage" >"$tmp/stage.log" ||
	{ cat "$tmp/stage.log"; fail "scons install DESTDIR"; }
grep -qx 'prefix=/opt/quanta' "$tmp/stage/opt/quanta/lib/pkgconfig/quanta.pc" || fail "staged quanta.pc prefix"
[ -f "$tmp/stage/opt/quanta/lib/libquanta.so.1.0.0" ] || fail "staged libquanta.so.1.0.0"
[ -f "$tmp/stage/opt/quanta/lib/libquanta-malloc.so" ] || fail "staged libquanta-malloc.so"
echo "install-test: ok (static, shared via LD_LIBRARY_PATH and rpath, soname libquanta.so.1, libquanta-malloc.so preloaded, DESTDIR)"
