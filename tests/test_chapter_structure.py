"""Every chapter is laid out for a course: prerequisites next to what it teaches, a summary and a
limitations box before the exercises, and exercises labeled by kind and time.

The conventions (book/README for authors is this docstring):

* right after the "You will learn:" list, a line ``**Prerequisites:** [A first look](first_look).``
  (chapters linked) or ``**Prerequisites:** none.``;
* before ``## Exercises``, a ``:::{admonition} Summary`` box and a
  ``:::{admonition} Limitations and pitfalls`` box;
* each numbered exercise starts with ``**[KIND, N min]**``, KIND one of run (execute and read),
  modify (change code and compare) or reason (explain or predict, then check); every chapter has
  at least one reason exercise."""
import re

import pytest

from .book_build import NOT_CHAPTERS, ROOT, toc_pages

CHAPTERS = [page for page in toc_pages() if page not in NOT_CHAPTERS]
LABEL = re.compile(r"\*\*\[(run|modify|reason), (\d+) min\]\*\*")


def outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def exercises(text: str) -> list[str]:
    """The first line of each numbered exercise of the chapter's Exercises section."""
    _, found, rest = outside_code(text).partition("\n## Exercises")
    if not found:
        return []
    section = rest.split("\n## ", 1)[0]
    return re.findall(r"^\d+\.\s+(.*)$", section, flags=re.M)


@pytest.mark.parametrize("page", CHAPTERS)
def test_prerequisites_follow_what_the_chapter_teaches(page):
    text = (ROOT / page).with_suffix(".md").read_text(encoding="utf-8")
    match = re.search(r"You will learn:\n(?:[-*] .*\n(?:  .*\n)*)+\n?\*\*Prerequisites:\*\* (.+)", text)
    assert match, f"{page}: a '**Prerequisites:**' line right after the 'You will learn:' list"
    line = match.group(1)
    assert line.strip() == "none." or re.search(r"\]\([\w-]+\)", line), f"{page}: link the prerequisite chapters"


@pytest.mark.parametrize("page", CHAPTERS)
def test_summary_and_limitations_come_before_the_exercises(page):
    text = outside_code((ROOT / page).with_suffix(".md").read_text(encoding="utf-8"))
    summary = text.find(":::{admonition} Summary")
    limits = text.find(":::{admonition} Limitations and pitfalls")
    end = text.find("\n## Exercises")
    assert summary >= 0 and limits >= 0, f"{page}: a Summary box and a 'Limitations and pitfalls' box"
    assert end < 0 or max(summary, limits) < end, f"{page}: the boxes come before the exercises"


@pytest.mark.parametrize("page", CHAPTERS)
def test_exercises_are_labeled_by_kind_and_time(page):
    items = exercises((ROOT / page).with_suffix(".md").read_text(encoding="utf-8"))
    assert items, f"{page}: an '## Exercises' section with numbered exercises"
    unlabeled = [item[:60] for item in items if not LABEL.match(item)]
    assert not unlabeled, f"{page}: start each exercise with '**[run|modify|reason, N min]**': {unlabeled}"
    assert any(LABEL.match(item).group(1) == "reason" for item in items), f"{page}: at least one reason exercise"


def test_the_label_reader():
    text = "x\n## Exercises\n\n1. **[reason, 10 min]** Why?\n2. plain\n```{code-cell}\n3. no\n```\n## Next\n4. no\n"
    assert exercises(text) == ["**[reason, 10 min]** Why?", "plain"]
    assert LABEL.match(exercises(text)[0]).groups() == ("reason", "10")
