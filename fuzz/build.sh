#!/bin/bash -eu
# Build every fuzz target of quanta, OSS-Fuzz / ClusterFuzzLite style.
#
# The environment says how (OSS-Fuzz sets all of these; ci/fuzz sets them
# for a local campaign):
#   CC, CFLAGS        compile the library and the targets (for libFuzzer:
#                     clang, -fsanitize=address,undefined,fuzzer-no-link)
#   CXX, CXXFLAGS     link (the engines' drivers are C++)
#   LIB_FUZZING_ENGINE  the engine: -fsanitize=fuzzer (libFuzzer) or
#                     /usr/lib/afl/libAFLDriver.a (AFL++, with CC=afl-clang-fast)
#   SRC               where sources live (default: the parent of this folder's
#                     repository)
#   OUT               one binary per target goes here, with <t>.options,
#                     <t>.dict and <t>_seed_corpus.zip beside it
#   WORK              scratch space (objects, the library)
# Targets: every fuzz/<t>.c that defines LLVMFuzzerTestOneInput.  The
# library is the debug configuration (assertions and the invariant
# checker compiled in): the oracles want every check.
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
: "${CC:=clang}" "${CXX:=clang++}" "${CFLAGS:=}" "${CXXFLAGS:=}"
: "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}"
: "${OUT:=$repo/build/fuzz/out}" "${WORK:=$repo/build/fuzz/work}"
mkdir -p "$OUT" "$WORK/obj"

defs="-std=c11 -D_GNU_SOURCE -DQUANTA_DEBUG -DQUANTA_CHECKER"
# QUANTA_FUZZ_BUGS=1: the planted bugs compiled in (src/bugs.h), switched
# on per run by QUANTA_FUZZ_BUG=<name> (fuzz/bugs-table).
if [ "${QUANTA_FUZZ_BUGS:-0}" = 1 ]; then
	defs="$defs -DQUANTA_BUGS"
fi
incs="-I$repo/include -I$repo/src -I$repo/invariants -I$repo/fuzz -I$repo/malloc"
# The checker is the oracle, not the code under test: no coverage feedback
# from it (fuzz/coverage-ignore.txt), under either engine.
export AFL_LLVM_DENYLIST="$here/coverage-ignore.txt"
if echo 'int x;' | $CC $CFLAGS -fsanitize-coverage-ignorelist="$AFL_LLVM_DENYLIST" \
	-x c -c - -o /dev/null 2>/dev/null; then
	CFLAGS="$CFLAGS -fsanitize-coverage-ignorelist=$AFL_LLVM_DENYLIST"
fi

# lib NAME DEFINES FILES...: one static library of the given sources.
lib() {
	local name=$1 extra=$2 objs=() f o
	shift 2
	mkdir -p "$WORK/obj-$name"
	for f in "$@"; do
		o="$WORK/obj-$name/$(basename "$f" .c).o"
		$CC $CFLAGS $defs $extra $incs -c "$f" -o "$o"
		objs+=("$o")
	done
	rm -f "$WORK/$name.a"
	ar rcs "$WORK/$name.a" "${objs[@]}"
}
# The trace reader (malloc/trace_read.c) too, for malloc_trace.
lib libquanta-fuzz "" "$repo"/src/*.c "$repo"/invariants/*.c "$repo"/malloc/trace_read.c
# The scheduler target (marked QUANTA_SIM_TARGET) runs the simulator: the
# library over the simulated platform, with the planted bugs, and the
# simulator's core.
simdefs="-DQUANTA_SIM -I$repo/sim"
case "$defs" in *QUANTA_BUGS*) ;; *) simdefs="$simdefs -DQUANTA_BUGS" ;; esac
if grep -lq QUANTA_SIM_TARGET "$repo"/fuzz/*.c; then
	lib libquanta-sim-fuzz "$simdefs" "$repo"/src/*.c "$repo"/invariants/*.c \
		"$repo"/sim/sched.c "$repo"/sim/scenarios.c "$repo"/sim/scenarios_fork.c \
		"$repo"/sim/config.c "$repo"/sim/runner.c
fi

for src in "$repo"/fuzz/*.c; do
	[ "$(basename "$src")" = replay_main.c ] && continue
	grep -q LLVMFuzzerTestOneInput "$src" || continue
	t=$(basename "$src" .c)
	extra="" library="$WORK/libquanta-fuzz.a"
	if grep -q QUANTA_SIM_TARGET "$src"; then
		extra=$simdefs library="$WORK/libquanta-sim-fuzz.a"
	fi
	$CC $CFLAGS $defs $extra $incs -c "$src" -o "$WORK/$t.o"
	$CXX $CXXFLAGS "$WORK/$t.o" "$library" \
		$LIB_FUZZING_ENGINE -lpthread -o "$OUT/$t"
	[ -f "$repo/fuzz/$t.dict" ] && cp "$repo/fuzz/$t.dict" "$OUT/$t.dict"
	printf '[libfuzzer]\nmax_len = 4096\n%s' \
		"$( [ -f "$repo/fuzz/$t.dict" ] && echo "dict = $t.dict" )" \
		>"$OUT/$t.options"
	if [ -d "$repo/corpus/$t" ]; then
		python3 - "$repo/corpus/$t" "$OUT/${t}_seed_corpus.zip" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst, "w") as z:
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if f == "README.md":
                continue
            p = os.path.join(root, f)
            z.write(p, os.path.relpath(p, src))
PY
	fi
	echo "built $OUT/$t"
done
