"""The import structure of a package: floors, cycles, private names, re-exports.

    python -m tools.imports                    # mlbench/, importers in tests/ benchmarks/ tools/
    python -m tools.imports --modules          # floors per module instead of per room
    python -m tools.imports path/to/pkg --also other/dir --json

Every ``import`` and ``from ... import`` of the package's files is read with ``ast``, at
module level and inside functions alike (an import inside a function still ties the two
files). A *room* is a top-level module or sub-package of the package (a folder is one room,
as ``ls`` shows it); an arrow A -> B is an import of B's code by A's. The *floor* of a room
is the length of the longest chain of arrows below it (floor 1 imports nothing of the
package), so no arrow runs up a floor unless there is a cycle. Printed:

- the rooms per floor (or modules, ``--modules``) and the number of floors;
- cycles: strongly connected components of the module graph and of the room graph;
- private names crossing files: ``from M import _name`` or ``M._name`` where ``M`` is
  another module of the package (the name is public, or lives in one file);
- re-exports outside package faces: an import marked ``# noqa: F401`` in a module that is
  not an ``__init__.py``, or a face (``__init__.py``) handing on a name of another package;
- two import paths: a name a package face exports, imported from its submodule by a file
  outside that package (the convention: outside a package, through its face; inside, from
  the submodule).

The ``--also`` folders (default ``tests benchmarks tools`` when they exist) are importers
only: their private-name and two-path imports of the package are reported, they are not
rooms. Exit code 0 always (a report), unless ``--check``: 1 when any cycle, private import,
re-export or second path is found.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Module:
    name: str  # dotted, e.g. mlbench.driver.worker
    path: Path
    is_face: bool  # an __init__.py
    imports: list = field(default_factory=list)  # Import rows
    exports: dict = field(default_factory=dict)  # face: name -> module it is taken from


@dataclass
class Import:
    source: str  # the importing module (or file, for --also)
    target: str  # the imported module of the package
    names: list  # names taken ``from`` it ([] for ``import M``)
    line: int
    noqa_f401: bool = False


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_face: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_face:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _noqa(lines: list[str], node: ast.stmt) -> bool:
    end = getattr(node, "end_lineno", node.lineno) or node.lineno
    text = "\n".join(lines[node.lineno - 1:end])
    return "noqa: F401" in text or "noqa:F401" in text


def read_imports(path: Path, name: str, is_face: bool, known: set[str]) -> list[Import]:
    """The imports of one file that land in ``known`` modules."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text, filename=str(path))
    out: list[Import] = []
    aliases: dict[str, str] = {}  # local name -> in-tree module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known or any(a.name.startswith(k + ".") for k in known):
                    target = _longest(a.name, known)
                    if target:
                        out.append(Import(name, target, [], node.lineno, _noqa(lines, node)))
                        if a.asname:
                            aliases[a.asname] = a.name
                        else:  # ``import a.b`` binds ``a``
                            aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_face, node)
            if not base or _longest(base, known) is None:
                continue
            plain = []
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:  # ``from pkg import submodule``
                    out.append(Import(name, sub, [], node.lineno, _noqa(lines, node)))
                    aliases[a.asname or a.name] = sub
                else:
                    plain.append(a.name)
            if plain:
                out.append(Import(name, _longest(base, known), plain, node.lineno,
                                  _noqa(lines, node)))
        elif isinstance(node, ast.Call) and _dynamic(node):
            target = _longest(node.args[0].value, known)
            if target:  # ``__import__("pkg.mod")``, ``importlib.import_module("pkg.mod")``
                out.append(Import(name, target, [], node.lineno))
    # ``alias._name``: a private attribute of an in-tree module
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain = _dotted(node.value)
            if chain is None:
                continue
            head, _, rest = chain.partition(".")
            if head in aliases:
                mod = aliases[head] + ("." + rest if rest else "")
                if mod in known:
                    out.append(Import(name, mod, [node.attr], node.lineno))
    return out


def _dynamic(node: ast.Call) -> bool:
    fn = node.func
    named = (isinstance(fn, ast.Name) and fn.id in ("__import__", "import_module")) or (
        isinstance(fn, ast.Attribute) and fn.attr == "import_module")
    return (named and bool(node.args) and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _longest(dotted: str, known: set[str]) -> str | None:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in known:
            return cand
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def scan(root: Path) -> dict[str, Module]:
    """Every module of the package at ``root`` with its in-package imports."""
    root = root.resolve()
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    mods = {module_name(root, p): Module(module_name(root, p), p, p.name == "__init__.py")
            for p in files}
    known = set(mods)
    for m in mods.values():
        m.imports = read_imports(m.path, m.name, m.is_face, known)
        if m.is_face:
            m.exports = _face_exports(m, known)
    return mods


def _face_exports(face: Module, known: set[str]) -> dict[str, str]:
    """Names a face takes from modules at module level (what it hands on)."""
    tree = ast.parse(face.path.read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = _resolve(face.name, True, node)
            for a in node.names:
                if f"{base}.{a.name}" not in known:
                    out[a.asname or a.name] = base
    return out


def room_of(module: str, package: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def graph(mods: dict[str, Module], rooms: bool) -> dict[str, set[str]]:
    package = next(iter(mods)).split(".")[0]
    key = (lambda m: room_of(m, package)) if rooms else (lambda m: m)
    g: dict[str, set[str]] = {key(m): set() for m in mods}
    for m in mods.values():
        for imp in m.imports:
            a, b = key(m.name), key(imp.target)
            if a != b:
                g[a].add(b)
    return g


def components(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted; singletons without a self-loop
    are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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
            if len(comp) > 1 or v in g[v]:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(g) + 100))
    try:
        for v in sorted(g):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(out)


def floors(g: dict[str, set[str]]) -> dict[str, int]:
    """Floor of each node: 1 + the longest chain below it (over the condensation, so a cycle
    shares one floor)."""
    comp_of: dict[str, int] = {}
    comps = components(g)
    for i, c in enumerate(comps):
        for v in c:
            comp_of[v] = i
    for v in g:
        comp_of.setdefault(v, len(comps) + len(comp_of))
    members: dict[int, list[str]] = {}
    for v, c in comp_of.items():
        members.setdefault(c, []).append(v)
    memo: dict[int, int] = {}

    def level(c: int) -> int:
        if c not in memo:
            memo[c] = 0  # guard (a condensation has no cycles)
            below = {comp_of[w] for v in members[c] for w in g[v]} - {c}
            memo[c] = 1 + max((level(b) for b in below), default=0)
        return memo[c]

    return {v: level(comp_of[v]) for v in g}


def private_imports(rows: list[Import]) -> list[Import]:
    return [r for r in rows if any(_private(n) for n in r.names) and r.source != r.target]


def reexports(mods: dict[str, Module]) -> list[tuple[str, int, str]]:
    """(module, line, why) of re-exports outside package faces."""
    out = []
    for m in mods.values():
        for imp in m.imports:
            if imp.noqa_f401 and not m.is_face:
                out.append((m.name, imp.line, f"`# noqa: F401` import of {imp.target}"))
        if m.is_face:
            own = m.name + "."
            for name, src in sorted(m.exports.items()):
                if not src.startswith(own):
                    out.append((m.name, 0, f"face hands on {name} of {src}"))
    # the same line can be read once per name list; keep one row each
    return sorted(set(out))


def second_paths(mods: dict[str, Module], rows: list[Import]) -> list[tuple[Import, str]]:
    """Imports of a face-exported name from its submodule by a file outside that package."""
    faces = {m.name: m for m in mods.values() if m.is_face and m.exports}
    out = []
    for r in rows:
        for face_name, face in faces.items():
            if not r.target.startswith(face_name + "."):
                continue
            if r.source == face_name or r.source.startswith(face_name + "."):
                continue  # inside the package: from the submodule
            for n in r.names:
                if n in face.exports and face.exports[n] == r.target:
                    out.append((r, f"{face_name}.{n}"))
    return out


def also_imports(dirs: list[Path], mods: dict[str, Module]) -> list[Import]:
    """The package imports of the files under ``dirs`` (importers only)."""
    known = set(mods)
    out = []
    for d in dirs:
        for p in sorted(d.rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            try:
                rows = read_imports(p, str(p), False, known)
            except SyntaxError:
                continue
            out += rows
    return out


def measure(root: Path, also: list[Path]) -> dict:
    mods = scan(root)
    package = root.resolve().name
    rooms_g = graph(mods, rooms=True)
    mods_g = graph(mods, rooms=False)
    inside = [i for m in mods.values() for i in m.imports]
    outside = also_imports(also, mods)
    return {
        "package": package,
        "mods": mods,
        "rooms": rooms_g,
        "modules": mods_g,
        "room_floors": floors(rooms_g),
        "module_floors": floors(mods_g),
        "room_cycles": components(rooms_g),
        "module_cycles": components(mods_g),
        "private": private_imports(inside + outside),
        "reexports": reexports(mods),
        "second_paths": second_paths(mods, inside + outside),
    }


def _where(name: str, mods: dict[str, Module], root: Path) -> str:
    m = mods.get(name)
    if m is None:
        return name  # a file of --also
    path = m.path.relative_to(root.resolve().parent)
    if m.is_face and name.count(".") == 1:
        return str(path.parent) + "/"
    return str(path)


def report(res: dict, root: Path, per_module: bool) -> str:
    mods = res["mods"]
    g = res["modules" if per_module else "rooms"]
    fl = res["module_floors" if per_module else "room_floors"]
    lines_of = {m.name: len(m.path.read_text(encoding="utf-8").splitlines())
                for m in mods.values()}
    size: dict[str, int] = {}
    for m, n in lines_of.items():
        k = m if per_module else room_of(m, res["package"])
        size[k] = size.get(k, 0) + n
    arrows = sum(len(v) for v in g.values())
    top = max(fl.values(), default=0)
    unit = "modules" if per_module else "rooms"
    out = [f"{res['package']}: {len(g)} {unit}, {top} floors, {arrows} arrows, "
           f"{len(res['module_cycles'])} module cycles, {len(res['room_cycles'])} room cycles"]
    for f in range(top, 0, -1):
        names = sorted(n for n, x in fl.items() if x == f)
        shown = []
        for n in names:
            label = n if per_module else _room_label(n, mods, root)
            shown.append(f"{label} ({size.get(n, 0)})")
        out.append(f"floor {f:2d}  " + ", ".join(shown))
    out.append("")
    out.append("cycles (modules importing each other):" + ("" if res["module_cycles"] else " none"))
    for c in res["module_cycles"]:
        out.append("  " + " <-> ".join(c))
    out.append("cycles (rooms importing each other):" + ("" if res["room_cycles"] else " none"))
    for c in res["room_cycles"]:
        out.append("  " + " <-> ".join(c))
    out.append("private names imported across modules:" + ("" if res["private"] else " none"))
    for r in res["private"]:
        names = ", ".join(n for n in r.names if _private(n))
        out.append(f"  {_where(r.source, mods, root)}:{r.line}: {names} from {r.target}")
    out.append("re-exports outside package faces:" + ("" if res["reexports"] else " none"))
    for mod, line, why in res["reexports"]:
        out.append(f"  {_where(mod, mods, root)}" + (f":{line}" if line else "") + f": {why}")
    out.append("names imported by a second path (a face exports them):"
               + ("" if res["second_paths"] else " none"))
    for r, face in res["second_paths"]:
        out.append(f"  {_where(r.source, mods, root)}:{r.line}: from {r.target} (face: {face})")
    return "\n".join(out) + "\n"


def _room_label(room: str, mods: dict[str, Module], root: Path) -> str:
    m = mods[room]
    rel = m.path.relative_to(root.resolve().parent)
    return str(rel.parent) + "/" if m.is_face else str(rel)


def problems(res: dict) -> int:
    return (len(res["module_cycles"]) + len(res["room_cycles"]) + len(res["private"])
            + len(res["reexports"]) + len(res["second_paths"]))


def as_json(res: dict, root: Path) -> dict:
    mods = res["mods"]
    return {
        "package": res["package"],
        "rooms": {r: sorted(v) for r, v in res["rooms"].items()},
        "room_floors": res["room_floors"],
        "module_floors": res["module_floors"],
        "floors": max(res["room_floors"].values(), default=0),
        "arrows": sum(len(v) for v in res["rooms"].values()),
        "room_cycles": res["room_cycles"],
        "module_cycles": res["module_cycles"],
        "private": [{"file": _where(r.source, mods, root), "line": r.line, "from": r.target,
                     "names": [n for n in r.names if _private(n)]} for r in res["private"]],
        "reexports": [{"module": m, "line": line, "why": why}
                      for m, line, why in res["reexports"]],
        "second_paths": [{"file": _where(r.source, mods, root), "line": r.line,
                          "from": r.target, "face": face} for r, face in res["second_paths"]],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.imports",
        description=__doc__.split("\n\n")[0] + " Floors, rooms, cycles, private names "
        "crossing files, re-exports outside package faces, second import paths.",
    )
    p.add_argument("package", nargs="?", default="mlbench",
                   help="the package folder (default mlbench)")
    p.add_argument("--also", nargs="*", default=None, metavar="DIR",
                   help="folders whose files import the package (default: tests benchmarks "
                   "tools, those that exist beside it)")
    p.add_argument("--modules", action="store_true", help="floors per module, not per room")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a cycle, private import, re-export or second path is found")
    args = p.parse_args(argv)
    root = Path(args.package)
    if not (root / "__init__.py").is_file():
        p.error(f"{root} is not a package folder (no __init__.py)")
    if args.also is None:
        base = root.resolve().parent
        also = [base / d for d in ("tests", "benchmarks", "tools") if (base / d).is_dir()]
    else:
        also = [Path(d) for d in args.also]
    res = measure(root, also)
    if args.json:
        print(json.dumps(as_json(res, root), indent=1))
    else:
        print(report(res, root, args.modules), end="")
    return 1 if args.check and problems(res) else 0


if __name__ == "__main__":
    raise SystemExit(main())
