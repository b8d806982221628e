"""bench/malloc/alloc_heavy.py — an allocation-heavy Python workload for
ci/bench-malloc: dicts of strings, lists of tuples, string building and
slicing, objects made and dropped in waves (so the allocator frees as much
as it hands out).  Deterministic: a fixed-seed generator; the argument
scales the rounds (default 10: about 2 s of CPU under glibc).
Prints a checksum, so every malloc is seen to compute the same thing."""
import random
import sys


def wave(r, n):
    d = {}
    for i in range(n):
        k = "key-%d-%s" % (i, "x" * (i % 37))
        d[k] = [(i, str(i * 7), k[::-1]) for _ in range(i % 5)]
    s = 0
    for k in list(d)[::3]:
        v = d.pop(k)
        s += len(k) + sum(len(t[2]) for t in v)
    parts = []
    for i in range(n // 2):
        parts.append(("%08x" % r.getrandbits(32)) * (1 + i % 9))
    blob = "".join(parts)
    words = [blob[i:i + 13] for i in range(0, len(blob), 13)]
    words.sort()
    s += len(words) + len(d)
    sets = [set(words[i:i + 50]) for i in range(0, len(words), 50)]
    s += sum(len(x) for x in sets)
    return s


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    r = random.Random(1)
    total = 0
    for _ in range(rounds):
        total += wave(r, 60000)
    print("alloc_heavy: checksum %d" % total)


main()
