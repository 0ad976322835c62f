"""Every chapter offers its notebook as a download, and launch buttons where the book is published.

sphinx-book-theme puts the executed notebook (``.ipynb``) in a page's download menu only while
launch buttons are configured, and launch buttons need the repository the book is published from,
which a local clone does not know. So, for every notebook page (a MyST ``.md`` with a kernelspec),
this extension copies the notebook myst-nb wrote (``_build/jupyter_execute/<page>.ipynb``, with
its outputs) into ``_sources/`` and names it to the theme, before the theme builds the menu: the
menu then offers ``.ipynb`` beside the ``.md`` source.

Where the book is published, the publisher names the repository:
``XAI_LAB_REPOSITORY_URL=https://github.com/<owner>/<repo> make book`` (and optionally
``XAI_LAB_REPOSITORY_BRANCH``, default ``main``). That turns on the repository button and a
Binder launch button that opens the chapter's ``.md`` in JupyterLab (Binder builds the
environment from ``requirements.txt``; jupytext, installed with jupyter-book, reads the ``.md``
as a notebook). Colab is not offered: it opens only ``.ipynb`` files stored in the repository,
and the chapters are stored as ``.md``. Without the variable the book has no repository
button and no launch button (jupyter-book's default repository is its own, which must never be
linked as ours).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

#: Hosts whose repositories sphinx-book-theme can link (it parses owner and name from the URL).
REPOSITORY_HOSTS = ("github.com", "gitlab.com", "bitbucket.org")
BINDERHUB_URL = "https://mybinder.org"


def repository_options(url: str | None, branch: str = "main") -> dict:
    """The theme options for a book published from ``url`` (none when ``url`` is empty).

    Raises ``ValueError`` for a URL that is not ``https://<host>/<owner>/<repo>`` on a host the
    theme can link, so a typo fails the build instead of publishing broken buttons."""
    if not url:
        return {"repository_url": "", "use_repository_button": False, "launch_buttons": {}}
    parsed = urlparse(url.strip())
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme != "https" or parsed.netloc not in REPOSITORY_HOSTS or len(parts) != 2:
        raise ValueError(
            f"XAI_LAB_REPOSITORY_URL={url!r}: expected https://<host>/<owner>/<repo> with host one of "
            f"{', '.join(REPOSITORY_HOSTS)}"
        )
    if not branch:
        raise ValueError("XAI_LAB_REPOSITORY_BRANCH is empty: name the branch the book is published from")
    owner, name = parts[0], parts[1].removesuffix(".git")
    return {
        "repository_url": f"https://{parsed.netloc}/{owner}/{name}",
        "repository_branch": branch,
        "path_to_docs": "",  # the pages' names (book/<chapter>) are paths from the repository root
        "use_repository_button": True,
        "launch_buttons": {"binderhub_url": BINDERHUB_URL, "notebook_interface": "jupyterlab"},
    }


def _configure_repository(app, config):
    options = repository_options(
        os.environ.get("XAI_LAB_REPOSITORY_URL"), os.environ.get("XAI_LAB_REPOSITORY_BRANCH", "main")
    )
    config.html_theme_options = {**(config.html_theme_options or {}), **options}


def _offer_notebook(app, pagename, templatename, context, doctree):
    if app.builder.format != "html" or "kernelspec" not in app.env.metadata.get(pagename, {}):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        raise FileNotFoundError(f"{pagename} is a notebook page but myst-nb wrote no {executed}")
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    app.connect("config-inited", _configure_repository)
    # before the theme's download and launch buttons (priority 501)
    app.connect("html-page-context", _offer_notebook, priority=500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
