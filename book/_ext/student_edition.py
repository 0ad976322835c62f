"""The student edition: the same book without the exercise solutions.

A solution cell is a code cell tagged ``solution``, or, by the book's convention, the code cell
tagged ``hide-cell`` that follows a chapter's ``## Exercises`` heading. ``strip_solutions``
removes those cells from a chapter's MyST source (the cell and its code, not only its display:
the downloadable source must not hold them either); ``make book-student`` copies the book with
every chapter stripped to ``_build/student_src`` and builds it into ``_build/student``.

    python book/_ext/student_edition.py OUT_DIR      # write the stripped copy of the book
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```[ \t]*\n?", re.MULTILINE | re.DOTALL)
TAGS = re.compile(r"^:tags:\s*\[(?P<tags>[^\]]*)\]", re.MULTILINE)
EXERCISES = re.compile(r"^#+\s+Exercises\s*$", re.MULTILINE)


def _tags(body: str) -> set[str]:
    match = TAGS.search(body.split("\n\n", 1)[0])
    return {t.strip().strip("'\"") for t in match.group("tags").split(",")} if match else set()


def solution_cells(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the solution cells of a chapter's source."""
    exercises = EXERCISES.search(text)
    spans = []
    for cell in CELL.finditer(text):
        tags = _tags(cell.group("body"))
        after_exercises = exercises is not None and cell.start() > exercises.end()
        if "solution" in tags or (after_exercises and "hide-cell" in tags):
            spans.append((cell.start(), cell.end()))
    return spans


def strip_solutions(text: str) -> str:
    """The chapter's source without its solution cells."""
    for start, end in reversed(solution_cells(text)):
        text = text[:start] + text[end:]
    return text


def write_student_copy(out: Path) -> list[Path]:
    """Copy the book's sources to ``out`` with every chapter's solutions stripped; returns the
    chapters that had solutions."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(ROOT / name, out / name)
    shutil.copytree(ROOT / "book", out / "book", ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints", "__pycache__"))
    stripped = []
    for chapter in sorted((out / "book").glob("*.md")):
        text = chapter.read_text(encoding="utf-8")
        if solution_cells(text):
            chapter.write_text(strip_solutions(text), encoding="utf-8")
            stripped.append(chapter)
    return stripped


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    done = write_student_copy(Path(sys.argv[1]).resolve())
    print(f"student edition sources in {sys.argv[1]}: solutions removed from {len(done)} chapters")
