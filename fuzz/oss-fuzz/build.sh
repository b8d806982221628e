#!/bin/bash -eu
# OSS-Fuzz entry point: the repository's own fuzz/build.sh, unchanged.
"$SRC/quanta/fuzz/build.sh"
