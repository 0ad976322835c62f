"""The student edition strips exactly the exercise solutions from every chapter."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .book_build import book_extension

ROOT = Path(__file__).resolve().parents[1]
student_edition = book_extension("student_edition")

CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md") if "## Exercises" in p.read_text(encoding="utf-8"))
TOC_PAGES = re.findall(r"(?:root|file):\s*([^\s#]+)", (ROOT / "_toc.yml").read_text(encoding="utf-8"))
#: What a solution leaves in a chapter's source, found without student_edition's own parser: the
#: "# Solution 1" comments of the solution cells, a ``solution`` tag, a Solution admonition or dropdown.
SOLUTION_MARKER = re.compile(r"#\s*Solutions?\s+\d|:tags:\s*\[[^\]]*\bsolution\b|\{(?:admonition|dropdown)\}\s*Solution")


def test_every_chapter_with_exercises_is_found():
    assert len(CHAPTERS) >= 15


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_loses_its_solutions_and_nothing_else(chapter):
    text = chapter.read_text(encoding="utf-8")
    spans = student_edition.solution_cells(text)
    assert len(spans) >= 1, f"{chapter.name}: no solution cell after its Exercises heading"
    stripped = student_edition.strip_solutions(text)
    assert student_edition.solution_cells(stripped) == []
    assert "## Exercises" in stripped
    assert stripped.count("```{code-cell}") == text.count("```{code-cell}") - len(spans)
    exercises = text.index("## Exercises")
    assert stripped[:exercises] == text[:exercises]  # the teaching before the exercises is untouched


def test_a_solution_tag_marks_a_cell_anywhere():
    text = "# T\n\n```{code-cell} ipython3\n:tags: [solution]\n\nprint(1)\n```\n\nprose\n"
    assert student_edition.strip_solutions(text) == "# T\n\n\nprose\n"


def test_the_copy_holds_the_book_without_solutions(tmp_path):
    stripped = student_edition.write_student_copy(tmp_path / "student")
    assert {p.name for p in stripped} == {p.name for p in CHAPTERS}
    assert (tmp_path / "student" / "_toc.yml").exists() and (tmp_path / "student" / "book" / "_ext").exists()
    for chapter in stripped:
        assert student_edition.solution_cells(chapter.read_text(encoding="utf-8")) == []


def test_the_script_writes_every_toc_page_and_no_solution(tmp_path):
    """What ``make book-student`` runs before its build, ``python book/_ext/student_edition.py OUT``:
    the copy has the book's toc and every page of it, and every chapter with exercises keeps its
    Exercises heading but no solution marker and no hidden cell after that heading."""
    out = tmp_path / "student"
    script = ROOT / "book" / "_ext" / "student_edition.py"
    run = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert f"solutions removed from {len(CHAPTERS)} chapters" in run.stdout
    assert (out / "_toc.yml").read_text(encoding="utf-8") == (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert len(TOC_PAGES) >= 20 and [page for page in TOC_PAGES if not (out / f"{page}.md").is_file()] == []
    assert any(SOLUTION_MARKER.search(chapter.read_text(encoding="utf-8")) for chapter in CHAPTERS)  # the marker is real
    for chapter in CHAPTERS:
        text = (out / "book" / chapter.name).read_text(encoding="utf-8")
        assert "## Exercises" in text, chapter.name
        assert SOLUTION_MARKER.search(text) is None, (chapter.name, SOLUTION_MARKER.search(text))
        assert "hide-cell" not in text[text.index("## Exercises"):], chapter.name
