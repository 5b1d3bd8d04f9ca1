"""The layering rule of DESIGN.md section 2, checked on every module's imports, and no import circles.

Every import counts: absolute and relative, at module level and inside functions. A module may import only
packages of strictly lower layers (plus its own package), through their public ``__init__``; and the module graph
(each import an edge from the importing file to the imported module) has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "imgclf"

LAYERS = {
    "errors": 0.0, "utils": 0.1, "config": 0.2,  # L0 core, ordered inside itself
    "data": 1, "models": 1, "losses": 1, "optim": 1, "metrics": 1,
    "tasks": 1.5,
    "engine": 2, "bundle": 2,
    "evaluation": 3, "explain": 3, "robustness": 3, "export": 3, "monitor": 3, "privacy": 3, "adapt": 3, "pretrain": 3,
    "api": 4,
    "workflows": 4.5,
    "serve": 5, "cli": 5.5, "__main__": 6,  # cli may import serve (the `serve` verb); serve never imports cli
}  # fmt: skip


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a (maybe relative) ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.AST, module: str, is_package: bool, root: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``tree`` (functions included), names resolved to
    submodules where a ``from X import name`` names one."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                path = root.parent.joinpath(*sub.split("."))
                out.append((node.lineno, sub if path.with_suffix(".py").is_file() or path.is_dir() else target))
    return out


def scan(root: Path) -> tuple[list[str], dict[str, set[str]], dict[tuple[str, str], str]]:
    """Layer violations, the module graph, and where each edge comes from (``file:line``)."""
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    top = root.name
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        graph.setdefault(module, set())
        if path == root / "__init__.py":
            continue  # the lazy top-level re-exports
        pkg = path.relative_to(root).parts[0].removesuffix(".py")
        rel = path.relative_to(root.parent)
        if pkg not in LAYERS:
            found.append(f"{rel}: package '{pkg}' has no layer in this test")
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, name in _imports(tree, module, path.name == "__init__.py", root):
            parts = name.split(".")
            if parts[0] != top or len(parts) < 2:
                continue
            graph[module].add(name)
            where.setdefault((module, name), f"{rel}:{line}")
            target = parts[1]
            loc = f"{rel}:{line}"
            if target == pkg:
                continue
            if target not in LAYERS:
                found.append(f"{loc}: imports unknown package {top}.{target}")
            elif LAYERS[target] >= LAYERS[pkg]:
                found.append(f"{loc}: {pkg} (L{LAYERS[pkg]}) imports {name} (L{LAYERS[target]})")
            elif any(p.startswith("_") for p in parts[2:]):
                found.append(f"{loc}: imports private module {name}; use the package's public __init__")
    return found, graph, where


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-import): the import circles."""
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
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
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
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def problems(root: Path) -> list[str]:
    found, graph, where = scan(root)
    for comp in cycles(graph):
        members = set(comp)
        edges = [where[(a, b)] + f" ({a} -> {b})" for a in comp for b in sorted(graph[a]) if b in members]
        found.append("import circle: " + " <-> ".join(comp) + "; edges: " + "; ".join(edges))
    return found


def test_imports_point_down_the_layers_and_form_no_circle() -> None:
    found = problems(SRC)
    assert not found, "layering violations:\n" + "\n".join(found)


def _plant(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "imgclf"
    for name, text in {"__init__.py": "", **files}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_checker_catches_planted_violations(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {
        "data/__init__.py": "from imgclf.data._a import f\n",
        "data/_a.py": "def f():\n    from imgclf.api import fit  # upward, inside a function\n",
        "data/_b.py": "from ..engine._loop import Trainer  # relative, upward and private\n",
        "models/__init__.py": "from . import _m\n",
        "models/_m.py": "from imgclf.data import f  # sideways: a sibling of the same layer\n",
        "engine/_x.py": "from imgclf.data._a import f  # down, but into a private module\n",
        "engine/__init__.py": "from ._loop import Trainer\n",
        "engine/_loop.py": "class Trainer:\n    def run(self):\n        from imgclf.engine import _other\n",
        "engine/_other.py": "from imgclf.engine._loop import Trainer\n",
        "api/__init__.py": "def fit(): ...\n",
    })  # fmt: skip
    found = "\n".join(problems(pkg))
    assert "imgclf/data/_a.py:2: data (L1) imports imgclf.api (L4)" in found
    assert "imgclf/data/_b.py:1: data (L1) imports imgclf.engine._loop (L2)" in found
    assert "imgclf/models/_m.py:1: models (L1) imports imgclf.data (L1)" in found
    assert "imgclf/engine/_x.py:1: imports private module imgclf.data._a" in found
    assert "import circle: imgclf.engine._loop <-> imgclf.engine._other" in found
    assert "imgclf/engine/_loop.py:3" in found  # the circle names the function-level import's line


def test_checker_accepts_a_clean_tree(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {
        "data/__init__.py": "from ._a import f\n",
        "data/_a.py": "from imgclf.errors import E\n",
        "errors.py": "class E(Exception): ...\n",
        "engine/__init__.py": "from imgclf import data as D\nfrom imgclf.data import f\n",
    })  # fmt: skip
    assert problems(pkg) == []
