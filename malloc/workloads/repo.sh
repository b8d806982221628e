#!/usr/bin/env bash
# repo.sh — the git workload of ci/malloc-test, on stdout: a repository
# created in directory $1 (about 250 files in 24 commits, a branch and a merge),
# then log, diff, gc, fsck.  Deterministic: fixed names, dates and content,
# so the commit ids are the same on every run.
set -euo pipefail
dir=$1
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
export GIT_AUTHOR_NAME=quanta GIT_AUTHOR_EMAIL=q@example.invalid
export GIT_COMMITTER_NAME=quanta GIT_COMMITTER_EMAIL=q@example.invalid
export GIT_CONFIG_NOSYSTEM=1 HOME=$dir
git init -q -b main .
for c in $(seq 1 24); do
	export GIT_AUTHOR_DATE="2026-01-01T00:00:$((c % 60))Z" GIT_COMMITTER_DATE="2026-01-01T00:00:$((c % 60))Z"
	awk -v c="$c" 'BEGIN { for (f = 1; f <= (c < 8 ? 30 : 8); f++) {
		n = (c * 31 + f * 17) % 300; d = "d" (n % 10)
		system("mkdir -p " d); out = d "/file" n ".txt"
		for (k = c; k <= c + n; k++) print "line " f " " k > out
		close(out) } }'
	git add -A
	git commit -q -m "commit $c"
	if [ "$c" -eq 12 ]; then git checkout -q -b side; fi
	if [ "$c" -eq 18 ]; then git checkout -q main; fi
done
export GIT_AUTHOR_DATE="2026-01-02T00:00:00Z" GIT_COMMITTER_DATE="2026-01-02T00:00:00Z"
git merge -q --no-edit -X theirs side
git log --oneline --graph | head -60
git diff --stat HEAD~5 HEAD | tail -5
git diff HEAD~3 HEAD -- d3 | md5sum
git gc -q
git count-objects -v | grep -v size
git fsck --no-progress
git rev-parse HEAD
