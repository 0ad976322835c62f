"""No result typed into a chapter's prose: every decimal or percentage in the prose of a chapter
(outside code cells, formulas, roles such as {glue:}`...` and inline code) is on the chapter's
list of definitional numbers below (option values, the level of an interval, license versions,
settings the text describes). A new typed number fails this test: glue it from the cell that
computes it, write a fact the project defines as a substitution (``{{ interval_level }}``, from
``book/_ext/package_facts.py``), or, if it is definitional, add it here and say why in the commit.
An allowance the text no longer uses fails too, so the list stays the text's."""
import re
from collections import Counter
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

#: chapter -> the definitional numbers its prose may contain (each as often as listed)
DEFINITIONAL = {
    "comparison.md": ["10 %"],                                      # the fraction removed (a setting)
    "concepts.md": ["0.5"],                                         # the exercise's threshold
    "faithfulness.md": ["10 %", "30 %", "10 %", "10 %"],            # fractions removed (settings)
    "feature_visualization.md": ["0.005", "0.05"],                  # learning rates (options)
    "gradients.md": ["15 %"],                                       # SmoothGrad's noise (default)
    "roar.md": ["90 %"],                                            # the largest fraction
}


def typed_numbers(text: str) -> list[str]:
    prose = re.sub(r"```.*?```|\$\$.*?\$\$", "", text, flags=re.S)
    prose = re.sub(r"\$[^$\n]*\$|\{[a-z:-]+\}`[^`]*`|`[^`\n]*`", "", prose)
    return re.findall(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)? ?%)", prose)


@pytest.mark.parametrize("chapter", sorted(BOOK.glob("*.md")), ids=lambda p: p.name)
def test_no_result_is_typed_in_prose(chapter):
    found = Counter(typed_numbers(chapter.read_text(encoding="utf-8")))
    allowed = Counter(DEFINITIONAL.get(chapter.name, []))
    extra = found - allowed
    assert not extra, f"{chapter.name}: typed numbers {sorted(extra.elements())}: glue them from the cell that computes them"
    stale = allowed - found
    assert not stale, f"tests/test_typed_numbers.py allows {sorted(stale.elements())} in {chapter.name}, which no longer has them"


def test_the_detector_finds_a_typed_result():
    assert typed_numbers("Accuracy was 0.83 and 12 % of pixels; `0.5` and $0.7$ are not prose.") == ["0.83", "12 %"]
