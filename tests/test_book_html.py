"""The built book, checked like software: pages, images, outputs, figures."""
import json
import re
from html.parser import HTMLParser

import pytest

from .book_build import NOT_CHAPTERS, require_build, toc_pages


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.outputs, self._depth, self._in_output = [], [], 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append((attrs["src"], self._in_output > 0))
        classes = (attrs.get("class") or "").split()
        if tag == "div":
            self._depth += 1
            if "cell_output" in classes and not self._in_output:
                self._in_output = self._depth

    def handle_endtag(self, tag):
        if tag == "div":
            if self._in_output == self._depth:
                self._in_output = 0
            self._depth -= 1

    def handle_data(self, data):
        if self._in_output:
            self.outputs.append(data)


def _parse(page):
    html = require_build() / f"{page}.html"
    assert html.is_file(), f"{page} is in _toc.yml but {html} was not built"
    parser = _Page()
    parser.feed(html.read_text(encoding="utf-8"))
    return html, parser


@pytest.mark.parametrize("page", toc_pages())
def test_page_exists_and_its_images_are_there(page):
    html, parsed = _parse(page)
    for src, _ in parsed.images:
        if src.startswith(("http:", "https:", "data:")):
            continue
        target = (html.parent / src.split("#")[0].split("?")[0]).resolve()
        assert target.is_file() and target.stat().st_size > 0, f"{page}: image {src} is missing or empty"


@pytest.mark.parametrize("page", toc_pages())
def test_no_output_holds_a_traceback_or_a_warning(page):
    _, parsed = _parse(page)
    text = "".join(parsed.outputs)
    assert "Traceback (most recent call last)" not in text, page
    assert not re.search(r"\b\w*Warning: ", text), f"{page}: a warning is printed in an output cell"


@pytest.mark.parametrize("page", [p for p in toc_pages() if p not in NOT_CHAPTERS])
def test_every_chapter_has_a_figure(page):
    _, parsed = _parse(page)
    assert any(in_output for _, in_output in parsed.images), f"{page} shows no figure"


def test_the_api_reference_documents_every_method_and_the_entry_point():
    import xai_lab
    from xai_lab.registry import method_spec

    html = (require_build() / "book" / "api.html").read_text(encoding="utf-8")
    assert 'id="xai_lab.explain.explain"' in html and 'id="xai_lab.stats.bootstrap"' in html
    for name in xai_lab.methods():
        fn = method_spec(name).fn
        assert f'id="{fn.__module__}.{fn.__name__}"' in html, f"method {name} is not in the API reference"


@pytest.mark.parametrize("page", [p for p in toc_pages() if p not in NOT_CHAPTERS])
def test_every_chapter_offers_its_notebook_for_download(page):
    """The download menu links the executed notebook beside the .md source (book/_ext/notebook_links.py)."""
    html, _ = _parse(page)
    text = html.read_text(encoding="utf-8")
    for suffix in (".ipynb", ".md"):
        assert f'_sources/{page}{suffix}"' in text, f"{page} offers no {suffix} download"
    notebook = require_build() / "_sources" / f"{page}.ipynb"
    assert notebook.is_file(), f"{page}: {notebook} is missing"
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    assert any(cell.get("outputs") for cell in cells), f"{page}: {notebook} holds no executed output"
