"""The intro's map of the chapters and the syllabus name every chapter of the table of contents,
so a new chapter cannot be left out of either."""
import re

import pytest

from .book_build import NOT_CHAPTERS, ROOT, toc_pages

CHAPTERS = [page for page in toc_pages() if page not in NOT_CHAPTERS]


def linked(page: str) -> set[str]:
    text = (ROOT / page).with_suffix(".md").read_text(encoding="utf-8")
    return set(re.findall(r"\]\(([\w-]+)\)", text))


@pytest.mark.parametrize("page", ["book/intro", "book/syllabus"])
def test_every_chapter_is_linked(page):
    assert len(CHAPTERS) > 15
    missing = [c for c in CHAPTERS if c.removeprefix("book/") not in linked(page)]
    assert not missing, f"{page}.md does not link {missing}"
