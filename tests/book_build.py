"""Where the built book is, which pages it must have (shared by the HTML and browser tests), and
the book's own Sphinx extensions as modules."""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("XAI_LAB_BOOK_HTML", ROOT / "_build" / "html"))  # override to check another build
#: Pages that are not chapters (no figure required).
NOT_CHAPTERS = {"book/intro", "book/references", "book/glossary", "book/syllabus", "book/api"}


def book_extension(name: str, root: Path = ROOT):
    """``<root>/book/_ext/<name>.py`` loaded as a module (the folder is not a package); ``root``
    another copy of the book's sources."""
    spec = importlib.util.spec_from_file_location(name, root / "book" / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toc_pages() -> list[str]:
    text = Path(os.environ.get("XAI_LAB_BOOK_TOC", ROOT / "_toc.yml")).read_text()
    return re.findall(r"(?:root|file):\s*([^\s#]+)", text)


def require_build() -> Path:
    """The built HTML folder; skipped with a reason when the book is not built, except where
    XAI_LAB_REQUIRE_BOOK=1 (CI after `make book`), where that is a failure."""
    if not (HTML / "index.html").is_file():
        message = "the book is not built (run `make book` first)"
        if os.environ.get("XAI_LAB_REQUIRE_BOOK") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return HTML
