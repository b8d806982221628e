# alloc_heavy.py — a deterministic Python workload for ci/malloc-test: heavy
# allocation (dicts, lists, strings, big bytearrays grown and shrunk),
# threads, and processes (subprocess: fork + exec; os.fork from a thread
# while other threads allocate).  Its output depends only on the data, so
# a run under LD_PRELOAD=libquanta-malloc.so must print exactly what a
# plain run prints.  An optional argument scales the work, in percent
# (default 100): ci/malloc-test records the trace of a 10% run and replays it
# on the simulator, which must stay within seconds.
import hashlib
import os
import subprocess
import sys
import threading


def churn(seed, rounds):
    """Build and drop containers of many sizes; return a digest."""
    h = hashlib.sha256()
    keep = []
    x = seed
    for i in range(rounds):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        n = x % 5000
        d = {str(k): [k] * (k % 7) for k in range(n % 300)}
        s = "".join(chr(97 + (k + i) % 26) for k in range(n))
        b = bytearray(x % 400000)
        b[::4096] = b"\x01" * len(b[::4096])
        b.extend(b"z" * (n * 3))
        del b[: len(b) // 2]
        keep.append((d, s))
        if len(keep) > 50:
            keep = keep[25:]
        h.update(s.encode())
        h.update(str(len(d)).encode())
        h.update(bytes(b[:64]))
        h.update(str(len(b)).encode())
    return h.hexdigest()[:16]


SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 100


def scaled(n):
    return max(1, n * SCALE // 100)


def forked_child_from_thread(results):
    pid = os.fork()
    if pid == 0:
        ok = churn(99, scaled(50)) == churn(99, scaled(50))
        os._exit(7 if ok else 1)
    _, status = os.waitpid(pid, 0)
    results["fork"] = os.waitstatus_to_exitcode(status)


def main():
    results = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, churn(k, scaled(400))))
               for k in range(4)]
    threads.append(threading.Thread(target=forked_child_from_thread, args=(results,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        print("thread", k, results[k])
    print("fork from a thread: child exit", results["fork"])
    out = subprocess.run([sys.executable, "-c",
                          "import json; print(json.dumps(sorted({str(i): i * i for i in range(20000)}.items())[:3]))"],
                         capture_output=True, text=True, check=True)
    print("subprocess:", out.stdout.strip())
    big = [list(range(i % 1000)) for i in range(scaled(20000))]
    print("lists:", sum(map(len, big)))
    words = sorted({("w%07d" % ((i * 7919) % 100003)) for i in range(scaled(200000))})
    print("words:", len(words), words[0], words[-1])


main()
