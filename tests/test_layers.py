"""Arrows point down: the layers import only what lies below them (any import, also inside a
function), so a hook that must run at commit is registered by the layer that owns it instead of
being called upwards."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> packages it must never import
FORBIDDEN = {
    "app.db": ("app.security", "app.services", "app.schemas", "app.routers", "app.query"),
    "app.security": ("app.services", "app.schemas", "app.routers"),
    "app.schemas": ("app.services", "app.routers"),
    "app.query": ("app.services", "app.schemas", "app.routers"),
    "app.services": ("app.routers",),
    "app": ("workers",),
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def test_layers_import_only_downwards():
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for layer, banned in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                for name in _imports(path):
                    if any(name == b or name.startswith(b + ".") for b in banned):
                        offenders.append((module, name))
    assert offenders == []
