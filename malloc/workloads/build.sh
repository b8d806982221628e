#!/usr/bin/env bash
# build.sh — the parallel-make workload of ci/malloc-test, on stdout: make
# -j4 in directory $2 compiles every src/*.c of the tree $1 with gcc (make,
# the shells, gcc, cc1, as, ar: each process preloaded when the caller
# preloads) and prints the objects' md5 sums, the same on every run.
set -euo pipefail
top=$1 dir=$2
rm -rf "$dir"
mkdir -p "$dir"
cat >"$dir/Makefile" <<MK
SRC := \$(wildcard $top/src/*.c)
OBJ := \$(patsubst $top/src/%.c,%.o,\$(SRC))
all: libq.a
%.o: $top/src/%.c
	gcc -std=c11 -O2 -fPIC -D_GNU_SOURCE -DNDEBUG -DQUANTA_RELEASE -I$top/include -I$top/src -c \$< -o \$@
libq.a: \$(OBJ)
	ar rc \$@ \$^
	md5sum \$^ | sort
MK
make -s -j4 -C "$dir"
