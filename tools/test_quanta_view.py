#!/usr/bin/env python3
"""Tests of tools/quanta-view: exact outcomes for hand-written dumps.

Each dump here is written as vmem_dump writes one (schema 1, with
"segments"), its figures consistent with its segments.  A test runs the tool
as a user does (a subprocess, files or stdin), parses the SVG with
xml.etree (so every picture is well-formed XML), and counts rectangles by
class: "alloc" and "free" are one segment each, "agg" sums narrower ones
(its data-segments says how many), "span added"/"span imported" is one span
piece.  Run: python3 tools/test_quanta_view.py  (prints "N passed, M failed").
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quanta-view")
SVG = "{http://www.w3.org/2000/svg}"


def dump(name, spans, segs, quantum=16, source=None):
    """A schema-1 dump of spans [(start, size, imported)] and segments
    [(start, size, state)], figures and free lists derived from them."""
    used = sum(z for _, z, st in segs if st == "alloc")
    free = [z for _, z, st in segs if st == "free"]
    lists = {}
    for z in free:
        i = z.bit_length() - 1
        n, b = lists.get(i, (0, 0))
        lists[i] = (n + 1, b + z)
    return {
        "schema": "quanta.vmem.dump/1", "name": name, "quantum": quantum,
        "qcache_max": 0, "source": source,
        "counters": {"alloc": len(segs), "free": 0, "wait": 0, "fail": 0,
                     "lookup": 0, "search": 0, "populate_fail": 0,
                     "contains": 0, "contains_search": 0, "mem_inuse": used,
                     "mem_total": sum(z for _, z, _ in spans),
                     "mem_import": sum(z for _, z, i in spans if i)},
        "figures": {"free_bytes": sum(free),
                    "largest_free": max(free, default=0),
                    "fragmentation": 0.0, "segs_alloc": len(segs) - len(free),
                    "segs_free": len(free), "hash_buckets": 16,
                    "spare_tags": 0},
        "spans": [{"start": a, "size": z, "imported": i}
                  for a, z, i in spans],
        "segments": [{"start": a, "size": z, "state": st}
                     for a, z, st in segs],
        "freelists": [{"index": i, "min_size": 1 << i, "count": n,
                       "bytes": b} for i, (n, b) in sorted(lists.items())],
    }


# Two 4 KiB spans, one added, one imported; 3 allocated and 2 free segments.
TWO_SPANS = dump("two spans", [(0x100000, 0x1000, False),
                               (0x200000, 0x1000, True)],
                 [(0x100000, 0x400, "alloc"), (0x100400, 0x400, "free"),
                  (0x100800, 0x800, "alloc"), (0x200000, 0x200, "alloc"),
                  (0x200200, 0xe00, "free")])
ONE_SEG = dump("one", [(0x1000, 0x10000, False)], [(0x1000, 0x10000, "free")])


def hundred_thousand():
    """One span of 100,000 segments: 16-byte allocated, 48-byte free."""
    segs, a = [], 0x10000000
    for k in range(100000):
        z = 16 if k % 2 == 0 else 48
        segs.append((a, z, "alloc" if z == 16 else "free"))
        a += z
    return dump("big", [(0x10000000, a - 0x10000000, False)], segs)


class ViewTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="quanta-view-test.")

    def tearDown(self):
        self.dir.cleanup()

    def file(self, name, content):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(content if isinstance(content, str)
                     else json.dumps(content))
        return path

    def run_tool(self, *args, stdin=None):
        return subprocess.run([sys.executable, TOOL, *args], input=stdin,
                              capture_output=True, text=True, timeout=60)

    def svg_of(self, *inputs, stdin=None):
        out = os.path.join(self.dir.name, "out.svg")
        r = self.run_tool(*inputs, "-o", out, stdin=stdin)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        return ET.parse(out).getroot()

    @staticmethod
    def rects(root, cls):
        return [e for e in root.iter(SVG + "rect") if e.get("class") == cls]

    @staticmethod
    def texts(root):
        return [e.text for e in root.iter(SVG + "text")]

    def test_every_segment_of_a_small_dump_is_one_rectangle_of_its_state(self):
        root = self.svg_of(self.file("two.json", TWO_SPANS))
        counts = {c: len(self.rects(root, c)) for c in (
            "alloc", "free", "agg", "alloc cont", "free cont",
            "span added", "span imported", "hist")}
        self.assertEqual(counts, {"alloc": 3, "free": 2, "agg": 0,
                                  "alloc cont": 0, "free cont": 0,
                                  "span added": 1, "span imported": 1,
                                  "hist": 2})
        # 8192 bytes on one 960-pixel row: 1 KiB is 120 pixels.
        self.assertEqual(self.rects(root, "alloc")[0].get("width"), "120.00")

    def test_the_totals_show_the_exact_figures(self):
        root = self.svg_of(self.file("two.json", TWO_SPANS))
        totals = [e.text for e in root.iter(SVG + "text")
                  if e.get("class") == "totals"]
        self.assertEqual(totals, [
            "in use 3584 bytes, free 4608 bytes, imported 4096 bytes, "
            "total 8192 bytes",
            "largest free 3584 bytes, fragmentation 0.222 (1 - largest free "
            "/ free), 2 spans, 3 allocated and 2 free segments"])
        self.assertIn("arena two spans", self.texts(root))

    def test_the_histogram_has_one_bar_per_nonempty_free_list(self):
        root = self.svg_of(self.file("two.json", TWO_SPANS))
        bars = [(e.get("data-list"), e.get("data-count"))
                for e in self.rects(root, "hist")]
        self.assertEqual(bars, [("10", "1"), ("11", "1")])

    def test_an_arena_of_one_segment_is_one_full_row(self):
        root = self.svg_of(self.file("one.json", ONE_SEG))
        free = self.rects(root, "free")
        self.assertEqual(len(free), 1)
        self.assertEqual(len(self.rects(root, "alloc")), 0)
        self.assertEqual(free[0].get("width"), "960.00")

    def test_a_segment_cut_by_a_row_end_continues_on_the_next_row(self):
        # 101 segments: 2 rows of 960 px for 30,720 bytes, 16 bytes a pixel.
        # 100 of 96 bytes (6 px), alternately allocated and free, then one
        # allocated [9600, 30720), cut at byte 15360 where row 1 ends.
        segs = [(0x1000 + 96 * k, 96, "alloc" if k % 2 == 0 else "free")
                for k in range(100)] + [(0x1000 + 9600, 21120, "alloc")]
        root = self.svg_of(self.file("cut.json", dump(
            "cut", [(0x1000, 30720, False)], segs)))
        counts = {c: len(self.rects(root, c)) for c in (
            "alloc", "free", "agg", "alloc cont", "free cont", "span added")}
        self.assertEqual(counts, {"alloc": 51, "free": 50, "agg": 0,
                                  "alloc cont": 1, "free cont": 0,
                                  "span added": 2})
        self.assertEqual([(e.get("x"), e.get("width")) for e in
                          self.rects(root, "alloc cont")], [("140.0",
                                                             "960.00")])

    def test_100000_segments_are_summed_into_rectangles_a_pixel_wide(self):
        root = self.svg_of(self.file("big.json", hundred_thousand()))
        agg = self.rects(root, "agg")
        self.assertEqual(len(self.rects(root, "alloc")), 0)
        self.assertEqual(len(self.rects(root, "free")), 0)
        self.assertEqual(sum(int(e.get("data-segments")) for e in agg),
                         100000)
        # 3.2 MB over 40 rows of 960 pixels (83.3 bytes a pixel): one span
        # in 40 pieces of 80,000 bytes (no segment cut), and a rectangle
        # closes once it is 1 px wide: 16 + 48 + 16 + 48 bytes = 1.54 px,
        # 4 segments each.
        self.assertEqual(len(self.rects(root, "span added")), 40)
        self.assertEqual([int(e.get("data-segments")) for e in agg],
                         [4] * 25000)
        # 1 - 48 / 2,400,000 is 0.99998: not rounded up to 1.000.
        self.assertIn("largest free 48 bytes, fragmentation 0.999980 (1 - "
                      "largest free / free), 1 spans, 50000 allocated and "
                      "50000 free segments", self.texts(root))

    def test_stdin_and_a_file_draw_the_same_picture(self):
        a = self.svg_of(self.file("two.json", TWO_SPANS))
        b = self.svg_of("-", stdin=json.dumps(TWO_SPANS))
        strip = [ET.tostring(e) for e in a.iter(SVG + "rect")]
        self.assertEqual(strip, [ET.tostring(e) for e in b.iter(SVG + "rect")])

    def test_stdin_that_is_not_a_dump_is_refused_as_stdin(self):
        r = self.run_tool("-", stdin="[]")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (
            2, "", "quanta-view: (stdin): not a quanta dump: an empty JSON "
                   "array\n"))

    def test_several_dumps_are_stacked_one_panel_each(self):
        arr = self.file("arr.json", [TWO_SPANS, ONE_SEG])
        root = self.svg_of(arr, self.file("one.json", ONE_SEG))
        names = [t for t in self.texts(root) if t.startswith("arena ")]
        self.assertEqual(names, ["arena two spans", "arena one",
                                 "arena one"])
        self.assertEqual(len(self.rects(root, "free")), 4)

    def refused(self, content, message):
        path = self.file("bad.json", content)
        r = self.run_tool(path, "-o", os.path.join(self.dir.name, "x.svg"))
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (2, "", "quanta-view: %s: %s\n" % (path, message)))
        self.assertFalse(os.path.exists(os.path.join(self.dir.name, "x.svg")))

    def test_a_text_file_is_refused_with_its_name_and_status_2(self):
        self.refused("arena small: quantum 0x40\n",
                     "not a quanta dump: not JSON (Expecting value: line 1 "
                     "column 1 (char 0))")

    def test_json_without_a_schema_is_refused(self):
        self.refused({"name": "x"}, 'not a quanta dump: no "schema" key')

    def test_another_schema_is_refused(self):
        d = dict(ONE_SEG, schema="quanta.vmem.dump/2")
        self.refused(d, 'not a quanta dump: schema "quanta.vmem.dump/2", '
                        'this tool reads "quanta.vmem.dump/1"')

    def test_a_dump_without_segments_is_refused(self):
        d = {k: v for k, v in ONE_SEG.items() if k != "segments"}
        self.refused(d, 'not a quanta dump: no "segments" key (a dump older '
                        'than the viewer)')

    def test_a_segment_outside_every_span_is_refused(self):
        d = json.loads(json.dumps(ONE_SEG))
        d["segments"][0]["start"] = 0x800
        self.refused(d, "not a quanta dump: segment [0x800, 0x10800) lies "
                        "in no span")

    def test_segments_that_disagree_with_the_counters_are_refused(self):
        d = json.loads(json.dumps(TWO_SPANS))
        d["counters"]["mem_inuse"] = 1
        self.refused(d, "not a quanta dump: segments hold 3584 allocated and "
                        "4608 free bytes, the counters say 1 and 4608")

    def test_a_bad_element_of_an_array_is_named_by_its_index(self):
        path = self.file("arr.json", [ONE_SEG, {"schema": 1}])
        r = self.run_tool(path)
        self.assertEqual((r.returncode, r.stderr), (2, (
            'quanta-view: %s[1]: not a quanta dump: "schema" is int, not '
            'str\n' % path)))

    def test_a_missing_file_is_refused_with_status_2(self):
        path = os.path.join(self.dir.name, "none.json")
        r = self.run_tool(path)
        self.assertEqual((r.returncode, r.stderr), (2, (
            "quanta-view: %s: cannot read: [Errno 2] No such file or "
            "directory: '%s'\n" % (path, path))))


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    bad = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - bad, bad))
    sys.exit(1 if bad else 0)
