"""Every figure of the book is numbered, captioned, named and referenced from its chapter's text.

A code cell *draws a figure* when its code (parsed, comments and strings aside) calls
``plt.show()`` or a function that makes a figure: ``plt.subplots``, ``plt.figure``, one of the
figure-returning functions of ``xai_lab.plot`` (those whose docstring says "Returns the figure")
or a function defined in an earlier cell of the chapter that calls one of these. Exercise
solutions (the cells the student edition strips) are left out: the text never points into them.

Such a cell (the convention, issue 15)

* draws one figure: at most one figure-making call and one ``plt.show()``, neither inside a loop
  (Sphinx wraps every rich output of the cell in the cell's figure, so two figures would get one
  number and one name);
* has no other rich output (no ``display()``, no ``glue`` without ``display=False``, no value shown
  by a last expression), for the same reason: a table goes to a cell of its own;
* carries myst-nb figure metadata, a caption and a name ``fig-<chapter>-<short>``, the name unique
  in the book and referenced with {numref}`fig-...` in the chapter's prose;
* is collapsed (tagged ``hide-input``) when it is plotting code only, that is, when it uses nothing
  of ``xai_lab`` but ``xai_lab.plot``; a cell that calls the API shows its code, since that is
  what it teaches.

A figure made by a ``{figure}`` or ``{glue:figure}`` directive in the prose (a figure glued from a
cell, e.g. HTML) needs a ``:name:`` of the same form and a caption, and is cited the same way.
Every {numref} names a figure of the book. The captions obey the prose rule on numbers
(tests/test_prose_numbers.py reads them too).
"""
from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

import pytest
import yaml
from myst_nb.core.read import read_myst_markdown_notebook

from xai_lab import plot

from .book_build import book_extension

ROOT = Path(__file__).resolve().parents[1]
student_edition = book_extension("student_edition")

NUMREF = re.compile(r"\{numref\}`([^`]*)`")
FIGURE_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?:figure|glue:figure)\}[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                              re.M | re.S)
PLOT_MAKERS = frozenset(name for name, f in inspect.getmembers(plot, inspect.isfunction)
                        if f.__module__ == plot.__name__ and "Returns the figure" in (f.__doc__ or ""))
PYPLOT_MAKERS = frozenset({"subplots", "figure"})
COLLAPSED = {"hide-input", "remove-input"}


def toc_chapters() -> list[Path]:
    """The book's pages in _toc.yml order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("chapters") or entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [ROOT / f"{f}.md" for f in files]


CHAPTERS = toc_chapters()


def _code(source: str) -> ast.Module:
    """A cell's code as Python (IPython magics and shell lines blanked)."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def _callee(call: ast.Call) -> tuple[str | None, str]:
    """(object name or None, function name) of a call: ``plt.show()`` -> ("plt", "show")."""
    f = call.func
    if isinstance(f, ast.Name):
        return None, f.id
    if isinstance(f, ast.Attribute):
        return (f.value.id if isinstance(f.value, ast.Name) else ""), f.attr
    return "", ""


class _Calls(ast.NodeVisitor):
    """The calls of a cell, each with whether it runs in a loop; the functions the cell defines."""

    def __init__(self):
        self.calls: list[tuple[ast.Call, bool]] = []
        self.defined: dict[str, ast.AST] = {}
        self.loop = 0

    def _looped(self, *nodes):
        self.loop += 1
        for node in nodes:
            self.visit(node)
        self.loop -= 1

    def visit_Call(self, node):
        self.calls.append((node, self.loop > 0))
        self.generic_visit(node)

    def visit_For(self, node):
        self.visit(node.iter)  # evaluated once
        self._looped(node.target, *node.body, *node.orelse)

    visit_AsyncFor = visit_For

    def visit_While(self, node):
        self._looped(node.test, *node.body, *node.orelse)

    def _comprehension(self, node):
        first, *rest = node.generators
        self.visit(first.iter)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self._looped(first.target, *first.ifs, *rest, *elements)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_FunctionDef(self, node):
        self.defined[node.name] = node  # its calls run where it is called

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        pass


def _makes_figure(call: ast.Call, chapter_makers: set[str]) -> bool:
    owner, name = _callee(call)
    return ((owner == "plt" and name in PYPLOT_MAKERS) or (owner in (None, "plot") and name in PLOT_MAKERS)
            or (owner is None and name in chapter_makers))


def _is_show(call: ast.Call) -> bool:
    return _callee(call) == ("plt", "show")


def _glue_shown(call: ast.Call) -> bool:
    """A myst-nb ``glue`` call that also displays its value (without ``display=False``)."""
    return _callee(call)[1] == "glue" and not any(
        k.arg == "display" and isinstance(k.value, ast.Constant) and k.value.value is False for k in call.keywords)


def _api_names(cells) -> set[str]:
    """Names through which the chapter reaches xai_lab outside its plotting module."""
    names = set()
    for cell in cells:
        for node in ast.walk(cell.tree):
            if isinstance(node, ast.Import):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "xai_lab"}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "xai_lab":
                if node.module == "xai_lab.plot":
                    continue
                names |= {a.asname or a.name for a in node.names if not (node.module == "xai_lab" and a.name == "plot")}
    return names


def _uses_api(tree: ast.AST, api: set[str]) -> bool:
    plot_roots = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr == "plot" and isinstance(node.value, ast.Name)}
    return any(isinstance(node, ast.Name) and node.id in api and id(node) not in plot_roots for node in ast.walk(tree))


class Cell:
    def __init__(self, index: int, cell):
        self.index, self.source, self.metadata = index, cell.source, cell.metadata
        self.tags = set(cell.metadata.get("tags", []))
        self.tree = _code(cell.source)
        visitor = _Calls()
        visitor.visit(self.tree)
        self.calls, self.defined = visitor.calls, visitor.defined

    @property
    def figure(self) -> dict:
        options = self.metadata.get("mystnb", {}).get("figure")
        return options if isinstance(options, dict) else {}

    def where(self, chapter: Path) -> str:
        first = next((line for line in self.source.splitlines() if line.strip()), "")
        return f"{chapter.name}, code cell {self.index} ({first.strip()[:60]!r})"


class Chapter:
    """A chapter's code cells (solutions left out), the cells among them that draw a figure, the
    functions its cells define that draw one, and its prose."""

    def __init__(self, path: Path):
        text = path.read_text(encoding="utf-8")
        solutions = [text[a:b].strip() for a, b in student_edition.solution_cells(text)]
        self.path, self.code, prose, index = path, [], [], 0
        for cell in read_myst_markdown_notebook(text).cells:
            if cell.cell_type == "markdown":
                prose.append(cell.source)
            elif cell.cell_type == "code":
                index += 1
                if not any(cell.source.strip() and cell.source.strip() in s for s in solutions):
                    self.code.append(Cell(index, cell))
        self.prose, self.makers, self.figures = "\n".join(prose), set(), []
        self.directives = [directive_figure(m.group("body")) for m in FIGURE_DIRECTIVE.finditer(self.prose)]
        for cell in self.code:  # a function drawing a figure draws it wherever it is called, its own cell too
            self.makers |= {name for name, f in cell.defined.items()
                            if any(isinstance(c, ast.Call) and self.draws(c) for c in ast.walk(f))}
            if any(self.draws(c) for c, _ in cell.calls):
                self.figures.append(cell)

    def makes(self, call: ast.Call) -> bool:
        return _makes_figure(call, self.makers)

    def draws(self, call: ast.Call) -> bool:
        return _is_show(call) or self.makes(call)


@cache
def read(path: Path) -> Chapter:
    return Chapter(path)


def directive_figure(body: str) -> dict:
    """``{"name", "caption"}`` of a ``{figure}`` or ``{glue:figure}`` directive's body (its options,
    then its caption)."""
    options = dict(re.findall(r"^:(\w+):[ \t]*(.*)$", body, re.M))
    caption = "\n".join(line for line in body.splitlines() if not re.match(r"^:\w+:", line)).strip()
    return {"name": options.get("name", "").strip(), "caption": caption}


def _target(reference: str) -> str:
    match = re.search(r"<([^>]+)>\s*$", reference)
    return (match.group(1) if match else reference).strip()


def references(prose: str) -> set[str]:
    return {_target(r) for r in NUMREF.findall(prose)}


def _short(chapter: Path) -> str:
    return chapter.stem.replace("_", "-")


def problems(chapter: Chapter) -> list[str]:
    """What keeps the chapter's figures from the convention, one line each."""
    api, cited, found = _api_names(chapter.code), references(chapter.prose), []
    for figure in chapter.directives:
        found += _naming(chapter.path, f"{chapter.path.name}, figure directive", figure["caption"], figure["name"], cited)
    for cell in chapter.figures:
        where = cell.where(chapter.path)
        looped = any(looped for c, looped in cell.calls if chapter.draws(c))
        made, shows = sum(chapter.makes(c) for c, _ in cell.calls), sum(_is_show(c) for c, _ in cell.calls)
        if looped or made > 1 or shows > 1:
            found.append(f"{where}: draws more than one figure; give each its own cell")
        last = cell.tree.body[-1] if cell.tree.body else None
        shown_value = (isinstance(last, ast.Expr) and not (isinstance(last.value, ast.Call)
                       and (_is_show(last.value) or _callee(last.value) == (None, "print"))))
        if shown_value or any(_callee(c) == (None, "display") or _glue_shown(c) for c, _ in cell.calls):
            found.append(f"{where}: shows a value beside its figure (it would be captioned too); "
                         "end the cell with plt.show() and put tables in a cell of their own")
        found += _naming(chapter.path, where, str(cell.figure.get("caption", "")).strip(),
                         str(cell.figure.get("name", "")).strip(), cited)
        if not COLLAPSED & cell.tags and not _uses_api(cell.tree, api):
            found.append(f"{where}: plotting code only (no xai_lab call beyond xai_lab.plot): tag it hide-input")
    for cell in chapter.code:  # a figure that is not drawn by matplotlib (an HTML widget) follows the same naming
        if cell not in chapter.figures and cell.figure:
            found += _naming(chapter.path, cell.where(chapter.path), str(cell.figure.get("caption", "")).strip(),
                             str(cell.figure.get("name", "")).strip(), cited)
    return found


def _naming(path: Path, where: str, caption: str, name: str, cited: set[str]) -> list[str]:
    """A figure's caption and name: present, the name of the chapter's form, cited in its text."""
    short = f"fig-{_short(path)}"
    if not caption or not name:
        return [f"{where}: no figure caption and name (mystnb figure metadata, or a directive's :name:)"]
    if not (name.replace("_", "-") == short or name.replace("_", "-").startswith(short + "-")):
        return [f"{where}: figure name {name!r} does not start with 'fig-{path.stem}-'"]
    if name not in cited:
        return [f"{where}: figure {name!r} is never referenced with {{numref}} in the text"]
    return []


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_is_one_captioned_named_referenced_figure(chapter):
    found = problems(read(chapter))
    assert not found, "\n".join(found)


def test_figure_names_are_unique_and_every_reference_names_a_figure():
    names: dict[str, list[str]] = {}
    for chapter in CHAPTERS:
        figures = read(chapter)
        for name in [str(c.figure.get("name", "")).strip() for c in figures.code] + [f["name"] for f in figures.directives]:
            if name:
                names.setdefault(name, []).append(chapter.name)
    repeated = {name: where for name, where in names.items() if len(where) > 1}
    assert not repeated, f"figure names used more than once: {repeated}"
    dangling = {chapter.name: sorted(references(read(chapter).prose) - set(names)) for chapter in CHAPTERS}
    dangling = {chapter: refs for chapter, refs in dangling.items() if refs}
    assert not dangling, f"{{numref}} to no figure of the book: {dangling}"


def test_the_plot_module_s_figure_makers_are_found():
    assert {"grid", "map_grid", "image_grid", "own_scale_grid", "removal_gallery"} <= PLOT_MAKERS
    assert "show_map" not in PLOT_MAKERS and "overlay" not in PLOT_MAKERS  # they draw on given axes


def test_the_detector_finds_figures_what_they_use_and_what_they_lack(tmp_path):
    text = ("---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n  name: python3\n---\n\n"
            "# T\n\n```{code-cell} ipython3\nimport xai_lab\nfrom xai_lab.plot import grid\n"
            "def draw(m):\n    fig, ax = plt.subplots()\n    return fig\n```\n\n"
            "```{code-cell} ipython3\ndef table(m):\n    return m\n```\n\n"
            "```{code-cell} ipython3\nfig = grid(images, maps)  # plotting only\n```\n\n"
            "```{code-cell} ipython3\n---\nmystnb:\n  figure:\n    caption: A map.\n"
            "    name: fig-chapter-map\n---\nm = xai_lab.explain(model, x)\ndraw(m)\nplt.show()\n```\n\n"
            "```{code-cell} ipython3\n---\ntags: [hide-input]\nmystnb:\n  figure:\n    caption: Maps.\n"
            "    name: fig-chapter-maps\n---\nfor m in maps:\n    draw(m)\nglue('a', 1, display=False)\nplt.show()\n"
            "table\n```\n\n"
            "See {numref}`Figure %s <fig-chapter-map>`.\n\n```{glue:figure} g\n:name: fig-chapter-glued\n\nGlued.\n```\n\n"
            "```{figure} a.png\n:name: fig-other\n```\n\n## Exercises\n\n"
            "```{code-cell} ipython3\n:tags: [hide-cell]\n\ndraw(1)\n```\n")
    path = tmp_path / "chapter.md"
    path.write_text(text, encoding="utf-8")
    chapter = Chapter(path)
    assert [c.index for c in chapter.figures] == [3, 4, 5] and len(chapter.code) == 5  # the solution left out
    assert chapter.makers == {"draw"} and references(chapter.prose) == {"fig-chapter-map"}
    api = _api_names(chapter.code)
    assert api == {"xai_lab"} and not _uses_api(chapter.figures[0].tree, api) and _uses_api(chapter.figures[1].tree, api)
    assert not _uses_api(ast.parse("xai_lab.plot.grid(a, b)"), api)
    assert [_glue_shown(c) for c in ast.walk(ast.parse("glue('a', 1)\nglue('b', 2, display=False)"))
            if isinstance(c, ast.Call)] == [True, False]
    assert chapter.directives == [{"name": "fig-chapter-glued", "caption": "Glued."}, {"name": "fig-other", "caption": ""}]
    found = problems(chapter)
    assert [line.split(": ", 1)[0].split(", ", 1)[1].split(" (")[0] for line in found] == [
        "figure directive", "figure directive", "code cell 3", "code cell 3", "code cell 5", "code cell 5", "code cell 5"]
    assert "never referenced" in found[0] and "no figure caption" in found[1]
    assert "no figure caption" in found[2] and "hide-input" in found[3]
    assert "more than one figure" in found[4] and "shows a value" in found[5] and "never referenced" in found[6]
