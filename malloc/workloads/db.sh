#!/usr/bin/env bash
# db.sh — the sqlite3 workload of ci/malloc-test, on stdout: a database
# built in a temporary file (tables, ~50k rows inserted in transactions of
# single-row INSERTs, indexes), then queries with ORDER BY and GROUP BY.
# Deterministic: the rows are a function of their number.
set -euo pipefail
db=$1
rm -f "$db"
{
	echo "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, cat INTEGER, price REAL, note TEXT);"
	echo "CREATE TABLE cat(id INTEGER PRIMARY KEY, label TEXT);"
	for b in 0 1 2 3 4; do
		echo "BEGIN;"
		awk -v b="$b" 'BEGIN { for (i = b * 10000; i < (b + 1) * 10000; i++)
			printf "INSERT INTO item VALUES(%d, %cname-%d%c, %d, %.2f, %c%s%c);\n",
			    i, 39, (i * 7919) % 100003, 39, i % 97, (i * 37 % 1000) / 10.0,
			    39, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26, 1 + i % 26), 39 }'
		echo "COMMIT;"
	done
	echo "BEGIN;"
	awk 'BEGIN { for (c = 0; c < 97; c++) printf "INSERT INTO cat VALUES(%d, %clabel %d%c);\n", c, 39, c * c, 39 }'
	echo "COMMIT;"
	echo "CREATE INDEX item_cat ON item(cat, price);"
	echo "CREATE INDEX item_name ON item(name);"
	echo "SELECT count(*), sum(price), max(length(note)) FROM item;"
	echo "SELECT cat.label, count(*), round(avg(item.price), 3) FROM item JOIN cat ON cat.id = item.cat GROUP BY item.cat ORDER BY count(*) DESC, cat.label LIMIT 12;"
	echo "SELECT name, price FROM item WHERE cat = 13 ORDER BY price DESC, name LIMIT 10;"
	echo "SELECT substr(name, 1, 7) AS p, count(*) FROM item GROUP BY p ORDER BY p LIMIT 10;"
	echo "UPDATE item SET price = price * 2 WHERE id % 3 = 0;"
	echo "DELETE FROM item WHERE id % 5 = 0;"
	echo "SELECT count(*), round(sum(price), 2) FROM item;"
	echo "SELECT group_concat(id) FROM (SELECT id FROM item ORDER BY note DESC, id LIMIT 20);"
	echo "VACUUM;"
	echo "PRAGMA integrity_check;"
} | sqlite3 "$db"
