"""Facts the book's prose states that are defined in the project: MyST substitutions.

A sentence such as "each with a {{ interval_level }} bootstrap interval" reads its number from the
package (``xai_lab.stats.LEVEL``), so the text changes the day the definition does. Every key is
computed here from its one home; chapters use ``{{ name }}`` (myst ``substitution`` extension).
"""
import re
from importlib.metadata import metadata


def _python_requirement() -> str:
    """The installed package's ``Requires-Python`` (pyproject.toml's ``requires-python``, as pip
    recorded it; the book may be built from a copy of its sources, e.g. the student edition),
    ``">=3.10"`` -> ``"3.10 or later"``."""
    spec = metadata("xai_lab")["Requires-Python"] or ""
    match = re.fullmatch(r">=\s*(\d+\.\d+)", spec.strip())
    if match is None:
        raise ValueError(f"xai_lab's Requires-Python {spec!r} is not of the form '>=X.Y'")
    return f"{match.group(1)} or later"


def facts() -> dict[str, str]:
    """Substitution name -> text, each read from where the project defines it."""
    from xai_lab import data, stats

    return {
        "interval_level": f"{round(stats.LEVEL * 100)} %",
        "msld_license": data.MSLD_LICENSE,
        "python_requirement": _python_requirement(),
    }


def _add_facts(app, config):
    known = dict(getattr(config, "myst_substitutions", None) or {})
    clash = sorted(set(known) & set(facts()))
    if clash:
        raise ValueError(f"myst_substitutions already defines {clash}: they come from book/_ext/package_facts.py")
    config.myst_substitutions = {**known, **facts()}


def setup(app):
    app.connect("config-inited", _add_facts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
