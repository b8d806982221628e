#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz entry point: $CC $CFLAGS $CXX $CXXFLAGS
# $LIB_FUZZING_ENGINE $SRC $OUT $WORK come from the builder.
"$SRC/quanta/fuzz/build.sh"
