"""Docstrings as the API reference page shows them.

The package's docstrings write formulas in plain text (``|p_k - p| / p``, ``1[lo < x < hi]``);
reStructuredText would read ``|...|`` as a substitution. Before autodoc parses a docstring,
escape every ``|`` outside ````literal```` spans, so each formula shows as written.
"""
import re

_LITERAL = re.compile(r"(``.*?``)")


def _escape_pipes(line: str) -> str:
    parts = _LITERAL.split(line)
    return "".join(part if part.startswith("``") else part.replace("|", r"\|") for part in parts)


def _process(app, what, name, obj, options, lines):
    lines[:] = [_escape_pipes(line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
