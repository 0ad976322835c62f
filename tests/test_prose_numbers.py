"""No number typed into a chapter's prose unless the chapter declares it definitional.

Every number in the prose of a chapter (outside code cells, formulas, inline code, roles such as
{glue:}`...` and substitutions such as {{ interval_level }}) is a result that must be glued from
the cell that computes it, or a definitional number (the input side 224, a setting the text
describes, an architecture's channel count) that the chapter declares in a MyST comment line:

    % numbers: `224` the input side; `1280` channels of features; `0.5` the keep probability

(each number in backticks, so that the line itself reads as code to other checkers). Years
(1900-2099, as in citations) and the markers of numbered lists are not counted. A declared
number the prose no longer contains fails too, so each declaration stays the text's. A
definitional decimal or percentage reads best as code or math in the prose (`p_sample=0.5`,
$\\sigma = 0.15$), where it is not prose at all.

Figure captions (the ``mystnb.figure.caption`` of a code cell's options) are prose too: they
are read with the text and obey the same rule."""
import re
from pathlib import Path

import pytest
from myst_nb.core.read import read_myst_markdown_notebook

BOOK = Path(__file__).resolve().parents[1] / "book"
DECLARATION = re.compile(r"^% numbers:(.*)$", re.M)
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?: ?%)?(?![\w])")


def captions(text: str) -> list[str]:
    """The figure captions of the chapter's code cells (myst-nb ``mystnb.figure.caption``), read by
    myst-nb itself, so that either way of writing cell options (a YAML block between ``---`` lines
    or ``:key: value`` lines) counts."""
    found = []
    for cell in read_myst_markdown_notebook(text).cells:
        figure = (cell.metadata.get("mystnb") or {}).get("figure")
        if isinstance(figure, dict) and figure.get("caption"):
            found.append(str(figure["caption"]))
    return found


def prose(text: str) -> str:
    """The chapter's prose and figure captions: no front matter, code cells, formulas, inline code,
    roles, substitutions, link targets, comments or list markers."""
    text = "\n\n".join([text, *captions(text)])
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    text = re.sub(r"```.*?```|\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"\$[^$\n]*\$|\{[a-z:-]+\}`[^`]*`|`[^`\n]*`|\{\{[^}]*\}\}", "", text)
    text = re.sub(r"\]\([^)]*\)|<[^>\n]*>", "]", text)
    text = re.sub(r"^%.*$", "", text, flags=re.M)
    return re.sub(r"^(\s*)\d+\.(\s)", r"\1\2", text, flags=re.M)


def numbers(text: str) -> set[str]:
    """The numbers of the prose, years left out."""
    found = set()
    for m in NUMBER.finditer(prose(text)):
        value = m.group(1)
        if re.fullmatch(r"(19|20)\d\d", value):
            continue
        found.add(value)
    return found


def declared(text: str) -> dict[str, str]:
    """``{number: reason}`` of the chapter's ``% numbers:`` lines."""
    out = {}
    for line in DECLARATION.findall(text):
        for entry in filter(None, (e.strip() for e in line.split(";"))):
            match = re.fullmatch(r"`(\d+(?:\.\d+)?)`\s+(\S.*)", entry)
            if match is None or re.search(r"`\d", match.group(2)):
                raise ValueError(f"a declaration is '`NUMBER` reason' (one number each), got {entry!r}")
            out[match.group(1)] = match.group(2)
    return out


@pytest.mark.parametrize("chapter", sorted(BOOK.glob("*.md")), ids=lambda p: p.name)
def test_every_number_in_prose_is_glued_or_declared(chapter):
    text = chapter.read_text(encoding="utf-8")
    found, allowed = numbers(text), declared(text)
    typed = sorted(found - set(allowed), key=float)
    assert not typed, (f"{chapter.name}: numbers typed in prose {typed}: glue each result from the cell that "
                       "computes it, or declare a definitional one in a '% numbers:' line")
    stale = sorted(set(allowed) - found, key=float)
    assert not stale, f"{chapter.name}: '% numbers:' declares {stale}, which the prose no longer has"


def test_the_detector_sees_prose_only():
    text = ("---\nx: 3\n---\n# Title 7\n\nAccuracy was 0.83 on 12 % of 40 images (Smith et al. 2019).\n"
            "1. An exercise with `k=5`, $k=6$, {glue:}`n` and {{ level }}.\n"
            "```{code-cell} ipython3\nx = 99\n```\n% numbers: `40` the images; `7` a title\n[link](page2)\n"
            "```{code-cell} ipython3\n---\ntags: [hide-input]\nmystnb:\n  figure:\n    caption: Maps of 3 images"
            " clipped at `q=99`, {glue:text}`p`.\n    name: fig-x-5\n---\nplt.show()\n```\n")
    assert captions(text) == ["Maps of 3 images clipped at `q=99`, {glue:text}`p`."]
    compact = ("```{code-cell} ipython3\n:tags: [hide-input]\n"
               ":mystnb: {figure: {caption: 'Of 6 maps.', name: fig-x-6}}\nplt.show()\n```\n")
    assert captions(compact) == ["Of 6 maps."] and numbers(compact) == {"6"}
    assert numbers(text) == {"7", "0.83", "12", "40", "3"}
    assert declared(text) == {"40": "the images", "7": "a title"}
    for bad in ("% numbers: `40`\n", "% numbers: 40 the images\n", "% numbers: `4` and `5` sides\n"):
        with pytest.raises(ValueError, match="NUMBER` reason"):
            declared(bad)
