"""The package's layers, checked on its source: each module imports only from layers below it
(DESIGN.md), and no module imports another module's private (underscore) names."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xai_lab"

#: What a part of the package must never import (dotted prefixes inside xai_lab).
NEVER = {
    "methods": ("xai_lab.metrics", "xai_lab.plot", "xai_lab.experiments", "xai_lab.cli", "xai_lab.explain"),
    "models": ("xai_lab.methods", "xai_lab.metrics", "xai_lab.experiments", "xai_lab.plot", "xai_lab.explain"),
    "data": ("xai_lab.methods", "xai_lab.metrics", "xai_lab.experiments", "xai_lab.plot", "xai_lab.explain"),
    "registry": ("xai_lab.methods", "xai_lab.explain", "xai_lab.context", "xai_lab.metrics"),
    "context": ("xai_lab.methods", "xai_lab.explain", "xai_lab.metrics"),
    "ops": ("xai_lab.methods", "xai_lab.explain", "xai_lab.context", "xai_lab.registry", "xai_lab.metrics"),
    "stats": ("xai_lab.methods", "xai_lab.explain", "xai_lab.metrics", "xai_lab.models"),
    "metrics": ("xai_lab.experiments", "xai_lab.plot", "xai_lab.cli"),
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, path.name == "__init__.py"


def _imports(name: str, path: Path, is_package: bool):
    """(absolute module, imported names) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names]


MODULES = list(_modules())


@pytest.mark.parametrize("name,path,is_package", MODULES, ids=[m[0] for m in MODULES])
def test_imports_go_only_downwards(name, path, is_package):
    part = name.split(".")[1] if "." in name else ""
    forbidden = NEVER.get(part, ())
    for module, names in _imports(name, path, is_package):
        targets = [module] + [f"{module}.{n}" for n in names]
        bad = [t for t in targets for f in forbidden if t == f or t.startswith(f + ".")]
        assert not bad, f"{name} imports {bad[0]}, above its layer"
        assert not module.startswith(("book", "benchmarks")), f"{name} imports {module}"


@pytest.mark.parametrize("name,path,is_package", MODULES, ids=[m[0] for m in MODULES])
def test_no_private_name_is_imported_from_another_module(name, path, is_package):
    for module, names in _imports(name, path, is_package):
        if module.startswith("xai_lab") and module != name:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{name} imports private {private} from {module}"
