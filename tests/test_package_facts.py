"""book/_ext/package_facts.py: the facts the prose states come from their homes, also when the
book is built from a copy of its sources (the student edition has no pyproject.toml beside it)."""
import re
from pathlib import Path

from xai_lab import data, stats

from .book_build import book_extension

ROOT = Path(__file__).resolve().parents[1]


def _extension():
    return book_extension("package_facts")


def test_the_facts_are_read_from_their_homes():
    facts = _extension().facts()
    required = re.search(r'^requires-python = "(.*)"$', (ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)
    assert facts == {"interval_level": f"{round(stats.LEVEL * 100)} %", "msld_license": data.MSLD_LICENSE,
                     "python_requirement": f"{required.removeprefix('>=')} or later"}


def test_the_extension_reads_no_file_beside_the_book(tmp_path):
    copy = tmp_path / "book" / "_ext" / "package_facts.py"
    copy.parent.mkdir(parents=True)
    copy.write_text((ROOT / "book" / "_ext" / "package_facts.py").read_text())
    assert book_extension("package_facts", root=tmp_path).facts() == _extension().facts()
