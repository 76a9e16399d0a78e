#!/usr/bin/env python3
"""Import loops between the crate's files: every `use crate::...` / `use super::...` (and inline
`crate::a::b::` paths) of src/ resolved to the file that defines the name (through the `pub use`
re-exports of module roots), then the strongly connected components of that graph with more
than one file. Prints each loop's files and the `use` lines that close it; exits 1 if there is
one. `--edges` prints every resolved edge with its line (what was checked).

Usage: python3 scripts/import_cycles.py [--edges]
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def module_file(parts):
    """The file of module path `parts` (under src/), or None."""
    base = SRC.joinpath(*parts) if parts else SRC
    for f in (base.with_suffix(".rs"), base / "mod.rs"):
        if f.is_file():
            return f
    if not parts:
        return SRC / "lib.rs"
    return None


def module_of(f):
    rel = f.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def reexports(f):
    """Names a module root re-exports, mapped to the module path they come from."""
    out = {}
    text = f.read_text()
    for m in re.finditer(r"pub use ((?:self::|super::)?[\w:]+)::\{?([^;]*?)\}?;", text):
        path, names = m.group(1), m.group(2)
        for n in re.split(r"[,\s]+", names):
            n = n.split(" as ")[-1].strip()
            if n and n != "self":
                out[n] = path
    return out


def resolve(parts, name, depth=0):
    """The file defining `name` under module `parts` (following re-exports)."""
    f = module_file(parts)
    if f is None or depth > 8:
        return None
    if f.name in ("mod.rs", "lib.rs"):
        src = reexports(f).get(name)
        if src is not None:
            sub = [p for p in src.replace("self::", "").split("::") if p]
            if src.startswith("super::"):
                return None
            if sub and sub[0] == "crate":
                target = sub[1:]
            else:
                target = parts + sub
            return resolve(target, name, depth + 1) or module_file(target)
    return f


def targets(f, line):
    """Files a `use` line (or inline path) of file `f` points at."""
    me = module_of(f)
    here = me if f.name in ("mod.rs", "lib.rs") else me[:-1]
    out = set()
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)(?:::\{([^}]*)\})?", line):
        head, rest, group = m.group(1), m.group(2), m.group(3)
        path = [p for p in rest.split("::") if p]
        if head == "crate":
            base = []
        else:
            base = list(here)
            while path and path[0] == "super":
                path.pop(0)
                base = base[:-1]
            base = base[:-1] if f.name not in ("mod.rs", "lib.rs") and False else base
            if f.name in ("mod.rs", "lib.rs"):
                base = base[:-1]
        names = [n.strip().split(" as ")[0] for n in group.split(",")] if group else [path.pop()]
        # the longest prefix of `path` that is a module
        mod = list(path)
        while mod and module_file(base + mod) is None:
            mod.pop()
        for n in names:
            n = n.split("::")[0].strip()
            if not n or n == "self":
                out.add(module_file(base + mod))
                continue
            sub = module_file(base + mod + [n])
            out.add(sub if sub else resolve(base + mod, n))
    out.discard(None)
    out.discard(f)
    return out


def main():
    files = [p for p in SRC.rglob("*.rs")]
    edges = {}
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith("//") or "pub mod " in s or s.startswith("mod "):
                continue
            if f.name in ("mod.rs", "lib.rs") and s.startswith("pub use"):
                continue  # a root's re-exports are followed by `resolve`, not counted as uses
            for t in targets(f, s):
                edges.setdefault(f, {}).setdefault(t, []).append(f"{f.relative_to(SRC)}:{i}: {s}")
    if "--edges" in sys.argv:
        for f, ts in sorted(edges.items()):
            for t, lines in sorted(ts.items()):
                for l in lines:
                    print(f"{l}  ->  {t.relative_to(SRC)}")
    # Tarjan's strongly connected components
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index:
            visit(v)
    for comp in comps:
        print("loop:", ", ".join(sorted(str(c.relative_to(SRC)) for c in comp)))
        for a in comp:
            for b, lines in edges.get(a, {}).items():
                if b in comp:
                    for l in lines:
                        print("   ", l)
    print(f"{len(files)} files, {sum(len(t) for t in edges.values())} file-to-file imports, {len(comps)} loops")
    sys.exit(1 if comps else 0)


if __name__ == "__main__":
    main()
