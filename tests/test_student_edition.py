"""The student edition strips exactly the exercise solutions from every chapter."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "book" / "_ext" / "student_edition.py")
student_edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_edition)

CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md") if "## Exercises" in p.read_text(encoding="utf-8"))


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
