"""The API page (book/api.md) documents every public module of the package, so a new module
cannot be left out of the reference."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def public_modules() -> set[str]:
    names = set()
    for path in (ROOT / "xai_lab").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") for p in parts[1:] if p != "__init__"):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if len(parts) > 1:  # a subpackage's __init__ re-exports its modules, which are listed
                continue
        names.add(".".join(parts))
    return names


def test_the_api_page_lists_every_public_module():
    listed = set(re.findall(r"^\.\. automodule:: ([\w.]+)", (ROOT / "book" / "api.md").read_text(encoding="utf-8"),
                            flags=re.M))
    modules = public_modules()
    assert len(modules) > 30
    assert not modules - listed, f"book/api.md does not document {sorted(modules - listed)}"
    assert not listed - modules, f"book/api.md documents modules that do not exist: {sorted(listed - modules)}"
