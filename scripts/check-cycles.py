#!/usr/bin/env python3
"""Fails when the module graph has a cycle.

A module is src/<layer>/<name>.c with include/ot/<layer>/<name>.h (either may
be alone); it depends on every module whose header its .c or .h includes
("ot/<layer>/<name>.h"). check-layers.sh forbids edges to a higher layer; this
also catches cycles inside one layer (docs/ARCHITECTURE.md, "Layers").
Usage: scripts/check-cycles.py [root]"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
inc = re.compile(r'^\s*#\s*include\s*"ot/([^"]+)\.h"', re.M)
deps = {}
for base, prefix in (("src", ""), ("include/ot", "")):
    for dirpath, _, files in os.walk(os.path.join(root, base)):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            layer = os.path.basename(dirpath)
            mod = "%s/%s" % (layer, f[:-2])
            with open(os.path.join(dirpath, f), encoding="utf-8", errors="replace") as fh:
                for m in inc.findall(fh.read()):
                    if m != mod:
                        deps.setdefault(mod, set()).add(m)
            deps.setdefault(mod, set())

WHITE, GREY, BLACK = 0, 1, 2
color = {m: WHITE for m in deps}
cycles = []


def visit(m, path):
    color[m] = GREY
    path.append(m)
    for d in sorted(deps.get(m, ())):
        if color.get(d, BLACK) == GREY:
            cycles.append(path[path.index(d):] + [d])
        elif color.get(d) == WHITE:
            visit(d, path)
    path.pop()
    color[m] = BLACK


sys.setrecursionlimit(10000)
for m in sorted(deps):
    if color[m] == WHITE:
        visit(m, [])
for c in cycles:
    print("check-cycles: " + " -> ".join(c), file=sys.stderr)
if cycles:
    sys.exit(1)
print("check-cycles: ok (%d modules, %d edges, no cycle)" % (len(deps), sum(len(v) for v in deps.values())))
