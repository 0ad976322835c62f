"""No result typed into a chapter's prose: every decimal or percentage in the prose of a chapter
(outside code cells, formulas, roles such as {glue:}`...` and inline code) is on the chapter's
list of definitional numbers below (option values, the level of an interval, licence versions,
settings the text describes). A new typed number fails this test: glue it from the cell that
computes it, or, if it is definitional, add it here and say why in the commit."""
import re
from collections import Counter
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

#: chapter -> the definitional numbers its prose may contain (each as often as listed)
DEFINITIONAL = {
    "cam_family.md": ["0.3"],                                       # Smooth Grad-CAM++'s sigma option
    "comparison.md": ["95 %", "10 %"],                              # interval level; fraction removed
    "concepts.md": ["4.0", "0.5"],                                  # licence version; an option value
    "failure_modes.md": ["0.3", "0.5", "0.7"],                      # the fractions the exercise asks for
    "faithfulness.md": ["10 %", "30 %", "10 %", "10 %"],            # fractions removed (settings)
    "feature_visualization.md": ["0.005", "0.05"],                  # learning rates (options)
    "gradients.md": ["15 %", "0.05", "0.3"],                        # SmoothGrad's noise (default, exercise)
    "lime_anchors.md": ["0.25", "0.5"],                             # LIME's kernel width; anchors' p_sample
    "msld_explained.md": ["4.0", "0.90", "4.0", "95 %", "20 %", "0.5"],  # licence; the goal; level; settings
    "msld_training.md": ["4.0", "4.0", "0.2", "0.2", "20 %", "20 %", "95 %", "95 %", "0.5", "0.90", "0.5"],
    "occlusion_rise.md": ["0.5"],                                   # RISE's keep probability
    "roar.md": ["90 %", "95 %", "95 %"],                            # the largest fraction; interval level
    "shapley.md": ["4.0"],                                          # licence version
    "shortcut.md": ["95 %", "95 %"],                                # interval level
    "shortcut_fix.md": ["95 %"],                                    # interval level
    "syllabus.md": ["3.11"],                                        # the Python version
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


def test_the_detector_finds_a_typed_result():
    assert typed_numbers("Accuracy was 0.83 and 12 % of pixels; `0.5` and $0.7$ are not prose.") == ["0.83", "12 %"]
