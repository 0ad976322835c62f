"""book/_ext/notebook_links.py: a chapter page offers its notebook (.ipynb) and, where the
publisher names the repository, a Binder launch button for that chapter; otherwise no button
links a repository (jupyter-book's default repository is its own)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .book_build import book_extension

ROOT = Path(__file__).resolve().parents[1]


def _extension():
    return book_extension("notebook_links")


def test_no_repository_means_no_repository_or_launch_button():
    assert _extension().repository_options(None) == {
        "repository_url": "", "use_repository_button": False, "launch_buttons": {}}
    assert _extension().repository_options("")["launch_buttons"] == {}


def test_a_repository_gives_its_own_links_and_binder():
    options = _extension().repository_options("https://github.com/someone/xai_lab.git/", "course-2027")
    assert options["repository_url"] == "https://github.com/someone/xai_lab"
    assert options["repository_branch"] == "course-2027" and options["path_to_docs"] == ""
    assert options["use_repository_button"] is True
    assert options["launch_buttons"] == {"binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"}


@pytest.mark.parametrize("url", ["http://github.com/a/b", "https://example.org/a/b", "https://github.com/a",
                                 "https://github.com/a/b/tree/main", "github.com/a/b"])
def test_a_url_the_theme_cannot_link_is_refused(url):
    with pytest.raises(ValueError, match="XAI_LAB_REPOSITORY_URL"):
        _extension().repository_options(url)


def test_an_empty_branch_is_refused():
    with pytest.raises(ValueError, match="BRANCH"):
        _extension().repository_options("https://github.com/a/b", "")


_PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
print(6 * 7)
```
"""


def _build(tmp_path, repository):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "_ext").mkdir()
    shutil.copy(ROOT / "book" / "_ext" / "notebook_links.py", tmp_path / "book" / "_ext")
    (tmp_path / "book" / "chapter.md").write_text(_PAGE)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/chapter\n")
    (tmp_path / "_config.yml").write_text(
        "title: t\nexecute:\n  execute_notebooks: force\nsphinx:\n  local_extensions:\n"
        "    notebook_links: book/_ext\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_LAB_REPOSITORY", "MPLBACKEND"))}
    if repository:
        env["XAI_LAB_REPOSITORY_URL"] = repository
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(tmp_path), "-W", "--quiet"], check=True, env=env,
                   capture_output=True, timeout=300)
    html = tmp_path / "_build" / "html"
    return html, (html / "book" / "chapter.html").read_text(encoding="utf-8")


def test_a_built_page_offers_its_executed_notebook_and_no_launch_button(tmp_path):
    html, page = _build(tmp_path, repository=None)
    assert 'href="../_sources/book/chapter.ipynb"' in page and 'href="../_sources/book/chapter.md"' in page
    notebook = (html / "_sources" / "book" / "chapter.ipynb").read_text()
    assert '"42' in notebook, "the downloaded notebook has its outputs"
    assert "mybinder" not in page and "executablebooks/jupyter-book" not in page


def test_a_published_page_launches_its_chapter_on_binder(tmp_path):
    _, page = _build(tmp_path, repository="https://github.com/someone/xai_lab")
    links = set(re.findall(r'href="([^"]*mybinder[^"]*)"', page))
    assert links == {"https://mybinder.org/v2/gh/someone/xai_lab/main?urlpath=lab/tree/book/chapter.md"}
    assert 'href="https://github.com/someone/xai_lab"' in page
