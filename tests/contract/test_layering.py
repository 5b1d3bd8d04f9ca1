"""The layering rule of DESIGN.md section 2, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "imgclf"

LAYERS = {
    "errors": 0.0, "utils": 0.1, "config": 0.2,  # L0 core, ordered inside itself
    "data": 1, "models": 1, "losses": 1, "optim": 1, "metrics": 1,
    "engine": 2, "bundle": 2,
    "evaluation": 3, "explain": 3, "robustness": 3, "export": 3, "monitor": 3,
    "api": 4, "workflows": 4.5,
    "serve": 5, "cli": 5.5, "__main__": 6,  # cli may import serve (the `serve` verb); serve never imports cli
}  # fmt: skip


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "imgclf":
                out += [(node.lineno, f"imgclf.{a.name}") for a in node.names if a.name in LAYERS]
    return out


def violations() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "__init__.py":
            continue
        pkg = _package_of(path)
        if pkg not in LAYERS:
            found.append(f"{path.relative_to(SRC.parent)}: package '{pkg}' has no layer in this test")
            continue
        for line, name in _imports(ast.parse(path.read_text(), str(path))):
            parts = name.split(".")
            if parts[0] != "imgclf" or len(parts) < 2:
                continue
            target = parts[1]
            where = f"{path.relative_to(SRC.parent)}:{line}"
            if target == pkg:
                continue
            if target not in LAYERS:
                found.append(f"{where}: imports unknown package imgclf.{target}")
            elif LAYERS[target] >= LAYERS[pkg]:
                found.append(f"{where}: {pkg} (L{LAYERS[pkg]}) imports {name} (L{LAYERS[target]})")
            elif any(p.startswith("_") for p in parts[2:]):
                found.append(f"{where}: imports private module {name}; use the package's public __init__")
    return found


def test_imports_point_down_the_layers() -> None:
    problems = violations()
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    tree = ast.parse("from imgclf.api import fit\nimport imgclf.engine._loop\n")
    names = [n for _, n in _imports(tree)]
    assert names == ["imgclf.api", "imgclf.engine._loop"]
    assert LAYERS["api"] > LAYERS["data"]
