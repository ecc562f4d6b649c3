#!/usr/bin/env python3
"""test_include_graph.py - the engine's dependency graph points one way.

engine/src is cut into subsystem folders, layered from the bottom up as engine/CMakeLists.txt
lists them (kernels, format, tokenizer, model, json, runtime). This test reads that order and
checks two graphs over the engine's modules (a module is a .c file with its .h of the same name,
or a header on its own):
  - includes: what each file #includes from engine/src;
  - links: which module's object file uses a function or variable another one defines (from
    `nm` on libedgelm.a, so calls through a shared header are seen too).
Both must be free of cycles, and no edge may go from a lower folder to a higher one.
Usage: test_include_graph.py ENGINE_DIR [LIBEDGELM_A [NM]]   (without the library: includes only)
"""
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def layer_order(engine_dir):
    text = open(os.path.join(engine_dir, "CMakeLists.txt")).read()
    m = re.search(r"set\(EDGELM_SUBSYSTEMS ([a-z_ ]+)\)", text)
    if not m:
        sys.exit("engine/CMakeLists.txt: no set(EDGELM_SUBSYSTEMS ...) line")
    return m.group(1).split()


def module_of(rel):
    """'tokenizer/tokenizer_bpe.c' -> 'tokenizer/tokenizer_bpe'."""
    return os.path.splitext(rel)[0]


def folder_of(module):
    return module.split("/", 1)[0]


def include_edges(src):
    edges = {}
    for d, _, names in os.walk(src):
        for name in names:
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, src)
            mod = module_of(rel)
            edges.setdefault(mod, set())
            for inc in INCLUDE.findall(open(path, encoding="utf-8").read()):
                # quote includes: the including file's folder first, then engine/src
                for base in (d, src):
                    target = os.path.normpath(os.path.join(base, inc))
                    if os.path.isfile(target):
                        break
                else:
                    continue  # edgelm.h (public) and system headers
                target_mod = module_of(os.path.relpath(target, src))
                if target_mod != mod:
                    edges[mod].add((target_mod, "includes"))
    return edges


def link_edges(src, library, nm):
    out = subprocess.run([nm, "-A", library], check=True, capture_output=True, text=True).stdout
    defined, used = {}, {}
    by_object = {}
    for d, _, names in os.walk(src):
        for name in names:
            if name.endswith(".c"):
                by_object[name + ".o"] = module_of(os.path.relpath(os.path.join(d, name), src))
    # "libedgelm.a:tokenizer_bpe.c.o:0000000000000150 T tok_bpe_encode" (no address for U)
    row = re.compile(r"^.*?:([^:/]+\.o):\s*(?:[0-9a-fA-F]+)?\s+(\S)\s+(\S+)$")
    for line in out.splitlines():
        m = row.match(line)
        if not m:
            continue
        obj, kind, sym = m.groups()
        mod = by_object.get(obj)
        if mod is None:
            continue
        if kind == "U":
            used.setdefault(mod, set()).add(sym)
        elif kind in "TDBRVW":
            defined[sym] = mod
    edges = {}
    for mod, syms in used.items():
        for sym in syms:
            target = defined.get(sym)
            if target is not None and target != mod:
                edges.setdefault(mod, set()).add((target, "uses " + sym))
    return edges


def cycles(edges):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    nodes = sorted(set(edges) | {t for ts in edges.values() for t, _ in ts})
    succ = {n: sorted({t for t, _ in edges.get(n, ())}) for n in nodes}
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(succ[node]):
                work.append((node, i + 1))
                nxt = succ[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def merge(*graphs):
    out = {}
    for graph in graphs:
        for k, v in graph.items():
            out.setdefault(k, set()).update(v)
    return out


def main():
    if len(sys.argv) not in (2, 3, 4):
        sys.exit(__doc__.strip().splitlines()[-1])
    engine = sys.argv[1]
    src = os.path.join(engine, "src")
    order = layer_order(engine)
    rank = {f: i for i, f in enumerate(order)}
    graphs = [("include", include_edges(src))]
    if len(sys.argv) >= 3:
        nm = sys.argv[3] if len(sys.argv) == 4 else "nm"
        graphs.append(("link", link_edges(src, sys.argv[2], nm)))
    failures = 0
    checks = 0
    for mod in sorted(graphs[0][1]):
        checks += 1
        if folder_of(mod) not in rank:
            print(f"FAIL: engine/src/{mod}: folder '{folder_of(mod)}' is not in EDGELM_SUBSYSTEMS")
            failures += 1
    for name, edges in graphs + [("include + link", merge(*[g for _, g in graphs]))]:
        for mod, targets in sorted(edges.items()):
            for target, why in sorted(targets):
                checks += 1
                a, b = rank.get(folder_of(mod), -1), rank.get(folder_of(target), -1)
                if b > a:
                    print(f"FAIL: {name} graph: {mod} ({folder_of(mod)}) {why} from "
                          f"{target} ({folder_of(target)}), a higher layer")
                    failures += 1
        checks += 1
        for component in cycles(edges):
            print(f"FAIL: {name} graph: a cycle among {', '.join(component)}")
            failures += 1
    n_modules = len(graphs[0][1])
    print(f"test_include_graph: {n_modules} modules, layers {' < '.join(order)}; "
          f"{checks} checks, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
