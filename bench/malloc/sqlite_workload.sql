-- bench/malloc/sqlite_workload.sql — the sqlite3 workload of
-- ci/bench-malloc (an in-memory database, so the time is the engine's and
-- its allocator's): 200,000 rows inserted, two indexes built, then
-- aggregate, range, join and text queries.  Deterministic; the last
-- SELECT prints a checksum.
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO t SELECT i, i % 997, printf('name-%08d-%s', (i * 7919) % 200000,
    substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26)), (i * 31 % 1000) / 7.0 FROM n;
CREATE INDEX t_grp ON t(grp);
CREATE INDEX t_name ON t(name);
CREATE TABLE g AS SELECT grp, count(*) AS c, sum(val) AS s FROM t GROUP BY grp;
SELECT count(*), sum(c) FROM g;
SELECT count(*) FROM t WHERE name BETWEEN 'name-00010000' AND 'name-00090000';
SELECT count(*) FROM t JOIN g ON t.grp = g.grp WHERE t.val > g.s / g.c;
SELECT count(DISTINCT substr(name, 15)) FROM t WHERE name LIKE '%q%';
UPDATE t SET name = name || '-updated' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)), round(sum(val), 2) FROM t;
